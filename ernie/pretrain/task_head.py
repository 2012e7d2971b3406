"""The model side of a pre-training task: its head's layer, the names of the layer's parameters,
and its loss with the counts the logs report (the data side is `data_gen.data_task.DataTask`;
both are registered together, `ernie_common.tasks.register(head=...)`).

`ErnieForPretraining` builds one `TaskHead` per task from the task's `spec` and the run's options
of the task (the very object the reader's task holds, `DataTask.options`, as the shards' manifest
records it), and asks it for the layer and, at every batch, for the loss. `LinearHead` is the
usual head: one linear layer over every token for a token-level task, over the pooled [CLS]
output for a sentence-level one, with the cross entropy of its labels, its parameters named
`<task>_fc.w_0` / `<task>_fc.b_0` as every head's in this library. Paddle is imported only when a
head is built, so data generation (which imports the task modules) stays free of it.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Dict, Optional, Tuple

from ernie.model import param_names as names
from ernie_common.tasks import TOKEN, TaskOptions, TaskSpec

if TYPE_CHECKING:
    import paddle
    from paddle import nn

    from ernie.model.config import ErnieConfig
    from ernie.model.modeling import ErnieModel

# a batch's (mean loss over its labels, number of labels, number predicted right)
TaskLoss = Tuple["paddle.Tensor", "paddle.Tensor", "paddle.Tensor"]


class TaskHead(ABC):
    """The model side of one task, for the task described by `spec`, with the run's `options` of
    the task (a head may read them, as its data side does). They are None only where a head is
    asked for its parameter names alone (`init_model.learned_tasks`, before any run has options),
    which therefore must not depend on them."""

    def __init__(self, spec: TaskSpec, options: Optional[TaskOptions] = None):
        self.spec = spec
        self.options = options

    @abstractmethod
    def parameter_names(self) -> Tuple[str, ...]:
        """The names of the layer's parameters: a model that has them all has learned the task
        (`ernie.pretrain.init_model.learned_tasks`)."""

    @abstractmethod
    def build(self, config: "ErnieConfig", num_classes: Optional[int]) -> "nn.Layer":
        """The head's layer, its parameters under `parameter_names`; `num_classes` is a
        sentence-level task's number of classes (the manifest's), None for a token-level task."""

    @abstractmethod
    def loss(self, layer: "nn.Layer", encoder: "ErnieModel", sequence: "paddle.Tensor", pooled: "paddle.Tensor",
             batch: Dict[str, "paddle.Tensor"]) -> TaskLoss:
        """The loss of the batch, from the encoder's `sequence` [B, T, H] and `pooled` [B, H]
        outputs and the task's label feeds in `batch` (`DataTask.batch_labels`)."""


class LinearHead(TaskHead):
    """One linear layer and the cross entropy of the task's `<task>_label` feed."""
    token_classes = 2  # a token-level task's classes (its labels are 0 .. token_classes - 1)

    def parameter_names(self) -> Tuple[str, ...]:
        return names.fc_weight(names.task_head(self.spec.name)), names.fc_bias(names.task_head(self.spec.name))

    def build(self, config, num_classes):
        """Truncated-normal weight, zero bias."""
        import paddle

        from ernie.model.modeling import named_linear
        weight, bias = self.parameter_names()
        n_out = self.token_classes if self.spec.level == TOKEN else num_classes
        with paddle.utils.unique_name.guard():
            return named_linear(weight, bias, config.hidden_size, n_out, config.initializer_range)

    def loss(self, layer, encoder, sequence, pooled, batch):
        from ernie.model.losses import masked_mean_cross_entropy
        logits = layer(sequence if self.spec.level == TOKEN else pooled)
        return masked_mean_cross_entropy(logits, batch[f"{self.spec.name}_label"], layer.training)
