"""The original ERNIE static-graph parameter names, defined once.

The model, the checkpoint checks and every converter take names from here, so a released ERNIE
checkpoint, this project's safetensors files and a static program's scope all agree one to one.
Linear weights are stored [in, out], as Paddle and the original ERNIE store them.
"""
from __future__ import annotations

from typing import Dict, Tuple

WORD_EMBEDDING = "word_embedding"
POS_EMBEDDING = "pos_embedding"
SENT_EMBEDDING = "sent_embedding"
TASK_EMBEDDING = "task_embedding"
PRE_ENCODER_LAYER_NORM = "pre_encoder_layer_norm"
POOLED_FC = "pooled_fc"

# Masked-LM head of the original pre-training program (output weights tied to word_embedding).
MASK_LM_TRANS_FC = "mask_lm_trans_fc"
MASK_LM_TRANS_LAYER_NORM = "mask_lm_trans_layer_norm"
MASK_LM_OUT_BIAS = "mask_lm_out_fc.b_0"
# Next-sentence head of the ERNIE 1.0 recipe.
NEXT_SENT_FC = "next_sent_fc"


def fc_weight(prefix: str) -> str:
    return f"{prefix}.w_0"


def fc_bias(prefix: str) -> str:
    return f"{prefix}.b_0"


def task_head(task: str) -> str:
    """The prefix of a task's linear head (`<task>_fc.w_0`, `<task>_fc.b_0`)."""
    return f"{task}_fc"


MASKED_LM_HEAD = (fc_weight(MASK_LM_TRANS_FC), fc_bias(MASK_LM_TRANS_FC), f"{MASK_LM_TRANS_LAYER_NORM}_scale",
                  f"{MASK_LM_TRANS_LAYER_NORM}_bias", MASK_LM_OUT_BIAS)


def ln_scale(prefix: str) -> str:
    return f"{prefix}_scale"


def ln_bias(prefix: str) -> str:
    return f"{prefix}_bias"


def layer_prefix(index: int) -> str:
    return f"encoder_layer_{index}"


def attention_fc(index: int, which: str) -> str:
    """`which` is one of query, key, value, output."""
    return f"{layer_prefix(index)}_multi_head_att_{which}_fc"


def ffn_fc(index: int, which: int) -> str:
    return f"{layer_prefix(index)}_ffn_fc_{which}"


def post_att_layer_norm(index: int) -> str:
    return f"{layer_prefix(index)}_post_att_layer_norm"


def post_ffn_layer_norm(index: int) -> str:
    return f"{layer_prefix(index)}_post_ffn_layer_norm"


def _fc_shapes(prefix: str, n_in: int, n_out: int) -> Dict[str, Tuple[int, ...]]:
    return {fc_weight(prefix): (n_in, n_out), fc_bias(prefix): (n_out,)}


def _ln_shapes(prefix: str, size: int) -> Dict[str, Tuple[int, ...]]:
    return {ln_scale(prefix): (size,), ln_bias(prefix): (size,)}


def encoder_param_shapes(config) -> Dict[str, Tuple[int, ...]]:
    """Every parameter of the encoder (embeddings, layers, pooler) with its shape."""
    h, ffn = config.hidden_size, config.intermediate_size
    shapes = {
        WORD_EMBEDDING: (config.vocab_size, h),
        POS_EMBEDDING: (config.max_position_embeddings, h),
        SENT_EMBEDDING: (config.sent_type_vocab_size, h),
    }
    if config.use_task_id:
        shapes[TASK_EMBEDDING] = (config.task_type_vocab_size, h)
    shapes.update(_ln_shapes(PRE_ENCODER_LAYER_NORM, h))
    for i in range(config.num_hidden_layers):
        for which in ("query", "key", "value", "output"):
            shapes.update(_fc_shapes(attention_fc(i, which), h, h))
        shapes.update(_ln_shapes(post_att_layer_norm(i), h))
        shapes.update(_fc_shapes(ffn_fc(i, 0), h, ffn))
        shapes.update(_fc_shapes(ffn_fc(i, 1), ffn, h))
        shapes.update(_ln_shapes(post_ffn_layer_norm(i), h))
    shapes.update(_fc_shapes(POOLED_FC, h, h))
    return shapes


def pretraining_head_param_shapes(config) -> Dict[str, Tuple[int, ...]]:
    """The masked-LM and next-sentence heads that original and Hugging Face checkpoints carry."""
    h = config.hidden_size
    shapes = dict(_fc_shapes(MASK_LM_TRANS_FC, h, h))
    shapes.update(_ln_shapes(MASK_LM_TRANS_LAYER_NORM, h))
    shapes[MASK_LM_OUT_BIAS] = (config.vocab_size,)
    shapes.update(_fc_shapes(NEXT_SENT_FC, h, 2))
    return shapes
