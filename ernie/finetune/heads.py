"""The encoder with one fine-tuning head, under the original ERNIE fine-tuning parameter names.

- `sentence`: pooled [CLS] output -> dropout -> fc (`cls_out_w`, `cls_out_b`): classification,
  ranking (2 classes) and regression (1 output);
- `token`: every position of the sequence output -> dropout -> fc (`cls_seq_label_out_w/b`):
  sequence labelling;
- `span`: sequence output -> dropout -> fc to start and end logits (`cls_mrc_out_w/b`): reading
  comprehension.

Every head drops out its input while training, as the released heads do (PaddlePaddle/ERNIE
v2.0 finetune/classifier.py, sequence_label.py and mrc.py: dropout 0.1, upscale_in_train) at the
encoder's `hidden_dropout_prob`, 0.1 in every released and shipped model config.
"""
from __future__ import annotations

from paddle import nn

from ernie.model.config import ErnieConfig
from ernie.model.modeling import Dropout, ErnieModel, named_linear
from ernie.model.static_graph import encoder_feeds

HEAD_PARAMS = {"sentence": ("cls_out_w", "cls_out_b"),
               "token": ("cls_seq_label_out_w", "cls_seq_label_out_b"),
               "span": ("cls_mrc_out_w", "cls_mrc_out_b")}


class ErnieWithHead(nn.Layer):
    def __init__(self, config: ErnieConfig, head: str, n_outputs: int):
        super().__init__()
        if head not in HEAD_PARAMS:
            raise ValueError(f"unknown head {head!r}; choose from {sorted(HEAD_PARAMS)}")
        self.head = head
        self.ernie = ErnieModel(config)
        self.dropout = Dropout(config.hidden_dropout_prob)
        self.out = named_linear(*HEAD_PARAMS[head], config.hidden_size, n_outputs,
                                config.initializer_range)

    def forward(self, src_ids, sent_ids, pos_ids, input_mask, task_ids=None):
        sequence, pooled = self.ernie(src_ids, sent_ids, pos_ids, input_mask, task_ids)
        return self.out(self.dropout(pooled if self.head == "sentence" else sequence))


def inference_graph(config: ErnieConfig, kind):
    """The evaluation and export graph of a fine-tuning kind, built in the current program:
    encoder feeds in, the kind's outputs out, dropout off. Returns (model, feeds, outputs)."""
    feeds = encoder_feeds(config)
    model = ErnieWithHead(config, kind.head, kind.n_outputs)
    model.eval()
    return model, feeds, kind.outputs(model(**feeds))
