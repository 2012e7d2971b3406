"""Gradient accumulation in the static runner (`propeller.accumulation`): k micro-batches on one
rank, k ranks of one micro-batch and one process with the whole batch end with the same
parameters; loss scaling skips a whole global step when any micro-batch of any rank overflows;
the accumulators are empty between steps, so a runner's state resumes exactly."""
import json
import subprocess
import sys

import numpy as np
import paddle
import pytest

from propeller.accumulation import ACCUMULATOR_SUFFIX
from propeller.mixed_precision import LossScaling, MixedPrecision
from propeller.static_runner import StaticRunner
from tests.conftest import REPO
from tests.test_mixed_precision import NEEDS_CPU_BF16, OVERFLOW, elementwise_model

STEPS, BATCH = 4, 8
DATA = np.random.default_rng(0)
X = DATA.normal(size=(STEPS, BATCH, 6)).astype(np.float32)
Y = DATA.integers(0, 3, (STEPS, BATCH))
PARAMS = ("h.w", "h.b", "o.w", "o.b")


def classifier():
    x, y = paddle.static.data("x", [-1, 6], "float32"), paddle.static.data("y", [-1], "int64")
    hidden = paddle.nn.Linear(6, 16, weight_attr=paddle.ParamAttr(name="h.w"), bias_attr=paddle.ParamAttr(name="h.b"))
    out = paddle.nn.Linear(16, 3, weight_attr=paddle.ParamAttr(name="o.w"), bias_attr=paddle.ParamAttr(name="o.b"))
    loss = paddle.nn.functional.cross_entropy(out(paddle.tanh(hidden(x))), y.unsqueeze(-1))  # a mean over the rows
    return {"x": x, "y": y}, {"loss": loss}, loss


def kernel_classifier():
    """`classifier` through the model's own linear op: its matrix products run in bfloat16 when
    the program is built for bfloat16 on a CPU (`propeller.mixed_precision.autocast`)."""
    from ernie.kernels import cpu_kernels
    x, y = paddle.static.data("x", [-1, 6], "float32"), paddle.static.data("y", [-1], "int64")
    hidden = paddle.nn.Linear(6, 16, weight_attr=paddle.ParamAttr(name="h.w"), bias_attr=paddle.ParamAttr(name="h.b"))
    out = paddle.nn.Linear(16, 3, weight_attr=paddle.ParamAttr(name="o.w"), bias_attr=paddle.ParamAttr(name="o.b"))
    h = paddle.tanh(cpu_kernels.linear(x, hidden.weight, hidden.bias, training=True))
    logits = cpu_kernels.linear(h, out.weight, out.bias, training=True)
    loss = paddle.nn.functional.cross_entropy(logits, y.unsqueeze(-1))
    return {"x": x, "y": y}, {"loss": loss}, loss


def adamw(lr):  # clipping is tight, so it acts: it must see the global gradient, not a micro-batch's
    return paddle.optimizer.AdamW(lr, weight_decay=0.01, grad_clip=paddle.nn.ClipGradByGlobalNorm(0.05))


def micro_feeds(step, parts, rank=0, ranks=1):
    """This rank's `parts` micro-batches of the step's global batch (ranks take equal slices)."""
    xs, ys = np.split(X[step], ranks)[rank], np.split(Y[step], ranks)[rank]
    return [{"x": x, "y": y} for x, y in zip(np.split(xs, parts), np.split(ys, parts))]


def train(parts, model=classifier, **runner_options):
    runner = StaticRunner(model, adamw, seed=1, place=paddle.CPUPlace(), accumulate=parts, **runner_options)
    losses = []
    for step in range(STEPS):
        feeds = micro_feeds(step, parts)
        out = runner.step(step, feeds if parts > 1 else feeds[0], 0.05)
        losses.append([float(o["loss"]) for o in (out if parts > 1 else [out])])
    return runner, losses


def sgd(lr):  # plain SGD without clipping: a wrong factor on the gradient is a wrong step
    return paddle.optimizer.SGD(lr)


LR = 0.5


def numpy_sgd(params, steps=STEPS):
    """The parameters after `steps` SGD steps on each step's whole batch, the gradient of the
    batch's mean cross-entropy written out by hand."""
    p = {k: v.astype(np.float64) for k, v in params.items()}
    for step in range(steps):
        x, y = X[step].astype(np.float64), Y[step]
        h = np.tanh(x @ p["h.w"] + p["h.b"])
        logits = h @ p["o.w"] + p["o.b"]
        probs = np.exp(logits - logits.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
        d_logits = (probs - np.eye(3)[y]) / len(y)  # the mean over the batch's rows
        d_h = d_logits @ p["o.w"].T * (1 - h ** 2)
        grads = {"o.w": h.T @ d_logits, "o.b": d_logits.sum(0), "h.w": x.T @ d_h, "h.b": d_h.sum(0)}
        p = {k: p[k] - LR * grads[k] for k in p}
    return p


def sgd_train(parts, **runner_options):
    runner = StaticRunner(classifier, sgd, seed=1, place=paddle.CPUPlace(), accumulate=parts, **runner_options)
    start = {n: v for n, v in runner.state().items() if n in PARAMS}
    for step in range(STEPS):
        feeds = micro_feeds(step, parts)
        runner.step(step, feeds if parts > 1 else feeds[0], LR)
    return start, {n: v for n, v in runner.state().items() if n in PARAMS}


@pytest.mark.parametrize("parts", [1, 2, 4])
def test_accumulated_sgd_steps_are_the_whole_batch_gradient_computed_by_hand(parts):
    """A sum of the micro-batches' gradients instead of their mean, or a missing 1/k, moves the
    parameters k times too far: plain SGD shows it, where Adam (blind to a constant factor) and
    tight clipping would not."""
    start, end = sgd_train(parts)
    expected = numpy_sgd(start)
    for name in PARAMS:
        np.testing.assert_allclose(end[name], expected[name], rtol=1e-4, atol=1e-5, err_msg=name)
    assert max(float(np.abs(end[n] - start[n]).max()) for n in PARAMS) > 0.05  # the steps are not negligible


@pytest.fixture(scope="module")
def whole_batch():
    runner, _ = train(1)
    return {name: value for name, value in runner.state().items() if name in PARAMS}


@pytest.mark.parametrize("parts", [2, 4])
def test_micro_batches_train_as_the_whole_batch(parts, whole_batch):
    runner, losses = train(parts)
    state = runner.state()
    for name in PARAMS:
        np.testing.assert_allclose(state[name], whole_batch[name], rtol=1e-5, atol=1e-6, err_msg=name)
        np.testing.assert_array_equal(state[name + ACCUMULATOR_SUFFIX], 0.0)  # nothing left between steps
    assert len(losses[0]) == parts
    assert not np.allclose(whole_batch["h.w"], StaticRunner(classifier, adamw, seed=1).state()["h.w"])  # it trained


def test_a_step_may_have_fewer_micro_batches_than_the_runner_takes(whole_batch):
    runner = StaticRunner(classifier, adamw, seed=1, place=paddle.CPUPlace(), accumulate=4)
    for step in range(STEPS):  # two halves a step: their mean, not a quarter of each
        runner.step(step, micro_feeds(step, 2), 0.05)
    for name in PARAMS:
        np.testing.assert_allclose(runner.state()[name], whole_batch[name], rtol=1e-5, atol=1e-6, err_msg=name)


def test_a_runner_resumes_between_global_steps(whole_batch):
    first = StaticRunner(classifier, adamw, seed=1, place=paddle.CPUPlace(), accumulate=2)
    for step in range(2):
        first.step(step, micro_feeds(step, 2), 0.05)
    resumed = StaticRunner(classifier, adamw, seed=7, place=paddle.CPUPlace(), accumulate=2)
    resumed.load_state(first.state())
    for step in range(2, STEPS):
        resumed.step(step, micro_feeds(step, 2), 0.05)
    for name in PARAMS:
        np.testing.assert_allclose(resumed.state()[name], whole_batch[name], rtol=1e-5, atol=1e-6, err_msg=name)


def test_a_step_takes_exactly_its_micro_batches():
    runner = StaticRunner(classifier, adamw, seed=1, place=paddle.CPUPlace(), accumulate=2)
    with pytest.raises(ValueError, match="expected 1 to 2 micro-batch feed"):
        runner.step(0, micro_feeds(0, 4), 0.05)
    with pytest.raises(ValueError, match="accumulate must be at least 1"):
        StaticRunner(classifier, adamw, seed=1, accumulate=0)


def fp16_trace(micro_xs, **runner_options):
    """(loss scale, good steps, bad steps, w) after each global step of 2 micro-batches."""
    runner = StaticRunner(elementwise_model, lambda lr: paddle.optimizer.Adam(lr), seed=1, place=paddle.CPUPlace(),
                          mixed_precision=MixedPrecision("fp16", LossScaling(init=8.0, incr_every_n_steps=2,
                                                                             decr_every_n_nan_or_inf=1,
                                                                             decr_ratio=0.5)),
                          accumulate=2, **runner_options)
    trace = []
    for step, pair in enumerate(micro_xs):
        out = runner.step(step, [{"x": np.full(4, x, np.float32)} for x in pair], 0.1)
        state = runner.state()
        trace.append((float(out[-1]["loss_scale"][0]), int(state["num_good_steps_0"][0]),
                      int(state["num_bad_steps_0"][0]), state["w"].tolist()))
    return trace


def test_an_overflowing_micro_batch_skips_the_whole_global_step():
    trace = fp16_trace([(1.0, 1.0), (1.0, 1.0), (OVERFLOW, 1.0), (1.0, 1.0)])
    assert [t[:3] for t in trace] == [(8, 1, 0), (16, 0, 0), (8, 0, 0), (8, 1, 0)]
    assert trace[2][3] == trace[1][3] and trace[3][3] != trace[2][3]  # step 3 skipped whole, step 4 not


RANK_SCRIPT = """
import json, os, sys
sys.path.insert(0, sys.argv[1])
import numpy as np, paddle
from tests.test_accumulation import LR, PARAMS, STEPS, adamw, classifier, fp16_trace, micro_feeds, sgd
from propeller.static_runner import StaticRunner
rank = int(os.environ["PADDLE_TRAINER_ID"])
runner = StaticRunner(classifier, adamw, seed=1, place=paddle.CPUPlace(), distributed=True, accumulate=2)
for step in range(STEPS):
    runner.step(step, micro_feeds(step, 2, rank, ranks=2), 0.05)
state = runner.state()
plain = StaticRunner(classifier, sgd, seed=1, place=paddle.CPUPlace(), distributed=True, accumulate=2)
sgd_start = {n: v.tolist() for n, v in plain.state().items() if n in PARAMS}
for step in range(STEPS):
    plain.step(step, micro_feeds(step, 2, rank, ranks=2), LR)
sgd_end = {n: v.tolist() for n, v in plain.state().items() if n in PARAMS}
trace = fp16_trace([(1.0, 1.0), (1.0, 1.0), (1.0, 1e30 if rank == 1 else 1.0), (1.0, 1.0)], distributed=True)
with open(os.path.join(sys.argv[2], f"rank{rank}.json"), "w") as f:
    json.dump({"params": {n: state[n].tolist() for n in PARAMS}, "fp16": trace, "sgd": [sgd_start, sgd_end]}, f)
"""


def test_two_ranks_of_two_micro_batches_train_as_one_process_with_the_whole_batch(tmp_path, whole_batch):
    (tmp_path / "rank.py").write_text(RANK_SCRIPT)
    launch = subprocess.run([sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2",
                             "--log_dir", str(tmp_path / "logs"), str(tmp_path / "rank.py"), str(REPO), str(tmp_path)],
                            capture_output=True, text=True, timeout=600)
    assert launch.returncode == 0, launch.stdout[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0] == ranks[1]  # the ranks agree bit for bit
    for name in PARAMS:
        np.testing.assert_allclose(np.array(ranks[0]["params"][name], np.float32), whole_batch[name],
                                   rtol=1e-5, atol=1e-6, err_msg=name)
    # plain SGD over 2 ranks x 2 micro-batches: the whole batch's gradient by hand (a missing
    # 1/world-size or 1/k doubles every step)
    sgd_start, sgd_end = ({n: np.array(v) for n, v in part.items()} for part in ranks[0]["sgd"])
    expected = numpy_sgd(sgd_start)
    for name in PARAMS:
        np.testing.assert_allclose(sgd_end[name], expected[name], rtol=1e-4, atol=1e-5, err_msg=name)
    # only rank 1's second micro-batch of step 3 overflows: both ranks skip that global step
    assert [tuple(t[:3]) for t in ranks[0]["fp16"]] == [(8, 1, 0), (16, 0, 0), (8, 0, 0), (8, 1, 0)]
    assert ranks[0]["fp16"][2][3] == ranks[0]["fp16"][1][3]


@NEEDS_CPU_BF16
def test_bf16_micro_batches_train_as_the_whole_batch():
    start = StaticRunner(classifier, adamw, seed=1, place=paddle.CPUPlace()).state()
    whole = train(1, kernel_classifier, mixed_precision=MixedPrecision("bf16"))[0].state()
    runner = train(2, kernel_classifier, mixed_precision=MixedPrecision("bf16"))[0]
    parts = runner.state()
    for program in (runner.main, runner.micro):  # the micro-batches' program is bfloat16 too
        ops = program.global_block().ops
        assert [op.attrs()["bf16"] for op in ops if op.name() == "custom_op.ernie_linear"] == [True, True]
    # bfloat16 matmuls round differently with the batch's split, and Adam magnifies small gradients'
    # differences: the two end far closer to each other than to where they started
    moved = np.sqrt(sum(float(((whole[n] - start[n]) ** 2).sum()) for n in PARAMS))
    apart = np.sqrt(sum(float(((parts[n] - whole[n]) ** 2).sum()) for n in PARAMS))
    assert apart < 0.1 * moved, (apart, moved)


class DygraphClassifier(paddle.nn.Layer):
    """`classifier` as a dygraph layer, its parameters named alike."""

    def __init__(self):
        super().__init__()
        self.hidden = paddle.nn.Linear(6, 16, weight_attr=paddle.ParamAttr(name="h.w"),
                                       bias_attr=paddle.ParamAttr(name="h.b"))
        self.out = paddle.nn.Linear(16, 3, weight_attr=paddle.ParamAttr(name="o.w"),
                                    bias_attr=paddle.ParamAttr(name="o.b"))

    def forward(self, feed):
        logits = self.out(paddle.tanh(self.hidden(feed["x"])))
        return {"loss": paddle.nn.functional.cross_entropy(logits, feed["y"].unsqueeze(-1))}


@pytest.mark.parametrize("parts", [1, 2])
def test_dygraph_accumulated_sgd_is_the_whole_batch_gradient_computed_by_hand(parts):
    from propeller.dygraph_runner import DygraphRunner
    def model():
        with paddle.utils.unique_name.guard():  # each test's layer may take the names again
            return DygraphClassifier()
    runner = DygraphRunner(model, lambda lr, params: paddle.optimizer.SGD(lr, parameters=params),
                           seed=1, accumulate=parts)
    start = {n: v for n, v in runner.state().items() if n in PARAMS}
    for step in range(STEPS):
        feeds = micro_feeds(step, parts)
        runner.step(step, feeds if parts > 1 else feeds[0], LR)
    expected = numpy_sgd(start)
    for name in PARAMS:
        np.testing.assert_allclose(runner.state()[name], expected[name], rtol=1e-4, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("backend, made", [("NCCL", ["nccl"]), ("GLOO", [])])
def test_a_gpu_job_makes_the_communicator_its_static_collectives_run_on(monkeypatch, backend, made):
    """The program's all-reduce ops look their communicator up as ring "0": gloo's process group is
    registered there, NCCL's is not, so a GPU job makes it (once a process, as Paddle's own
    static-graph collective tests do) or its first step stops without a communicator."""
    import paddle.distributed as dist
    from paddle.distributed import collective

    from propeller import static_runner
    calls = []
    monkeypatch.setattr(static_runner, "_STATIC_RING", [])
    monkeypatch.setattr(collective, "_init_parallel_env", calls.append)
    for name, value in {"is_initialized": True, "get_backend": backend, "get_rank": 0, "get_world_size": 2}.items():
        monkeypatch.setattr(dist, name, lambda group=None, value=value: value)
    for _ in range(2):  # a second runner in the process uses the same communicator
        StaticRunner(classifier, adamw, seed=1, place=paddle.CPUPlace(), distributed=True)
    assert calls == made


def test_gradients_are_reduced_in_buckets_of_one_dtype_and_bounded_size():
    """One collective a bucket (`average_across_ranks`): runs of one dtype, at most the bucket's
    bytes, a gradient larger than that alone, the order kept (each rank builds the same buckets)."""
    from types import SimpleNamespace

    from propeller.static_runner import gradient_buckets

    def grad(name, shape, dtype=paddle.float32):
        return name, SimpleNamespace(shape=shape, dtype=dtype)
    pairs = [grad("a", [10, 10]), grad("b", [100]), grad("c", [50]), grad("d", [1000]), grad("e", [20]),
             grad("f", [20], paddle.bfloat16), grad("g", [20], paddle.bfloat16), grad("h", [30])]
    buckets = gradient_buckets(pairs, bucket_bytes=1000)  # 250 float32s
    assert [[name for name, _ in bucket] for bucket in buckets] == [["a", "b", "c"], ["d"], ["e"], ["f", "g"], ["h"]]
