"""Data generation config (`configs/data/*.yaml`), validated; unknown keys are errors.

Relative paths are read relative to the directory the command runs in (the repository root in
every shipped config).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import List, Optional

import yaml

from ernie.task_names import ALL_TASKS, CAPITALIZATION

from .documents import READERS


class DataConfigError(ValueError):
    pass


@dataclasses.dataclass
class DataConfig:
    input: List[str]
    vocab: str
    output: str
    format: str = "text"
    lang: str = "en"
    do_lower_case: bool = True
    tasks: List[str] = dataclasses.field(default_factory=lambda: list(ALL_TASKS))
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
    chunk_bytes: int = 262144           # documents are dealt to workers in chunks of about this much text

    def __post_init__(self):
        if isinstance(self.input, str):
            self.input = [self.input]
        unknown = [t for t in self.tasks if t not in ALL_TASKS]
        if unknown:
            raise DataConfigError(f"unknown task(s) {unknown}; known: {list(ALL_TASKS)}")
        if self.format not in READERS:
            raise DataConfigError(f"format must be one of {sorted(READERS)}, got {self.format!r}")
        if self.lang not in ("en", "zh"):
            raise DataConfigError(f"lang must be en or zh, got {self.lang!r}")
        if self.lang == "zh" and CAPITALIZATION in self.tasks:
            self.tasks = [t for t in self.tasks if t != CAPITALIZATION]  # Chinese has no case
        if self.masking not in ("online", "offline"):
            raise DataConfigError(f"masking must be online or offline, got {self.masking!r}")
        if not 1 <= self.reorder_max_segments <= 5:
            raise DataConfigError("reorder_max_segments must be between 1 and 5")
        if self.max_seq_len < 16 or self.max_seq_len > 4096:
            raise DataConfigError(f"max_seq_len {self.max_seq_len} is outside 16..4096")
        for name in ("shards", "workers", "chunk_bytes"):
            if getattr(self, name) < 1:
                raise DataConfigError(f"{name} must be at least 1")
        for path in [*self.input, self.vocab] + [p for p in (self.discourse_markers, self.click_log,
                                                            self.entities, self.stopwords) if p]:
            if not Path(path).is_file():
                raise DataConfigError(f"file not found: {path}")

    @classmethod
    def from_yaml(cls, path, **overrides) -> "DataConfig":
        try:
            values = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as err:
            raise DataConfigError(f"cannot read data config {path}: {err}") from None
        if not isinstance(values, dict):
            raise DataConfigError(f"{path}: expected a mapping")
        values.update({k: v for k, v in overrides.items() if v is not None})
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - fields)
        if unknown:
            raise DataConfigError(f"{path}: unknown key(s) {unknown}")
        missing = [f.name for f in dataclasses.fields(cls)
                   if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                   and f.name not in values]
        if missing:
            raise DataConfigError(f"{path}: missing required key(s) {missing}")
        try:
            return cls(**values)
        except DataConfigError as err:
            raise DataConfigError(f"{path}: {err}") from None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
