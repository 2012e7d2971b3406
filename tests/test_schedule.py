import itertools
import json
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from ernie.pretrain.schedule import ScheduleError, build_schedule, interleave, load_schedule
from tests.conftest import REPO

TABLE7 = REPO / "configs" / "pretrain"
TASKS = ["knowledge_masking", "capitalization", "token_document", "sentence_reordering"]


def _allocations(schedule):
    return [[stage.allocation.get(t) for t in TASKS] for stage in schedule.stages]


def test_continual_multitask_is_table_7():
    schedule = load_schedule(TABLE7 / "table7_continual_multitask.yaml")
    assert _allocations(schedule) == [[20000, None, None, None], [10000, 30000, None, None],
                                      [10000, 10000, 40000, None], [10000, 10000, 10000, 50000]]
    assert all(schedule.iterations(t) == 50000 for t in TASKS) and schedule.total_steps == 200000


def test_baselines_of_table_7():
    continual = load_schedule(TABLE7 / "table7_continual.yaml")
    assert _allocations(continual) == [[50000, None, None, None], [None, 50000, None, None],
                                       [None, None, 50000, None], [None, None, None, 50000]]
    multitask = load_schedule(TABLE7 / "table7_multitask.yaml")
    assert _allocations(multitask) == [[50000, 50000, 50000, 50000]]


def test_stages_interleave_in_proportion_never_in_blocks():
    steps = list(interleave({"knowledge_masking": 10, "capitalization": 30}))
    assert Counter(steps) == {"knowledge_masking": 10, "capitalization": 30}
    for window in range(0, 40, 4):  # every 4 steps: one KM, three CAP
        assert Counter(steps[window:window + 4]) == {"knowledge_masking": 1, "capitalization": 3}
    longest_run = max(len(list(g)) for _, g in itertools.groupby(steps))
    assert longest_run <= 3


def test_step_sequence_follows_the_allocation():
    schedule = build_schedule("continual_multitask", [["knowledge_masking"], ["capitalization"]],
                              {"knowledge_masking": 30, "capitalization": 30})
    counts = Counter((step.stage, step.task) for step in schedule.steps())
    assert counts == {(0, "knowledge_masking"): 20, (1, "knowledge_masking"): 10, (1, "capitalization"): 30}
    first_stage = [step.task for step in schedule.steps() if step.stage == 0]
    assert set(first_stage) == {"knowledge_masking"}


FIVE = [["knowledge_masking"], ["capitalization"], ["token_document"], ["sentence_reordering"],
        ["discourse_relation"]]
BUDGETS = {"knowledge_masking": 300, "capitalization": 120, "token_document": 90, "sentence_reordering": 200,
           "discourse_relation": 60}


@pytest.mark.parametrize("joint", [True, False])
@pytest.mark.parametrize("strategy", ["continual", "multitask", "continual_multitask"])
def test_every_task_gets_exactly_its_budget_of_loss_on_steps(strategy, joint):
    schedule = build_schedule(strategy, FIVE, BUDGETS, joint_token_tasks=joint)
    assert schedule.loss_on_steps() == BUDGETS
    for index, stage in enumerate(schedule.stages):  # per stage too
        on = Counter(t for step in schedule.steps() if step.stage == index for t in step.on)
        assert on == stage.allocation
    steps = list(schedule.steps())
    assert len(steps) == schedule.total_steps
    # the stage ends (held-out evaluation and checkpoints) are the steps after which the stage changes
    assert schedule.stage_ends == [i + 1 for i in range(len(steps)) if i + 1 == len(steps) or steps[i + 1].stage != steps[i].stage]
    if not joint or strategy == "continual":  # one task a step: equal compute for every strategy
        assert schedule.total_steps == sum(BUDGETS.values()) and all(s.on == (s.task,) for s in steps)


def test_token_tasks_ride_on_text_task_steps_spread_evenly():
    schedule = build_schedule("multitask", FIVE, BUDGETS)
    steps = list(schedule.steps())
    reordering = [s for s in steps if s.task == "sentence_reordering"]
    # 200 reordering steps carry knowledge masking on all, capitalization on 120, token-document on 90;
    # discourse relation's examples are not text segments: nothing rides on them
    assert Counter(t for s in reordering for t in s.on[1:]) == {"knowledge_masking": 200, "capitalization": 120,
                                                               "token_document": 90}
    assert all(s.on == ("discourse_relation",) for s in steps if s.task == "discourse_relation")
    rides = [i for i, s in enumerate(reordering) if "capitalization" in s.on]
    gaps = np.diff(rides)
    assert set(gaps.tolist()) <= {1, 2}  # 120 of 200: never two steps without
    own = Counter(s.task for s in steps)
    assert own == {"knowledge_masking": 100, "sentence_reordering": 200, "discourse_relation": 60}
    assert schedule.own_steps("capitalization") == 0 and schedule.total_steps == 360


def test_several_tasks_per_stage_and_unequal_n():
    schedule = build_schedule("continual_multitask", [["knowledge_masking", "capitalization"], ["sentence_reordering"]],
                              {"knowledge_masking": 30, "capitalization": 60, "sentence_reordering": 90})
    assert [stage.allocation for stage in schedule.stages] == [
        {"knowledge_masking": 20, "capitalization": 40},
        {"knowledge_masking": 10, "capitalization": 20, "sentence_reordering": 90}]


@pytest.mark.parametrize("stages,iterations,message", [
    ([["masking"]], {"masking": 5}, "unknown task"),
    ([["knowledge_masking"], ["knowledge_masking"]], {"knowledge_masking": 5}, "introduced twice"),
    ([["knowledge_masking"]], {}, "positive iteration count"),
    ([["knowledge_masking"]], {"knowledge_masking": 5, "capitalisation": 5},
     r"iterations_per_task names task\(s\) \['capitalisation'\] that no stage introduces"),
    ([["knowledge_masking"], ["capitalization"], ["token_document"]],
     {"knowledge_masking": 1, "capitalization": 5, "token_document": 5}, "cannot cover 2 later stages"),
])
def test_bad_schedules(stages, iterations, message):
    with pytest.raises(ScheduleError, match=message):
        build_schedule("continual_multitask", stages, iterations)


def test_cli_prints_table_7():
    result = subprocess.run([sys.executable, "-m", "ernie.pretrain.schedule", "--config",
                             str(TABLE7 / "table7_continual_multitask.yaml")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[3].split() == ["knowledge_masking", "20k", "10k", "10k", "10k", "50k", "50k"]
    assert lines[6].split() == ["sentence_reordering", "-", "-", "-", "50k", "50k", "50k"]
    assert lines[7].split() == ["steps", "20k", "40k", "60k", "80k", "200k"]
    as_json = subprocess.run([sys.executable, "-m", "ernie.pretrain.schedule", "--config",
                              str(TABLE7 / "ernie2_base_en.yaml"), "--json"], capture_output=True, text=True)
    printed = json.loads(as_json.stdout)
    assert printed["iterations"] == printed["loss_on_steps"] == {t: 50000 for t in TASKS + ["discourse_relation"]}
