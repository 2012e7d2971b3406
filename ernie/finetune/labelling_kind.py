"""Sequence labelling (MSRA-NER) on every position of the sequence output.

Words (Chinese characters, English words) are split into word pieces; the first piece of a word
keeps the word's tag and the others take the I- tag of its type (B-PER -> I-PER, O stays O), as
the original ERNIE does. A word's prediction is its first piece's. Words cut off by
`max_seq_len`, or emptied by the tokenizer's normaliser (control characters, odd spaces), have no
piece and are predicted O; the metric still counts their gold chunks, so nothing is hidden.
"""
from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np
import paddle
import paddle.nn.functional as F

from ernie.finetune import metrics
from ernie.finetune.examples import DataError, TaggedExample
from ernie.model.features import pad_batch
from ernie.model.losses import IGNORE, masked_mean_cross_entropy


def inside_tag(tag: str) -> str:
    return "I-" + tag[2:] if tag.startswith("B-") else tag


class LabellingKind:
    head = "token"
    output_names = ["logits", "probs"]

    def __init__(self, task, tokenizer, max_seq_len: int, labels: Sequence[str]):
        self.task, self.tokenizer, self.max_seq_len = task, tokenizer, max_seq_len
        self.labels = list(labels)
        self.label_ids = {label: i for i, label in enumerate(self.labels)}
        self.n_outputs = len(self.labels)

    def features(self, examples: Sequence[TaggedExample], with_labels: bool) -> List[dict]:
        features = []
        for example, (ids, word_ids) in zip(examples, self.tokenizer.encode_words([e.words for e in examples])):
            cut = len(ids) > self.max_seq_len - 2
            ids, word_ids = ids[:self.max_seq_len - 2], word_ids[:self.max_seq_len - 2]
            src = [self.tokenizer.cls_id] + ids + [self.tokenizer.sep_id]
            labels = None
            if with_labels:
                labels = [IGNORE] + [self._piece_label(example, word_ids, i) for i in range(len(ids))] + [IGNORE]
            features.append({"src": src, "word_ids": word_ids, "labels": labels,
                             "n_words": len(example.words), "truncated": cut})
        return features

    def _piece_label(self, example: TaggedExample, word_ids: List[int], i: int) -> int:
        tag = example.tags[word_ids[i]]
        if i and word_ids[i - 1] == word_ids[i]:
            tag = inside_tag(tag)
        if tag not in self.label_ids:
            raise DataError(f"{self.task.name}: example {example.guid} has tag {tag!r}, not one of {self.labels}")
        return self.label_ids[tag]

    def batch(self, features: Sequence[dict], task_id: int) -> Dict[str, np.ndarray]:
        feed = pad_batch([(f["src"], [0] * len(f["src"])) for f in features], self.tokenizer.pad_id, task_id)
        if features[0]["labels"] is not None:
            labels = np.full(feed["src_ids"].shape, IGNORE, dtype=np.int64)
            for row, f in enumerate(features):
                labels[row, :len(f["labels"])] = f["labels"]
            feed["labels"] = labels
        return feed

    def label_feeds(self) -> Dict[str, paddle.Tensor]:
        return {"labels": paddle.static.data("labels", [-1, -1], "int64")}

    def loss(self, logits, labels):
        loss, _, _ = masked_mean_cross_entropy(logits, labels["labels"])
        return loss

    def outputs(self, logits) -> Dict[str, paddle.Tensor]:
        return {"logits": logits, "probs": F.softmax(logits, axis=-1)}

    def decode(self, features: Sequence[dict], outputs: Dict[str, np.ndarray]) -> list:
        decoded = []
        for f, probs in zip(features, outputs["probs"]):
            tags = ["O"] * f["n_words"]
            best = np.argmax(probs, axis=-1)
            for i, word in enumerate(f["word_ids"]):
                if i == 0 or f["word_ids"][i - 1] != word:
                    tags[word] = self.labels[best[i + 1]]
            decoded.append(tags)
        return decoded

    def predictions(self, decoded: list, features, examples) -> list:
        return decoded

    def evaluate(self, predictions: list, examples: Sequence[TaggedExample]) -> Dict[str, float]:
        return metrics.chunk_f1([e.tags for e in examples], predictions)

    def format(self, prediction) -> str:
        return "\x02".join(prediction)
