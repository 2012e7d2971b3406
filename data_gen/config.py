"""Data generation config (`configs/data/*.yaml`), validated; unknown keys are errors.

Relative paths are read relative to the directory the command runs in (the repository root in
every shipped config). `input` lists files, folders and glob patterns (`DataConfig.files`: the
files they name, in the order read).
"""
from __future__ import annotations

import dataclasses
import functools
from collections import Counter
from pathlib import Path
from typing import ClassVar, Iterator, List, Optional, Sequence

from ernie_common import tasks as registry
from ernie_common.configfile import ConfigError, apply_overrides, build, read
from ernie_common.shipped_configs import find
from ernie_common.tokenization import is_sentencepiece

from .documents import CorpusError, Document, Reading, expand_inputs, read_documents


class DataConfigError(ConfigError):
    pass


@dataclasses.dataclass
class DataConfig:
    config_error = DataConfigError  # not a field: the error the config loader raises for this config
    check_files: ClassVar[bool] = True  # whether the files it names must exist (not in `_Unchecked`)
    input: List[str]                   # files, folders (every file under them), glob patterns
    vocab: str
    output: str
    format: str = "text"
    lang: str = "en"
    layout: Optional[str] = None       # sentence_per_line, paragraphs, paragraph_per_line (None: the format's)
    document_separator: Optional[str] = None  # a regular expression: a line that starts a new document
    text_field: Optional[str] = None   # jsonl's key, parquet's column holding the text (None: text)
    do_lower_case: bool = True         # WordPiece's; a SentencePiece model keeps its own
    tokenizer: str = "wordpiece"       # or sentencepiece: the vocab's directory holds the model
    tasks: List[str] = dataclasses.field(default_factory=registry.builtin_names)
    task_modules: List[str] = dataclasses.field(default_factory=list)  # a user's task modules (name or .py)
    max_seq_len: int = 128
    shards: int = 4
    seed: int = 1
    workers: int = 1
    masking: str = "online"            # online: the reader masks; offline: masked here, stored
    knowledge_unit_prob: float = 0.5   # share of examples masked by knowledge units (else basic units)
    mask_ratio: float = 0.15           # share of units masked; online masking reads both from the manifest
    reorder_max_segments: int = 4
    discourse_markers: Optional[str] = None
    click_log: Optional[str] = None
    entities: Optional[str] = None
    stopwords: Optional[str] = None
    collocation_min_count: int = 5
    collocation_min_pmi: float = 3.0
    collocation_max_pairs: int = 1_000_000   # phrase mining's memory bound (16 bytes a pair) ...
    collocation_max_words: int = 200_000     # ... and its words' (see ernie_tasks.knowledge_masking)
    chunk_bytes: int = 262144           # documents are dealt to workers in chunks of about this much text

    def __post_init__(self):
        if isinstance(self.input, str):
            self.input = [self.input]
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
        # a task the language cannot have is left out (Chinese has no case)
        self.tasks = [t.name for t in tasks if self.lang in t.languages]
        if self.masking not in ("online", "offline"):
            raise DataConfigError(f"masking must be online or offline, got {self.masking!r}")
        if not 1 <= self.reorder_max_segments <= 5:
            raise DataConfigError("reorder_max_segments must be between 1 and 5")
        if self.max_seq_len < 16 or self.max_seq_len > 4096:
            raise DataConfigError(f"max_seq_len {self.max_seq_len} is outside 16..4096")
        for name in ("shards", "workers", "chunk_bytes"):
            if getattr(self, name) < 1:
                raise DataConfigError(f"{name} must be at least 1")
        for name in ("discourse_markers", "stopwords"):  # shipped resources, found from anywhere
            if getattr(self, name):
                setattr(self, name, str(find(getattr(self, name))))
        if self.check_files:
            self.files  # the inputs expanded now: an entry that names no file is an error of the config
            for path in [self.vocab] + [p for p in (self.discourse_markers, self.click_log, self.entities,
                                                    self.stopwords) if p]:
                if not Path(path).is_file():
                    raise DataConfigError(f"file not found: {path}")
            if (self.tokenizer == "sentencepiece") != is_sentencepiece(self.vocab):
                raise DataConfigError(f"tokenizer {self.tokenizer}, but {self.vocab} is a "
                                      f"{'SentencePiece' if is_sentencepiece(self.vocab) else 'WordPiece'} "
                                      "vocabulary (python -m data_gen build-vocab --kind ...)")

    @functools.cached_property
    def files(self) -> List[str]:
        """The input files, in the order they are read (`documents.expand_inputs`)."""
        try:
            return expand_inputs(self.input)
        except CorpusError as err:
            raise DataConfigError(str(err)) from None

    def reading(self) -> Reading:
        return Reading.of(self.format, self.lang, self.layout, self.document_separator, self.text_field)

    def documents(self, paths: Sequence[str], stats: Counter) -> Iterator[Document]:
        """The documents of input files, read as this config says (format, lang, layout, ...)."""
        return read_documents(paths, self.format, self.lang, stats, self.layout, self.document_separator,
                              self.text_field)

    @classmethod
    def from_yaml(cls, path, overrides: Sequence[str] = (), check_files: bool = True, **options) -> "DataConfig":
        """The config of `path`, with a command's own `options` and `key=value` overrides on top;
        with `check_files` false, before the files it names exist (`_Unchecked`)."""
        try:
            values = read(path)
        except ConfigError as err:
            raise DataConfigError(str(err)) from None
        values.update({k: v for k, v in options.items() if v is not None})
        return build(cls if check_files else _Unchecked, apply_overrides(values, overrides), str(path))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class _Unchecked(DataConfig):
    """A data config whose keys and values are checked but not its files: what `get` and
    `build-vocab --config` read before the corpus is fetched and the vocabulary built (`files`
    still expands the inputs, and names one that gives no file)."""
    check_files = False
