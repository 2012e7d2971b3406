"""Sentence (pair) classification, regression and ranking on a sentence vector: the pooled [CLS]
output, or the mean of the top layer over the real tokens (`pooling`, `ernie.finetune.heads`).

Ranking (NLPCC-DBQA) is 2-class classification of query-candidate pairs whose score is the
probability of class 1; MRR ranks each query's candidates by it.
"""
from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np
import paddle
import paddle.nn.functional as F

from ernie.finetune import metrics
from ernie.finetune.examples import DataError, TextExample
from ernie.model.features import pack_pair, pad_batch, pair_is_cut

FEATURE_CHUNK = 5000  # examples tokenised together: the tokenizer's encodings of a chunk alive at once


class TextKind:
    head = "sentence"

    def __init__(self, task, tokenizer, max_seq_len: int, labels: Sequence[str], pooling: str = "cls"):
        self.task, self.tokenizer, self.max_seq_len, self.pooling = task, tokenizer, max_seq_len, pooling
        self.regression = task.kind == "regression"
        self.labels = list(labels)
        self.label_ids = {label: i for i, label in enumerate(self.labels)}
        self.n_outputs = 1 if self.regression else len(self.labels)
        self.output_names = ["score"] if self.regression else ["logits", "probs"]

    # -- data --------------------------------------------------------------------------------
    def features(self, examples: Sequence[TextExample], with_labels: bool) -> List[dict]:
        """Each example's packed ids, as small arrays, tokenised `FEATURE_CHUNK` examples at a
        time: as lists of Python ints, all tokenised at once, they held 2.06 KB an example
        (tracemalloc, pairs of 20 and 12 words; 0.8 GB for MNLI's 393k), now 0.64 KB, and the
        peak fell from 126 to 43 MB for 50k."""
        features = []
        for first in range(0, len(examples), FEATURE_CHUNK):
            chunk = examples[first:first + FEATURE_CHUNK]
            a_ids = self.tokenizer.encode_batch([e.text_a for e in chunk])
            b_iter = iter(self.tokenizer.encode_batch([e.text_b for e in chunk if e.text_b is not None]))
            for example, a in zip(chunk, a_ids):
                b = next(b_iter) if example.text_b is not None else None
                src, sent = pack_pair(a, b, self.max_seq_len, self.tokenizer.cls_id, self.tokenizer.sep_id)
                features.append({"src": np.asarray(src, np.int32), "sent": np.asarray(sent, np.int8),
                                 "truncated": pair_is_cut(a, b, self.max_seq_len),
                                 "label": self._label(example) if with_labels else None})
        return features

    def _label(self, example: TextExample):
        if self.regression:
            return float(example.label)
        if example.label not in self.label_ids:
            where = f"line {example.line}" if example.line else f"example {example.guid}"
            raise DataError(f"{where}: {self.task.name}: label {example.label!r} is not one of {self.labels}")
        return self.label_ids[example.label]

    def batch(self, features: Sequence[dict], task_id: int) -> Dict[str, np.ndarray]:
        feed = pad_batch([(f["src"], f["sent"]) for f in features], self.tokenizer.pad_id, task_id)
        if features[0]["label"] is not None:
            dtype = np.float32 if self.regression else np.int64
            feed["label"] = np.array([[f["label"]] for f in features], dtype=dtype)
        return feed

    # -- program -----------------------------------------------------------------------------
    def label_feeds(self) -> Dict[str, paddle.Tensor]:
        return {"label": paddle.static.data("label", [-1, 1], "float32" if self.regression else "int64")}

    def loss(self, logits, labels: Dict[str, paddle.Tensor]):
        if self.regression:
            return F.mse_loss(logits, labels["label"])
        return F.cross_entropy(logits, labels["label"])

    def outputs(self, logits) -> Dict[str, paddle.Tensor]:
        if self.regression:
            return {"score": logits[:, 0]}
        return {"logits": logits, "probs": F.softmax(logits, axis=-1)}

    # -- predictions -------------------------------------------------------------------------
    def decode(self, features: Sequence[dict], outputs: Dict[str, np.ndarray]) -> list:
        return list(outputs["score"]) if self.regression else list(outputs["probs"])

    def predictions(self, decoded: list, features, examples) -> list:
        """Regression: the score; classification: the label; ranking: (label, score)."""
        if self.regression:
            return [float(score) for score in decoded]
        labels = [self.labels[int(np.argmax(p))] for p in decoded]
        if self.task.kind == "ranking":
            return [(label, float(p[1])) for label, p in zip(labels, decoded)]
        return labels

    def evaluate(self, predictions: list, examples: Sequence[TextExample]) -> Dict[str, float]:
        if self.regression:
            gold = [float(e.label) for e in examples]
            return {"pearson": metrics.pearson(gold, predictions),
                    "spearman": metrics.spearman(gold, predictions)}
        gold = [self._label(e) for e in examples]
        if self.task.kind == "ranking":
            predicted = [self.label_ids[label] for label, _ in predictions]
            scores = [score for _, score in predictions]
            return {"mrr": metrics.mean_reciprocal_rank([e.qid for e in examples], gold, scores),
                    "f1": metrics.f1(gold, predicted), "acc": metrics.accuracy(gold, predicted)}
        predicted = [self.label_ids[label] for label in predictions]
        result = {"acc": metrics.accuracy(gold, predicted)}
        if "f1" in self.task.metrics:
            result["f1"] = metrics.f1(gold, predicted)
        if "mcc" in self.task.metrics:
            result["mcc"] = metrics.matthews_corrcoef(gold, predicted)
        return result

    def format(self, prediction) -> str:
        if self.regression:
            return f"{prediction:.3f}"
        return prediction[0] if self.task.kind == "ranking" else prediction
