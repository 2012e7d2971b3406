"""The loss the pre-training heads and the fine-tuning taggers share: a cross entropy over the
labelled positions only (label `IGNORE` = no label)."""
from __future__ import annotations

import paddle
import paddle.nn.functional as F

IGNORE = -1


def masked_mean_cross_entropy(logits, labels):
    """Mean cross entropy over the labels that are not -1 (0 when there are none); also the
    number of labels and the number predicted right. Computed in float32 under mixed precision."""
    logits = paddle.cast(logits, "float32")
    valid = paddle.cast(labels != IGNORE, "float32")
    safe = paddle.where(labels != IGNORE, labels, paddle.zeros_like(labels))
    loss = F.cross_entropy(logits, safe.unsqueeze(-1), reduction="none").squeeze(-1)
    count = paddle.sum(valid)
    denominator = paddle.maximum(count, paddle.ones_like(count))
    correct = paddle.sum(paddle.cast(paddle.argmax(logits, axis=-1) == safe, "float32") * valid)
    return paddle.sum(loss * valid) / denominator, count, correct
