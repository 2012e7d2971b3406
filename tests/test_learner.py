"""The engine on its own: a tiny regression trained through the Learner and its hooks."""
import json

import numpy as np
import paddle
import pytest

from propeller.dygraph_runner import DygraphRunner
from propeller.learner import CheckpointHook, EvalHook, Hook, Learner, LogHook, TimedCheckpointHook
from propeller.static_runner import StaticRunner


class Regression(paddle.nn.Layer):
    def __init__(self):
        super().__init__()
        self.fc = paddle.nn.Linear(3, 1)

    def forward(self, feed):
        return {"loss": paddle.mean((self.fc(feed["x"]) - feed["y"]) ** 2)}


def _static_runner():
    def model_fn():
        feeds = {"x": paddle.static.data("x", [-1, 3], "float32"), "y": paddle.static.data("y", [-1, 1], "float32")}
        out = Regression()(feeds)
        return feeds, out, out["loss"]
    return StaticRunner(model_fn, lambda lr: paddle.optimizer.SGD(lr), seed=0)


def _dygraph_runner():
    return DygraphRunner(Regression, lambda lr, params: paddle.optimizer.SGD(lr, parameters=params), seed=0)


def _plan(index):
    rng = np.random.default_rng(index)
    x = rng.normal(size=(8, 3)).astype(np.float32)
    return {"x": x, "y": x @ np.array([[1.0], [-2.0], [0.5]], np.float32)}, 0.1, {"tokens": 8}


@pytest.mark.parametrize("make_runner", [_static_runner, _dygraph_runner], ids=["static", "dygraph"])
def test_learner_trains_and_hooks_see_every_step(make_runner, tmp_path):
    runner = make_runner()
    saved, evaluated = [], []

    def metrics(out, feed):
        loss = float(np.asarray(out["loss"]).reshape(-1)[0])
        return {"loss": (loss, 1.0), "below_one": (float(loss < 1.0), 1.0)}

    hooks = [LogHook(tmp_path / "log.jsonl", every=10, total_steps=25, sinks=[evaluated.append]),
             CheckpointHook(saved.append, every=10, also_after=[13]),
             EvalHook(lambda step: {"eval_step": step}, every=20, total_steps=25, sinks=[evaluated.append])]
    Learner(runner, metrics, hooks).train(_plan, total_steps=25)
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [10, 20, 25] and log[0]["lr"] == 0.1
    assert log[-1]["loss"] < log[0]["loss"] / 10  # it learns
    assert saved == [10, 13, 20]
    assert {"step": 20, "eval_step": 20} in evaluated and {"step": 25, "eval_step": 25} in evaluated


def test_window_means_weight_by_the_steps_that_have_a_metric(tmp_path):
    class Fixed:
        def step(self, index, feed, lr):
            return {}

    def metrics(out, feed):  # "acc" only on even steps: 3 right of 4, then 1 of 4
        step = feed["i"]
        return {"loss": (float(step), 1.0), **({"acc": (3.0 if step == 2 else 1.0, 4.0)} if step % 2 == 0 else {})}

    hook = LogHook(tmp_path / "log.jsonl", every=4, total_steps=4)
    Learner(Fixed(), metrics, [hook]).train(lambda i: ({"i": i + 1}, 0.0, {}), total_steps=4)
    (record,) = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert record["loss"] == 2.5 and record["acc"] == 0.5


def test_non_finite_loss_stops_training():
    class Broken:
        def step(self, index, feed, lr):
            return {"loss": np.array([np.nan if index == 2 else 1.0])}

    seen = []

    class Counter(Hook):
        def after_step(self, learner, step, metrics, info):
            seen.append(step)

    with pytest.raises(FloatingPointError, match="step 3: loss is nan"):
        Learner(Broken(), lambda out, feed: {"loss": (float(out["loss"][0]), 1.0)}, [Counter()]).train(
            lambda i: ({}, 0.1, {}), total_steps=5)
    assert seen == [1, 2]


def test_timed_saves_come_after_the_interval_and_never_after_the_last_step(monkeypatch):
    """A step's time is its number of seconds since the start; saves at least 3 s apart, from
    the start (or a resume's), none after step 10, the last."""
    import propeller.learner as learner
    clock = {"now": 0.0}
    monkeypatch.setattr(learner.time, "monotonic", lambda: clock["now"])

    class Ticking:
        def step(self, index, feed, lr):
            clock["now"] = index + 1.0
            return {}
    saved = []
    hook = TimedCheckpointHook(saved.append, seconds=3, total_steps=10)
    Learner(Ticking(), lambda out, feed: {}, [hook]).train(lambda i: ({}, 0.0, {}), total_steps=10)
    assert saved == [3, 6, 9]
    saved.clear()
    clock["now"] = 4.0  # resumed after step 4, 4 s in
    Learner(Ticking(), lambda out, feed: {}, [hook]).train(lambda i: ({}, 0.0, {}), total_steps=10, start=4)
    assert saved == [7]  # 3 s after the resume; 10 is the last step
    saved.clear()
    clock["now"] = 0.0
    aligned = TimedCheckpointHook(saved.append, seconds=3, total_steps=10, every=2)  # at a log window's end
    Learner(Ticking(), lambda out, feed: {}, [aligned]).train(lambda i: ({}, 0.0, {}), total_steps=10)
    assert saved == [4, 8]


def test_a_resumed_log_keeps_the_records_up_to_its_checkpoint_and_drops_a_line_cut_off(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"step": 2, "loss": 1.0}\n{"step": 4, "loss": 0.5}\n{"step": 6, "lo')  # killed mid-line
    hook = LogHook(path, every=2, total_steps=10)
    hook.before_train(None, 4)
    hook.file.close()
    assert path.read_text() == '{"step": 2, "loss": 1.0}\n{"step": 4, "loss": 0.5}\n'
