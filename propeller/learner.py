"""The training loop and its hooks; knows nothing about ERNIE's tasks.

A `Learner` drives a runner (`StaticRunner` by default, `DygraphRunner` on request): for every
step it asks a plan for (feed, learning rate, info), runs the step, turns the outputs into
metrics, and hands them to its hooks. Hooks do everything else: the progress bar, JSON-lines
logs (and any other sink, such as VisualDL), checkpoints, evaluation.

Metrics are `{name: (total, weight)}` per step; a log line reports total/weight summed over the
steps of its window, so a loss is averaged over the steps that had it and an accuracy is
correct/count over all of the window's labels.
"""
from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from .nonfinite import SKIPPED

Metrics = Dict[str, Tuple[float, float]]
Plan = Callable[[int], Tuple[Mapping[str, np.ndarray], float, dict]]


class Hook:
    def before_train(self, learner: "Learner", start: int) -> None:
        pass

    def before_step(self, learner: "Learner", step: int) -> None:
        """`step`: the steps done; called before the step's batch is read."""

    def after_step(self, learner: "Learner", step: int, metrics: Metrics, info: dict) -> None:
        """`step` counts from 1; `info` is what the plan said about the step (lr, tokens, ...)."""

    def after_train(self, learner: "Learner") -> None:
        pass


class Learner:
    """`max_skipped`: how many steps in a row the runner may skip (a non-finite loss or gradient
    on any rank, `propeller.nonfinite`) before the run stops; a skipped step's metrics are not
    logged, its hooks see `skipped` in its info."""

    def __init__(self, runner, metrics_fn: Callable[[Dict[str, np.ndarray], Mapping], Metrics],
                 hooks: Sequence[Hook] = (), max_skipped: int = 100):
        self.runner = runner
        self.metrics_fn = metrics_fn
        self.hooks = list(hooks)
        self.max_skipped = max_skipped
        self.skipped_steps = 0  # over the whole run

    def train(self, plan: Plan, total_steps: int, start: int = 0) -> None:
        for hook in self.hooks:
            hook.before_train(self, start)
        in_a_row = 0
        for index in range(start, total_steps):
            for hook in self.hooks:
                hook.before_step(self, index)
            feed, learning_rate, info = plan(index)
            outputs = self.runner.step(index, feed, learning_rate)
            last = outputs[-1] if isinstance(outputs, list) else outputs
            if last.get(SKIPPED, False):
                in_a_row += 1
                self.skipped_steps += 1
                if in_a_row > self.max_skipped:
                    raise FloatingPointError(
                        f"step {index + 1}: {in_a_row} steps in a row skipped for a non-finite loss or gradient "
                        f"(at most {self.max_skipped} allowed; {self.skipped_steps} skipped in all) ({info})")
                metrics, info = {}, {**info, SKIPPED: 1}
            else:
                in_a_row = 0
                metrics = self.metrics_fn(outputs, feed)
                if "loss" in metrics and not np.isfinite(metrics["loss"][0]):
                    raise FloatingPointError(f"step {index + 1}: loss is {metrics['loss'][0]} ({info}); this "
                                             f"runner's optimizer cannot skip such a step")
            for hook in self.hooks:
                hook.after_step(self, index + 1, metrics, {**info, "lr": learning_rate})
        for hook in self.hooks:
            hook.after_train(self)


class ProgressHook(Hook):
    def __init__(self, total_steps: int, key: str = "loss", enabled: bool = True):
        self.total, self.key, self.enabled = total_steps, key, enabled

    def before_train(self, learner, start):
        self.bar = tqdm(total=self.total, initial=start, desc="train", unit="step", disable=not self.enabled)

    def after_step(self, learner, step, metrics, info):
        if self.key in metrics:
            total, weight = metrics[self.key]
            self.bar.set_postfix({self.key: f"{total / max(weight, 1e-12):.3f}"}, refresh=False)
        self.bar.update(1)

    def after_train(self, learner):
        self.bar.close()


def _step_of(line: str) -> float:
    """A log line's step; infinity for a line a kill cut off (dropped as past any checkpoint)."""
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):
        return float("inf")


class LogHook(Hook):
    """Every `every` steps (and at the last), a record of the window's metrics goes to a
    JSON-lines file and to each sink. `fields` names info keys copied from the window's last step;
    `tokens` (the window's) and `tokens_per_s` come from the info key `tokens`; `skipped_steps`, where the window had any,
    counts the steps the runner skipped."""

    def __init__(self, path, every: int, total_steps: int, fields: Sequence[str] = ("lr",),
                 sinks: Iterable[Callable[[dict], None]] = (), window: Optional[dict] = None):
        """`window`: the `state()` a checkpoint kept, for a resumed run to go on with the window
        its checkpoint's step was in, so that its log is the uninterrupted run's."""
        self.path, self.every, self.total = path, every, total_steps
        self.fields, self.sinks = tuple(fields), list(sinks)
        self._resumed_window = window

    def before_train(self, learner, start):
        kept = []
        if start and self.path.is_file():  # a resumed run: drop lines past the checkpoint (and one cut off)
            kept = [line for line in self.path.read_text().splitlines() if _step_of(line) <= start]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(line + "\n" for line in kept))
        os.replace(tmp, self.path)  # a crash here keeps the old log whole
        self.file = open(self.path, "a", encoding="utf-8")
        self._reset()
        if start and self._resumed_window:
            self.sums.update({name: list(pair) for name, pair in self._resumed_window["sums"].items()})
            self.tokens, self.skipped = self._resumed_window["tokens"], self._resumed_window["skipped"]

    def state(self) -> dict:
        """The window not logged yet: its metrics' sums, tokens and skipped steps (not its time: a
        resumed window's tokens_per_s is over the tokens and seconds since the resume)."""
        return {"sums": {name: [float(total), float(weight)] for name, (total, weight) in self.sums.items()},
                "tokens": int(self.tokens), "skipped": int(self.skipped)}

    def _reset(self):
        self.sums: Dict[str, List[float]] = defaultdict(lambda: [0.0, 0.0])
        self.tokens, self.skipped, self.started, self.timed_tokens = 0, 0, time.perf_counter(), 0

    def after_step(self, learner, step, metrics, info):
        for name, (total, weight) in metrics.items():
            self.sums[name][0] += total
            self.sums[name][1] += weight
        self.tokens += info.get("tokens", 0)
        self.timed_tokens += info.get("tokens", 0)  # (the tokens of this process's seconds)
        self.skipped += info.get(SKIPPED, 0)
        if step % self.every and step != self.total:
            return
        record = {"step": step, **{f: info[f] for f in self.fields if f in info}}
        record.update({name: total / weight for name, (total, weight) in self.sums.items() if weight})
        if self.skipped:
            record["skipped_steps"] = self.skipped
        if self.tokens:
            record["tokens"] = self.tokens
        record["tokens_per_s"] = round(self.timed_tokens / max(time.perf_counter() - self.started, 1e-9), 1)
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        for sink in self.sinks:
            sink(record)
        self._reset()

    def after_train(self, learner):
        self.file.close()
        for sink in self.sinks:
            if hasattr(sink, "close"):
                sink.close()


class VisualDLSink:
    """Log records as VisualDL scalars: `a/b` becomes tag `b/a` (so `loss/<task>` groups the tasks'
    losses in one chart), other names `train/<name>`."""

    def __init__(self, logdir):
        try:
            from visualdl import LogWriter
        except ImportError:
            raise ImportError("VisualDL logging needs VisualDL: pip install visualdl==2.5.3") from None
        self.writer = LogWriter(logdir=str(logdir))

    def __call__(self, record: dict) -> None:
        for key, value in record.items():
            if key != "step" and isinstance(value, (int, float)):
                name, _, metric = key.partition("/")
                self.writer.add_scalar(tag=f"{metric}/{name}" if metric else f"train/{name}",
                                       step=record["step"], value=value)

    def close(self) -> None:
        self.writer.close()


class StepHook(Hook):
    """Calls `fn(step, info)` after every step (info: what the plan said about the step)."""

    def __init__(self, fn: Callable[[int, dict], None]):
        self.fn = fn

    def after_step(self, learner, step, metrics, info):
        self.fn(step, info)


class CheckpointHook(Hook):
    """Calls `save(step)` every `every` steps and after each step listed in `also_after`."""

    def __init__(self, save: Callable[[int], object], every: int, also_after: Iterable[int] = ()):
        self.save, self.every, self.also_after = save, every, set(also_after)

    def after_step(self, learner, step, metrics, info):
        if step % self.every == 0 or step in self.also_after:
            self.save(step)


class TimedCheckpointHook(Hook):
    """Calls `save(step)` after a step that is a multiple of `every` (a LogHook's, so a resumed
    log's windows are the uninterrupted run's) once `seconds` have passed since the run (or its
    resume) began or since the last save; never after the last step, where the run's own outputs
    are written. Hooks before it in the list have run for the step (an evaluation it should keep)."""

    def __init__(self, save: Callable[[int], object], seconds: float, total_steps: int, every: int = 1):
        self.save, self.seconds, self.total, self.every = save, seconds, total_steps, every

    def before_train(self, learner, start):
        self.last = time.monotonic()

    def after_step(self, learner, step, metrics, info):
        if step < self.total and step % self.every == 0 and time.monotonic() - self.last >= self.seconds:
            self.save(step)
            self.last = time.monotonic()


class EvalHook(Hook):
    """Calls `evaluate(step)` every `every` steps (0: never on a count), after each step listed in
    `also_after`, at the end, and with `at_start` once before a run's first step (step 0, not
    again on resume); its dict, with the step and the `fields` of the step's info, goes to the
    sinks."""

    def __init__(self, evaluate: Callable[[int], dict], every: int, total_steps: int,
                 sinks: Iterable[Callable[[dict], None]] = (), also_after: Iterable[int] = (),
                 at_start: bool = False, fields: Sequence[str] = ()):
        self.evaluate, self.every, self.total, self.sinks = evaluate, every, total_steps, list(sinks)
        self.also_after, self.at_start, self.fields = set(also_after), at_start, tuple(fields)

    def _emit(self, step: int, info: Mapping) -> None:
        result = {"step": step, **{f: info[f] for f in self.fields if f in info}, **self.evaluate(step)}
        for sink in self.sinks:
            sink(result)

    def before_train(self, learner, start):
        if self.at_start and start == 0:
            self._emit(0, {})

    def after_step(self, learner, step, metrics, info):
        if (self.every and step % self.every == 0) or step == self.total or step in self.also_after:
            self._emit(step, info)


def append_jsonl(path) -> Callable[[dict], None]:
    """A sink that appends each record to a JSON-lines file (an evaluation's records beside a
    `LogHook`'s in the same log)."""
    def sink(record: dict) -> None:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
    return sink
