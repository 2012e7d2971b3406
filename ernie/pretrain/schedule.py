"""Pre-training schedules: which task trains at each step, for the paper's three strategies.

- `continual`: one task per stage, in order; a task trains only in its own stage (Figure 2,
  middle), N iterations each.
- `multitask`: every task from the first step, in one stage, N iterations each.
- `continual_multitask` (ERNIE 2.0): stage s introduces its tasks; each task keeps training in
  every later stage. The allocation rule: with S stages, a task gives a replay share of
  r = round(N / (S + 1)) iterations to each stage after the one that introduced it, and its
  introducing stage gets the rest, N - r * (S - s). For four tasks introduced one per stage with
  N = 50k this is exactly the paper's Table 7 (r = 10k):
        stage:      1     2     3     4
        KM        20k   10k   10k   10k
        CAP        -    30k   10k   10k
        TDR        -     -    40k   10k
        SR         -     -     -    50k
  so every task gets its N iterations, most of them while it is new, and earlier tasks keep a
  steady share of later stages (what protects them from being forgotten). The rule is this
  project's inference from the one example the paper gives (its Table 7).
  A task the model already learned (pre-training continued from a model that has its head,
  `init_model:`) was introduced before this run: it has no stage of its own, and its N
  iterations are spread evenly over all stages, as replay from the first step.
Within a stage the tasks are interleaved step by step in proportion to their allocations (at each
step, the task furthest behind its proportional share goes next; ties go to the earlier task), so a
stage never runs its tasks in blocks. The schedule is a pure function of the config.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Sequence, Tuple

import yaml

from ernie_common import tasks as registry

STRATEGIES = ("continual", "multitask", "continual_multitask")


class ScheduleError(ValueError):
    pass


@dataclass(frozen=True)
class Stage:
    allocation: Dict[str, int]  # task -> iterations in this stage, in task order

    @property
    def steps(self) -> int:
        return sum(self.allocation.values())


@dataclass(frozen=True)
class Schedule:
    strategy: str
    tasks: Tuple[str, ...]
    stages: Tuple[Stage, ...]
    learned: Tuple[str, ...] = ()  # tasks the initial model already learned (replayed from stage 1)

    @property
    def total_steps(self) -> int:
        return sum(stage.steps for stage in self.stages)

    def iterations(self, task: str) -> int:
        return sum(stage.allocation.get(task, 0) for stage in self.stages)

    def stage_tasks(self, stage_index: int) -> List[str]:
        return list(self.stages[stage_index].allocation)

    def steps(self) -> Iterator[Tuple[int, str]]:
        """(stage index, task) of every step, in training order."""
        for index, stage in enumerate(self.stages):
            for task in interleave(stage.allocation):
                yield index, task

    def table(self) -> List[List[str]]:
        """Rows of task x stage iterations ('-' where a task does not train), as in Table 7."""
        rows = [["task", *[f"stage {i + 1}" for i in range(len(self.stages))], "total"]]
        for task in self.tasks:
            cells = [_k(stage.allocation[task]) if task in stage.allocation else "-" for stage in self.stages]
            rows.append([task, *cells, _k(self.iterations(task))])
        rows.append(["steps", *[_k(stage.steps) for stage in self.stages], _k(self.total_steps)])
        return rows

    def to_json(self) -> str:
        return json.dumps({"strategy": self.strategy, "tasks": list(self.tasks), "learned": list(self.learned),
                           "stages": [stage.allocation for stage in self.stages],
                           "iterations": {t: self.iterations(t) for t in self.tasks},
                           "total_steps": self.total_steps}, indent=2)


def _k(n: int) -> str:
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


def interleave(allocation: Dict[str, int]) -> Iterator[str]:
    """Tasks step by step in proportion to their allocations (smooth, deterministic)."""
    total = sum(allocation.values())
    done = {task: 0 for task in allocation}
    for step in range(1, total + 1):
        task = max(allocation, key=lambda t: (allocation[t] * step / total - done[t], -list(allocation).index(t)))
        done[task] += 1
        yield task


def build_schedule(strategy: str, stages: Sequence[Sequence[str]], iterations: Dict[str, int],
                   learned: Sequence[str] = ()) -> Schedule:
    """`stages` lists the tasks each stage introduces; `iterations` is N per task; `learned` the
    tasks the initial model already learned (continual multi-task learning replays them)."""
    if strategy not in STRATEGIES:
        raise ScheduleError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    order = [t for stage in stages for t in stage]
    for task in order:
        try:
            registry.get(task)
        except registry.TaskError as err:
            raise ScheduleError(str(err)) from None
    if len(set(order)) != len(order):
        raise ScheduleError(f"a task is introduced twice: {order}")
    missing = [t for t in order if t not in iterations]
    if missing or any(iterations[t] <= 0 for t in order):
        raise ScheduleError(f"every task needs a positive iteration count (missing: {missing})")
    if strategy == "multitask":
        return Schedule(strategy, tuple(order), (Stage({t: iterations[t] for t in order}),))
    if strategy == "continual":
        return Schedule(strategy, tuple(order), tuple(Stage({t: iterations[t]}) for t in order))
    n_stages = len(stages)
    allocations: List[Dict[str, int]] = [dict() for _ in range(n_stages)]
    learned = tuple(t for t in order if t in set(learned))
    for task in learned:
        share, extra = divmod(iterations[task], n_stages)
        if share < 1:
            raise ScheduleError(f"{task}: {iterations[task]} iterations cannot be replayed in {n_stages} stages")
        for stage in range(n_stages):
            allocations[stage][task] = share + (stage < extra)
    for s, introduced in enumerate(stages):
        for task in introduced:
            if task in learned:
                continue
            later = n_stages - 1 - s
            replay = round(iterations[task] / (n_stages + 1))
            first = iterations[task] - replay * later
            if first <= 0 or (later and replay < 1):
                raise ScheduleError(f"{task}: {iterations[task]} iterations cannot cover {later} later stages")
            allocations[s][task] = first
            for later_stage in range(s + 1, n_stages):
                allocations[later_stage][task] = replay
    ordered = [{t: a[t] for t in order if t in a} for a in allocations]
    return Schedule(strategy, tuple(order), tuple(Stage(a) for a in ordered), learned)


def schedule_from_config(values: dict, source: str = "config", learned: Sequence[str] = ()) -> Schedule:
    try:
        stages = values["stages"]
        n = values["iterations_per_task"]
    except KeyError as err:
        raise ScheduleError(f"{source}: missing key {err}") from None
    if isinstance(n, int):
        n = {t: n for stage in stages for t in stage}
    try:
        return build_schedule(values.get("strategy", "continual_multitask"), stages, n, learned)
    except ScheduleError as err:
        raise ScheduleError(f"{source}: {err}") from None


def load_schedule(path) -> Schedule:
    """The schedule of a pre-training config, with the tasks its `init_model` already learned."""
    values = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    schedule = values.get("schedule", values)
    try:
        registry.load_modules(values.get("task_modules", []))  # a user's tasks the schedule names
    except registry.TaskError as err:
        raise ScheduleError(f"{path}: {err}") from None
    learned: List[str] = []
    if values.get("init_model"):
        from ernie.formats.checkpoint import CheckpointError, parameter_names
        from ernie.pretrain.init_model import learned_tasks
        try:
            tasks = [registry.get(t) for stage in schedule.get("stages", []) for t in stage]
            learned = learned_tasks(tasks, parameter_names(values["init_model"]))
        except (CheckpointError, registry.TaskError) as err:
            raise ScheduleError(f"{path}: {err}") from None
    return schedule_from_config(schedule, source=str(path), learned=learned)


def main(argv=None) -> int:
    import argparse
    import sys
    parser = argparse.ArgumentParser(prog="python -m ernie.pretrain.schedule",
                                     description="Print a pre-training config's allocation of iterations "
                                                 "(task x stage) without training.")
    parser.add_argument("--config", required=True, help="configs/pretrain/NAME.yaml")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        schedule = load_schedule(args.config)
    except (ScheduleError, OSError, yaml.YAMLError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if args.json:
        print(schedule.to_json())
        return 0
    rows = schedule.table()
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print(f"strategy: {schedule.strategy}"
          + (f"; learned before (replayed from stage 1): {', '.join(schedule.learned)}" if schedule.learned else ""))
    for row in rows:
        print("  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
