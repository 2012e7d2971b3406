"""Turning token ids into encoder inputs: [CLS] a [SEP] (b [SEP]), truncation, padded batches."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np


def truncate_pair(a: List[int], b: Optional[List[int]], budget: int) -> Tuple[List[int], Optional[List[int]]]:
    """Drops tokens from the end of the longer side until both fit in `budget` tokens."""
    a, b = list(a), (list(b) if b is not None else None)
    while len(a) + (len(b) if b else 0) > budget:
        if b and len(b) > len(a):
            b.pop()
        else:
            a.pop()
    return a, b


def _pair_budget(b: Optional[Sequence[int]], max_seq_len: int) -> int:
    """Tokens left for a and b once [CLS] and the [SEP]s are in."""
    return max_seq_len - (3 if b is not None else 2)


def pair_is_cut(a: Sequence[int], b: Optional[Sequence[int]], max_seq_len: int) -> bool:
    """Whether `pack_pair` drops tokens of this pair."""
    return len(a) + (len(b) if b is not None else 0) > _pair_budget(b, max_seq_len)


def pack_pair(a: Sequence[int], b: Optional[Sequence[int]], max_seq_len: int, cls_id: int,
              sep_id: int) -> Tuple[List[int], List[int]]:
    """(token ids, sentence ids) of `[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]`, at most max_seq_len."""
    a, b = truncate_pair(a, b, _pair_budget(b, max_seq_len))
    src = [cls_id] + a + [sep_id]
    sent = [0] * len(src)
    if b is not None:
        src += b + [sep_id]
        sent += [1] * (len(b) + 1)
    return src, sent


def pad_batch(examples: Sequence[Tuple[List[int], List[int]]], pad_id: int, task_id: int = 0,
              seq_len: Optional[int] = None) -> Dict[str, np.ndarray]:
    """Encoder feeds for (token ids, sentence ids) pairs, padded to `seq_len` or the longest."""
    length = seq_len or max(len(src) for src, _ in examples)
    n = len(examples)
    src_ids = np.full((n, length), pad_id, dtype=np.int64)
    sent_ids = np.zeros((n, length), dtype=np.int64)
    input_mask = np.zeros((n, length), dtype=np.float32)
    for row, (src, sent) in enumerate(examples):
        src_ids[row, :len(src)] = src
        sent_ids[row, :len(sent)] = sent
        input_mask[row, :len(src)] = 1.0
    pos_ids = np.broadcast_to(np.arange(length, dtype=np.int64), (n, length)).copy()
    task_ids = np.full((n, length), task_id, dtype=np.int64)
    return {"src_ids": src_ids, "sent_ids": sent_ids, "pos_ids": pos_ids,
            "input_mask": input_mask, "task_ids": task_ids}
