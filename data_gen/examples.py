"""The training example every task produces, and assembling a chunk's examples into one block.

An example is `[CLS] part_0 [SEP] part_1 [SEP] ...`; part k gets sentence id min(k, 3) (ERNIE's
sentence-type vocabulary has 4 entries). Besides its tokens and sentence ids it holds the
per-token label arrays of the token-level tasks (int8, -1 wherever a label does not apply:
[CLS], [SEP], tasks the corpus does not support), named by each task's `label_fields`; the id of
its sentence-level task (`NO_TASK` for none) and that task's label; and `token_tasks`, a bit
mask over the ids of the token-level tasks it carries. Positions are 0..len-1 and are not stored.

Generators describe examples as `Plan`s: runs of rows of a `TokenTable` (a chunk's tokens with
their labels, plus unlabelled rows such as discourse sentences), so a whole chunk is assembled
with a handful of array gathers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Tuple

import numpy as np

INPUT_FIELDS = {"src_ids": np.int32, "sent_ids": np.int8}  # per token, for every example
LABEL_DTYPE = np.int8                                      # every task's per-token label arrays
EXAMPLE_FIELDS = {"task": np.int16, "label": np.int32, "token_tasks": np.uint64}
MASK_FIELDS = {"mask_pos": np.int32, "mask_label": np.int32}  # offline masking
MAX_SENTENCE_TYPE = 3
NO_TASK = -1


def sentence_types(task) -> int:
    """How many sentence-type ids (0, 1, ...) the examples of `task` (a task object) hold: one a
    part, parts beyond `MAX_SENTENCE_TYPE` sharing the last id; a token-level task's plain
    segments are one part. What a model's sentence-type table must have rows for."""
    parts = task.max_parts() if task.level == "sentence" else 1
    return min(parts, MAX_SENTENCE_TYPE + 1)


def task_bit(task_id: int) -> int:
    """The bit of a token-level task in an example's `token_tasks` mask."""
    return 1 << task_id


def token_fields(label_fields: Sequence[str]) -> Dict[str, type]:
    """Every per-token array of a block or shard, with its dtype."""
    return {**INPUT_FIELDS, **{name: LABEL_DTYPE for name in label_fields}}


@dataclass
class Example:
    """One example as read back from a shard."""
    src_ids: np.ndarray
    sent_ids: np.ndarray
    labels: Dict[str, np.ndarray]   # label field -> int8 [len]
    task: int = NO_TASK             # the id of its sentence-level task, or NO_TASK
    label: int = -1                 # the sentence-level label
    token_tasks: int = 0            # bit mask over token-level task ids
    mask_pos: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    mask_label: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))

    def __len__(self) -> int:
        return len(self.src_ids)

    def carries(self, task_id: int) -> bool:
        return bool(self.token_tasks & task_bit(task_id))


@dataclass
class Plan:
    """An example to assemble: its parts as [start, end) row ranges of a `TokenTable`."""
    parts: List[Tuple[int, int]]
    task: int          # the sentence-level task's id, or NO_TASK
    label: int
    token_tasks: int   # bit mask over the token-level tasks' ids


class TokenTable:
    """Rows of token ids with their token-level labels: a chunk's tokens first, then unlabelled
    rows appended for pairs that are not runs of the chunk (discourse sentences, IR text).
    `labels` has an array for each of `fields`; a field without one is -1 throughout."""

    def __init__(self, ids: np.ndarray, labels: Dict[str, np.ndarray], fields: Sequence[str]):
        self.ids = [np.asarray(ids, np.int32)]
        self.fields = tuple(fields)
        none = np.full(len(ids), -1, LABEL_DTYPE)
        self.labels = {name: [labels[name].astype(LABEL_DTYPE) if name in labels else none] for name in self.fields}
        self.rows = len(ids)

    @classmethod
    def unlabelled(cls, ids: np.ndarray, fields: Sequence[str]) -> "TokenTable":
        return cls(ids, {}, fields)

    def append_unlabelled(self, ids: np.ndarray) -> int:
        """Adds rows without labels; returns the first one."""
        first = self.rows
        self.ids.append(np.asarray(ids, np.int32))
        for name in self.fields:
            self.labels[name].append(np.full(len(ids), -1, LABEL_DTYPE))
        self.rows += len(ids)
        return first


def fit_lengths(lengths: Sequence[int], max_seq_len: int) -> List[int]:
    """Truncates the longest part, one token at a time, until the packed example fits."""
    lengths = list(lengths)
    budget = max_seq_len - len(lengths) - 1
    while sum(lengths) > budget:
        longest = int(np.argmax(lengths))
        lengths[longest] -= 1
    return lengths


def assemble(table: TokenTable, plans: Sequence[Plan], cls_id: int, sep_id: int, max_seq_len: int
             ) -> Dict[str, np.ndarray]:
    """The plans' examples as one block of concatenated arrays (the layout `ShardWriter` appends):
    per-token arrays, per-example `task`, `label`, `token_tasks`, `lengths`, and empty masks."""
    cls_row = table.append_unlabelled(np.asarray([cls_id]))
    sep_row = table.append_unlabelled(np.asarray([sep_id]))
    starts, lengths, types, lengths_per_example = [], [], [], []
    for plan in plans:
        fitted = fit_lengths([b - a for a, b in plan.parts], max_seq_len)
        starts.append(cls_row)
        lengths.append(1)
        types.append(0)
        for k, ((a, _), n) in enumerate(zip(plan.parts, fitted)):
            kind = min(k, MAX_SENTENCE_TYPE)
            starts += [a, sep_row]
            lengths += [n, 1]
            types += [kind, kind]
        lengths_per_example.append(sum(fitted) + len(fitted) + 1)
    lengths = np.asarray(lengths, np.int64)
    rows = _ranges(np.asarray(starts, np.int64), lengths)
    unlabelled = np.repeat(np.asarray([p.token_tasks == 0 for p in plans], bool),
                           np.asarray(lengths_per_example, np.int64))
    block = {"src_ids": np.concatenate(table.ids)[rows],
             "sent_ids": np.repeat(np.asarray(types, np.int8), lengths)}
    for name in table.fields:
        values = np.concatenate(table.labels[name])[rows]
        values[unlabelled] = -1
        block[name] = values
    for name, dtype in EXAMPLE_FIELDS.items():
        block[name] = np.asarray([getattr(p, name) for p in plans], dtype)
    block["lengths"] = np.asarray(lengths_per_example, np.int64)
    block.update({name: np.zeros(0, dtype) for name, dtype in MASK_FIELDS.items()})
    block["mask_lengths"] = np.zeros(len(plans), np.int64)
    return block


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The concatenation of arange(s, s + n) for each (s, n)."""
    offsets = np.cumsum(lengths) - lengths
    return np.repeat(starts - offsets, lengths) + np.arange(int(lengths.sum()))


def token_arrays(block: Dict[str, np.ndarray]) -> List[str]:
    """The names of a block's per-token arrays: the inputs and the label fields."""
    return [name for name in block
            if name not in EXAMPLE_FIELDS and name not in MASK_FIELDS and name not in ("lengths", "mask_lengths")]


def select(block: Dict[str, np.ndarray], examples: np.ndarray) -> Dict[str, np.ndarray]:
    """The sub-block of the given examples, in that order."""
    token_offsets = np.cumsum(block["lengths"]) - block["lengths"]
    mask_offsets = np.cumsum(block["mask_lengths"]) - block["mask_lengths"]
    tokens = _ranges(token_offsets[examples], block["lengths"][examples])
    masks = _ranges(mask_offsets[examples], block["mask_lengths"][examples])
    out = {name: block[name][tokens] for name in token_arrays(block)}
    out.update({name: block[name][examples] for name in (*EXAMPLE_FIELDS, "lengths", "mask_lengths")})
    out.update({name: block[name][masks] for name in MASK_FIELDS})
    return out
