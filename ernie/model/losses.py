"""The loss the pre-training heads and the fine-tuning taggers share: a cross entropy over the
labelled positions only (label `IGNORE` = no label)."""
from __future__ import annotations

import paddle

IGNORE = -1


def masked_mean_cross_entropy(logits, labels, training: bool = False):
    """Mean cross entropy over the labels that are not -1 (0 when there are none); also the
    number of labels and the number predicted right. Computed in float32 under mixed precision;
    in training on a CPU by one fused kernel (`ernie.kernels.cpu_kernels.softmax_cross_entropy`)."""
    from ernie.kernels import cpu_kernels
    logits = paddle.cast(logits, "float32")
    loss, correct = cpu_kernels.softmax_cross_entropy(logits, labels, training)
    count = paddle.sum(paddle.cast(labels != IGNORE, "float32"))
    denominator = paddle.maximum(count, paddle.ones_like(count))
    return paddle.sum(loss) / denominator, count, paddle.sum(correct)
