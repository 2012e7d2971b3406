"""The encoder with one fine-tuning head, under the original ERNIE fine-tuning parameter names.

- `sentence`: a sentence vector -> dropout -> fc (`cls_out_w`, `cls_out_b`): classification,
  ranking (2 classes) and regression (1 output). The vector is the pooled [CLS] output
  (`pooling: cls`, the released heads') or the mean of the top layer over the real tokens
  (`pooling: mean`), which needs no pre-trained [CLS]: a model pre-trained mostly on token-level
  tasks has trained its pooler for few steps, its token vectors for all of them;
- `token`: every position of the sequence output -> dropout -> fc (`cls_seq_label_out_w/b`):
  sequence labelling;
- `span`: sequence output -> dropout -> fc to start and end logits (`cls_mrc_out_w/b`): reading
  comprehension.

Every head drops out its input while training, as the released heads do (PaddlePaddle/ERNIE
v2.0 finetune/classifier.py, sequence_label.py and mrc.py: dropout 0.1, upscale_in_train) at the
encoder's `hidden_dropout_prob`, 0.1 in every released and shipped model config.
"""
from __future__ import annotations

import paddle
from paddle import nn

from ernie.finetune.settings import POOLINGS
from ernie.model.config import ErnieConfig
from ernie.model.modeling import Dropout, ErnieModel, named_linear
from ernie.model.static_graph import encoder_feeds

HEAD_PARAMS = {"sentence": ("cls_out_w", "cls_out_b"),
               "token": ("cls_seq_label_out_w", "cls_seq_label_out_b"),
               "span": ("cls_mrc_out_w", "cls_mrc_out_b")}


class ErnieWithHead(nn.Layer):
    def __init__(self, config: ErnieConfig, head: str, n_outputs: int, pooling: str = "cls"):
        super().__init__()
        if head not in HEAD_PARAMS:
            raise ValueError(f"unknown head {head!r}; choose from {sorted(HEAD_PARAMS)}")
        if pooling not in POOLINGS or (pooling != "cls" and head != "sentence"):
            raise ValueError(f"pooling {pooling!r} for a {head} head: sentence heads take one of {POOLINGS}, "
                             f"the others none but cls")
        self.head, self.pooling = head, pooling
        self.ernie = ErnieModel(config)
        self.dropout = Dropout(config.hidden_dropout_prob)
        self.out = named_linear(*HEAD_PARAMS[head], config.hidden_size, n_outputs,
                                config.initializer_range)

    def forward(self, src_ids, sent_ids, pos_ids, input_mask, task_ids=None):
        sequence, pooled = self.ernie(src_ids, sent_ids, pos_ids, input_mask, task_ids)
        if self.head != "sentence":
            return self.out(self.dropout(sequence))
        if self.pooling == "mean":
            mask = paddle.cast(input_mask, sequence.dtype).unsqueeze(-1)
            pooled = (sequence * mask).sum(axis=1) / mask.sum(axis=1)
        return self.out(self.dropout(pooled))

    @classmethod
    def for_kind(cls, config: ErnieConfig, kind) -> "ErnieWithHead":
        """The model a fine-tuning kind trains and serves (a sentence kind names its pooling)."""
        return cls(config, kind.head, kind.n_outputs, getattr(kind, "pooling", "cls"))


def inference_graph(config: ErnieConfig, kind):
    """The evaluation and export graph of a fine-tuning kind, built in the current program:
    encoder feeds in, the kind's outputs out, dropout off. Returns (model, feeds, outputs)."""
    feeds = encoder_feeds(config)
    model = ErnieWithHead.for_kind(config, kind)
    model.eval()
    return model, feeds, kind.outputs(model(**feeds))
