"""The training example every task produces, and assembling a chunk's examples into one block.

An example is `[CLS] part_0 [SEP] part_1 [SEP] ...`; part k gets sentence id min(k, 3) (ERNIE's
sentence-type vocabulary has 4 entries). Token-level label arrays hold -1 wherever a label does
not apply ([CLS], [SEP], tasks the corpus does not support). Positions are 0..len-1 and are not
stored.

Generators describe examples as `Plan`s: runs of rows of a `TokenTable` (a chunk's tokens with
their labels, plus unlabelled rows such as discourse sentences), so a whole chunk is assembled
with a handful of array gathers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ernie.task_names import SENTENCE_TASKS, TOKEN_TASKS

TOKEN_FIELDS = ("src_ids", "sent_ids", "seg_basic", "seg_knowledge", "case_label", "tokdoc_label")
TOKEN_DTYPES = {"src_ids": np.int32, "sent_ids": np.int8, "seg_basic": np.int8,
                "seg_knowledge": np.int8, "case_label": np.int8, "tokdoc_label": np.int8}
LABEL_FIELDS = ("seg_basic", "seg_knowledge", "case_label", "tokdoc_label")
EXAMPLE_FIELDS = {"task": np.int8, "label": np.int32, "token_tasks": np.uint8}
MASK_FIELDS = {"mask_pos": np.int32, "mask_label": np.int32}
MAX_SENTENCE_TYPE = 3
NO_TASK = -1


def token_task_bit(name: str) -> int:
    return 1 << TOKEN_TASKS.index(name)


@dataclass
class Example:
    """One example as read back from a shard."""
    src_ids: np.ndarray
    sent_ids: np.ndarray
    seg_basic: np.ndarray
    seg_knowledge: np.ndarray
    case_label: np.ndarray
    tokdoc_label: np.ndarray
    task: int = NO_TASK          # index into SENTENCE_TASKS, or NO_TASK
    label: int = -1              # the sentence-level label
    token_tasks: int = 0         # bit mask over TOKEN_TASKS
    mask_pos: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    mask_label: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))

    def __len__(self) -> int:
        return len(self.src_ids)

    @property
    def task_name(self) -> Optional[str]:
        return SENTENCE_TASKS[self.task] if self.task != NO_TASK else None


@dataclass
class Plan:
    """An example to assemble: its parts as [start, end) row ranges of a `TokenTable`."""
    parts: List[Tuple[int, int]]
    task: int
    label: int
    token_tasks: int


class TokenTable:
    """Rows of token ids with their token-level labels: a chunk's tokens first, then unlabelled
    rows appended for pairs that are not runs of the chunk (discourse sentences, IR text)."""

    def __init__(self, ids: np.ndarray, labels: Dict[str, np.ndarray]):
        self.ids = [np.asarray(ids, np.int32)]
        self.labels = {name: [labels[name].astype(np.int8)] for name in LABEL_FIELDS}
        self.rows = len(ids)

    @classmethod
    def unlabelled(cls, ids: np.ndarray) -> "TokenTable":
        none = np.full(len(ids), -1, np.int8)
        return cls(ids, {name: none for name in LABEL_FIELDS})

    def append_unlabelled(self, ids: np.ndarray) -> int:
        """Adds rows without labels; returns the first one."""
        first = self.rows
        self.ids.append(np.asarray(ids, np.int32))
        for name in LABEL_FIELDS:
            self.labels[name].append(np.full(len(ids), -1, np.int8))
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
    for name in LABEL_FIELDS:
        values = np.concatenate(table.labels[name])[rows]
        values[unlabelled] = -1
        block[name] = values
    block["task"] = np.asarray([p.task for p in plans], np.int8)
    block["label"] = np.asarray([p.label for p in plans], np.int32)
    block["token_tasks"] = np.asarray([p.token_tasks for p in plans], np.uint8)
    block["lengths"] = np.asarray(lengths_per_example, np.int64)
    block.update({name: np.zeros(0, dtype) for name, dtype in MASK_FIELDS.items()})
    block["mask_lengths"] = np.zeros(len(plans), np.int64)
    return block


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The concatenation of arange(s, s + n) for each (s, n)."""
    offsets = np.cumsum(lengths) - lengths
    return np.repeat(starts - offsets, lengths) + np.arange(int(lengths.sum()))


def select(block: Dict[str, np.ndarray], examples: np.ndarray) -> Dict[str, np.ndarray]:
    """The sub-block of the given examples, in that order."""
    token_offsets = np.cumsum(block["lengths"]) - block["lengths"]
    mask_offsets = np.cumsum(block["mask_lengths"]) - block["mask_lengths"]
    tokens = _ranges(token_offsets[examples], block["lengths"][examples])
    masks = _ranges(mask_offsets[examples], block["mask_lengths"][examples])
    out = {name: block[name][tokens] for name in TOKEN_FIELDS}
    out.update({name: block[name][examples] for name in (*EXAMPLE_FIELDS, "lengths", "mask_lengths")})
    out.update({name: block[name][masks] for name in MASK_FIELDS})
    return out
