"""The training example every task produces, and packing token runs into one.

An example is `[CLS] part_0 [SEP] part_1 [SEP] ...`; part k gets sentence id min(k, 3) (ERNIE's
sentence-type vocabulary has 4 entries). Token-level label arrays hold -1 wherever a label does
not apply ([CLS], [SEP], tasks the corpus does not support). Positions are 0..len-1 and are not
stored.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import numpy as np

from ernie.task_names import SENTENCE_TASKS, TOKEN_TASKS

TOKEN_FIELDS = ("src_ids", "sent_ids", "seg_basic", "seg_knowledge", "case_label", "tokdoc_label")
TOKEN_DTYPES = {"src_ids": np.int32, "sent_ids": np.int8, "seg_basic": np.int8,
                "seg_knowledge": np.int8, "case_label": np.int8, "tokdoc_label": np.int8}
MAX_SENTENCE_TYPE = 3
NO_TASK = -1


def token_task_bit(name: str) -> int:
    return 1 << TOKEN_TASKS.index(name)


@dataclass
class Part:
    """A run of tokens with their token-level labels (-1 where a label does not apply)."""
    ids: np.ndarray
    seg_basic: np.ndarray
    seg_knowledge: np.ndarray
    case_label: np.ndarray
    tokdoc_label: np.ndarray

    @classmethod
    def unlabelled(cls, ids) -> "Part":
        ids = np.asarray(ids, dtype=np.int32)
        none = np.full(len(ids), -1, dtype=np.int8)
        return cls(ids, none, none.copy(), none.copy(), none.copy())

    def __len__(self) -> int:
        return len(self.ids)

    def truncated(self, n: int) -> "Part":
        return Part(self.ids[:n], self.seg_basic[:n], self.seg_knowledge[:n], self.case_label[:n],
                    self.tokdoc_label[:n])

    @staticmethod
    def concat(parts: Sequence["Part"]) -> "Part":
        return Part(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                      ("ids", "seg_basic", "seg_knowledge", "case_label", "tokdoc_label")))


@dataclass
class Example:
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


def fit_parts(parts: List[Part], max_seq_len: int) -> List[Part]:
    """Truncates the longest part, one token at a time, until the packed example fits."""
    budget = max_seq_len - len(parts) - 1
    lengths = [len(p) for p in parts]
    while sum(lengths) > budget:
        longest = int(np.argmax(lengths))
        lengths[longest] -= 1
    return [p.truncated(n) for p, n in zip(parts, lengths)]


def pack(parts: Sequence[Part], cls_id: int, sep_id: int) -> Example:
    special = Part.unlabelled([sep_id])
    pieces, sent = [Part.unlabelled([cls_id])], [np.zeros(1, np.int8)]
    for k, part in enumerate(parts):
        pieces += [part, special]
        sent.append(np.full(len(part) + 1, min(k, MAX_SENTENCE_TYPE), dtype=np.int8))
    whole = Part.concat(pieces)
    return Example(whole.ids, np.concatenate(sent), whole.seg_basic, whole.seg_knowledge,
                   whole.case_label, whole.tokdoc_label)
