"""Mixed precision: Paddle's dynamic loss scaling as the static runner wires it, driven step by
step; the checks that stop a run where its precision cannot run; bfloat16 where the CPU has it
(its matrix products in bfloat16 through the fused CPU kernels, the rest float32).

float16 matmuls have no CPU kernels, so the loss-scaling program here is a matmul-free model
(elementwise ops stay float32 under O1): the scale, the skip and the counters are the same ops
a GPU run executes."""
import numpy as np
import paddle
import pytest

from ernie.pretrain.trainer import main as pretrain_main
from ernie_common.machine import cpu_flags
from propeller import mixed_precision
from propeller.mixed_precision import LossScaling, MixedPrecision, MixedPrecisionUnsupported, check_supported, cpu_bf16_isa, has_gpu
from propeller.static_runner import StaticRunner

CPU_BF16 = not has_gpu() and cpu_bf16_isa(cpu_flags()) is not None
NEEDS_CPU_BF16 = pytest.mark.skipif(not CPU_BF16, reason="bfloat16 on a CPU needs AMX or AVX512_BF16")


def elementwise_model():
    x = paddle.static.data("x", [4], "float32")
    w = paddle.create_parameter([4], "float32", name="w", default_initializer=paddle.nn.initializer.Constant(1.0))
    loss = paddle.mean(w * x * x)
    return {"x": x}, {"loss": loss}, loss


def fp16_runner(**scaling):
    return StaticRunner(elementwise_model, lambda lr: paddle.optimizer.Adam(lr), seed=1,
                        place=paddle.CPUPlace(), mixed_precision=MixedPrecision("fp16", LossScaling(**scaling)))


CLEAN, OVERFLOW = 1.0, 1e30  # x = 1e30: the gradient 2·w·x·scale/4 is inf in float32


def run(runner, xs, start=0):
    """(loss scale, good steps, bad steps, w) after each step."""
    trace = []
    for step, x in enumerate(xs, start):
        out = runner.step(step, {"x": np.full(4, x, np.float32)}, 0.1)
        state = runner.state()
        trace.append((float(out["loss_scale"][0]), int(state["num_good_steps_0"][0]),
                      int(state["num_bad_steps_0"][0]), state["w"].copy()))
    return trace


def test_scale_grows_after_n_clean_steps_and_shrinks_on_overflow():
    trace = run(fp16_runner(init=8.0, incr_every_n_steps=2, decr_every_n_nan_or_inf=1, decr_ratio=0.5),
                [CLEAN, CLEAN, CLEAN, OVERFLOW, CLEAN])
    assert [(s, g, b) for s, g, b, _ in trace] == [(8, 1, 0), (16, 0, 0), (16, 1, 0), (8, 0, 0), (8, 1, 0)]
    w = [t[3] for t in trace]
    assert np.all(w[1] < w[0]) and np.all(w[2] < w[1])
    np.testing.assert_array_equal(w[3], w[2])  # the overflowing step is skipped
    assert np.all(w[4] < w[3])


def test_scale_shrinks_only_after_n_overflows_and_skips_each_of_them():
    def make():
        return fp16_runner(init=1024.0, incr_every_n_steps=100, decr_every_n_nan_or_inf=2, decr_ratio=0.25)
    runner = make()
    clean = run(runner, [CLEAN])
    before = runner.state()
    trace = run(runner, [OVERFLOW, OVERFLOW], start=1)
    assert [(s, g, b) for s, g, b, _ in trace] == [(1024, 0, 1), (256, 0, 0)]
    after = runner.state()
    for name in before:  # parameters and Adam's moments and powers untouched
        if not name.startswith(("loss_scaling", "num_")):
            np.testing.assert_array_equal(after[name], before[name], err_msg=name)
    np.testing.assert_array_equal(trace[1][3], clean[0][3])
    assert run(runner, [CLEAN], start=3)[0][:3] == (256, 1, 0)


def test_loss_scale_state_travels_with_the_runner_state():
    xs = [CLEAN, CLEAN, OVERFLOW, CLEAN, CLEAN, CLEAN]
    straight = run(fp16_runner(init=8.0, incr_every_n_steps=2, decr_every_n_nan_or_inf=1, decr_ratio=0.5), xs)
    first = fp16_runner(init=8.0, incr_every_n_steps=2, decr_every_n_nan_or_inf=1, decr_ratio=0.5)
    run(first, xs[:3])
    state = first.state()
    assert {"loss_scaling_0", "num_good_steps_0", "num_bad_steps_0"} <= set(state)
    resumed = fp16_runner(init=8.0, incr_every_n_steps=2, decr_every_n_nan_or_inf=1, decr_ratio=0.5)
    resumed.load_state(state)
    rest = run(resumed, xs[3:], start=3)
    for a, b in zip(straight[3:], rest):
        assert a[:3] == b[:3]
        np.testing.assert_array_equal(a[3], b[3])


RANK_SCRIPT = """
import json, os, sys
import numpy as np, paddle
sys.path.insert(0, sys.argv[1])
from tests.test_mixed_precision import CLEAN, OVERFLOW, elementwise_model, run
from propeller.mixed_precision import LossScaling, MixedPrecision
from propeller.static_runner import StaticRunner
rank = int(os.environ["PADDLE_TRAINER_ID"])
runner = StaticRunner(elementwise_model, lambda lr: paddle.optimizer.Adam(lr), seed=1, place=paddle.CPUPlace(),
                      mixed_precision=MixedPrecision("fp16", LossScaling(init=8.0, incr_every_n_steps=2,
                                                                           decr_every_n_nan_or_inf=1, decr_ratio=0.5)),
                      distributed=True)
xs = [CLEAN, CLEAN, CLEAN, OVERFLOW if rank == 1 else CLEAN, CLEAN]  # only rank 1 overflows
trace = run(runner, xs)
with open(os.path.join(sys.argv[2], f"rank{rank}.json"), "w") as f:
    json.dump([[s, g, b, w.tolist()] for s, g, b, w in trace], f)
"""


def test_loss_scaling_across_ranks_skips_a_step_every_rank_skips(tmp_path):
    """Two ranks of the data-parallel static program; only rank 1's gradients overflow at step 4.
    The all-reduce comes before the overflow check, so both ranks skip that step and shrink the
    scale alike, and their parameters stay identical."""
    import json
    import subprocess
    import sys

    from tests.conftest import REPO
    (tmp_path / "rank.py").write_text(RANK_SCRIPT)
    launch = subprocess.run([sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2",
                             "--log_dir", str(tmp_path / "logs"), str(tmp_path / "rank.py"), str(REPO), str(tmp_path)],
                            capture_output=True, text=True)
    assert launch.returncode == 0, launch.stdout[-3000:]
    traces = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for trace in traces:
        assert [tuple(t[:3]) for t in trace] == [(8, 1, 0), (16, 0, 0), (16, 1, 0), (8, 0, 0), (8, 1, 0)]
        assert trace[3][3] == trace[2][3] and trace[4][3] != trace[3][3]  # step 4 skipped, step 5 not
    assert traces[0] == traces[1]


@pytest.mark.skipif(has_gpu(), reason="a GPU runs float16")
def test_fp16_on_cpu_is_refused_before_training(tmp_path, capsys):
    with pytest.raises(MixedPrecisionUnsupported, match="fp16 needs a CUDA build"):
        check_supported("fp16")
    config = tmp_path / "c.yaml"
    config.write_text("model: m\ndata: d\noutput: o\nschedule: {}\n")
    assert pretrain_main(["--config", str(config), "--amp", "fp16"]) == 2
    assert "--amp fp16 needs a CUDA build" in capsys.readouterr().err


def test_amp_setting_is_checked():
    check_supported("off")
    with pytest.raises(MixedPrecisionUnsupported, match="amp must be one of"):
        check_supported("fp8")


@pytest.mark.parametrize("flags,isa", [({"avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"}, "amx_bf16"),
                                       ({"avx2", "avx512f", "avx512_bf16"}, "avx512_bf16"),
                                       ({"avx2", "avx512f", "avx512_vnni"}, None), ({"avx2", "fma"}, None)])
def test_bf16_isa_is_read_from_the_cpu_flags(flags, isa):
    assert cpu_bf16_isa(frozenset(flags)) == isa


@pytest.mark.skipif(has_gpu(), reason="a GPU decides by its own support")
@pytest.mark.parametrize("flags,refused", [({"avx2", "avx512f"}, True), ({"avx2"}, True),
                                           ({"avx512f", "avx512_bf16"}, False), ({"amx_bf16", "avx512_bf16"}, False)])
def test_bf16_on_a_cpu_without_bfloat16_matrix_instructions_is_refused(flags, refused):
    """Decided by the flags, so that both answers are checked on every machine: AVX-512 alone
    has no bfloat16 dot products (oneDNN would emulate them, slower than float32)."""
    if refused:
        with pytest.raises(MixedPrecisionUnsupported, match="needs bfloat16 matrix instructions"):
            check_supported("bf16", flags)
    else:
        check_supported("bf16", flags)


@pytest.mark.skipif(has_gpu(), reason="auto is float32 on a GPU")
@pytest.mark.parametrize("vendor,flags,switch,amp", [
    ("GenuineIntel", {"avx512_bf16", "amx_tile", "amx_bf16"}, "1", "bf16"),
    ("GenuineIntel", {"avx512_bf16", "amx_tile", "amx_bf16"}, "0", "off"),
    ("GenuineIntel", {"avx512f", "avx512_bf16"}, "1", "off"),  # measured slower than float32
    ("AuthenticAMD", {"avx512f", "avx512_bf16"}, "1", "bf16"),  # measured faster
    ("AuthenticAMD", {"avx512f", "avx512_bf16"}, "0", "off"),
    ("AuthenticAMD", {"avx2"}, "1", "off"), ("GenuineIntel", {"avx2"}, "1", "off")])
def test_auto_amp_is_bf16_only_where_bfloat16_products_pay_and_the_kernels_run(monkeypatch, vendor, flags, switch, amp):
    """Decided from the flags and vendor described here, so every answer is checked on every kind."""
    from ernie.kernels import cpu_kernels
    monkeypatch.setattr(cpu_kernels, "cpu_flags", lambda: frozenset(flags))
    monkeypatch.setattr(cpu_kernels, "cpu_vendor", lambda: vendor)
    monkeypatch.setattr(cpu_kernels, "available", lambda: True)  # built for the real CPU, not the one described
    monkeypatch.setenv("ERNIE_CPU_KERNELS", switch)
    assert cpu_kernels.auto_amp()[0] == amp


@pytest.mark.skipif(has_gpu(), reason="auto is float32 on a GPU")
@pytest.mark.parametrize("vendor,flags,mode,line", [
    ("GenuineIntel", {"amx_bf16", "avx512_bf16"}, "static", "amp auto: bf16 (this CPU has AMX"),
    ("GenuineIntel", {"amx_bf16", "avx512_bf16"}, "dygraph", "amp auto: off (the dygraph"),
    ("GenuineIntel", {"avx512_bf16"}, "static", "amp auto: off (this CPU has AVX512_BF16 and no AMX, on a core"),
    ("AuthenticAMD", {"avx512_bf16"}, "static", "amp auto: bf16 (this AMD CPU has AVX512_BF16"),
    ("AuthenticAMD", {"avx2"}, "static", "amp auto: off (this CPU has no bfloat16 instructions")])
def test_pretraining_says_what_auto_became(monkeypatch, capsys, vendor, flags, mode, line):
    from ernie.kernels import cpu_kernels
    from ernie.pretrain.config import PretrainConfig
    from ernie.pretrain.trainer import _resolve_auto_amp
    monkeypatch.setattr(cpu_kernels, "cpu_flags", lambda: frozenset(flags))
    monkeypatch.setattr(cpu_kernels, "cpu_vendor", lambda: vendor)
    monkeypatch.setattr(cpu_kernels, "available", lambda: True)
    config = _resolve_auto_amp(PretrainConfig(model="m", data="d", output="o", schedule={}, amp="auto", mode=mode))
    assert config.amp == line.split()[2] and capsys.readouterr().out.startswith(line)
    check_supported(config.amp, flags)


@pytest.mark.skipif(has_gpu(), reason="a GPU runs Paddle's auto-cast")
def test_cpu_bf16_switches_only_the_models_matrix_products_while_it_is_built():
    assert not mixed_precision.cpu_bf16_matmuls()
    with mixed_precision.autocast("bfloat16"):
        assert mixed_precision.cpu_bf16_matmuls()
    assert not mixed_precision.cpu_bf16_matmuls()
    with mixed_precision.autocast(None):
        assert not mixed_precision.cpu_bf16_matmuls()


def test_pretrain_config_checks_amp_keys(tmp_path):
    from ernie.pretrain.trainer import PretrainError, load_config
    base = "model: m\ndata: d\noutput: o\nschedule: {}\n"
    path = tmp_path / "c.yaml"
    path.write_text(base)
    assert load_config(path).amp == "off"
    path.write_text(base + "amp: fp8\n")
    with pytest.raises(PretrainError, match="amp must be one of"):
        load_config(path)
    path.write_text(base + "amp: fp16\nloss_scaling: {init: 1024, incr_every: 10}\n")
    with pytest.raises(PretrainError, match=r"loss_scaling: unknown key\(s\) \['incr_every'\]"):
        load_config(path)
    for setting, says in (("decr_ratio: 1.5", r"decr_ratio must be in \(0, 1\), got 1.5"),
                          ("incr_ratio: 1.0", "incr_ratio must be above 1"),
                          ("incr_every_n_steps: 0", "incr_every_n_steps must be at least 1, got 0"),
                          ("init: -8", "init must be a positive number")):
        path.write_text(base + f"amp: fp16\nloss_scaling: {{{setting}}}\n")
        with pytest.raises(PretrainError, match=f"loss_scaling: {says}"):
            load_config(path)


def test_bf16_with_paddles_auto_cast_builds_the_update_outside_it(monkeypatch):
    """Where a GPU runs Paddle's bf16 auto-cast, ops built under it follow the O1 lists: an update
    op listed there (here the clip's multiply) would hand AdamW bfloat16 gradients for float32
    weights. The update is built outside, as float16's."""
    import paddle.amp.amp_lists as amp_lists
    monkeypatch.setattr(mixed_precision, "has_gpu", lambda: True)
    monkeypatch.setattr(amp_lists, "BF16_WHITE_LIST", amp_lists.BF16_WHITE_LIST | {"elementwise_mul"})

    def model():
        x = paddle.static.data("x", [-1, 4], "float32")
        w = paddle.create_parameter([4], "float32", name="w_0")
        loss = paddle.mean(paddle.tanh(x * w))
        return {"x": x}, {"loss": loss}, loss
    runner = StaticRunner(model, lambda lr: paddle.optimizer.AdamW(lr, grad_clip=paddle.nn.ClipGradByGlobalNorm(1.0)),
                          seed=1, place=paddle.CPUPlace(), mixed_precision=MixedPrecision("bf16"))
    updates = [op for op in runner.main.global_block().ops if op.name() == "pd_op.adamw_"]
    assert updates and all(op.operand_source(1).dtype == paddle.float32 for op in updates)


@NEEDS_CPU_BF16
def test_bf16_pretraining_runs_its_matrix_products_in_bfloat16_and_trains_as_float32():
    """ERNIE's pre-training program with --amp bf16 on a CPU: every matrix product of the model
    (the linear layers, attention's scores and context, the tied masked-LM output) is the fused
    bfloat16 kernel, the fused float32 kernels between them, no cast to bfloat16 outside the
    kernel; and the losses of float32."""
    from ernie.kernels import cpu_kernels
    from ernie.model.optimization import adamw
    from ernie.pretrain.model import ErnieForPretraining, pretraining_feeds
    from tests.conftest import pretraining_step_feeds, small_config

    config = small_config()
    feeds = pretraining_step_feeds(config)

    def model_fn():
        model = ErnieForPretraining(config, {"knowledge_masking": None, "capitalization": None, "token_document": None,
                                            "sentence_reordering": 5})
        inputs = pretraining_feeds(model)
        out = model(inputs)
        return inputs, {"loss": out["loss"]}, out["loss"]

    losses = {}
    for name, mixed in (("fp32", None), ("bf16", MixedPrecision("bf16"))):
        runner = StaticRunner(model_fn, lambda lr: adamw(lr), seed=3, place=paddle.CPUPlace(), mixed_precision=mixed)
        block = runner.main.global_block()
        ops = [op.name() for op in block.ops]
        assert cpu_kernels.available() and "custom_op.ernie_layer_norm" in ops
        assert not [op for op in block.ops if op.name() == "pd_op.cast" and op.results()[0].dtype == paddle.bfloat16]
        # per layer: query, key, value, output and two feed-forward linears, scores and context;
        # the heads
        products = [op.attrs()["bf16"] for op in block.ops if op.name() in ("custom_op.ernie_linear",
                                                                              "custom_op.ernie_matmul")]
        assert "pd_op.matmul" not in ops and len(products) >= 8 * config.num_hidden_layers + 2
        assert set(products) == {bool(mixed)}
        assert runner.state()["mask_lm_trans_fc.w_0"].dtype == np.float32  # master weights stay float32
        losses[name] = [float(np.asarray(runner.step(i, feeds, 1e-3)["loss"]).reshape(-1)[0]) for i in range(4)]
    np.testing.assert_allclose(losses["bf16"], losses["fp32"], rtol=2e-3)
    assert losses["bf16"][-1] < losses["bf16"][0]
