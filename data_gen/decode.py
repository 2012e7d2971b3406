"""Shard examples decoded for a person, one a line: what `python -m data_gen inspect PATH
[--limit N] [--json]` prints, and the word-level decoders the tasks' `describe` uses. (Named so
as not to shadow the standard library's `inspect`.)

PATH is a shard or the output directory of `make` (its manifest names the vocabulary and the
label sets). Every label is decoded, each by its task (`DataTask.describe`, the task built from
the options its manifest records): for the built-in tasks the knowledge units (and masked tokens
with their originals), capitalization and token-document labels per word, the reordering
permutation, the distance class, the discourse marker, the IR relevance class.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator, List, Sequence

import numpy as np

from ernie_common import tasks as registry
from ernie_common.tokenization import load_vocab

from .data_task import DataTask
from .examples import NO_TASK, Example
from .shards import MANIFEST, Shard, ShardError, load_recorded_modules, read_manifest, recorded_path


def word_labels(tokens: List[str], labels: np.ndarray) -> List[str]:
    """`token=label` for every token with a label (the first piece of a word)."""
    return [f"{tok}={int(lab)}" for tok, lab in zip(tokens, labels) if lab >= 0]


def describe(ex: Example, inv_vocab: dict, manifest: dict, tasks: Sequence[DataTask]) -> dict:
    """The example's tokens and every label of the shard's `tasks` (their objects), decoded by each task."""
    tokens = [inv_vocab[int(i)] for i in ex.src_ids]
    ids = ex.src_ids.copy()
    starts = {name: np.zeros(len(values), np.int64) for name, values in ex.lists.items()}
    for task in tasks:
        task.restore_tokens(ids, {name: (values, starts[name]) for name, values in ex.lists.items()})
    original = [inv_vocab[int(i)] for i in ids]
    out = {"task": registry.by_id(ex.task).name if ex.task != NO_TASK else "token_tasks_only",
           "tokens": " ".join(tokens), "sentence_ids": "".join(str(int(s)) for s in ex.sent_ids)}
    for task in tasks:
        if (task.level == registry.TOKEN and ex.carries(task.task_id)) or ex.task == task.task_id:
            out.update(task.describe(ex, tokens, original, manifest))
    return out


def _shard_paths(path: Path, manifest: dict) -> List[Path]:
    """A shard file, or the shards a directory's manifest lists (not every part-*.shard there: an
    earlier make with more shards leaves its extra files behind)."""
    if path.is_dir():
        paths = [path / s["file"] for s in manifest.get("shards", [])]
        if not paths:
            raise ShardError(f"{path}: its {MANIFEST} lists no shards")
        return paths
    return [path]


def inspect(path, limit: int = 10) -> Iterator[dict]:
    path = Path(path)
    if not path.exists():
        raise ShardError(f"{path} not found: a shard or a directory of shards")
    manifest_path = (path if path.is_dir() else path.parent) / MANIFEST
    manifest = read_manifest(manifest_path)
    inv_vocab = {i: t for t, i in load_vocab(recorded_path(manifest, manifest["vocab"]["path"])).items()}
    load_recorded_modules(manifest)
    shown = 0
    for shard_path in _shard_paths(path, manifest):
        shard = Shard(shard_path)
        tasks = registry.recorded_tasks(shard.tasks, manifest["config"], str(manifest_path))
        for ex in shard:
            if shown >= limit:
                return
            yield describe(ex, inv_vocab, manifest, tasks)
            shown += 1


def format_line(record: dict) -> str:
    parts = [f"[{record['task']}]"]
    if "label" in record:
        parts.append(f"label={record['label']}")
    parts.append(record["tokens"])
    parts.append(f"sent={record['sentence_ids']}")
    for key, value in record.items():
        if key not in ("task", "label", "tokens", "sentence_ids"):
            parts.append(f"{key}: {', '.join(value) if isinstance(value, list) else value}")
    return " | ".join(parts)


def to_json(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False)
