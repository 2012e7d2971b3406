import numpy as np
import paddle
import pytest

from ernie.model.modeling import ErnieModel
from ernie.model.param_names import encoder_param_shapes
from ernie.model.params_io import assign_layer_params, layer_params
from ernie.model.static_graph import StaticEncoder
from tests.conftest import random_feeds, small_config


def _dygraph(model, feeds):
    seq, pooled = model(**{k: paddle.to_tensor(v) for k, v in feeds.items()})
    return seq.numpy(), pooled.numpy()


@pytest.mark.parametrize("use_task_id,act", [(True, "gelu"), (False, "relu")])
def test_parameters_carry_the_original_names(use_task_id, act):
    config = small_config(use_task_id=use_task_id, hidden_act=act)
    params = layer_params(ErnieModel(config))
    assert {k: v.shape for k, v in params.items()} == encoder_param_shapes(config)
    assert "encoder_layer_0_multi_head_att_query_fc.w_0" in params
    assert ("task_embedding" in params) == use_task_id
    static = StaticEncoder(config)
    assert sorted(static.param_names) == sorted(params)


def test_static_program_equals_dygraph():
    config = small_config()
    paddle.seed(3)
    model = ErnieModel(config)
    model.eval()
    feeds = random_feeds(config, pad_from=4)
    expected = _dygraph(model, feeds)
    got = StaticEncoder(config, layer_params(model)).run(feeds)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=0)


def test_padding_does_not_change_real_positions():
    config = small_config()
    model = ErnieModel(config)
    model.eval()
    feeds = random_feeds(config, batch=1, seq_len=10, pad_from=6)
    seq, pooled = _dygraph(model, feeds)
    short = {k: v[:, :6] for k, v in feeds.items()}
    seq_short, pooled_short = _dygraph(model, short)
    np.testing.assert_allclose(seq[:, :6], seq_short, atol=1e-6)
    np.testing.assert_allclose(pooled, pooled_short, atol=1e-6)


def test_inputs_default_like_the_original():
    """Omitted sentence/position/task ids default to 0/0..T-1/0 and the mask to non-padding."""
    config = small_config()
    model = ErnieModel(config)
    model.eval()
    feeds = random_feeds(config, pad_from=5)
    feeds["sent_ids"][:] = 0
    feeds["task_ids"][:] = 0
    explicit = _dygraph(model, feeds)
    implicit = _dygraph(model, {"src_ids": feeds["src_ids"]})
    for a, b in zip(explicit, implicit):
        np.testing.assert_array_equal(a, b)


def test_task_embedding_changes_the_output():
    config = small_config()
    model = ErnieModel(config)
    model.eval()
    feeds = random_feeds(config)
    base = _dygraph(model, {**feeds, "task_ids": np.zeros_like(feeds["task_ids"])})[1]
    other = _dygraph(model, {**feeds, "task_ids": np.ones_like(feeds["task_ids"])})[1]
    assert np.abs(base - other).max() > 1e-3


def test_two_models_in_one_process_are_independent():
    config = small_config()
    a, b = ErnieModel(config), ErnieModel(config)
    params = {k: np.zeros_like(v) for k, v in layer_params(a).items()}
    assign_layer_params(b, params)
    assert np.abs(layer_params(a)["word_embedding"]).sum() > 0
