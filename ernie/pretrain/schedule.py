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
Budgets count loss-on steps. A task's N iterations (and its share of each stage) are the steps
on which its loss is on, whatever task the step's batch belongs to. With `joint_token_tasks: true`
(the default) a step of a text task (sentence reordering, sentence distance: its examples are
segments of text that carry every token-level label) also switches on the stage's token-level
tasks, as ERNIE 2.0 trains them together; such a step counts against their budgets too, so a
token-level task rides on min(its share, the stage's text-task steps) of them, spread evenly, and
has steps of its own (plain text in natural order, its loss alone) for the rest. Every task gets
exactly its budget under every strategy; the number of steps is the sum of the budgets less the
rides. With `joint_token_tasks: false` every step trains one task, and every strategy runs the
same number of steps: Table 7's condition of equal budgets at equal compute.

Within a stage the tasks' own steps are interleaved in proportion to their counts (at each step,
the task furthest behind its proportional share goes next; ties go to the earlier task), so a
stage never runs its tasks in blocks. The schedule is a pure function of the config.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from ernie_common import tasks as registry
from ernie_common.configfile import ConfigError, read
from ernie_common.shipped_configs import find

STRATEGIES = ("continual", "multitask", "continual_multitask")


class ScheduleError(ValueError):
    pass


@dataclass(frozen=True)
class Stage:
    allocation: Dict[str, int]  # task -> loss-on steps in this stage (its budget), in task order


@dataclass(frozen=True)
class Step:
    stage: int                  # stage index
    task: str                   # the task whose examples the batch holds
    on: Tuple[str, ...]         # the tasks whose loss is on: `task`, then token-level tasks riding on it


@dataclass(frozen=True)
class Schedule:
    strategy: str
    tasks: Tuple[str, ...]
    stages: Tuple[Stage, ...]
    learned: Tuple[str, ...] = ()  # tasks the initial model already learned (replayed from stage 1)
    joint_token_tasks: bool = True

    def iterations(self, task: str) -> int:
        """The task's budget: the steps on which its loss is on."""
        return sum(stage.allocation.get(task, 0) for stage in self.stages)

    def stage_plan(self, index: int) -> Tuple[Dict[str, int], Dict[str, int]]:
        """(steps of each task's own, rides of each token-level task on text-task steps) in a stage."""
        allocation = self.stages[index].allocation
        carriers = [t for t in allocation if self.joint_token_tasks and registry.get(t).text_task]
        seats = sum(allocation[t] for t in carriers)
        rides = {t: min(n, seats) for t, n in allocation.items()
                 if carriers and registry.get(t).level == registry.TOKEN}
        own = {t: n - rides.get(t, 0) for t, n in allocation.items() if n > rides.get(t, 0)}
        return own, rides

    def stage_steps(self, index: int) -> int:
        return sum(self.stage_plan(index)[0].values())

    @property
    def total_steps(self) -> int:
        return sum(self.stage_steps(i) for i in range(len(self.stages)))

    @property
    def stage_ends(self) -> List[int]:
        """The step each stage ends after (counting from 1), in order; a stage without steps has none."""
        ends, step = [], 0
        for index in range(len(self.stages)):
            if self.stage_steps(index):
                step += self.stage_steps(index)
                ends.append(step)
        return ends

    def own_steps(self, task: str) -> int:
        """The steps whose batch is the task's (its learning rate runs over them)."""
        return sum(self.stage_plan(i)[0].get(task, 0) for i in range(len(self.stages)))

    def steps(self) -> Iterator[Step]:
        """Every step, in training order."""
        for index in range(len(self.stages)):
            own, rides = self.stage_plan(index)
            seats = sum(n for t, n in own.items() if registry.get(t).text_task) if rides else 0
            seat = 0
            for task in interleave(own):
                on = [task]
                if rides and registry.get(task).text_task:
                    # token task t rides on seat k when floor((k + 1) r / seats) steps past floor(k r / seats)
                    on += [t for t, r in rides.items() if (seat + 1) * r // seats > seat * r // seats]
                    seat += 1
                yield Step(index, task, tuple(on))

    def loss_on_steps(self) -> Dict[str, int]:
        """Each task's loss-on steps, counted by replaying `steps()` (equal to its budget)."""
        counts = Counter(t for step in self.steps() for t in step.on)
        return {task: counts[task] for task in self.tasks}

    def table(self) -> List[List[str]]:
        """Rows of task x stage budgets ('-' where a task does not train), as in Table 7, then
        each task's loss-on steps as replayed and the steps of each stage."""
        rows = [["task", *[f"stage {i + 1}" for i in range(len(self.stages))], "total", "loss-on steps"]]
        loss_on = self.loss_on_steps()
        for task in self.tasks:
            cells = [_k(stage.allocation[task]) if task in stage.allocation else "-" for stage in self.stages]
            rows.append([task, *cells, _k(self.iterations(task)), _k(loss_on[task])])
        rows.append(["steps", *[_k(self.stage_steps(i)) for i in range(len(self.stages))], _k(self.total_steps), ""])
        return rows

    def to_json(self) -> str:
        return json.dumps({"strategy": self.strategy, "tasks": list(self.tasks), "learned": list(self.learned),
                           "joint_token_tasks": self.joint_token_tasks,
                           "stages": [stage.allocation for stage in self.stages],
                           "iterations": {t: self.iterations(t) for t in self.tasks},
                           "loss_on_steps": self.loss_on_steps(),
                           "steps_per_stage": [self.stage_steps(i) for i in range(len(self.stages))],
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
                   learned: Sequence[str] = (), joint_token_tasks: bool = True) -> Schedule:
    """`stages` lists the tasks each stage introduces; `iterations` is N per task (loss-on steps);
    `learned` the tasks the initial model already learned (continual multi-task learning replays
    them); `joint_token_tasks`: text-task steps also train the stage's token-level tasks."""
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
    if missing:
        raise ScheduleError(f"every task needs a positive iteration count (missing: {missing})")
    below = {t: iterations[t] for t in order if iterations[t] <= 0}
    if below:
        raise ScheduleError(f"every task needs a positive iteration count, not {below}")
    stray = sorted(set(iterations) - set(order))
    if stray:  # a misspelt task's budget would otherwise be dropped without a word
        raise ScheduleError(f"iterations_per_task names task(s) {stray} that no stage introduces (stages: {order})")
    if strategy == "multitask":
        return Schedule(strategy, tuple(order), (Stage({t: iterations[t] for t in order}),),
                        joint_token_tasks=joint_token_tasks)
    if strategy == "continual":
        return Schedule(strategy, tuple(order), tuple(Stage({t: iterations[t]}) for t in order),
                        joint_token_tasks=joint_token_tasks)
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
    return Schedule(strategy, tuple(order), tuple(Stage(a) for a in ordered), learned, joint_token_tasks)


def schedule_from_config(values: dict, source: str = "config", learned: Sequence[str] = ()) -> Schedule:
    try:
        stages = values["stages"]
        n = values["iterations_per_task"]
    except KeyError as err:
        raise ScheduleError(f"{source}: missing key {err}") from None
    if isinstance(n, int):
        n = {t: n for stage in stages for t in stage}
    unknown = sorted(set(values) - {"strategy", "stages", "iterations_per_task", "joint_token_tasks"})
    if unknown:
        raise ScheduleError(f"{source}: schedule: unknown key(s) {unknown}")
    joint = values.get("joint_token_tasks", True)
    if not isinstance(joint, bool):
        raise ScheduleError(f"{source}: schedule: joint_token_tasks must be true or false, got {joint!r}")
    try:
        return build_schedule(values.get("strategy", "continual_multitask"), stages, n, learned, joint)
    except ScheduleError as err:
        raise ScheduleError(f"{source}: {err}") from None


def with_learned(schedule: Dict[str, Any], init_model: Optional[str], source: str) -> Schedule:
    """The schedule of a config's `schedule:` mapping, with the tasks its `init_model` (a model
    directory, or None) already learned."""
    learned: List[str] = []
    if init_model:
        from ernie.formats.checkpoint import CheckpointError, parameter_names
        from ernie.pretrain.init_model import learned_tasks
        try:
            tasks = [registry.get(t) for stage in schedule.get("stages", []) for t in stage]
            learned = learned_tasks(tasks, parameter_names(init_model))
        except (CheckpointError, registry.TaskError) as err:
            raise ScheduleError(f"{source}: {err}") from None
    return schedule_from_config(schedule, source=source, learned=learned)


def load_schedule(path) -> Schedule:
    """The schedule of a schedule fragment or of a pre-training config as its file says (the
    trainer's `--print-schedule` reads a whole config through its loader: paths, `--set`,
    optional tasks)."""
    values = read(path)  # the configs' reader: its errors name the file and the line
    schedule = values.get("schedule", values)
    try:
        registry.load_modules(values.get("task_modules", []))  # a user's tasks the schedule names
    except registry.TaskError as err:
        raise ScheduleError(f"{path}: {err}") from None
    return with_learned(schedule, values.get("init_model"), str(path))


def describe(schedule: Schedule, as_json: bool = False) -> str:
    """The allocation as `--print-schedule` prints it: a table of task x stage, or JSON."""
    if as_json:
        return schedule.to_json()
    rows = schedule.table()
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [f"strategy: {schedule.strategy}; "
             + ("text-task steps also train the stage's token-level tasks (joint_token_tasks)"
                if schedule.joint_token_tasks else "every step trains one task (joint_token_tasks: false)")
             + (f"; learned before (replayed from stage 1): {', '.join(schedule.learned)}" if schedule.learned else ""),
             "budgets are loss-on steps (steps on which the task's loss is on), per stage:"]
    lines += ["  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths)))
              for row in rows]
    return "\n".join(lines)


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
        schedule = load_schedule(find(args.config))
    except (ScheduleError, ConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(describe(schedule, args.json))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
