"""A non-finite loss or gradient skips the whole step (`propeller.nonfinite`): parameters and
Adam's moments stay as they were, in float32 as in float16, in one micro-batch of several, and
the learner counts skipped steps and stops only after too many in a row."""
import numpy as np
import paddle
import pytest

from propeller.learner import Hook, Learner
from propeller.static_runner import StaticRunner
from tests.test_accumulation import adamw, classifier, micro_feeds


def bad(feed, value=np.inf):
    return {**feed, "x": np.where(np.arange(feed["x"].size).reshape(feed["x"].shape) == 0, value, feed["x"])}


def inf_loss_model():
    """A loss that is inf while its gradient is finite: log(0) of a constant, added to a real one."""
    x = paddle.static.data("x", [-1, 6], "float32")
    w = paddle.create_parameter([6], "float32", name="w", default_initializer=paddle.nn.initializer.Constant(0.5))
    gap = paddle.static.data("gap", [1], "float32")
    loss = paddle.mean(x * w) + paddle.log(gap).sum()  # d/dw finite whatever `gap` is
    return {"x": x, "gap": gap}, {"loss": loss}, loss


@pytest.mark.parametrize("parts", [1, 2])
@pytest.mark.parametrize("value", [np.inf, np.nan])
def test_a_nonfinite_micro_batch_skips_the_step_in_float32(parts, value):
    runner = StaticRunner(classifier, adamw, seed=1, place=paddle.CPUPlace(), accumulate=parts)
    first = micro_feeds(0, parts)
    out = runner.step(0, first if parts > 1 else first[0], 0.05)
    assert (out[-1] if parts > 1 else out)["skipped"] is False
    before = runner.state()
    feeds = micro_feeds(1, parts)
    feeds[0] = bad(feeds[0], value)  # the first micro-batch: only the accumulators carry it on
    out = runner.step(1, feeds if parts > 1 else feeds[0], 0.05)
    assert (out[-1] if parts > 1 else out)["skipped"] is True
    after = runner.state()
    for name in before:
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)  # moments and powers too
    out = runner.step(2, micro_feeds(2, parts) if parts > 1 else micro_feeds(2, 1)[0], 0.05)
    assert (out[-1] if parts > 1 else out)["skipped"] is False
    assert not np.array_equal(runner.state()["h.w"], after["h.w"])  # clean again, it trains


def test_an_infinite_loss_with_a_finite_gradient_is_skipped():
    runner = StaticRunner(inf_loss_model, lambda lr: paddle.optimizer.Adam(lr), seed=1, place=paddle.CPUPlace())
    x = np.ones((2, 6), np.float32)
    assert runner.step(0, {"x": x, "gap": np.zeros(1, np.float32)}, 0.1)["skipped"] is True
    np.testing.assert_array_equal(runner.state()["w"], 0.5)
    assert runner.step(1, {"x": x, "gap": np.ones(1, np.float32)}, 0.1)["skipped"] is False
    assert np.all(runner.state()["w"] < 0.5)


class Record(Hook):
    def __init__(self):
        self.steps = []

    def after_step(self, learner, step, metrics, info):
        self.steps.append((step, sorted(metrics), info.get("skipped", 0)))


def learner_run(xs, max_skipped):
    runner = StaticRunner(classifier, adamw, seed=1, place=paddle.CPUPlace())
    feeds = [bad(micro_feeds(i % 4, 1)[0]) if x else micro_feeds(i % 4, 1)[0] for i, x in enumerate(xs)]
    hook = Record()
    learner = Learner(runner, lambda out, feed: {"loss": (float(out["loss"]), 1.0)}, [hook], max_skipped=max_skipped)
    learner.train(lambda i: (feeds[i], 0.05, {}), len(xs))
    return learner, hook.steps


def test_the_learner_counts_skips_and_stops_after_too_many_in_a_row():
    learner, steps = learner_run([0, 1, 1, 0, 1], max_skipped=2)
    assert [s[2] for s in steps] == [0, 1, 1, 0, 1] and steps[1][1] == [] and steps[0][1] == ["loss"]
    assert learner.skipped_steps == 3
    with pytest.raises(FloatingPointError, match=r"step 4: 3 steps in a row skipped .*at most 2 allowed"):
        learner_run([0, 1, 1, 1, 0], max_skipped=2)
