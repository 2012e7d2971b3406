"""The pre-training task registry: every task the framework trains, the seven of ERNIE 2.0 and a
user's own, each defined by one module (in the spirit of fairseq's task registry).

A task module defines a subclass of `PretrainingTask` and decorates it with `@register`. The
class says what the task is (its `name`, the key used in configs, shards, logs and checkpoints;
a stable `task_id`, which is the row of the task embedding and the code stored in shards; its
`level`, token or sentence; the per-token label arrays it stores) and implements the hooks that
data generation, the pre-training reader, the model and `inspect` call. Nothing outside a task's
module names the task: generation, shards, the reader, the heads and `inspect` loop over the
tasks a config selects.

Modules are found by name: the built-in tasks are listed in `BUILTIN` (module paths, imported on
first use, exactly as a user's modules are), and a config adds its own with `task_modules:` (an
importable module or a `.py` file). Ids are permanent: the built-in seven keep 0-6, the rows the
released models' task embeddings use; a user's task takes an id of its own (an error names any
clash), so inserting a task never renumbers another.

Shards and manifests record each task's id, level and label arrays (`TaskSpec`); reading shards
whose table differs from the registered tasks is an error naming the task.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Sequence, Tuple, Type

if TYPE_CHECKING:  # the hooks' argument types; this module itself imports nothing of the project
    import numpy as np

TOKEN, SENTENCE = "token", "sentence"
MAX_TASK_ID = 63  # shards keep the token-level tasks of an example as a 64-bit mask over ids

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
class TaskSpec:
    """What shards record of a task, and what a reader checks against the registered task."""
    name: str
    task_id: int
    level: str
    label_fields: Tuple[str, ...]
    module: str

    def to_dict(self) -> dict:
        values = asdict(self)
        values["label_fields"] = list(self.label_fields)
        return values

    @classmethod
    def from_dict(cls, values: dict) -> "TaskSpec":
        return cls(values["name"], int(values["task_id"]), values["level"], tuple(values["label_fields"]),
                   values["module"])


class PretrainingTask:
    """One pre-training task. Subclasses set the class attributes and override the hooks their
    level needs; every hook has a default that does nothing.

    Data generation (`data_gen`), per chunk of documents:
      token level:    `token_labels` gives int8 arrays over the chunk's tokens, one per name in
                      `label_fields` (-1 where there is no label);
      sentence level: `segment_example` turns a text segment into an example (reordering,
                      distance: the segment's task is drawn among these tasks), `chunk_examples`
                      mines examples from the chunk's documents (discourse), `corpus_examples`
                      from a source of its own after the corpus (IR's click log).
    Reading (`ernie.pretrain.data`): `batch_labels` turns the examples of a batch into the
    task's label feeds. Model (`ernie.pretrain.model`): `build_head` and `loss`. `inspect`: `describe`.
    """
    name: str = ""
    task_id: int = -1
    level: str = ""
    label_fields: Tuple[str, ...] = ()
    # A sentence-level task built from text segments competes with the others for each segment;
    # a token-level task's labels ride on every text example.
    text_task: bool = False
    languages: Tuple[str, ...] = ("en", "zh")
    description: str = ""

    def __init__(self, module: str):
        self.module = module

    @property
    def spec(self) -> TaskSpec:
        return TaskSpec(self.name, self.task_id, self.level, tuple(self.label_fields), self.module)

    # ---- data generation -------------------------------------------------------------------
    def prepare(self, config, read_corpus) -> Any:
        """State computed over the whole corpus before generation (knowledge masking's phrase
        statistics); `read_corpus()` iterates the corpus's documents. It is passed to every worker."""
        return None

    def lexicon_words(self, state) -> Sequence[str]:
        """Words the generator's lexicon must keep under fixed ids (the phrases' words)."""
        return ()

    def setup(self, generator, state) -> None:
        """Called once per generator (in each worker) with the state `prepare` returned."""

    def max_parts(self, config) -> int:
        """A text task's most parts per example ([SEP]s a segment must leave room for)."""
        return 2

    def token_labels(self, chunk, context, stats) -> Dict[str, "np.ndarray"]:
        """A token-level task's label arrays over the chunk's tokens, one per `label_fields`."""
        return {}

    def segment_example(self, context, segment: Tuple[int, int], rng, stats):
        """An `examples.Plan` for the segment [first, end) of sentences, or None to drop it."""
        return None

    def chunk_examples(self, context, stats) -> List:
        return []

    def corpus_examples(self, generator, read_stats, rng, stats):
        """(TokenTable, plans) made after the corpus from the task's own source; None when the
        task has no such source; a sentence saying why when it has one but made nothing."""
        return None

    def finish_block(self, block, generator, rng, stats) -> None:
        """Last changes to an assembled block of examples (knowledge masking's offline masking)."""

    def count_labels(self, labels: Dict[str, "np.ndarray"]) -> Dict[str, int]:
        """What the manifest records of a token-level task's labels over the examples that carry
        it (default: how often each label of its first field occurs)."""
        import numpy as np
        values = labels[self.label_fields[0]]
        counts = np.bincount(values[values >= 0].astype(np.int64))
        return {str(label): int(n) for label, n in enumerate(counts) if n}

    def num_classes(self, generator) -> Optional[int]:
        """Classes of a sentence-level task (from its config and resources), None for token tasks."""
        return None

    def manifest_entries(self, generator, stats) -> Dict[str, Any]:
        """What the manifest should record of this task besides its examples and labels per
        class (the discourse markers), from its generator and the generation's counts."""
        return {}

    # ---- reading ---------------------------------------------------------------------------
    def batch_labels(self, examples: Sequence, length: int, batch) -> Dict[str, "np.ndarray"]:
        """This task's label feeds for a batch in which it is on, its examples padded to `length`;
        `batch` (`ernie.pretrain.data.BatchContext`) holds the step's random generator and the
        examples' input ids, which a masking task may change. Default: a token task's first
        label field as `<name>_label` [B, T]; a sentence task's labels as `<name>_label` [B]."""
        import numpy as np
        if self.level == TOKEN:
            out = np.full((len(examples), length), -1, np.int64)
            for row, ex in enumerate(examples):
                out[row, :len(ex)] = ex.labels[self.label_fields[0]]
            return {f"{self.name}_label": out}
        return {f"{self.name}_label": np.asarray([ex.label for ex in examples], np.int64)}

    def no_labels(self, n: int, length: int) -> Dict[str, "np.ndarray"]:
        """The feeds of a batch in which the task is off: no labels (-1)."""
        import numpy as np
        dims = {1: (n,), 2: (n, length)}  # a feed is [B] or [B, T]
        return {name: np.full(dims[len(shape)], -1, np.int64) for name, (shape, _) in self.feed_specs().items()}

    def feed_specs(self) -> Dict[str, Tuple[List[int], str]]:
        """name -> (shape, dtype) of the feeds `batch_labels` gives."""
        return {f"{self.name}_label": ([-1, -1] if self.level == TOKEN else [-1], "int64")}

    # ---- model -----------------------------------------------------------------------------
    def head_parameters(self) -> Tuple[str, ...]:
        """The names of the head's parameters: a model that has them all has learned the task."""
        return ()

    def build_head(self, config, num_classes: Optional[int]):
        """The task's head (a `paddle.nn.Layer` with parameters under fixed names), or None."""
        raise NotImplementedError(f"{self.name}: no head")

    def loss(self, head, encoder, sequence, pooled, batch):
        """(mean loss, number of labels, number predicted right) for the batch."""
        raise NotImplementedError(f"{self.name}: no loss")

    # ---- inspect ---------------------------------------------------------------------------
    def describe(self, example, tokens: List[str], original: List[str], manifest: dict) -> Dict[str, Any]:
        """The example's labels of this task, decoded for a person."""
        return {}


_REGISTERED: Dict[str, PretrainingTask] = {}
_BY_ID: Dict[int, str] = {}
_LOADED_FILES: Dict[str, str] = {}   # resolved .py path -> the module name it was loaded under
_FILE_OF: Dict[str, str] = {}        # that module name -> the path as the config gave it


def register(cls: Type[PretrainingTask]) -> Type[PretrainingTask]:
    """Class decorator: registers the task under its name and id."""
    if not cls.name or cls.level not in (TOKEN, SENTENCE) or not 0 <= cls.task_id <= MAX_TASK_ID:
        raise TaskError(f"{cls.__module__}.{cls.__name__}: a task needs a name, a level ({TOKEN} or "
                        f"{SENTENCE}) and an id in 0..{MAX_TASK_ID}")
    if cls.level == TOKEN and not cls.label_fields:
        raise TaskError(f"task {cls.name}: a token-level task stores at least one label field")
    task = cls(_FILE_OF.get(cls.__module__, cls.__module__))  # what a shard records to find the task again
    old = _REGISTERED.get(cls.name)
    if old is not None and old.module != task.module:
        raise TaskError(f"task name {cls.name!r} is taken by {old.module}; {task.module} must choose another")
    if cls.task_id in _BY_ID and _BY_ID[cls.task_id] != cls.name:
        raise TaskError(f"task id {cls.task_id} of {cls.name} ({task.module}) is taken by "
                        f"{_BY_ID[cls.task_id]}; ids are permanent, choose a free one")
    fields = {f for t in _REGISTERED.values() if t.name != cls.name for f in t.label_fields}
    clash = sorted(fields & set(cls.label_fields))
    if clash:
        raise TaskError(f"task {cls.name}: label field(s) {clash} belong to another task")
    _REGISTERED[cls.name] = task
    _BY_ID[cls.task_id] = cls.name
    return cls


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


def load_modules(modules: Iterable[str]) -> None:
    for module in modules:
        load_module(module)


def get(name: str) -> PretrainingTask:
    """The registered task of this name, importing a built-in's module on first use."""
    if name not in _REGISTERED and name in BUILTIN:
        load_module(BUILTIN[name])
    if name not in _REGISTERED:
        raise TaskError(f"unknown task {name!r}; known: {sorted(set(BUILTIN) | set(_REGISTERED))} "
                        "(a task of your own: name its module in the config's task_modules)")
    return _REGISTERED[name]


def by_id(task_id: int) -> PretrainingTask:
    if task_id not in _BY_ID:
        for name in BUILTIN:
            get(name)
    if task_id not in _BY_ID:
        raise TaskError(f"no registered task has id {task_id}")
    return _REGISTERED[_BY_ID[task_id]]


def resolve(names: Sequence[str]) -> List[PretrainingTask]:
    """The tasks of these names, in id order (the order of heads, feeds and the task table)."""
    tasks = {get(n).name: get(n) for n in names}
    return sorted(tasks.values(), key=lambda t: t.task_id)


def builtin_names() -> List[str]:
    return list(BUILTIN)


def check_table(recorded: Dict[str, dict], where: str) -> List[PretrainingTask]:
    """The registered tasks of a shard's or manifest's task table; an error names the first task
    whose id, level, label arrays or module differ from the code's, or that is not registered."""
    tasks = []
    for name, values in recorded.items():
        spec = TaskSpec.from_dict(values)
        if name not in _REGISTERED and name not in BUILTIN:
            try:
                load_module(spec.module)
            except TaskError as err:
                raise TaskError(f"{where}: holds task {name!r}, whose module cannot be loaded: {err}") from None
        task = get(name)
        mine = task.spec
        for field in ("task_id", "level", "label_fields"):
            if getattr(mine, field) != getattr(spec, field):
                raise TaskError(f"{where}: task {name!r} was written with {field} {getattr(spec, field)!r}, "
                                f"but the registered task ({task.module}) has {getattr(mine, field)!r}: "
                                "regenerate the shards with `python -m data_gen make`")
        tasks.append(task)
    return sorted(tasks, key=lambda t: t.task_id)
