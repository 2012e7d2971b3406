"""`python -m data_gen inspect PATH [--limit N] [--json]`: examples decoded, one a line.

PATH is a shard or the output directory of `make` (its manifest names the vocabulary and the
label sets). Every label is decoded: knowledge units (and masked tokens with their originals),
capitalization and token-document labels per word, the reordering permutation, the distance
class, the discourse marker, the IR relevance class.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator, List

import numpy as np

from ernie.task_names import (CAPITALIZATION, DISCOURSE_RELATION, IR_RELEVANCE, KNOWLEDGE_MASKING,
                              SENTENCE_DISTANCE, SENTENCE_REORDERING, TOKEN_DOCUMENT)
from ernie.tokenization import load_vocab

from .examples import Example, token_task_bit
from .make import MANIFEST
from .shards import Shard, ShardError
from .tasks.ir_relevance import CLASS_NAMES as IR_CLASSES
from .tasks.sentence_distance import CLASS_NAMES as DISTANCE_CLASSES
from .tasks.sentence_reordering import class_permutation


def _units(tokens: List[str], seg: np.ndarray) -> List[str]:
    """Multi-token units of a boundary array, as text."""
    units, current = [], []
    for tok, s in zip(tokens, seg):
        if s == 0 or s == -1:
            if len(current) > 1:
                units.append(" ".join(current))
            current = [tok] if s == 0 else []
        else:
            current.append(tok)
    if len(current) > 1:
        units.append(" ".join(current))
    return units


def _word_labels(tokens: List[str], labels: np.ndarray) -> List[str]:
    return [f"{tok}={int(lab)}" for tok, lab in zip(tokens, labels) if lab >= 0]


def describe(ex: Example, inv_vocab: dict, manifest: dict) -> dict:
    tokens = [inv_vocab[int(i)] for i in ex.src_ids]
    original = list(tokens)
    for pos, lab in zip(ex.mask_pos, ex.mask_label):
        original[int(pos)] = inv_vocab[int(lab)]
    out = {"task": ex.task_name or "token_tasks_only", "tokens": " ".join(tokens),
           "sentence_ids": "".join(str(int(s)) for s in ex.sent_ids)}
    if ex.token_tasks & token_task_bit(KNOWLEDGE_MASKING):
        out["knowledge_units"] = _units(original, ex.seg_knowledge)
        if len(ex.mask_pos):
            out["masked"] = [f"{int(p)}:{original[int(p)]}->{tokens[int(p)]}" for p in ex.mask_pos]
    if ex.token_tasks & token_task_bit(CAPITALIZATION):
        out["capitalization"] = _word_labels(original, ex.case_label)
    if ex.token_tasks & token_task_bit(TOKEN_DOCUMENT):
        out["token_document"] = _word_labels(original, ex.tokdoc_label)
    task, label = ex.task_name, ex.label
    if task == SENTENCE_REORDERING:
        m = manifest["config"]["reorder_max_segments"]
        out["label"] = f"{label} permutation={list(class_permutation(label, m))}"
    elif task == SENTENCE_DISTANCE:
        out["label"] = f"{label} {DISTANCE_CLASSES[label]}"
    elif task == DISCOURSE_RELATION:
        out["label"] = f"{label} marker={manifest['discourse_markers'][label]!r}"
    elif task == IR_RELEVANCE:
        out["label"] = f"{label} {IR_CLASSES[label]}"
    return out


def _shard_paths(path: Path) -> List[Path]:
    if path.is_dir():
        paths = sorted(path.glob("part-*.shard"))
        if not paths:
            raise ShardError(f"{path}: no shards (part-*.shard) in this directory")
        return paths
    return [path]


def inspect(path, limit: int = 10) -> Iterator[dict]:
    path = Path(path)
    manifest_path = (path if path.is_dir() else path.parent) / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ShardError(f"cannot read {manifest_path}, which names the vocabulary: {err}") from None
    inv_vocab = {i: t for t, i in load_vocab(manifest["vocab"]["path"]).items()}
    shown = 0
    for shard_path in _shard_paths(path):
        for ex in Shard(shard_path):
            if shown >= limit:
                return
            yield describe(ex, inv_vocab, manifest)
            shown += 1


def format_line(record: dict) -> str:
    parts = [f"[{record['task']}]"]
    if "label" in record:
        parts.append(f"label={record['label']}")
    parts.append(record["tokens"])
    parts.append(f"sent={record['sentence_ids']}")
    for key in ("knowledge_units", "masked", "capitalization", "token_document"):
        if key in record:
            parts.append(f"{key}: {', '.join(record[key])}")
    return " | ".join(parts)


def to_json(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False)
