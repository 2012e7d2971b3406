"""The ERNIE 2.0 encoder: token + sentence + position (+ task) embeddings, post-LN Transformer, pooler.

One `paddle.nn.Layer` serves both execution modes: called inside `paddle.static.program_guard` it
builds a static (PIR) program, called eagerly it runs in dygraph. Every parameter carries its
original ERNIE static name (see `param_names`), so a scope, a safetensors file and a released
checkpoint use the same names.
"""
from __future__ import annotations

import math

import paddle
import paddle.nn.functional as F
from paddle import nn

from ernie.kernels import (
    cpu_kernels,
    cpu_runtime,  # noqa: F401  (tunes the process for Paddle's CPU kernels)
)
from ernie.model import param_names as names
from ernie.model.config import ErnieConfig

# The original ERNIE masks attention with a bias of -1e4, which stays finite in float16.
_MASK_BIAS = -1e4


# The layers below train on the fused CPU kernels where they apply (see `ernie.kernels.cpu_kernels`).


class Linear(nn.Linear):
    def forward(self, x):
        return cpu_kernels.linear(x, self.weight, self.bias, self.training)


class LayerNorm(nn.LayerNorm):
    def forward(self, x):
        return cpu_kernels.layer_norm(x, self.weight, self.bias, self._epsilon, self.training)


class Dropout(nn.Dropout):
    """Dropout that scales kept values by 1 / (1 - p) in training (upscale_in_train)."""

    def forward(self, x):
        return cpu_kernels.dropout(x, self.p, self.training)


def named_linear(weight_name: str, bias_name: str, n_in: int, n_out: int,
                 init_std: float) -> Linear:
    """A task head's linear layer: truncated-normal weight, zero bias, both under given names."""
    return Linear(
        n_in, n_out,
        weight_attr=paddle.ParamAttr(name=weight_name,
                                     initializer=nn.initializer.TruncatedNormal(std=init_std)),
        bias_attr=paddle.ParamAttr(name=bias_name, initializer=nn.initializer.Constant(0.0)))


class _NamedParams:
    """ParamAttr factories that give each parameter its original name and initializer."""

    def __init__(self, config: ErnieConfig):
        self._init = nn.initializer.TruncatedNormal(mean=0.0, std=config.initializer_range)

    def weight(self, name: str) -> paddle.ParamAttr:
        return paddle.ParamAttr(name=name, initializer=self._init)

    def linear(self, prefix: str, n_in: int, n_out: int) -> Linear:
        return Linear(n_in, n_out, weight_attr=self.weight(names.fc_weight(prefix)),
                      bias_attr=paddle.ParamAttr(name=names.fc_bias(prefix),
                                                 initializer=nn.initializer.Constant(0.0)))

    @staticmethod
    def layer_norm(prefix: str, size: int, eps: float) -> LayerNorm:
        return LayerNorm(size, epsilon=eps,
                         weight_attr=paddle.ParamAttr(name=names.ln_scale(prefix),
                                                      initializer=nn.initializer.Constant(1.0)),
                         bias_attr=paddle.ParamAttr(name=names.ln_bias(prefix),
                                                    initializer=nn.initializer.Constant(0.0)))


class ErnieEmbeddings(nn.Layer):
    def __init__(self, config: ErnieConfig, params: _NamedParams):
        super().__init__()
        h = config.hidden_size
        self.word_embedding = nn.Embedding(config.vocab_size, h,
                                           weight_attr=params.weight(names.WORD_EMBEDDING))
        self.pos_embedding = nn.Embedding(config.max_position_embeddings, h,
                                          weight_attr=params.weight(names.POS_EMBEDDING))
        self.sent_embedding = nn.Embedding(config.sent_type_vocab_size, h,
                                           weight_attr=params.weight(names.SENT_EMBEDDING))
        self.task_embedding = (
            nn.Embedding(config.task_type_vocab_size, h, weight_attr=params.weight(names.TASK_EMBEDDING))
            if config.use_task_id else None)
        self.layer_norm = params.layer_norm(names.PRE_ENCODER_LAYER_NORM, h, config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(self, src_ids, sent_ids, pos_ids, task_ids):
        emb = self.word_embedding(src_ids) + self.pos_embedding(pos_ids) + self.sent_embedding(sent_ids)
        if self.task_embedding is not None:
            emb = emb + self.task_embedding(task_ids)
        return self.dropout(self.layer_norm(emb))


class ErnieSelfAttention(nn.Layer):
    def __init__(self, config: ErnieConfig, params: _NamedParams, index: int):
        super().__init__()
        h = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.head_size = config.head_size
        self.query_fc = params.linear(names.attention_fc(index, "query"), h, h)
        self.key_fc = params.linear(names.attention_fc(index, "key"), h, h)
        self.value_fc = params.linear(names.attention_fc(index, "value"), h, h)
        self.output_fc = params.linear(names.attention_fc(index, "output"), h, h)
        self.dropout = Dropout(config.attention_probs_dropout_prob)

    def forward(self, x, attn_bias):
        q = self.query_fc(x) * (1.0 / math.sqrt(self.head_size))
        scores = cpu_kernels.attention_scores(q, self.key_fc(x), self.num_heads, self.training)
        probs = self.dropout(cpu_kernels.masked_softmax(scores, attn_bias, self.training))
        context = cpu_kernels.attention_context(probs, self.value_fc(x), self.num_heads, self.training)
        return self.output_fc(context)


class ErnieEncoderLayer(nn.Layer):
    """Post-LN block: attention, dropout, add, norm; FFN, dropout, add, norm."""

    def __init__(self, config: ErnieConfig, params: _NamedParams, index: int):
        super().__init__()
        h, eps = config.hidden_size, config.layer_norm_eps
        self.attention = ErnieSelfAttention(config, params, index)
        self.post_att_layer_norm = params.layer_norm(names.post_att_layer_norm(index), h, eps)
        self.ffn_fc_0 = params.linear(names.ffn_fc(index, 0), h, config.intermediate_size)
        self.ffn_fc_1 = params.linear(names.ffn_fc(index, 1), config.intermediate_size, h)
        self.post_ffn_layer_norm = params.layer_norm(names.post_ffn_layer_norm(index), h, eps)
        self.hidden_act = config.hidden_act
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(self, x, attn_bias):
        x = self.post_att_layer_norm(x + self.dropout(self.attention(x, attn_bias)))
        ffn = self.ffn_fc_1(activation(self.ffn_fc_0(x), self.hidden_act, self.training))
        return self.post_ffn_layer_norm(x + self.dropout(ffn))


def activation(x, hidden_act: str, training: bool):
    """The model's activation (`hidden_act`): GELU in its exact erf form (ERNIE 2.0, BERT) or ReLU
    (ERNIE 1.0), in the encoder's feed-forward layers and in the masked-LM head's transform alike."""
    return cpu_kernels.gelu(x, training) if hidden_act == "gelu" else F.relu(x)


class ErnieModel(nn.Layer):
    """Returns (sequence_output [B, T, H], pooled_output [B, H]).

    Inputs are int64 [B, T] ids, except `input_mask`, float32 [B, T] with 1 for real tokens.
    Omitted inputs default to: sentence 0, positions 0..T-1, mask = (src_ids != pad), task 0.
    Padded keys are masked out of attention; outputs at padded positions are not meaningful.
    """

    def __init__(self, config: ErnieConfig, recompute: bool = False):
        """`recompute`: keep only each layer's input for the backward pass and compute the layer
        again there (Paddle's recompute), for long sequences on large models; training only."""
        super().__init__()
        self.config = config
        self.recompute = recompute
        # Dygraph refuses two parameters of one name per process unless each model gets a fresh
        # name registry; the names themselves are fixed by `param_names`, so this is safe.
        with paddle.utils.unique_name.guard():
            params = _NamedParams(config)
            self.embeddings = ErnieEmbeddings(config, params)
            self.layers = nn.LayerList(
                [ErnieEncoderLayer(config, params, i) for i in range(config.num_hidden_layers)])
            self.pooled_fc = params.linear(names.POOLED_FC, config.hidden_size, config.hidden_size)

    def forward(self, src_ids, sent_ids=None, pos_ids=None, input_mask=None, task_ids=None):
        if sent_ids is None:
            sent_ids = paddle.zeros_like(src_ids)
        if pos_ids is None:
            pos_ids = paddle.expand_as(
                paddle.arange(paddle.shape(src_ids)[1], dtype=src_ids.dtype).unsqueeze(0), src_ids)
        if input_mask is None:
            input_mask = paddle.cast(src_ids != self.config.pad_token_id, "float32")
        if task_ids is None and self.config.use_task_id:
            task_ids = paddle.zeros_like(src_ids)
        x = self.embeddings(src_ids, sent_ids, pos_ids, task_ids)
        # [B, T] -> [B, 1, 1, T]: every query sees only real keys.
        attn_bias = ((1.0 - paddle.cast(input_mask, x.dtype)) * _MASK_BIAS).unsqueeze([1, 2])
        if self.recompute and self.training:
            from paddle.distributed.fleet.recompute import recompute
            for layer in self.layers:
                x = recompute(layer, x, attn_bias)
        else:
            for layer in self.layers:
                x = layer(x, attn_bias)
        pooled = paddle.tanh(self.pooled_fc(x[:, 0]))
        return x, pooled
