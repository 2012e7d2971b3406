"""A base for pre-training tasks whose head is one linear layer, for the built-in tasks and a
user's: over every token for a token-level task, over the pooled [CLS] output for a
sentence-level one, with the cross entropy of its labels. The head's parameters are named
`<task>_fc.w_0` / `<task>_fc.b_0`, as every head's in this library. Paddle is imported only when
a head is built, so data generation (which imports the task modules) stays free of it."""
from __future__ import annotations

from typing import Optional

from ernie.model import param_names as names
from ernie_common.tasks import TOKEN, PretrainingTask


class LinearHeadTask(PretrainingTask):
    token_classes = 2  # a token-level task's classes (its labels are 0 .. token_classes - 1)

    def head_parameters(self):
        return (names.fc_weight(names.task_head(self.name)), names.fc_bias(names.task_head(self.name)))

    def build_head(self, config, num_classes: Optional[int]):
        from ernie.pretrain.model import linear_head
        return linear_head(self.name, config, self.token_classes if self.level == TOKEN else num_classes)

    def loss(self, head, encoder, sequence, pooled, batch):
        from ernie.model.losses import masked_mean_cross_entropy
        logits = head(sequence if self.level == TOKEN else pooled)
        return masked_mean_cross_entropy(logits, batch[f"{self.name}_label"])
