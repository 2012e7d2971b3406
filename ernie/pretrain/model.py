"""ERNIE 2.0 pre-training: the shared encoder with the heads of the tasks a schedule trains.

Each task builds its own head and computes its own loss (`ernie_common.tasks.PretrainingTask`);
this module holds the encoder-side model and what heads share: a linear head under the original
naming (`<task>_fc.w_0`) and BERT's masked-LM head under ERNIE's names (the masked cross entropy
every built-in loss uses is `ernie.model.losses`).

Every head is in the program; a batch switches heads on with `task_weights` (1 for the tasks
active in this batch, 0 otherwise), and the loss is the mean of the active tasks' losses:
inactive tasks contribute nothing. Each loss is a masked mean over its labelled positions
(label -1 = no label), so a batch without labels for a task gives that task exactly zero.
"""
from __future__ import annotations

from typing import Dict, Optional

import paddle
from paddle import nn

from ernie.kernels import cpu_kernels
from ernie.model import param_names as names
from ernie.model.config import ErnieConfig
from ernie.model.modeling import ErnieModel, LayerNorm, named_linear
from ernie_common import tasks as registry


def linear_head(task: str, config: ErnieConfig, n_out: int) -> nn.Layer:
    """A task's linear head: truncated-normal weight, zero bias, named `<task>_fc.w_0/b_0`."""
    with paddle.utils.unique_name.guard():
        return named_linear(names.fc_weight(names.task_head(task)), names.fc_bias(names.task_head(task)),
                            config.hidden_size, n_out, config.initializer_range)


class MaskedLMHead(nn.Layer):
    """BERT's masked-LM head under ERNIE's original names: dense + GELU + layer norm on the masked
    rows, then the vocabulary projection with the word embeddings' weights and a bias of its own."""

    def __init__(self, config: ErnieConfig):
        super().__init__()
        h, std = config.hidden_size, config.initializer_range
        with paddle.utils.unique_name.guard():
            self.trans_fc = named_linear(names.fc_weight(names.MASK_LM_TRANS_FC), names.fc_bias(names.MASK_LM_TRANS_FC),
                                         h, h, std)
            self.trans_layer_norm = LayerNorm(
                h, epsilon=config.layer_norm_eps,
                weight_attr=paddle.ParamAttr(name=names.ln_scale(names.MASK_LM_TRANS_LAYER_NORM),
                                             initializer=nn.initializer.Constant(1.0)),
                bias_attr=paddle.ParamAttr(name=names.ln_bias(names.MASK_LM_TRANS_LAYER_NORM),
                                           initializer=nn.initializer.Constant(0.0)))
            self.out_bias = self.create_parameter(
                [config.vocab_size], attr=paddle.ParamAttr(name=names.MASK_LM_OUT_BIAS,
                                                           initializer=nn.initializer.Constant(0.0)),
                is_bias=True)

    def forward(self, sequence, positions, encoder: ErnieModel):
        """Logits [M, vocab] at the M `positions` of the flattened [B * T] sequence output."""
        flat = paddle.reshape(sequence, [-1, sequence.shape[-1]])
        masked = paddle.gather(flat, positions)  # gather before the vocabulary projection
        trans = self.trans_layer_norm(cpu_kernels.gelu(self.trans_fc(masked), self.training))
        word_embedding = encoder.embeddings.word_embedding.weight
        return cpu_kernels.bias_add(paddle.matmul(trans, word_embedding, transpose_y=True), self.out_bias,
                                    self.training)


class ErnieForPretraining(nn.Layer):
    """The encoder and the heads of the given tasks; `tasks` maps each task's name to its number
    of classes (None for a token-level task). Heads are built in task-id order. `recompute`: the
    encoder's layers are recomputed in the backward pass (`ErnieModel`)."""

    def __init__(self, config: ErnieConfig, tasks: Dict[str, Optional[int]], recompute: bool = False):
        super().__init__()
        self.config = config
        self.ernie = ErnieModel(config, recompute=recompute)
        self.tasks = registry.resolve(list(tasks))
        self.heads = nn.LayerDict({t.name: t.build_head(config, tasks[t.name]) for t in self.tasks})

    def forward(self, batch: Dict[str, paddle.Tensor]) -> Dict[str, paddle.Tensor]:
        """Returns `loss` and, per task, `<task>/loss`, `<task>/count`, `<task>/correct`."""
        seq, pooled = self.ernie(batch["src_ids"], batch["sent_ids"], batch["pos_ids"],
                                 batch["input_mask"], batch.get("task_ids"))
        out: Dict[str, paddle.Tensor] = {}
        for task in self.tasks:
            loss, count, correct = task.loss(self.heads[task.name], self.ernie, seq, pooled, batch)
            out[f"{task.name}/loss"], out[f"{task.name}/count"], out[f"{task.name}/correct"] = loss, count, correct
        weights = batch["task_weights"]
        losses = paddle.stack([out[f"{t}/loss"] for t in self.active_task_order])
        out["loss"] = paddle.sum(losses * weights) / paddle.maximum(paddle.sum(weights), paddle.ones([1]))
        return out

    @property
    def active_task_order(self):
        """The tasks in `task_weights` order: every task this model has a head for, by id."""
        return [t.name for t in self.tasks]


def feed_specs(model: ErnieForPretraining) -> Dict[str, tuple]:
    """name -> (shape, dtype) of every input of a pre-training batch."""
    ids = ("src_ids", "sent_ids", "pos_ids") + (("task_ids",) if model.config.use_task_id else ())
    specs = {n: ([-1, -1], "int64") for n in ids}
    specs["input_mask"] = ([-1, -1], "float32")
    for task in model.tasks:
        specs.update(task.feed_specs())
    specs["task_weights"] = ([len(model.active_task_order)], "float32")
    return specs


def pretraining_feeds(model: ErnieForPretraining) -> Dict[str, paddle.Tensor]:
    """`paddle.static.data` inputs for a pre-training batch."""
    return {name: paddle.static.data(name, shape, dtype) for name, (shape, dtype) in feed_specs(model).items()}
