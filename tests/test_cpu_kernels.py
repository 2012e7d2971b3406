"""The fused CPU kernels against independent references: Paddle's own ops for layer norm, GELU
and bias add (values and gradients), a NumPy Philox4x32-10, itself checked against the
Random123 known-answer vectors, for the dropout mask, and float64 NumPy products of operands
rounded to bfloat16 by hand for the bfloat16 matrix product."""
import os
import platform
import subprocess
import sys

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from ernie.kernels import cpu_kernels
from ernie.model.optimization import adamw
from ernie.pretrain.model import ErnieForPretraining, pretraining_feeds
from ernie_common import machine
from ernie_common.machine import ISA_CAPS, cpu_flags
from propeller.mixed_precision import autocast, cpu_bf16_isa, has_gpu
from propeller.static_runner import InferenceProgram, StaticRunner, static_mode
from tests.conftest import REPO, pretraining_step_feeds, small_config

MASK32 = np.uint64(0xFFFFFFFF)


def philox4x32_10(counters, key):
    """Philox4x32-10 (Salmon et al. 2011) over rows of four 32-bit counter words."""
    c = [counters[:, i].astype(np.uint64) for i in range(4)]
    k0, k1 = np.uint64(key[0]), np.uint64(key[1])
    for _ in range(10):
        p0, p1 = np.uint64(0xD2511F53) * c[0], np.uint64(0xCD9E8D57) * c[2]
        c = [(p1 >> np.uint64(32)) ^ c[1] ^ k0, p1 & MASK32, (p0 >> np.uint64(32)) ^ c[3] ^ k1, p0 & MASK32]
        k0, k1 = (k0 + np.uint64(0x9E3779B9)) & MASK32, (k1 + np.uint64(0xBB67AE85)) & MASK32
    return np.stack(c, axis=1).astype(np.uint32)


@pytest.mark.parametrize("counter,key,expected", [
    ([0, 0, 0, 0], [0, 0], [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
    ([0xFFFFFFFF] * 4, [0xFFFFFFFF] * 2, [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
    ([0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344], [0xA4093822, 0x299F31D0],
     [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]),
])
def test_reference_philox_matches_random123_known_answers(counter, key, expected):
    got = philox4x32_10(np.array([counter], np.uint64), key)[0]
    assert [int(v) for v in got] == expected


def reference_keep(n, key, p):
    """Element 32 g + 8 w + l keeps when word w of the block with counter 8 g + l reaches p * 2^32."""
    i = np.arange(n, dtype=np.uint64)
    block = (i // np.uint64(32)) * np.uint64(8) + i % np.uint64(8)
    word = (i % np.uint64(32)) // np.uint64(8)
    counters = np.stack([block & MASK32, block >> np.uint64(32), 0 * block, 0 * block], axis=1)
    words = philox4x32_10(counters, key)[np.arange(n), word.astype(np.int64)]
    return words >= np.uint32(round(p * 2 ** 32))


@pytest.mark.parametrize("shape,p", [((3, 37, 29), 0.1), ((64,), 0.5), ((5, 7), 0.0)])
def test_dropout_mask_is_philox_and_gradient_follows_it(shape, p):
    assert cpu_kernels.available()
    rng = np.random.default_rng(0)
    x = paddle.to_tensor(rng.normal(size=shape).astype(np.float32), stop_gradient=False)
    key = [123456789, 987654321]
    out = cpu_kernels.run_op("ernie_dropout", x, paddle.to_tensor(key, dtype="int64"), p)[0]
    keep = reference_keep(int(np.prod(shape)), key, p).reshape(shape)
    np.testing.assert_array_equal(out.numpy() != 0, keep)
    np.testing.assert_allclose(out.numpy(), np.where(keep, x.numpy() / (1 - p), 0), rtol=1e-6)
    dy = rng.normal(size=shape).astype(np.float32)
    (grad,) = paddle.grad(out, x, paddle.to_tensor(dy))
    np.testing.assert_allclose(grad.numpy(), np.where(keep, dy / (1 - p), 0), rtol=1e-6)


def test_dropout_follows_paddle_seed_and_keeps_the_expected_share():
    x = paddle.ones([1000, 1000])
    draws = []
    for seed in (7, 7, 8):
        paddle.seed(seed)
        draws.append(cpu_kernels.dropout(x, 0.1, training=True).numpy())
    np.testing.assert_array_equal(draws[0], draws[1])
    assert (draws[0] != draws[2]).any()
    assert abs((draws[0] != 0).mean() - 0.9) < 0.002
    np.testing.assert_array_equal(cpu_kernels.dropout(x, 0.1, training=False).numpy(), x.numpy())


def test_paddle_dropout_in_a_static_program_draws_its_seed_on_the_cpu(monkeypatch):
    """Where the fused kernel does not apply (a GPU's program), Paddle's dropout is seeded by a
    `randint` op placed on the CPU, whatever the program's place (here none): a GPU's dropout
    kernel reads a host seed as it is, and copies a device one to the host, waiting for the
    stream, at every dropout of every step."""
    import paddle.tensor.random
    monkeypatch.setenv("ERNIE_CPU_KERNELS", "0")
    monkeypatch.setattr(paddle.tensor.random, "_current_expected_place", lambda: paddle.base.core.Place())
    with static_mode():
        main = paddle.static.Program()
        with paddle.static.program_guard(main, paddle.static.Program()):
            cpu_kernels.dropout(paddle.static.data("x", [4, 8], "float32"), 0.1, training=True)
    seeds = [op for op in main.global_block().ops if op.name() == "pd_op.randint"]
    assert [str(op.attrs()["place"]) for op in seeds] == ["Place(cpu)"]


def _values_and_grads(fn, inputs, dy, data_inputs):
    """The output and the gradients of all inputs but the last `data_inputs` (data, no gradient)."""
    tensors = [paddle.to_tensor(v, stop_gradient=i >= len(inputs) - data_inputs) for i, v in enumerate(inputs)]
    out = fn(*tensors)
    grads = paddle.grad(out, tensors[:len(inputs) - data_inputs], paddle.to_tensor(dy))
    return [out.numpy()] + [g.numpy() for g in grads]


@pytest.mark.parametrize("name,fused,native,shapes,data_inputs", [
    ("layer_norm", lambda x, w, b: cpu_kernels.layer_norm(x, w, b, 1e-12, training=True),
     lambda x, w, b: F.layer_norm(x, x.shape[-1:], w, b, 1e-12), [(4, 7, 50), (50,), (50,)], 0),
    ("gelu", lambda x: cpu_kernels.gelu(x, training=True), F.gelu, [(6, 333)], 0),
    ("bias_add", lambda x, b: cpu_kernels.bias_add(x, b, training=True), lambda x, b: x + b, [(3, 5, 19), (19,)], 0),
    ("masked_softmax", lambda s, b: cpu_kernels.masked_softmax(s, b, training=True),
     lambda s, b: F.softmax(s + b, axis=-1), [(2, 3, 11, 11), (2, 1, 1, 11)], 1),
])
def test_fused_kernels_match_paddle_ops(name, fused, native, shapes, data_inputs):
    rng = np.random.default_rng(1)
    inputs = [(rng.normal(size=s) * 4 + 1).astype(np.float32) for s in shapes]
    if name == "masked_softmax":  # the padding mask: 0 for real keys, -1e4 for padding
        inputs[1] = np.where(np.arange(11) < [[[[7]]], [[[11]]]], 0.0, -1e4).astype(np.float32)
    dy = rng.normal(size=shapes[0]).astype(np.float32)
    for got, want in zip(_values_and_grads(fused, inputs, dy, data_inputs),
                         _values_and_grads(native, inputs, dy, data_inputs)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-5, err_msg=name)


def bf16_round(a):
    """float32 -> bfloat16 (nearest, ties to even), as float64; no NaN in `a`."""
    u = np.asarray(a, np.float32).view(np.uint32).astype(np.uint64)
    u = ((u + np.uint64(0x7FFF) + ((u >> np.uint64(16)) & np.uint64(1))) >> np.uint64(16)) << np.uint64(16)
    return u.astype(np.uint32).view(np.float32).astype(np.float64)


NEEDS_CPU_BF16 = pytest.mark.skipif(has_gpu() or cpu_bf16_isa(cpu_flags()) is None,
                                    reason="bfloat16 on a CPU needs AMX or AVX512_BF16")


def fused_matmul(x, y, transpose_y, bf16):
    with autocast("bfloat16" if bf16 else None):
        return cpu_kernels.matmul(x, y, transpose_y, training=True)


def bf16_matmul(x, y, transpose_y):
    return fused_matmul(x, y, transpose_y, True)


@NEEDS_CPU_BF16
def test_bf16_rounding_is_nearest_even_and_keeps_nan_and_inf():
    one = paddle.to_tensor([[1.0]])
    values = [1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -8 + 2 ** -20, -(1 + 2 ** -8 + 2 ** -20), 3.4028235e38, np.inf, np.nan]
    # ties to the even mantissa; float32's largest rounds up to infinity
    want = [1.0, 1 + 2 ** -6, 1 + 2 ** -7, -(1 + 2 ** -7), np.inf, np.inf, np.nan]
    got = bf16_matmul(paddle.to_tensor(np.array(values, np.float32)[:, None]), one, False).numpy()[:, 0]
    np.testing.assert_array_equal(got, np.array(want, np.float32))
    np.testing.assert_array_equal(bf16_round(values[:4]), np.array(want[:4], np.float32))


PRECISIONS = [pytest.param(False, id="fp32"), pytest.param(True, id="bf16", marks=NEEDS_CPU_BF16)]


@pytest.mark.parametrize("bf16", PRECISIONS)
@pytest.mark.parametrize("x_shape,y_shape,transpose_y", [
    ((3, 5, 300), (300, 7), False),  # a weight shared by every row; K long enough to round differently
    ((37, 64), (1001, 64), True),  # the tied masked-LM output: x @ embeddings^T
    ((4, 20, 64), (64, 96), False),  # a short inner dimension: oneDNN's matmul primitive on AMX
    ((2, 3, 9, 16), (2, 3, 16, 11), False),  # attention's context: probs @ v, batched
    ((2, 3, 9, 16), (2, 3, 12, 16), True),  # attention's scores: q @ k^T, batched
])
def test_matmul_is_the_product_of_its_operands_in_their_precision(x_shape, y_shape, transpose_y, bf16):
    """Forward and both gradients equal float64 products of the operands (and of the output
    gradient), rounded to bfloat16 first in bf16: the rounding happened, the accumulation is
    float32."""
    rng = np.random.default_rng(2)
    xv, yv = rng.normal(size=x_shape).astype(np.float32), rng.normal(size=y_shape).astype(np.float32)
    x, y = paddle.to_tensor(xv, stop_gradient=False), paddle.to_tensor(yv, stop_gradient=False)
    out = fused_matmul(x, y, transpose_y, bf16)
    dout = rng.normal(size=out.shape).astype(np.float32)
    dx, dy = paddle.grad(out, [x, y], paddle.to_tensor(dout))
    rounded = bf16_round if bf16 else (lambda a: a.astype(np.float64))
    xr, yr, gr = rounded(xv), rounded(yv), rounded(dout)
    op_y = np.swapaxes(yr, -1, -2) if transpose_y else yr  # [..., K, N]
    want_dx = gr @ np.swapaxes(op_y, -1, -2)
    if len(y_shape) == 2:  # a shared weight's gradient sums over all rows
        want_dop = xr.reshape(-1, x_shape[-1]).T @ gr.reshape(-1, gr.shape[-1])
    else:
        want_dop = np.swapaxes(xr, -1, -2) @ gr
    want_dy = np.swapaxes(want_dop, -1, -2) if transpose_y else want_dop
    for name, got, want in (("out", out, xr @ op_y), ("dx", dx, want_dx), ("dy", dy, want_dy)):
        # float32 accumulation over K (at most 300 terms of size ~1): well inside 1e-4 of the scale
        np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-4 * np.abs(want).max(), err_msg=name)
    if bf16:  # float32 operands would not have matched
        fp32 = xv.astype(np.float64) @ (np.swapaxes(yv, -1, -2) if transpose_y else yv)
        assert np.abs(out.numpy() - fp32).max() > 1e-3 * np.abs(fp32).max()


@pytest.mark.parametrize("bf16", PRECISIONS)
@pytest.mark.parametrize("rows,k,n", [
    ((2, 7), 300, 9),  # a long inner dimension: oneDNN's GEMM
    ((2, 40), 64, 48),  # the encoder's proportions: on AMX, oneDNN's matmul primitive, the bias as its sum
])
def test_linear_is_the_product_added_to_the_bias(bf16, rows, k, n):
    rng = np.random.default_rng(4)
    xv, wv, bv = (rng.normal(size=s).astype(np.float32) for s in ((*rows, k), (k, n), (n,)))
    x, w, b = (paddle.to_tensor(v, stop_gradient=False) for v in (xv, wv, bv))
    with autocast("bfloat16" if bf16 else None):
        out = cpu_kernels.linear(x, w, b, training=True)
    dout = rng.normal(size=out.shape).astype(np.float32)
    dx, dw, db = paddle.grad(out, [x, w, b], paddle.to_tensor(dout))
    rounded = bf16_round if bf16 else (lambda a: a.astype(np.float64))
    xr, wr, gr = rounded(xv), rounded(wv), rounded(dout)
    for name, got, want in (("out", out, xr @ wr + bv), ("dx", dx, gr @ wr.T),
                            ("dw", dw, xr.reshape(-1, k).T @ gr.reshape(-1, n)),
                            ("db", db, dout.reshape(-1, n).sum(0))):  # the bias gradient is float32's
        np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-4 * np.abs(want).max(), err_msg=name)


@pytest.mark.parametrize("bf16", PRECISIONS)
def test_products_of_no_rows_are_empty_and_their_weight_gradients_zero(bf16):
    """A gather of nothing (no position to predict) gives products of 0 rows: no error, and no
    contribution to the weights' gradients."""
    x = paddle.zeros([0, 16])
    x.stop_gradient = False
    w, b, e = (paddle.ones(s) for s in ([16, 8], [8], [30, 16]))
    for t in (w, b, e):
        t.stop_gradient = False
    with autocast("bfloat16" if bf16 else None):
        out = cpu_kernels.linear(x, w, b, training=True)
        logits = cpu_kernels.matmul(x, e, True, training=True)
    assert out.shape == [0, 8] and logits.shape == [0, 30]
    dx, dw, db, de = paddle.grad([out, logits], [x, w, b, e], [paddle.zeros([0, 8]), paddle.zeros([0, 30])])
    assert dx.shape == [0, 16] and not dw.numpy().any() and not db.numpy().any() and not de.numpy().any()


@pytest.mark.parametrize("bf16", PRECISIONS)
def test_attention_products_read_the_heads_in_place(bf16):
    """Scores and context per head against NumPy's einsum over [B, T, heads, d] (operands rounded
    to bfloat16 first in bf16), values and gradients; the non-fused path (evaluation) agrees."""
    rng = np.random.default_rng(6)
    b, t, heads, d = 2, 9, 3, 8
    qv, kv, vv = (rng.normal(size=(b, t, heads * d)).astype(np.float32) for _ in range(3))
    pv = rng.random((b, heads, t, t)).astype(np.float32)
    gs, gc = rng.normal(size=(b, heads, t, t)).astype(np.float32), rng.normal(size=(b, t, heads * d)).astype(np.float32)
    q, k, v, probs = (paddle.to_tensor(a, stop_gradient=False) for a in (qv, kv, vv, pv))
    with autocast("bfloat16" if bf16 else None):
        scores = cpu_kernels.attention_scores(q, k, heads, training=True)
        context = cpu_kernels.attention_context(probs, v, heads, training=True)
    dq, dk = paddle.grad(scores, [q, k], paddle.to_tensor(gs))
    dp, dv = paddle.grad(context, [probs, v], paddle.to_tensor(gc))
    rounded = bf16_round if bf16 else (lambda a: a.astype(np.float64))
    q4, k4, v4, g4 = (rounded(a).reshape(b, t, heads, d) for a in (qv, kv, vv, gc))
    pr, gsr = rounded(pv), rounded(gs)
    want = {"scores": np.einsum("bthd,bshd->bhts", q4, k4), "dq": np.einsum("bhts,bshd->bthd", gsr, k4),
            "dk": np.einsum("bhts,bthd->bshd", gsr, q4), "context": np.einsum("bhts,bshd->bthd", pr, v4),
            "dp": np.einsum("bthd,bshd->bhts", g4, v4), "dv": np.einsum("bhts,bthd->bshd", pr, g4)}
    got = {"scores": scores, "dq": dq, "dk": dk, "context": context, "dp": dp, "dv": dv}
    for name, value in got.items():
        w = want[name].reshape(value.shape)
        np.testing.assert_allclose(value.numpy(), w, rtol=0, atol=1e-4 * np.abs(w).max(), err_msg=name)
    if not bf16:  # evaluation's path: Paddle's own ops
        np.testing.assert_allclose(cpu_kernels.attention_scores(q, k, heads, training=False).numpy(),
                                   scores.numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(cpu_kernels.attention_context(probs, v, heads, training=False).numpy(),
                                   context.numpy(), rtol=1e-5, atol=1e-5)


def test_softmax_cross_entropy_equals_paddles_loss_argmax_and_gradient():
    rng = np.random.default_rng(5)
    logits = (rng.normal(size=(2, 6, 11)) * 3).astype(np.float32)
    logits[0, 0] = 1.5  # a tie everywhere: the first maximum (class 0) is the prediction
    labels = rng.integers(0, 11, (2, 6))
    labels[0, 0], labels[1, 2], labels[1, 5] = 0, -1, -1
    labels[0, 1] = int(np.argmax(logits[0, 1]))  # one right for sure
    dloss = rng.normal(size=(2, 6)).astype(np.float32)
    got, want = ([_values_and_grads(lambda x: paddle.stack(cpu_kernels.softmax_cross_entropy(
        x, paddle.to_tensor(labels), training)), [logits], np.stack([dloss, np.zeros_like(dloss)]), 0)
        for training in (True, False)])
    np.testing.assert_array_equal(got[0][1], want[0][1])  # right or not, row by row
    assert got[0][1][0, 0] == 1 and got[0][1][0, 1] == 1 and not got[0][1][1, 2]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    assert not got[1][1, 2].any() and not got[0][0][1, 2]  # no label: no loss, no gradient


def test_matmul_outside_training_is_paddles():
    rng = np.random.default_rng(3)
    x, y = (paddle.to_tensor(rng.normal(size=s).astype(np.float32)) for s in ((4, 300), (300, 5)))
    want = paddle.matmul(x, y).numpy()
    with autocast("bfloat16"):
        np.testing.assert_array_equal(cpu_kernels.matmul(x, y, False, training=False).numpy(), want)


def _train_step(config, feeds, monkeypatch, switch):
    monkeypatch.setenv("ERNIE_CPU_KERNELS", switch)
    return train_step(config, feeds, fused=switch == "1")


def train_step(config, feeds, fused=True):
    """(loss, parameters and optimizer state) after one step of the pre-training program."""
    def model_fn():
        model = ErnieForPretraining(config, {"knowledge_masking": None, "capitalization": None, "token_document": None,
                                            "sentence_reordering": 5})
        inputs = pretraining_feeds(model)
        out = model(inputs)
        return inputs, {"loss": out["loss"]}, out["loss"]

    runner = StaticRunner(model_fn, lambda lr: adamw(lr), seed=3)
    fused_ops = {op.name() for op in runner.main.global_block().ops if op.name().startswith("custom_op")}
    assert bool(fused_ops) == fused, fused_ops
    loss = runner.step(0, feeds, 1e-3)["loss"]
    return loss, runner.state()


_CAPPED_STEP = """
import sys
import numpy as np
import ernie
from ernie.kernels import cpu_kernels
from ernie_common.machine import ISA_CAPS, cpu_flags
from tests.conftest import REPO, pretraining_step_feeds, small_config
from tests.test_cpu_kernels import train_step
assert cpu_kernels.available() and "avx512f" not in cpu_flags()
config = small_config()
loss, state = train_step(config, pretraining_step_feeds(config))
np.savez(sys.argv[1], loss=loss, **state)
"""


def test_a_process_capped_at_avx2_trains_as_this_one(tmp_path):
    """The path of a CPU without AVX-512 (oneDNN's AVX2 GEMM, the kernels built without AVX-512)
    trains a step of the pre-training program to this process's loss and parameters, to float
    rounding; on such a CPU the cap changes nothing and the two are the same path."""
    config = small_config()
    loss, state = train_step(config, pretraining_step_feeds(config))
    out = tmp_path / "capped.npz"
    subprocess.run([sys.executable, "-c", _CAPPED_STEP, str(out)], check=True, cwd=REPO,
                   env={**os.environ, **ISA_CAPS["avx2"], "PYTHONPATH": str(REPO)})
    capped = np.load(out)
    np.testing.assert_allclose(capped["loss"], loss, rtol=1e-5)
    assert set(capped.files) == {"loss", *state}
    for name in state:
        np.testing.assert_allclose(capped[name], state[name], rtol=1e-4, atol=1e-6, err_msg=name)


def test_static_training_step_with_fused_kernels_equals_paddle_ops(monkeypatch):
    config = small_config()
    feeds = pretraining_step_feeds(config)
    fused_loss, fused_state = _train_step(config, feeds, monkeypatch, "1")
    native_loss, native_state = _train_step(config, feeds, monkeypatch, "0")
    np.testing.assert_allclose(fused_loss, native_loss, rtol=1e-6)
    assert fused_state.keys() == native_state.keys()
    for name in fused_state:
        np.testing.assert_allclose(fused_state[name], native_state[name], rtol=1e-4, atol=1e-6, err_msg=name)


def test_fused_gradient_sums_train_as_paddles_add_n_to_the_bit():
    """The pre-training model's backward sums (residual inputs, the tied embedding) run in the
    fused sum: none of Paddle's add_n is left, and two steps end with the same parameters, Adam
    state and losses as with add_n, bit for bit; a fetched sum stays Paddle's."""
    config = small_config()
    feeds = pretraining_step_feeds(config)

    def run(program_pass):
        def model_fn():
            model = ErnieForPretraining(config, {"knowledge_masking": None, "capitalization": None,
                                                "token_document": None, "sentence_reordering": 5})
            inputs = pretraining_feeds(model)
            out = model(inputs)
            return inputs, {"loss": out["loss"]}, out["loss"]
        runner = StaticRunner(model_fn, lambda lr: adamw(lr), seed=3, program_pass=program_pass)
        names = [op.name() for op in runner.main.global_block().ops]
        losses = [runner.step(i, feeds, 1e-3)["loss"] for i in range(2)]
        return names, losses, runner.state()

    fused_names, fused_losses, fused_state = run(cpu_kernels.training_program_pass())
    names, losses, state = run(None)
    assert names.count("pd_op.add_n") >= 5 and "pd_op.add_n" not in fused_names
    assert fused_names.count("custom_op.ernie_sum") == names.count("pd_op.add_n")
    np.testing.assert_array_equal(fused_losses, losses)
    assert fused_state.keys() == state.keys()
    for name in state:
        np.testing.assert_array_equal(fused_state[name], state[name], err_msg=name)
    program = paddle.static.Program()
    with static_mode(), paddle.static.program_guard(program):
        x = paddle.static.data("x", [3], "float32")
        kept = paddle.add_n([x, x])
        assert cpu_kernels.fuse_gradient_sums(program, [kept]) == 0
        assert cpu_kernels.fuse_gradient_sums(program) == 1


def test_eval_programs_keep_paddle_ops():
    """Exported models must not need this library: eval graphs hold no fused op."""
    from ernie.model.modeling import ErnieModel
    config = small_config(hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)

    def model_fn():
        model = ErnieModel(config)
        model.eval()
        src = paddle.static.data("src_ids", [-1, -1], "int64")
        seq, _ = model(src)
        return {"src_ids": src}, {"seq": seq}

    program = InferenceProgram(model_fn).main
    names = [op.name() for op in program.global_block().ops]
    assert "pd_op.layer_norm" in names
    assert not [n for n in names if n.startswith("custom_op")]


def test_failed_build_warns_and_falls_back(monkeypatch):
    def broken():
        raise RuntimeError("no compiler")

    monkeypatch.setattr(cpu_kernels, "_load", broken)
    monkeypatch.setattr(cpu_kernels, "_loaded", {})
    with pytest.warns(UserWarning, match="no compiler"):
        assert not cpu_kernels.available()
    x = paddle.to_tensor(np.linspace(-3, 3, 12, dtype=np.float32).reshape(3, 4))
    np.testing.assert_array_equal(cpu_kernels.gelu(x, training=True).numpy(), F.gelu(x).numpy())


def test_build_key_covers_the_cpu_features(monkeypatch):
    """The library is compiled for the CPU that builds it (-march=native): a cache carried to a
    CPU with other instruction sets must not be reused."""
    monkeypatch.setattr(cpu_kernels, "cpu_flags", lambda capped=True: frozenset("fpu sse2 avx avx2 fma".split()))
    avx2_only = cpu_kernels._build_key()
    monkeypatch.setattr(cpu_kernels, "cpu_flags",
                        lambda capped=True: frozenset("fpu sse2 avx avx2 fma avx512f avx512_bf16".split()))
    assert cpu_kernels._build_key() != avx2_only


def test_kernels_built_without_avx512_where_onednn_is_capped_below_it(monkeypatch):
    """A process whose oneDNN is capped at AVX2 (as `benchmarks/bench_pretrain.py --cap avx2` runs
    an AVX2-only CPU on an AVX-512 one) builds the fused kernels without AVX-512 too, into a
    library of its own."""
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(machine, "_cpuinfo", lambda: ("a Xeon", {"avx2", "fma", "avx512f", "avx512bw", "amx_bf16"}))
    uncapped = cpu_kernels._build_key()
    assert "-mno-avx512f" not in cpu_kernels._cxx_flags()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert cpu_kernels._cxx_flags()[-1] == "-mno-avx512f"
    assert cpu_kernels._build_key() != uncapped
    # a CPU without AVX-512 (an ARM one: its compiler knows no such flag) is built for as it is
    monkeypatch.setattr(machine, "_cpuinfo", lambda: ("Neoverse", {"fp", "asimd", "sve"}))
    assert "-mno-avx512f" not in cpu_kernels._cxx_flags()


_PORTABLE_PROBE = """
import sys
import platform
import subprocess
import sys

import numpy as np
import paddle
from paddle.utils.cpp_extension import load_op_meta_info_and_register_op
load_op_meta_info_and_register_op(sys.argv[1])
rng = np.random.default_rng(0)
x = paddle.to_tensor(rng.normal(size=(3, 37, 29)).astype(np.float32))
key = paddle.to_tensor([123456789, 987654321], dtype="int64")
run = paddle._C_ops._run_custom_op
np.savez(sys.argv[2], dropout=run("ernie_dropout", x, key, 0.1)[0].numpy(), gelu=run("ernie_gelu", x)[0].numpy())
"""


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="the AVX2 path exists on x86-64 only")
def test_portable_path_equals_the_vector_path(tmp_path):
    """The kernels built without AVX2 (as on a CPU that lacks it) give the vector build's dropout
    mask bit for bit, and its GELU to float rounding."""
    assert cpu_kernels.available()
    library = tmp_path / "portable.so"
    cpu_kernels._build(library, ("-O3", "-march=x86-64", "-mno-avx2", "-fopenmp"))
    subprocess.run([sys.executable, "-c", _PORTABLE_PROBE, str(library), str(tmp_path / "out.npz")], check=True)
    portable = np.load(tmp_path / "out.npz")
    rng = np.random.default_rng(0)
    x = paddle.to_tensor(rng.normal(size=(3, 37, 29)).astype(np.float32))
    key = paddle.to_tensor([123456789, 987654321], dtype="int64")
    vector = cpu_kernels.run_op("ernie_dropout", x, key, 0.1)[0].numpy()
    np.testing.assert_array_equal(portable["dropout"], vector)
    np.testing.assert_array_equal(portable["dropout"] != 0, reference_keep(x.size, [123456789, 987654321], 0.1)
                                  .reshape(x.shape))
    np.testing.assert_allclose(portable["gelu"], cpu_kernels.run_op("ernie_gelu", x)[0].numpy(), rtol=1e-6, atol=1e-6)
