"""Data generation config (`configs/data/*.yaml`), validated; unknown keys are errors.

A relative path in a config file is read from the file's folder (from the repository root in a
config inside the checkout, as the shipped ones), one that begins with `configs/` names a shipped
config, and one set on the command line (`--set`, `--output`) is the working directory's
(`ernie_common.configfile.config_path`). `input` lists files, folders and glob patterns
(`DataConfig.files`: the files they name, in the order read; `DataConfig.skipped_files`:
what their folders and patterns hold that is not corpus). A task's own settings and files are its
options, under its name in `task_options:` (`ernie_common.tasks.TaskOptions`), e.g.

    task_options:
      knowledge_masking: {mask_ratio: 0.4}
      discourse_relation: {discourse_markers: configs/discourse/en.yaml}
"""
from __future__ import annotations

import dataclasses
import functools
import os
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar, Dict, Iterator, List, Optional, Sequence, Tuple

from ernie_common import tasks as registry
from ernie_common.configfile import ConfigError, apply_overrides, build, read, resolve_paths
from ernie_common.fileio import file_above
from ernie_common.shipped_configs import find
from ernie_common.tasks import TaskOptions
from ernie_common.tokenization import is_sentencepiece

from .documents import CorpusError, Document, Reading, Skipped, expand_inputs, load_stopwords, read_documents


class DataConfigError(ConfigError):
    pass


@dataclasses.dataclass
class DataConfig:
    config_error = DataConfigError  # not a field: the error the config loader raises for this config
    check_files: ClassVar[bool] = True  # whether the files it names must exist (not in `_Unchecked`)
    path_keys = ("input", "vocab", "output", "stopwords", "task_modules", "labelled_texts")  # read from the file's folder
    input: List[str]                   # files, folders (every file under them), glob patterns
    vocab: str
    output: str
    format: str = "text"
    lang: str = "en"
    layout: Optional[str] = None       # sentence_per_line, paragraphs, paragraph_per_line (None: the format's)
    document_separator: Optional[str] = None  # a regular expression: a line that starts a new document
    text_field: Optional[str] = None   # jsonl's key, parquet's and tsv's column holding the text (None: text, text_a)
    # a fine-tuning task's folder (data_gen fetch NAME): its train.tsv's texts, labels dropped, in
    # place of `input` and `format` (task-adaptive pre-training, on the text a task will see)
    labelled_texts: Optional[str] = None
    encoding: str = "utf-8"            # of text, jsonl and peoples_daily files (latin-1, cp1252, gb18030, ...)
    on_decode_error: str = "error"     # or skip: a line that does not decode is skipped and counted
    do_lower_case: bool = True         # WordPiece's; a SentencePiece model keeps its own
    tokenizer: str = "wordpiece"       # or sentencepiece: the vocab's directory holds the model
    tasks: List[str] = dataclasses.field(default_factory=registry.builtin_names)
    task_modules: List[str] = dataclasses.field(default_factory=list)  # a user's task modules (name or .py)
    max_seq_len: int = 128
    shards: int = 4
    seed: int = 1
    workers: int = 1
    # each task's options, under its name (`ernie_common.tasks.TaskOptions`); after loading, every
    # configured task's options object, defaults filled in
    task_options: Dict[str, Any] = dataclasses.field(default_factory=dict)
    stopwords: Optional[str] = None    # the lexicon's stop words, which several tasks' labels leave out
    chunk_bytes: int = 262144           # documents are dealt to workers in chunks of about this much text
    # a share of the documents kept out of the training shards, each chosen by a hash of its text
    # and the seed: their examples, made from them alone, go to held-out shards, which
    # pre-training's `heldout:` evaluation reads (docs/data.md, "Held-out documents")
    heldout_documents: float = 0.0

    def __post_init__(self):
        if isinstance(self.input, str):
            self.input = [self.input]
        if self.labelled_texts is not None:
            train = Path(self.labelled_texts) / "train.tsv"
            if self.check_files and not train.is_file():
                raise DataConfigError(f"labelled_texts: {train} not found (a fine-tuning task's folder, as "
                                      f"`python -m data_gen fetch NAME --dir DIR` writes it)")
            self.input, self.format, self.text_field = [str(train)], "tsv", None
        try:
            registry.load_modules(self.task_modules)
            tasks = [registry.get(t) for t in self.tasks]
        except registry.TaskError as err:
            raise DataConfigError(str(err)) from None
        if self.lang not in ("en", "zh"):
            raise DataConfigError(f"lang must be en or zh, got {self.lang!r}")
        try:
            how = self.reading()
        except ValueError as err:
            raise DataConfigError(str(err)) from None
        self.layout, self.text_field = how.layout, how.text_field
        if self.tokenizer not in ("wordpiece", "sentencepiece"):
            raise DataConfigError(f"tokenizer must be wordpiece or sentencepiece, got {self.tokenizer!r}")
        # a task the language cannot have is left out (Chinese has no case), and said so (`make`)
        self.tasks_left_out = {t.name: list(t.languages) for t in tasks if self.lang not in t.languages}
        self.tasks = [t.name for t in tasks if self.lang in t.languages]
        if self.max_seq_len < 16 or self.max_seq_len > 4096:
            raise DataConfigError(f"max_seq_len {self.max_seq_len} is outside 16..4096")
        if Path(self.output).exists() and not Path(self.output).is_dir():
            raise DataConfigError(f"output: {self.output} is a file, where the shards' directory is written")
        if file_above(self.output):
            raise DataConfigError(f"output: {self.output}: a folder of the path is a file ({file_above(self.output)})")
        for name in ("shards", "workers", "chunk_bytes"):
            if getattr(self, name) < 1:
                raise DataConfigError(f"{name} must be at least 1")
        if not 0 <= self.heldout_documents <= 0.5:
            raise DataConfigError(f"heldout_documents is the share of the documents kept out of training, from 0 "
                                  f"to 0.5; got {self.heldout_documents}")
        if self.seed < 0:
            raise DataConfigError(f"seed must be at least 0 (numpy seeds its generators with non-negative integers), "
                                  f"got {self.seed}")
        self.task_options = self._options([registry.get(t) for t in self.tasks])
        if self.stopwords:  # a shipped resource, found from anywhere
            self.stopwords = str(find(self.stopwords))
        if self.check_files:
            self.files  # the inputs expanded now: an entry that names no file is an error of the config
            for key, path in [("vocab", self.vocab), ("stopwords", self.stopwords)] + self.resources():
                if path and not Path(path).is_file():
                    raise DataConfigError(f"{key}: file not found: {path}")
            self._check_contents()
            if (self.tokenizer == "sentencepiece") != is_sentencepiece(self.vocab):
                raise DataConfigError(f"tokenizer {self.tokenizer}, but {self.vocab} is a "
                                      f"{'SentencePiece' if is_sentencepiece(self.vocab) else 'WordPiece'} "
                                      "vocabulary (python -m data_gen build-vocab --kind ...)")

    def _check_contents(self) -> None:
        """Reads the stop words and has each task read the files its options name
        (`DataTask.check_resources`): a file that cannot be used is an error now, before `make`
        spends a pass over the corpus and replaces the shards it already has."""
        try:
            load_stopwords(self.stopwords)
        except CorpusError as err:
            raise DataConfigError(f"stopwords: {err}") from None
        for name, options in self.task_options.items():
            try:
                registry.get(name)(options).check_resources()
            except ValueError as err:
                raise DataConfigError(f"task_options.{name}: {err}") from None

    def _options(self, tasks) -> Dict[str, TaskOptions]:
        """Every configured task's options from `task_options`, checked by the typed loader; a
        task the config does not make may have options (a config shared by runs of different
        task lists), which are checked and left out. Resource paths under `configs/` are found
        among the shipped configs."""
        made = {t.name for t in tasks}
        options = {}
        for name, values in self.task_options.items():
            try:
                task = registry.get(name)
            except registry.TaskError as err:
                raise DataConfigError(f"task_options: {err}") from None
            if not isinstance(values, task.options_type):
                try:
                    values = build(task.options_type, values if values is not None else {}, f"task_options.{name}")
                except ConfigError as err:
                    raise DataConfigError(str(err)) from None
            if name in made:
                options[name] = values
        found = {}
        for task in tasks:
            values = options.get(task.name) or task.options_type()
            found[task.name] = dataclasses.replace(
                values, **{key: str(find(path)) for key, path in values.resources().items()})
        return found

    def resources(self) -> List[Tuple[str, str]]:
        """(key, path) of every file the configured tasks' options name, in task order."""
        return [(f"task_options.{name}.{key}", path) for name, options in self.task_options.items()
                for key, path in options.resources().items()]

    @functools.cached_property
    def _inputs(self) -> Tuple[List[str], Skipped]:
        """The input files, less the files the config names for other uses where they sit among
        them (`vocab: data/corpus/vocab.txt`, or a click log, beside the text of `input:
        data/corpus`) and the output folder's (`output: data/corpus/shards`): the vocabulary's
        tokens, the stop words, a task's resource, the shards and manifests are not corpus text.
        Skipped, said so."""
        named = [("vocab", self.vocab), *([("stopwords", self.stopwords)] if self.stopwords else []), *self.resources()]
        leave_out = {os.path.realpath(path): f"named by the config's {key}, not text" for key, path in named}
        leave_out[os.path.realpath(self.output)] = "the output folder: what make writes, not entered"
        skipped: Skipped = []
        try:
            return expand_inputs(self.input, self.format, skipped, leave_out), skipped
        except CorpusError as err:
            raise DataConfigError(str(err)) from None

    @property
    def files(self) -> List[str]:
        """The input files, in the order they are read (`documents.expand_inputs`)."""
        return self._inputs[0]

    @property
    def skipped_files(self) -> Skipped:
        """(path, why) of what the input folders and patterns hold that is not read: a README,
        an archive, a binary file, a broken symlink, a symlink loop (`documents.expand_inputs`),
        the vocabulary."""
        return self._inputs[1]

    def reading(self) -> Reading:
        return Reading.of(self.format, self.lang, self.layout, self.document_separator, self.text_field,
                          self.encoding, self.on_decode_error)

    def documents(self, paths: Sequence[str], stats: Counter) -> Iterator[Document]:
        """The documents of input files, read as this config says (format, lang, layout, ...)."""
        return read_documents(paths, self.format, self.lang, stats, self.layout, self.document_separator,
                              self.text_field, self.encoding, self.on_decode_error)

    @classmethod
    def from_yaml(cls, path, overrides: Sequence[str] = (), check_files: bool = True, **options) -> "DataConfig":
        """The config of `path`, with a command's own `options` and `key=value` overrides on top;
        with `check_files` false, before the files it names exist (`_Unchecked`)."""
        try:
            values = _resource_paths(resolve_paths(read(path), cls.path_keys, path), path)
        except ConfigError as err:
            raise DataConfigError(str(err)) from None
        values.update({k: v for k, v in options.items() if v is not None})
        return build(cls if check_files else _Unchecked, apply_overrides(values, overrides), str(path))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _resource_paths(values: Dict[str, Any], config_file) -> Dict[str, Any]:
    """The values of a config file with the files its `task_options` name (each task's
    `resource()` fields) read by `config_path`. Where a task or its module is unknown, its options
    are left as they are, for the config's own check to name."""
    options, modules = values.get("task_options"), values.get("task_modules") or []
    if not isinstance(options, dict):
        return values
    try:
        registry.load_modules(modules if isinstance(modules, list) else [modules])  # a user's task's options
    except registry.TaskError:
        return values
    return {**values, "task_options": {name: resolve_paths(task_values, _resource_keys(name), config_file)
                                       if isinstance(task_values, dict) else task_values
                                       for name, task_values in options.items()}}


def _resource_keys(task: str) -> List[str]:
    try:
        options_type = registry.get(task).options_type
    except registry.TaskError:
        return []
    return [f.name for f in dataclasses.fields(options_type) if f.metadata.get(registry._RESOURCE)]


class _Unchecked(DataConfig):
    """A data config whose keys and values are checked but not its files: what `get` and
    `build-vocab --config` read before the corpus is fetched and the vocabulary built (`files`
    still expands the inputs, and names one that gives no file)."""
    check_files = False
