"""The fused AdamW update (`ernie.kernels.cpu_adamw`) against Paddle's own AdamW with
`ClipGradByGlobalNorm` and against AdamW written out in NumPy: parameters, moments and powers
of beta after several steps, with the clip acting and not, decayed and undecayed parameters;
the skip of a non-finite step; the checkpoint names; Paddle's ops where the kernels are off."""
import numpy as np
import paddle
import pytest

from ernie.kernels import cpu_kernels
from ernie.kernels.cpu_adamw import AdamW
from ernie.model.optimization import decays
from propeller.mixed_precision import has_gpu
from propeller.static_runner import StaticRunner, static_mode

pytestmark = pytest.mark.skipif(has_gpu() or not cpu_kernels.available(), reason="the fused kernels run on a CPU")

WIDTH = 40_000  # the weight [6, WIDTH] spans several of the kernel's chunks
RNG = np.random.default_rng(7)
X = RNG.standard_normal((4, 2, 6)).astype(np.float32)  # four steps of two rows
C = RNG.uniform(0.5, 1.5, WIDTH).astype(np.float32) * RNG.choice([-1, 1], WIDTH)
LR, WD, B1, B2, EPS = 0.01, 0.01, 0.9, 0.98, 1e-6


def linear_loss():
    """A loss linear in the parameters: a step's gradient does not depend on them, so the
    implementations see the same gradients at every step and may be compared over several."""
    x = paddle.static.data("x", [-1, 6], "float32")
    layer = paddle.nn.Linear(6, WIDTH, weight_attr=paddle.ParamAttr(name="fc.w_0"),
                             bias_attr=paddle.ParamAttr(name="fc.b_0"))  # .b_0: not decayed
    loss = paddle.mean(layer(x) * paddle.to_tensor(C, dtype="float32")) * 100.0
    return {"x": x}, {"loss": loss}, loss


def optimizer(cls, clip_norm):
    return lambda lr: cls(learning_rate=lr, beta1=B1, beta2=B2, epsilon=EPS, weight_decay=WD,
                          apply_decay_param_fun=decays, grad_clip=paddle.nn.ClipGradByGlobalNorm(clip_norm))


def train(cls, clip_norm, steps=3, feeds=X):
    runner = StaticRunner(linear_loss, optimizer(cls, clip_norm), seed=1, place=paddle.CPUPlace())
    start = runner.state()
    flags = [bool(runner.step(i, {"x": feeds[i]}, LR)["skipped"]) for i in range(steps)]
    return runner, start, flags


def numpy_adamw(start, steps, clip_norm):
    """AdamW by hand in float64, the gradients clipped by their global norm first."""
    w, b = start["fc.w_0"].astype(np.float64), start["fc.b_0"].astype(np.float64)
    params = {"fc.w_0": w, "fc.b_0": b}
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v = {k: np.zeros_like(p) for k, p in params.items()}
    b1p, b2p = B1, B2
    for step in range(steps):
        x = X[step].astype(np.float64)
        scale = 100.0 / (x.shape[0] * WIDTH)
        grads = {"fc.w_0": scale * np.outer(x.sum(0), C), "fc.b_0": scale * x.shape[0] * C.astype(np.float64)}
        norm = np.sqrt(sum((g ** 2).sum() for g in grads.values()))
        clip = clip_norm / max(norm, clip_norm)
        for k, p in params.items():
            g = grads[k] * clip
            if decays(k):
                p -= LR * WD * p
            m[k] = B1 * m[k] + (1 - B1) * g
            v[k] = B2 * v[k] + (1 - B2) * g * g
            p -= LR * np.sqrt(1 - b2p) / (1 - b1p) * m[k] / (np.sqrt(v[k]) + EPS * np.sqrt(1 - b2p))
        b1p, b2p = b1p * B1, b2p * B2
    return params, m, v


def op_names(runner):
    return [op.name() for op in runner.main.global_block().ops]


@pytest.mark.parametrize("clip_norm", [0.05, 1e4], ids=["clip-acts", "clip-idle"])
def test_the_fused_update_is_paddles_adamw_with_global_norm_clipping(clip_norm):
    fused, start, _ = train(AdamW, clip_norm)
    paddles, paddle_start, _ = train(paddle.optimizer.AdamW, clip_norm)
    assert op_names(fused).count("custom_op.ernie_adamw__") == 1
    assert not {"pd_op.adamw_", "pd_op.multiply_", "pd_op.squared_l2_norm"} & set(op_names(fused))
    assert op_names(fused).count("custom_op.ernie_squared_norm") == 1  # the finiteness check's, reused
    assert op_names(paddles).count("pd_op.adamw_") == 2
    for name in start:
        np.testing.assert_array_equal(start[name], paddle_start[name])
    mine, theirs = fused.state(), paddles.state()
    assert set(mine) == set(theirs)  # the same accumulators by name: checkpoints move between them
    for name in theirs:
        np.testing.assert_allclose(mine[name], theirs[name], rtol=2e-6, atol=1e-8, err_msg=name)
    params, m, v = numpy_adamw(start, 3, clip_norm)
    for name in params:
        np.testing.assert_allclose(mine[name], params[name], rtol=1e-5, atol=1e-7, err_msg=name)
        moment1 = next(k for k in mine if k.startswith(name) and "moment1" in k)
        moment2 = next(k for k in mine if k.startswith(name) and "moment2" in k)
        np.testing.assert_allclose(mine[moment1], m[name], rtol=1e-5, atol=1e-9, err_msg=moment1)
        np.testing.assert_allclose(mine[moment2], v[name], rtol=1e-5, atol=1e-12, err_msg=moment2)
        beta1_pow = next(k for k in mine if k.startswith(name) and "beta1_pow" in k)
        np.testing.assert_allclose(mine[beta1_pow], B1 ** 4, rtol=1e-6)


def test_without_a_finiteness_check_the_op_takes_the_norm_itself():
    def run(cls):
        main, startup, scope = paddle.static.Program(), paddle.static.Program(), paddle.static.Scope()
        with static_mode(), paddle.utils.unique_name.guard(), paddle.static.scope_guard(scope):
            with paddle.static.program_guard(main, startup):
                paddle.seed(1)
                _, _, loss = linear_loss()
                optimizer(cls, 0.05)(LR).minimize(loss)
            exe = paddle.static.Executor(paddle.CPUPlace())
            exe.run(startup)
            for step in range(2):
                exe.run(main, feed={"x": X[step]})
            return [op.name() for op in main.global_block().ops], np.array(scope.find_var("fc.w_0").get_tensor())
    ops, fused = run(AdamW)
    _, theirs = run(paddle.optimizer.AdamW)
    assert "custom_op.ernie_adamw__" in ops
    np.testing.assert_allclose(fused, theirs, rtol=2e-6, atol=1e-8)


def test_a_nonfinite_gradient_skips_the_whole_step():
    feeds = X.copy()
    feeds[1, 0, 0] = np.inf
    runner, _, flags = train(AdamW, 0.05, steps=1, feeds=feeds)
    before = runner.state()
    assert runner.step(1, {"x": feeds[1]}, LR)["skipped"] is True
    after = runner.state()
    for name in before:  # parameters, both moments, both powers of beta
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)
    assert runner.step(2, {"x": feeds[2]}, LR)["skipped"] is False
    assert not np.array_equal(runner.state()["fc.w_0"], after["fc.w_0"])


def test_paddles_own_update_where_the_kernels_are_off(monkeypatch):
    monkeypatch.setenv("ERNIE_CPU_KERNELS", "0")
    runner, _, _ = train(AdamW, 0.05, steps=1)
    assert "custom_op.ernie_adamw__" not in op_names(runner)
    assert op_names(runner).count("pd_op.adamw_") == 2


def test_paddles_own_update_where_a_parameter_is_left_out_of_the_clip():
    def model():
        feeds, fetches, loss = linear_loss()
        extra = paddle.create_parameter([3], "float32", attr=paddle.ParamAttr(name="free.w_0", need_clip=False))
        loss = loss + paddle.sum(extra * extra)
        return feeds, {"loss": loss}, loss
    runner = StaticRunner(model, optimizer(AdamW, 0.05), seed=1, place=paddle.CPUPlace())
    assert "custom_op.ernie_adamw__" not in op_names(runner)
    assert op_names(runner).count("pd_op.adamw_") == 3


@pytest.mark.parametrize("planted", [None, np.inf, np.nan])
def test_the_squared_norm_is_numpys_in_float64_over_every_tensor(planted):
    rng = np.random.default_rng(5)
    xs = [rng.standard_normal(n).astype(np.float32) for n in (3, 40_000, 17, 100_000)]  # several chunks
    if planted is not None:
        xs[2][4] = planted
    got = float(cpu_kernels.run_op("ernie_squared_norm", [paddle.to_tensor(x) for x in xs])[0])
    expected = sum((x.astype(np.float64) ** 2).sum() for x in xs)
    if planted is None:
        np.testing.assert_allclose(got, expected, rtol=1e-7)
    else:
        assert not np.isfinite(got)
