"""ERNIE 2.0 pre-training: the shared encoder with the heads of the tasks a schedule trains.

Each task's model side builds its own head and computes its own loss (`ernie.pretrain.task_head`,
the usual linear head there too; knowledge masking's masked-LM head is in its module); this
module holds the encoder with the heads, and the feeds of a batch.

Every head is in the program; a batch switches heads on with `task_weights` (1 for the tasks
active in this batch, 0 otherwise), and the loss is the mean of the active tasks' losses:
inactive tasks contribute nothing. Each loss is a masked mean over its labelled positions
(label -1 = no label), so a batch without labels for a task gives that task exactly zero.
"""
from __future__ import annotations

from typing import Dict, Mapping, Optional

import paddle
from paddle import nn

from ernie.model.config import ErnieConfig
from ernie.model.modeling import ErnieModel
from ernie_common import tasks as registry


class ErnieForPretraining(nn.Layer):
    """The encoder and the heads of the given tasks; `tasks` maps each task's name to its number
    of classes (None for a token-level task). Heads are built in task-id order, each given its
    task's options: `options` maps every task's name to the run's options object, the one its
    reader's task holds (`PretrainingData.options`); without it (a model built outside a run)
    each head gets its task's default options. `recompute`: the encoder's layers are recomputed
    in the backward pass (`ErnieModel`)."""

    def __init__(self, config: ErnieConfig, tasks: Dict[str, Optional[int]], recompute: bool = False,
                 options: Optional[Mapping[str, registry.TaskOptions]] = None):
        super().__init__()
        self.config = config
        self.ernie = ErnieModel(config, recompute=recompute)
        self.tasks = registry.resolve(list(tasks))
        self.task_heads = {t.name: t.head_type(t.spec, options[t.name] if options is not None else t.options_type())
                           for t in self.tasks}
        self._check_parameter_names()
        self.heads = nn.LayerDict({t.name: self.task_heads[t.name].build(config, tasks[t.name]) for t in self.tasks})

    def _check_parameter_names(self) -> None:
        """A head's parameters are its own: named as another task's, or as the encoder's, two
        layers would be one parameter (trained by both, or refused by Paddle with no task named),
        and a model that has them would pass for having learned both tasks (`init_model`)."""
        owner = {p.name: "the encoder" for p in self.ernie.parameters()}
        for task in self.tasks:
            for name in self.task_heads[task.name].parameter_names():
                if name in owner:
                    raise ValueError(f"task {task.name} ({task.module}) names a head parameter {name}, which "
                                     f"{owner[name]} has: a head's parameters must be its own (name them after "
                                     f"the task, as <task>_fc.w_0)")
                owner[name] = f"task {task.name} ({task.module})"

    def forward(self, batch: Dict[str, paddle.Tensor]) -> Dict[str, paddle.Tensor]:
        """Returns `loss` and, per task, `<task>/loss`, `<task>/count`, `<task>/correct`."""
        seq, pooled = self.ernie(batch["src_ids"], batch["sent_ids"], batch["pos_ids"],
                                 batch["input_mask"], batch.get("task_ids"))
        out: Dict[str, paddle.Tensor] = {}
        for task in self.tasks:
            values = self.task_heads[task.name].loss(self.heads[task.name], self.ernie, seq, pooled, batch)
            for key, value in zip(("loss", "count", "correct"), values):
                shape = list(value.shape)  # as the static program knows it when it is built (-1: unknown)
                if shape not in ([], [1]):
                    raise registry.TaskError(f"task {task.name} ({task.module}): its head's loss() gives a {key} "
                                             f"of shape {shape}, where it must be one number (a mean over the "
                                             f"batch's labels, a count)")
                out[f"{task.name}/{key}"] = value.reshape([]) if shape else value
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
    owner = {name: "the encoder" for name in specs}
    owner.update({"task_weights": "the loss", "tokens": "the reader (its count of a batch's tokens)"})
    for task in model.tasks:
        for name, spec in task.feed_specs().items():
            if name in owner:  # one input would be fed twice, one of the values lost
                raise registry.TaskError(f"task {task.name} ({task.module}) feeds {name}, which {owner[name]} "
                                         f"feeds too: name a task's feeds after the task (<task>_label)")
            owner[name], specs[name] = f"task {task.name} ({task.module})", spec
    specs["task_weights"] = ([len(model.active_task_order)], "float32")
    return specs


def pretraining_feeds(model: ErnieForPretraining) -> Dict[str, paddle.Tensor]:
    """`paddle.static.data` inputs for a pre-training batch."""
    return {name: paddle.static.data(name, shape, dtype) for name, (shape, dtype) in feed_specs(model).items()}
