"""ERNIE model configuration, compatible with the original `ernie_config.json`.

The original release spells the sentence-type vocabulary `sent_type_vocab_size` (ERNIE 2.0) or
`type_vocab_size` (ERNIE 1.0); both are accepted and saved under the ERNIE 2.0 name.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Mapping, Optional

from ernie_common.configfile import ConfigError, build, read

CONFIG_FILE_NAME = "ernie_config.json"

# Keys of the original config that mean the same as one of ours.
_ALIASES = {"type_vocab_size": "sent_type_vocab_size"}
_ACTIVATIONS = ("gelu", "relu")


@dataclasses.dataclass(frozen=True)
class ErnieConfig:
    vocab_size: int
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: Optional[int] = None  # None means 4 * hidden_size, as in the original
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    sent_type_vocab_size: int = 4
    task_type_vocab_size: int = 16
    use_task_id: bool = False
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-5
    pad_token_id: int = 0

    def __post_init__(self):
        if self.intermediate_size is None:
            object.__setattr__(self, "intermediate_size", 4 * self.hidden_size)
        self._validate()

    def _validate(self):
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "intermediate_size", "max_position_embeddings", "sent_type_vocab_size",
                     "task_type_vocab_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"hidden_size {self.hidden_size} is not divisible by num_attention_heads "
                f"{self.num_attention_heads}")
        if self.hidden_act not in _ACTIVATIONS:
            raise ConfigError(f"hidden_act must be one of {_ACTIVATIONS}, got {self.hidden_act!r}")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"{name} must be in [0, 1), got {value!r}")
        if not isinstance(self.use_task_id, bool):
            raise ConfigError(f"use_task_id must be true or false, got {self.use_task_id!r}")
        if self.layer_norm_eps <= 0 or self.initializer_range <= 0:
            raise ConfigError("layer_norm_eps and initializer_range must be positive")
        if not 0 <= self.pad_token_id < self.vocab_size:
            raise ConfigError(f"pad_token_id {self.pad_token_id} is outside the vocabulary "
                              f"of {self.vocab_size}")

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_attention_heads

    # ---- construction -------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "config") -> "ErnieConfig":
        resolved: dict = {}
        for key, value in values.items():
            name = _ALIASES.get(key, key)
            if name in resolved and resolved[name] != value:
                raise ConfigError(f"{source}: {key!r} contradicts another spelling of {name!r}")
            resolved[name] = value
        if resolved.get("vocab_size") is None:
            raise ConfigError(f"{source}: vocab_size is required (give it, or build the config "
                              "together with a vocab.txt)")
        return build(cls, resolved, source)

    @classmethod
    def from_file(cls, path, **overrides) -> "ErnieConfig":
        """Reads `ernie_config.json` or a YAML preset; `overrides` win over the file's values."""
        path = Path(path)
        if path.is_dir():
            path = path / CONFIG_FILE_NAME
        values = read(path)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_dict(values, source=str(path))

    def replace(self, **changes) -> "ErnieConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def input_problem(self, max_seq_len: int, task_id: int) -> Optional[str]:
        """What inputs of `max_seq_len` tokens fed with `task_id` ask of the embedding tables and do
        not find there (positions, a row of the task embedding: row 0 without one), or None. Checked
        before any data is read: the lookup would fail only at the first long batch."""
        if max_seq_len > self.max_position_embeddings:
            return f"max_seq_len {max_seq_len} exceeds the model's max_position_embeddings {self.max_position_embeddings}"
        rows = self.task_type_vocab_size if self.use_task_id else 1
        if not 0 <= task_id < rows:
            return (f"task_id {task_id} does not fit the model's task embedding ({rows} row{'s' if rows > 1 else ''}: "
                    f"task ids 0 to {rows - 1})")
        return None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"
