"""The pre-training task registry: every task the framework trains, the seven of ERNIE 2.0 and a
user's own, each defined by one module (in the spirit of fairseq's `register_task(name,
dataclass=...)`).

A task module defines the task's two sides and registers them together with a dataclass of its
options:

    @register(options=NextSentenceOptions, head=LinearHead)
    class NextSentence(DataTask):
        name, task_id, level = "next_sentence", 7, SENTENCE

The registered class is the data side (`data_gen.data_task.DataTask`: generation, reading,
`inspect`'s decoding); `head` is the class of the model side (`ernie.pretrain.task_head.TaskHead`:
the head's layer, its parameter names, the loss and its counts). The class attributes say what
the task is: its `name`, the key used in configs, shards, logs and checkpoints; a stable
`task_id`, which is the row of the task embedding and the code stored in shards; its `level`,
token or sentence; the arrays it stores in shards, its `fields` (`Field`: a name, a dtype, and
one value a token, one an example, or a list of any length an example, as knowledge masking's
offline masks). A task that declares no `fields` stores an int8 array per token for each name of
its `label_fields`, as every task did before fields were declared. Nothing outside a task's module names
the task: generation, shards, the reader, the heads and `inspect` loop over the tasks a config
selects, a task's settings and files are its options, and whatever else the framework asks of a
task (its stream's seed, the logits it adds to the memory estimate, what the summary sets its loss
against) is a hook of `DataTask` with a default, so a user's task needs none of them
(`tests/test_task_names.py` fails on a built-in task's name in the framework's code).

Options are a `TaskOptions` dataclass, read from the data config's `task_options:` mapping under
the task's name and checked by the typed config loader (`ernie_common.configfile`); a field made
with `resource()` names a file the task reads, which the data config checks exists and the
shards' fingerprint hashes. The registry holds classes only: each run builds its task objects
from their options (`data_gen.generate.build_tasks`, `recorded_tasks`), so no state is shared
between runs or kept from import; a pre-training run gives each task's head the options object
its reader's task holds (`ernie.pretrain.model.ErnieForPretraining(options=...)`).

Modules are found by name: the built-in tasks are listed in `BUILTIN` (module paths, imported on
first use, exactly as a user's modules are), and a config adds its own with `task_modules:` (an
importable module or a `.py` file). Ids are permanent: the built-in seven keep 0-6, the rows the
released models' task embeddings use; a user's task takes an id of its own (an error names any
clash), so inserting a task never renumbers another.

Shards and manifests record each task's id, level and fields (`TaskSpec`); reading shards
whose table differs from the registered tasks is an error naming the task.
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Type

import numpy as np

from .configfile import ConfigError, build

TOKEN, SENTENCE = "token", "sentence"
EXAMPLE, LIST = "example", "list"  # besides TOKEN, how many values of a field an example has
MAX_TASK_ID = 63  # shards keep the token-level tasks of an example as a 64-bit mask over ids
# The reader's stream of a shard's examples of no sentence-level task, which carry the token-level
# tasks' labels (`ernie.pretrain.data`): streams are named after their tasks, so no task has this name.
PLAIN_STREAM = "plain"
_RESOURCE = "resource"  # the metadata key of an options field that names a file

BUILTIN = {
    "knowledge_masking": "ernie_tasks.knowledge_masking",
    "capitalization": "ernie_tasks.capitalization",
    "token_document": "ernie_tasks.token_document",
    "sentence_reordering": "ernie_tasks.sentence_reordering",
    "sentence_distance": "ernie_tasks.sentence_distance",
    "discourse_relation": "ernie_tasks.discourse_relation",
    "ir_relevance": "ernie_tasks.ir_relevance",
}


class TaskError(ValueError):
    """An unknown task, a clash of names or ids, or shards whose task table differs from the code's."""


@dataclass(frozen=True)
class Field:
    """An array a task stores in shards: `per` TOKEN (one value a token, -1 where there is none),
    EXAMPLE (one value an example, -1 by default) or LIST (any number of values an example, none
    by default), each value of `dtype` (a numpy integer or float type's name). Its `name` is the
    key of the example's `labels`, `values` or `lists` (`data_gen.examples.Example`)."""
    name: str
    dtype: str = "int8"
    per: str = TOKEN

    def __post_init__(self):
        if self.per not in (TOKEN, EXAMPLE, LIST):
            raise TaskError(f"field {self.name!r}: per must be {TOKEN}, {EXAMPLE} or {LIST}, not {self.per!r}")
        try:
            kind = np.dtype(self.dtype).kind
        except TypeError:
            kind = None
        if kind not in ("i", "u", "f"):
            raise TaskError(f"field {self.name!r}: dtype must name a numpy integer or float type, not {self.dtype!r}")

    def __str__(self) -> str:
        return f"{self.name}:{self.dtype}/{self.per}"


@dataclass(frozen=True)
class TaskSpec:
    """What shards record of a task, and what a reader checks against the registered task."""
    name: str
    task_id: int
    level: str
    fields: Tuple[Field, ...]
    module: str

    @property
    def label_fields(self) -> Tuple[str, ...]:
        return token_field_names(self.fields)

    def to_dict(self) -> dict:
        values = asdict(self)
        values["fields"] = [asdict(f) for f in self.fields]
        return values

    @classmethod
    def from_dict(cls, values: dict) -> "TaskSpec":
        return cls(values["name"], int(values["task_id"]), values["level"],
                   tuple(Field(**f) for f in values["fields"]), values["module"])


def token_field_names(fields: Sequence[Field]) -> Tuple[str, ...]:
    """The names of the per-token fields (a task's `label_fields`)."""
    return tuple(f.name for f in fields if f.per == TOKEN)


def declared_fields(task: type) -> Tuple[Field, ...]:
    """A task class's fields: those it declares, else an int8 array per token for each name of its
    `label_fields` (what every task stored before tasks declared fields)."""
    return tuple(task.fields) or tuple(Field(name) for name in task.label_fields)


def resource(default: Optional[str] = None):
    """A field of a task's options that names a file the task reads while it generates: the data
    config checks that it exists (a `configs/...` path is found among the shipped configs from any
    directory) and its bytes enter the shards' fingerprint."""
    return dataclasses.field(default=default, metadata={_RESOURCE: True})


@dataclass
class TaskOptions:
    """The options of a task (none here): subclasses are dataclasses whose fields the data
    config's `task_options.<task>` sets; `__post_init__` may refuse a value with a ValueError,
    which the loader reports under the file and key."""

    def resources(self) -> Dict[str, str]:
        """field -> path of each file the options name (the `resource()` fields that are set)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.metadata.get(_RESOURCE) and getattr(self, f.name)}


_REGISTERED: Dict[str, type] = {}
_BY_ID: Dict[int, str] = {}
_LOADED_FILES: Dict[str, str] = {}   # resolved .py path -> the module name it was loaded under
_FILE_OF: Dict[str, str] = {}        # that module name -> the path as the config gave it


def _check_fields(cls: type, fields: Tuple[Field, ...]) -> None:
    """A token-level task stores labels on tokens, a sentence-level one none (its examples' tokens
    are the token-level tasks'); no field name is used twice, or by another task."""
    if cls.level == TOKEN and not any(f.per == TOKEN for f in fields):
        raise TaskError(f"task {cls.name}: a token-level task stores at least one field per token")
    if cls.level == SENTENCE and any(f.per == TOKEN for f in fields):
        raise TaskError(f"task {cls.name}: a sentence-level task's fields are per {EXAMPLE} or {LIST}, not per token")
    names = [f.name for f in fields]
    if len(set(names)) < len(names):
        raise TaskError(f"task {cls.name}: a field name is declared twice in {names}")
    if "label_fields" in vars(cls) and tuple(cls.label_fields) != token_field_names(fields):
        raise TaskError(f"task {cls.name}: label_fields {list(cls.label_fields)} must name its per-token fields")
    owned = {f.name for t in _REGISTERED.values() if t.name != cls.name for f in t.spec.fields}
    clash = sorted(owned & set(names))
    if clash:
        raise TaskError(f"task {cls.name}: field(s) {clash} belong to another task")


def register(*, head: type, options: Type[TaskOptions] = TaskOptions) -> Callable[[type], type]:
    """Class decorator: registers a task's data-side class under its name and id, with the class
    of its model side (`head`) and the dataclass of its `options`. It sets the class's `spec`,
    `module` (what a shard records to find the task again), `options_type` and `head_type`, and
    `label_fields` to the names of its per-token fields."""
    if not (isinstance(options, type) and issubclass(options, TaskOptions) and dataclasses.is_dataclass(options)):
        raise TaskError(f"register(options={options!r}): the options must be a dataclass subclassing TaskOptions")

    def add(cls: type) -> type:
        module = _FILE_OF.get(cls.__module__, cls.__module__)
        if not cls.name or cls.level not in (TOKEN, SENTENCE) or not 0 <= cls.task_id <= MAX_TASK_ID:
            raise TaskError(f"{module}: task class {cls.__name__} needs a name, a level ({TOKEN} or "
                            f"{SENTENCE}) and an id in 0..{MAX_TASK_ID}; it has name={cls.name!r}, "
                            f"level={cls.level!r}, task_id={cls.task_id!r}")
        if cls.name == PLAIN_STREAM:
            raise TaskError(f"{module}: the task name {PLAIN_STREAM!r} is the reader's stream of the examples that "
                            f"carry only token-level tasks: choose another")
        if cls.level == TOKEN and getattr(cls, "text_task", False):
            raise TaskError(f"{module}: task {cls.name} is token-level, so not a text task (text_task = True is "
                            f"a sentence-level task that makes an example of a text segment): its labels ride on "
                            f"every text example")
        if not (isinstance(head, type) and not inspect.isabstract(head)
                and all(callable(getattr(head, method, None)) for method in ("parameter_names", "build", "loss"))):
            raise TaskError(f"{module}: task {cls.name}'s head {head!r} must be a TaskHead class with every "
                            f"method it declares abstract defined (ernie.pretrain.task_head)")
        if cls.__module__ not in BUILTIN.values():
            for name in BUILTIN:  # the built-ins are imported on first use: a clash must see them now
                get(name)
        old = _REGISTERED.get(cls.name)
        if old is not None and old.module != module:
            raise TaskError(f"task name {cls.name!r} is taken by {old.module}; {module} must choose another")
        if cls.task_id in _BY_ID and _BY_ID[cls.task_id] != cls.name:
            raise TaskError(f"task id {cls.task_id} of {cls.name} ({module}) is taken by "
                            f"{_BY_ID[cls.task_id]}; ids are permanent, choose a free one")
        fields = declared_fields(cls)
        _check_fields(cls, fields)
        cls.module, cls.options_type, cls.head_type = module, options, head
        cls.spec = TaskSpec(cls.name, cls.task_id, cls.level, fields, module)
        cls.label_fields = cls.spec.label_fields
        _REGISTERED[cls.name] = cls
        _BY_ID[cls.task_id] = cls.name
        return cls
    return add


def load_module(path_or_name: str) -> None:
    """Imports a task module: an importable name (`mypackage.my_task`) or a `.py` file."""
    if path_or_name.endswith(".py"):
        path = Path(path_or_name).resolve()
        if str(path) in _LOADED_FILES:
            return
        if not path.is_file():
            raise TaskError(f"task module {path_or_name} not found")
        name = f"ernie_user_task_{path.stem}"
        _FILE_OF[name] = path_or_name
        # its helper modules beside it import by their names, for the whole process (after what is
        # installed: a helper named as an installed module, or as another task folder's, is not its own)
        if str(path.parent) not in sys.path:
            sys.path.append(str(path.parent))
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except TaskError:
            raise
        except Exception as err:
            raise TaskError(f"task module {path_or_name} failed to load: {type(err).__name__}: {err}") from None
        _LOADED_FILES[str(path)] = name
        return
    try:
        importlib.import_module(path_or_name)
    except ModuleNotFoundError as err:
        raise TaskError(f"task module {path_or_name!r} cannot be imported: {err}") from None


def task_sources(task: type) -> List[Path]:
    """The source files a task's behaviour comes from: its module's file, then those of the modules
    from its module's folder or below that it uses (by what its globals hold, and theirs in turn:
    its helpers), which the shards' fingerprint and `task_code` hash, so that editing a helper
    makes the shards again. Installed packages (a virtual environment in the task's folder) and
    the framework's own packages (a task module at the repository's root) are not the task's."""
    module = sys.modules[task.__module__]
    own = Path(module.__file__).resolve()
    installed = {Path(p).resolve() for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    root = Path(__file__).resolve().parents[1]
    others = {p.name for p in root.iterdir() if (p / "__init__.py").is_file()} - {task.__module__.split(".")[0]}

    def is_own(used) -> bool:
        file = getattr(used, "__file__", None)
        if not (file and file.endswith(".py") and used.__name__.split(".")[0] not in others):
            return False
        path = Path(file).resolve()
        return path.is_relative_to(own.parent) and not any(path.is_relative_to(p) for p in installed)

    found, todo = {own}, [module]
    while todo:
        for value in list(vars(todo.pop()).values()):
            used = value if isinstance(value, ModuleType) else sys.modules.get(getattr(value, "__module__", None) or "")
            if used is not None and is_own(used) and Path(used.__file__).resolve() not in found:
                found.add(Path(used.__file__).resolve())
                todo.append(used)
    return [own, *sorted(found - {own})]


def load_modules(modules: Iterable[str]) -> None:
    for module in modules:
        load_module(module)


def get(name: str) -> type:
    """The registered task class of this name, importing a built-in's module on first use."""
    if name not in _REGISTERED and name in BUILTIN:
        load_module(BUILTIN[name])
    if name not in _REGISTERED:
        loaded = sorted(_LOADED_FILES)
        hint = (f"the task_modules loaded ({', '.join(loaded)}) register no task of that name: is its class "
                "decorated with @register, and is `name` spelt so?" if loaded else
                "a task of your own: name its module in the config's task_modules")
        raise TaskError(f"unknown task {name!r}; known: {sorted(set(BUILTIN) | set(_REGISTERED))} ({hint})")
    return _REGISTERED[name]


def by_id(task_id: int) -> type:
    if task_id not in _BY_ID:
        for name in BUILTIN:
            get(name)
    if task_id not in _BY_ID:
        raise TaskError(f"no registered task has id {task_id}")
    return _REGISTERED[_BY_ID[task_id]]


def resolve(names: Sequence[str]) -> List[type]:
    """The task classes of these names, in id order (the order of heads, feeds and the task table)."""
    tasks = {get(n).name: get(n) for n in names}
    return sorted(tasks.values(), key=lambda t: t.task_id)


def builtin_names() -> List[str]:
    return list(BUILTIN)


def recorded_options(task: type, config: Mapping[str, Any], where: str) -> TaskOptions:
    """A task's options from a data config as a manifest records it (`DataConfig.to_dict`).
    Manifests written before tasks had options of their own hold them as top-level keys, under
    the names the options' fields still have."""
    if "task_options" in config:
        values = config["task_options"].get(task.name, {})
    else:
        values = {f.name: config[f.name] for f in dataclasses.fields(task.options_type) if f.name in config}
    try:
        return build(task.options_type, values, f"{where}: task_options.{task.name}")
    except ConfigError as err:
        raise TaskError(str(err)) from None


def recorded_tasks(tasks: Sequence[type], config: Mapping[str, Any], where: str) -> list:
    """This run's objects of `tasks` (classes), each built from its options in a manifest's data
    config (`where` names the manifest in an error)."""
    return [task(recorded_options(task, config, where)) for task in tasks]


def check_table(recorded: Dict[str, dict], where: str) -> List[type]:
    """The registered task classes of a shard's or manifest's task table; an error names the first
    task whose id, level or fields differ from the code's, or that is not registered."""
    tasks = []
    for name, values in recorded.items():
        try:
            spec = TaskSpec.from_dict(values)
        except (KeyError, TypeError, TaskError) as err:
            raise TaskError(f"{where}: task {name!r} is recorded in another format ({type(err).__name__}: {err}): "
                            "regenerate the shards with `python -m data_gen make`") from None
        if name not in _REGISTERED and name not in BUILTIN:
            try:
                load_module(spec.module)
            except TaskError as err:
                raise TaskError(f"{where}: holds task {name!r}, whose module cannot be loaded: {err}") from None
        task = get(name)
        mine = task.spec
        for field in ("task_id", "level", "fields"):
            if getattr(mine, field) != getattr(spec, field):
                raise TaskError(f"{where}: task {name!r} was written with {field} {_shown(getattr(spec, field))}, "
                                f"but the registered task ({task.module}) has {_shown(getattr(mine, field))}: "
                                "regenerate the shards with `python -m data_gen make`")
        tasks.append(task)
    return sorted(tasks, key=lambda t: t.task_id)


def _shown(value) -> str:
    """A recorded value as an error shows it: fields as `name:dtype/per`."""
    return f"[{', '.join(map(str, value))}]" if isinstance(value, tuple) else repr(value)
