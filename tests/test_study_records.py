"""Which files of a study's runs the repository keeps (.gitignore): the records its report reads,
never a model, shard, checkpoint or another run's output (studies.jobs.pretraining_finished,
remade_record)."""
import shutil
import subprocess

import pytest

from tests.conftest import REPO

KEPT = ["output/continual/finetune/review-sentiment-300/start/lr-0.0001/metrics.json",
        "output/continual/finetune/review-sentiment-300/start/lr-0.0001/more/metrics.json",
        "output/continual/finetune/review-sentiment-300/start/grid.json",
        "output/continual/finetune/review-sentiment-300/start/probe.json",
        "output/continual/finetune/review-sentiment-300/floor.json",
        "output/continual/growth.json",
        "output/continual/recipe-speed/off/speed.json", "output/continual/recipe-speed/off/log.jsonl",
        "output/continual/tapt-review-sentiment/pretrain/summary.json",
        "output/continual/tapt-review-sentiment/shards/manifest.json",
        "output/continue_minilm_en/pretrain/summary.json", "output/continue_minilm_en/pretrain/log.jsonl",
        "output/continue_minilm_en/pretrain/config.yaml", "output/continue_minilm_en/shards/manifest.json",
        "output/table7_small_en/continual/summary.json", "output/table7_small_en/finetune/brown-genre-2k/random/grid.json",
        "output/curve_en/long/models/tokens-1000000/tokens.json", "output/curve_en/decay-16m/summary.json",
        "output/study/ablation/summary.json",
        # a run made again from its records on a new machine (studies.jobs.remade_record)
        "output/continue_minilm_en/pretrain.recorded.json", "output/table7_small_en/continual.recorded.json",
        "output/curve_en/long.recorded.json"]
IGNORED = ["output/continue_minilm_en/shards/part-00000.shard",
           "output/continue_minilm_en/pretrain/checkpoints/latest",
           "output/continue_minilm_en/pretrain/checkpoints/step-00000060/trainer_state.json",
           "output/continue_minilm_en/pretrain/model/params.safetensors",
           "output/continue_minilm_en/pretrain/model/ernie_config.json",
           "output/curve_en/long/models/tokens-1000000/params.safetensors",
           "output/curve_en/long/models/tokens-1000000/ernie_config.json",
           "output/continual/finetune/review-sentiment-300/start/lr-0.0001/seed-1/log.jsonl",
           "output/continual/finetune/review-sentiment-300/start/lr-0.0001/finetune.log",
           "output/demo/pretrain/log.jsonl", "output/demo/pretrain/summary.json", "output/small_en/shards/manifest.json"]


@pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(), reason="needs the repository's git")
@pytest.mark.parametrize("path", KEPT + IGNORED)
def test_the_repository_keeps_a_studys_records_and_nothing_else(path):
    ignored = subprocess.run(["git", "check-ignore", "--no-index", "-q", path], cwd=REPO).returncode == 0
    assert ignored == (path in IGNORED)
