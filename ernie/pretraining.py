"""ERNIE 2.0 pre-training heads and losses, on top of the shared encoder.

Token-level heads: masked LM for knowledge masking (masked positions gathered before the
vocabulary projection, output weights tied to `word_embedding`, the original parameter names),
capitalization and token-document relation (2 classes each, on every token). Sentence-level
heads on the pooled [CLS] output: sentence reordering (k = sum n! classes), sentence distance (3),
discourse relation (one class per marker), IR relevance (3).

Every head is in the program; a batch switches heads on with `task_weights` (1 for the tasks
active in this batch, 0 otherwise), and the loss is the mean of the active tasks' losses:
inactive tasks contribute nothing. Each loss is a masked mean over its labelled positions
(label -1 = no label), so a batch without labels for a task gives that task exactly zero.
"""
from __future__ import annotations

from typing import Dict

import paddle
import paddle.nn.functional as F
from paddle import nn

from . import cpu_kernels
from . import param_names as names
from .config import ErnieConfig
from .modeling import ErnieModel, LayerNorm, named_linear
from .task_names import (ALL_TASKS, CAPITALIZATION, KNOWLEDGE_MASKING, SENTENCE_TASKS,
                         TOKEN_DOCUMENT)

IGNORE = -1


def head_name(task: str) -> str:
    return f"{task}_fc"


def _linear(prefix: str, n_in: int, n_out: int, init_std: float) -> nn.Linear:
    return named_linear(names.fc_weight(prefix), names.fc_bias(prefix), n_in, n_out, init_std)


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


class ErnieForPretraining(nn.Layer):
    """Encoder + the heads of all seven tasks; `num_classes` gives each sentence task's classes."""

    def __init__(self, config: ErnieConfig, num_classes: Dict[str, int]):
        super().__init__()
        self.config = config
        self.ernie = ErnieModel(config)
        h, std = config.hidden_size, config.initializer_range
        with paddle.utils.unique_name.guard():
            self.mask_lm_trans_fc = _linear(names.MASK_LM_TRANS_FC, h, h, std)
            self.mask_lm_trans_layer_norm = LayerNorm(
                h, epsilon=config.layer_norm_eps,
                weight_attr=paddle.ParamAttr(name=names.ln_scale(names.MASK_LM_TRANS_LAYER_NORM),
                                             initializer=nn.initializer.Constant(1.0)),
                bias_attr=paddle.ParamAttr(name=names.ln_bias(names.MASK_LM_TRANS_LAYER_NORM),
                                           initializer=nn.initializer.Constant(0.0)))
            self.mask_lm_out_bias = self.create_parameter(
                [config.vocab_size], attr=paddle.ParamAttr(name=names.MASK_LM_OUT_BIAS,
                                                           initializer=nn.initializer.Constant(0.0)),
                is_bias=True)
            self.token_heads = nn.LayerDict({t: _linear(head_name(t), h, 2, std)
                                             for t in (CAPITALIZATION, TOKEN_DOCUMENT)})
            self.sentence_heads = nn.LayerDict({t: _linear(head_name(t), h, n, std)
                                                for t, n in num_classes.items() if t in SENTENCE_TASKS})

    def forward(self, batch: Dict[str, paddle.Tensor]) -> Dict[str, paddle.Tensor]:
        """Returns `loss` and, per task, `<task>/loss`, `<task>/count`, `<task>/correct`."""
        seq, pooled = self.ernie(batch["src_ids"], batch["sent_ids"], batch["pos_ids"],
                                 batch["input_mask"], batch.get("task_ids"))
        out: Dict[str, paddle.Tensor] = {}
        # masked LM: gather [B*T, H] rows at the masked positions first
        flat = paddle.reshape(seq, [-1, self.config.hidden_size])
        masked = paddle.gather(flat, batch["mask_pos"])
        trans = self.mask_lm_trans_layer_norm(cpu_kernels.gelu(self.mask_lm_trans_fc(masked), self.training))
        word_embedding = self.ernie.embeddings.word_embedding.weight
        logits = cpu_kernels.bias_add(paddle.matmul(trans, word_embedding, transpose_y=True),
                                      self.mask_lm_out_bias, self.training)
        self._record(out, KNOWLEDGE_MASKING, *masked_mean_cross_entropy(logits, batch["mask_label"]))
        for task, head in self.token_heads.items():
            self._record(out, task, *masked_mean_cross_entropy(head(seq), batch[f"{task}_label"]))
        for task, head in self.sentence_heads.items():
            self._record(out, task, *masked_mean_cross_entropy(head(pooled), batch[f"{task}_label"]))
        weights = batch["task_weights"]
        losses = paddle.stack([out[f"{t}/loss"] for t in self.active_task_order])
        out["loss"] = paddle.sum(losses * weights) / paddle.maximum(paddle.sum(weights), paddle.ones([1]))
        return out

    @property
    def active_task_order(self):
        """The tasks in `task_weights` order: every task this model has a head for."""
        return [t for t in ALL_TASKS if t in (KNOWLEDGE_MASKING, *self.token_heads, *self.sentence_heads)]

    @staticmethod
    def _record(out, task, loss, count, correct):
        out[f"{task}/loss"] = loss
        out[f"{task}/count"] = count
        out[f"{task}/correct"] = correct


def feed_specs(model: ErnieForPretraining) -> Dict[str, tuple]:
    """name -> (shape, dtype) of every input of a pre-training batch."""
    ids = ("src_ids", "sent_ids", "pos_ids") + (("task_ids",) if model.config.use_task_id else ())
    specs = {n: ([-1, -1], "int64") for n in ids}
    specs["input_mask"] = ([-1, -1], "float32")
    specs["mask_pos"] = ([-1], "int64")
    specs["mask_label"] = ([-1], "int64")
    specs.update({f"{task}_label": ([-1, -1], "int64") for task in model.token_heads})
    specs.update({f"{task}_label": ([-1], "int64") for task in model.sentence_heads})
    specs["task_weights"] = ([len(model.active_task_order)], "float32")
    return specs


def pretraining_feeds(model: ErnieForPretraining) -> Dict[str, paddle.Tensor]:
    """`paddle.static.data` inputs for a pre-training batch."""
    return {name: paddle.static.data(name, shape, dtype) for name, (shape, dtype) in feed_specs(model).items()}
