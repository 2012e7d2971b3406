"""Evaluation metrics of the paper's fine-tuning tasks, in numpy.

Each equals its usual reference (scikit-learn's accuracy_score, f1_score, matthews_corrcoef;
scipy's pearsonr and spearmanr; seqeval's chunk F1), which the tests check on random inputs.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Dict, Hashable, List, Sequence, Set, Tuple

import numpy as np


def accuracy(labels, predictions) -> float:
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    return float(np.mean(labels == predictions)) if labels.size else 0.0


def f1(labels, predictions, positive=1) -> float:
    """F1 of the positive class (binary tasks: MRPC, QQP, NLPCC-DBQA)."""
    labels, predictions = np.asarray(labels) == positive, np.asarray(predictions) == positive
    tp = float(np.sum(labels & predictions))
    denominator = float(np.sum(labels) + np.sum(predictions))
    return 2 * tp / denominator if denominator else 0.0


def matthews_corrcoef(labels, predictions) -> float:
    """Multi-class Matthews correlation (Gorodkin's R_K), as CoLA reports it."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    classes = np.union1d(labels, predictions)
    confusion = np.zeros((len(classes), len(classes)))
    np.add.at(confusion, (np.searchsorted(classes, labels), np.searchsorted(classes, predictions)), 1)
    true_sum, pred_sum = confusion.sum(axis=1), confusion.sum(axis=0)
    n, correct = confusion.sum(), np.trace(confusion)
    denominator = np.sqrt((n ** 2 - pred_sum @ pred_sum) * (n ** 2 - true_sum @ true_sum))
    return float((correct * n - pred_sum @ true_sum) / denominator) if denominator else 0.0


def pearson(x, y) -> float:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    x, y = x - x.mean(), y - y.mean()
    denominator = np.sqrt((x @ x) * (y @ y))
    return float(x @ y / denominator) if denominator else 0.0


def average_ranks(values) -> np.ndarray:
    """Ranks from 1, ties given the mean of the ranks they span."""
    values = np.asarray(values)
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(values)]
    ranks = np.empty(len(values))
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def spearman(x, y) -> float:
    return pearson(average_ranks(x), average_ranks(y))


Chunk = Tuple[str, int, int]


def bio_chunks(tags: Sequence[str]) -> Set[Chunk]:
    """(type, start, end) spans of a BIO tag sequence, read as conlleval does: an I- tag after
    O or after another type opens a chunk."""
    chunks, kind, start = set(), None, 0
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, _, tag_kind = tag.partition("-")
        opens = prefix == "B" or (prefix == "I" and tag_kind != kind)
        if kind is not None and (prefix == "O" or opens):
            chunks.add((kind, start, i))
            kind = None
        if opens:
            kind, start = tag_kind, i
    return chunks


def chunk_f1(label_sequences: Sequence[Sequence[str]], predicted_sequences: Sequence[Sequence[str]]
             ) -> Dict[str, float]:
    """Micro precision, recall and F1 over entity chunks (MSRA-NER's reported measure)."""
    gold = predicted = matched = 0
    for labels, predictions in zip(label_sequences, predicted_sequences, strict=True):
        a, b = bio_chunks(labels), bio_chunks(predictions)
        gold, predicted, matched = gold + len(a), predicted + len(b), matched + len(a & b)
    precision = matched / predicted if predicted else 0.0
    recall = matched / gold if gold else 0.0
    score = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": score}


def mean_reciprocal_rank(query_ids: Sequence[Hashable], labels, scores) -> float:
    """Mean over all queries of 1/rank of the first relevant candidate (label 1) when the
    query's candidates are sorted by score, highest first (ties keep file order). A query
    without a relevant candidate counts, with 0, as the released NLPCC-DBQA evaluation does
    (PaddlePaddle/ERNIE v2.0 finetune/classifier.py, evaluate_mrr)."""
    grouped: Dict[Hashable, List[Tuple[float, int]]] = defaultdict(list)
    for qid, label, score in zip(query_ids, labels, scores, strict=True):
        grouped[qid].append((float(score), int(label)))
    reciprocal = []
    for candidates in grouped.values():
        ranked = sorted(candidates, key=lambda c: -c[0])
        hits = [rank for rank, (_, label) in enumerate(ranked, 1) if label == 1]
        reciprocal.append(1.0 / hits[0] if hits else 0.0)
    return float(np.mean(reciprocal)) if reciprocal else 0.0
