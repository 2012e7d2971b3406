import itertools
import json
import subprocess
import sys
from collections import Counter

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
    counts = Counter(schedule.steps())
    assert counts == {(0, "knowledge_masking"): 20, (1, "knowledge_masking"): 10, (1, "capitalization"): 30}
    first_stage = [task for stage, task in schedule.steps() if stage == 0]
    assert set(first_stage) == {"knowledge_masking"}


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
    assert lines[2].split() == ["knowledge_masking", "20k", "10k", "10k", "10k", "50k"]
    assert lines[5].split() == ["sentence_reordering", "-", "-", "-", "50k", "50k"]
    as_json = subprocess.run([sys.executable, "-m", "ernie.pretrain.schedule", "--config",
                              str(TABLE7 / "ernie2_en.yaml"), "--json"], capture_output=True, text=True)
    assert json.loads(as_json.stdout)["iterations"] == {t: 50000 for t in TASKS + ["discourse_relation"]}
