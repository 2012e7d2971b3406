"""The training example every task produces, and assembling a chunk's examples into one block.

An example is `[CLS] part_0 [SEP] part_1 [SEP] ...`; part k gets sentence id min(k, 3) (ERNIE's
sentence-type vocabulary has 4 entries). Besides its tokens and sentence ids it holds the id of
its sentence-level task (`NO_TASK` for none) and that task's label, `token_tasks`, a bit mask
over the ids of the token-level tasks it carries, and the arrays its tasks declare
(`ernie_common.tasks.Field`): per-token labels (-1 wherever a label does not apply: [CLS],
[SEP], tasks the corpus does not support), per-example values (-1 unless a task sets one) and
variable-length lists (knowledge masking's offline masks; empty unless a task fills them).
Positions are 0..len-1 and are not stored.

Generators describe examples as `Plan`s: runs of rows of a `TokenTable` (a chunk's tokens with
their labels, plus unlabelled rows such as discourse sentences), so a whole chunk is assembled
with a handful of array gathers. A block holds each list field `name` as its values over the
examples, concatenated, and `lengths_of(name)`, how many of them each example has.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ernie_common.tasks import EXAMPLE, LIST, TOKEN, Field, TaskError, declared_fields

INPUT_FIELDS = {"src_ids": np.int32, "sent_ids": np.int8}  # per token, for every example
EXAMPLE_FIELDS = {"task": np.int16, "label": np.int32, "token_tasks": np.uint64}
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


def lengths_of(name: str) -> str:
    """The block array of how many values of list field `name` each example has."""
    return f"{name}_lengths"


def offsets_of(name: str) -> str:
    """The shard array of where each example's values of `name` start (`token_offsets` for the
    per-token arrays, one per list field), with the end after the last."""
    return f"{name}_offsets"


def shard_fields(tasks: Sequence) -> Tuple[Field, ...]:
    """The fields the examples of `tasks` (classes or objects, in id order) store: their declared
    fields, in that order. A field may not take a name the examples' own arrays use."""
    fields = tuple(f for task in tasks for f in declared_fields(task))
    own = {*INPUT_FIELDS, *EXAMPLE_FIELDS, "lengths", "token"}
    for f in fields:
        if f.name in own or f.name.endswith(("_lengths", "_offsets")):
            raise TaskError(f"field {f.name!r}: the name is the examples' own (or ends in _lengths/_offsets)")
    return fields


def of_kind(fields: Sequence[Field], per: str) -> Tuple[Field, ...]:
    return tuple(f for f in fields if f.per == per)


@dataclass
class Example:
    """One example as read back from a shard."""
    src_ids: np.ndarray
    sent_ids: np.ndarray
    labels: Dict[str, np.ndarray]   # per-token field -> [len]
    task: int = NO_TASK             # the id of its sentence-level task, or NO_TASK
    label: int = -1                 # the sentence-level label
    token_tasks: int = 0            # bit mask over token-level task ids
    values: Dict[str, np.generic] = field(default_factory=dict)   # per-example field -> its value
    lists: Dict[str, np.ndarray] = field(default_factory=dict)    # list field -> its values

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


def tokens_in_no_example(n_tokens: int, plans: Sequence[Plan], max_seq_len: int) -> int:
    """How many of a chunk's first `n_tokens` rows no plan's example holds: text that reaches no
    example (a sentence task alone takes a run from elsewhere as B and leaves the segment's second
    half unread; a part cut to fit loses its tail), counted so that the report says so (rows past
    `n_tokens` are appended ones)."""
    depth = np.zeros(n_tokens + 1, np.int64)
    for plan in plans:
        for start, end in fitted_parts(plan, max_seq_len):
            start, end = min(start, n_tokens), min(end, n_tokens)
            if start < end:
                depth[start] += 1
                depth[end] -= 1
    return int(np.count_nonzero(np.cumsum(depth[:-1]) == 0))


class TokenTable:
    """Rows of token ids with their token-level labels: a chunk's tokens first, then unlabelled
    rows appended for pairs that are not runs of the chunk (discourse sentences, IR text).
    `fields` are the examples' fields (`shard_fields`); `labels` has an array for each per-token
    one, a field without one being -1 throughout."""

    def __init__(self, ids: np.ndarray, labels: Dict[str, np.ndarray], fields: Sequence[Field]):
        self.ids = [np.asarray(ids, np.int32)]
        self.fields = tuple(fields)
        self.labels = {f.name: [labels[f.name].astype(f.dtype) if f.name in labels else np.full(len(ids), -1, f.dtype)]
                       for f in of_kind(self.fields, TOKEN)}
        self.rows = len(ids)

    @classmethod
    def unlabelled(cls, ids: np.ndarray, fields: Sequence[Field]) -> "TokenTable":
        return cls(ids, {}, fields)

    def append_unlabelled(self, ids: np.ndarray) -> int:
        """Adds rows without labels; returns the first one."""
        first = self.rows
        self.ids.append(np.asarray(ids, np.int32))
        for f in of_kind(self.fields, TOKEN):
            self.labels[f.name].append(np.full(len(ids), -1, f.dtype))
        self.rows += len(ids)
        return first


def token_budget(n_parts: int, max_seq_len: int) -> int:
    """The tokens `n_parts` parts may hold in an example: [CLS] and one [SEP] a part take the rest."""
    return max_seq_len - n_parts - 1


def fit_lengths(lengths: Sequence[int], max_seq_len: int) -> List[int]:
    """Truncates the longest part, one token at a time (of parts as long, the first), until the
    packed example fits; computed at once: the parts longer than a level L + 1 cut to it, then
    the first of those at L + 1 cut to L until the excess is gone, L the highest level at which
    cutting to it would remove enough."""
    lengths = list(lengths)
    excess = sum(lengths) - token_budget(len(lengths), max_seq_len)
    if excess <= 0:
        return lengths

    def removed(level: int) -> int:
        return sum(max(n - level, 0) for n in lengths)

    low, high = 0, max(lengths)  # removed(low) >= excess > removed(high)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if removed(middle) >= excess else (low, middle)
    left = excess - removed(high)
    fitted = []
    for n in lengths:
        n = min(n, high)
        if n == high and left:
            n, left = n - 1, left - 1
        fitted.append(n)
    return fitted


def fitted_parts(plan: Plan, max_seq_len: int) -> List[Tuple[int, int]]:
    """A plan's parts as its example holds them (`fit_lengths`)."""
    fitted = fit_lengths([b - a for a, b in plan.parts], max_seq_len)
    return [(a, a + n) for (a, _), n in zip(plan.parts, fitted)]


def assemble(table: TokenTable, plans: Sequence[Plan], cls_id: int, sep_id: int, max_seq_len: int
             ) -> Dict[str, np.ndarray]:
    """The plans' examples as one block of concatenated arrays (the layout `ShardWriter` appends):
    per-token arrays, per-example `task`, `label`, `token_tasks`, `lengths`, the per-example
    fields (-1) and the list fields (empty), which a task's `finish_block` may then set."""
    cls_row = table.append_unlabelled(np.asarray([cls_id]))
    sep_row = table.append_unlabelled(np.asarray([sep_id]))
    starts, lengths, types, lengths_per_example = [], [], [], []
    for plan in plans:
        parts = fitted_parts(plan, max_seq_len)
        starts.append(cls_row)
        lengths.append(1)
        types.append(0)
        for k, (a, b) in enumerate(parts):
            kind = min(k, MAX_SENTENCE_TYPE)
            starts += [a, sep_row]
            lengths += [b - a, 1]
            types += [kind, kind]
        lengths_per_example.append(sum(b - a for a, b in parts) + len(parts) + 1)
    lengths = np.asarray(lengths, np.int64)
    rows = _ranges(np.asarray(starts, np.int64), lengths)
    unlabelled = np.repeat(np.asarray([p.token_tasks == 0 for p in plans], bool),
                           np.asarray(lengths_per_example, np.int64))
    block = {"src_ids": np.concatenate(table.ids)[rows],
             "sent_ids": np.repeat(np.asarray(types, np.int8), lengths)}
    for name, labels in table.labels.items():
        values = np.concatenate(labels)[rows]
        values[unlabelled] = -1
        block[name] = values
    for name, dtype in EXAMPLE_FIELDS.items():
        block[name] = np.asarray([getattr(p, name) for p in plans], dtype)
    block["lengths"] = np.asarray(lengths_per_example, np.int64)
    for f in of_kind(table.fields, EXAMPLE):
        block[f.name] = np.full(len(plans), -1, f.dtype)
    for f in of_kind(table.fields, LIST):
        set_list(block, f, [np.zeros(0, f.dtype)] * len(plans))
    return block


def set_list(block: Dict[str, np.ndarray], field: Field, per_example: Sequence[np.ndarray]) -> None:
    """Sets list field `field` of a block: `per_example` holds an array for every example (empty
    where it has no values)."""
    block[field.name] = np.concatenate([np.zeros(0, field.dtype), *per_example]).astype(field.dtype)
    block[lengths_of(field.name)] = np.asarray([len(values) for values in per_example], np.int64)


def block_problem(block: Dict[str, np.ndarray], fields: Sequence[Field]) -> Optional[str]:
    """What is wrong with a block's layout after a task changed it (`finish_block`), or None:
    every field present, with a value per token, per example or per list entry, and the values a
    task sets (per example, lists) whole numbers its field's dtype holds where that is an integer
    type (a shard stores a field as its dtype says; a wrong count put values into other examples)."""
    n, tokens = len(block["lengths"]), int(np.sum(block["lengths"]))
    sizes = {**{name: (tokens, None) for name in INPUT_FIELDS}, **{name: (n, None) for name in EXAMPLE_FIELDS}}
    for f in fields:
        if f.per == LIST:
            counts = block.get(lengths_of(f.name))
            if not isinstance(counts, np.ndarray) or counts.shape != (n,) or counts.dtype.kind not in "iu":
                return f"{lengths_of(f.name)} must hold a count for each of the block's {n} examples (examples.set_list)"
            sizes[f.name] = (int(np.sum(counts)), np.dtype(f.dtype))
        else:  # (the values of a per-token field were checked as the task gave them, `token_labels`)
            sizes[f.name] = (tokens, None) if f.per == TOKEN else (n, np.dtype(f.dtype))
    for name, (size, dtype) in sizes.items():
        value = block.get(name)
        if not isinstance(value, np.ndarray) or value.shape != (size,):
            return f"{name} must be an array of {size} values, not {'none' if value is None else np.shape(value)}"
        if dtype is not None and dtype.kind in "iu" and value.size and (
                value.dtype.kind not in "iub" or value.min() < np.iinfo(dtype).min or value.max() > np.iinfo(dtype).max):
            return (f"{name} holds {value.dtype} values {value.min()}..{value.max()}, where its field stores "
                    f"whole numbers of {dtype}")
    return None


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The concatenation of arange(s, s + n) for each (s, n)."""
    offsets = np.cumsum(lengths) - lengths
    return np.repeat(starts - offsets, lengths) + np.arange(int(lengths.sum()))


def select(block: Dict[str, np.ndarray], examples: np.ndarray, fields: Sequence[Field]) -> Dict[str, np.ndarray]:
    """The sub-block of the given examples, in that order; `fields` are the block's (`shard_fields`)."""
    def rows(lengths: np.ndarray) -> np.ndarray:
        return _ranges((np.cumsum(lengths) - lengths)[examples], lengths[examples])

    tokens = rows(block["lengths"])
    out = {name: block[name][tokens] for name in (*INPUT_FIELDS, *(f.name for f in of_kind(fields, TOKEN)))}
    out.update({name: block[name][examples]
                for name in (*EXAMPLE_FIELDS, "lengths", *(f.name for f in of_kind(fields, EXAMPLE)))})
    for f in of_kind(fields, LIST):
        out[f.name] = block[f.name][rows(block[lengths_of(f.name)])]
        out[lengths_of(f.name)] = block[lengths_of(f.name)][examples]
    return out
