"""The pre-training recipes (docs/pretraining.md): their configs load with the settings the document
gives, the faithful settings of the paper still train, and a short run of the recipe on tiny shards
gets the knowledge-masking loss under the unigram entropy of the shards' own tokens."""
import json
import subprocess
import sys

import pytest
import yaml

from data_gen.config import DataConfig
from data_gen.make import make
from ernie.model.config import ErnieConfig
from ernie.pretrain.config import PretrainError, load_config
from ernie.pretrain.log import read_log, summary
from ernie.pretrain.schedule import schedule_from_config
from tests.conftest import REPO
from tests.test_data_gen_make import _documents

RECIPES = {  # pre-training config -> (data config, model preset)
    "demo_en": ("demo_en", "micro"),
    "small_en": ("sotu_en", "tiny"),
    "small_zh": ("peoples_daily_zh", "tiny"),
}


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_settings_load_as_documented(name):
    data_name, preset = RECIPES[name]
    config = load_config(REPO / "configs" / "pretrain" / f"{name}.yaml")
    data = yaml.safe_load((REPO / "configs" / "data" / f"{data_name}.yaml").read_text(encoding="utf-8"))
    assert config.data == data["output"]  # the pre-training config reads what the data config writes
    assert config.model == f"configs/model/{preset}.yaml"
    model = ErnieConfig.from_file(REPO / config.model, vocab_size=8000)
    assert model.hidden_act == "gelu" and model.use_task_id  # the paper's architecture (post-LN is the only one)
    assert model.hidden_dropout_prob == 0.1  # fine-tuning keeps dropout ...
    assert config.dropout == 0.0           # ... pre-training runs without it
    assert data["task_options"]["knowledge_masking"]["mask_ratio"] == 0.4
    assert config.optimization.lr_schedule == "linear" and config.optimization.learning_rate == 1e-3
    schedule = schedule_from_config(config.schedule)
    assert schedule.strategy == "continual_multitask"
    assert schedule.tasks[0] == "knowledge_masking"
    km = schedule.iterations("knowledge_masking")
    assert km > sum(schedule.iterations(t) for t in schedule.tasks[1:])  # most of the budget


def test_recipe_config_values_are_checked(tmp_path):
    base = "model: m\ndata: d\noutput: o\nschedule: {}\n"
    path = tmp_path / "c.yaml"
    for bad, message in (("dropout: 1.5\n", "dropout must be in"),
                         ("optimization: {learning_rate: fast}\n", "learning_rate must be a number"),
                         ("optimization: {warmup_proportion: 2}\n", "warmup_proportion must be in"),
                         ("optimization: {lr_schedule: cosine}\n", "lr_schedule must be one of"),
                         ("batch_tokens: 10.5\n", "batch_tokens must be an integer")):
        path.write_text(base + bad)
        with pytest.raises(PretrainError, match=message):
            load_config(path)


@pytest.fixture(scope="module")
def tiny_shards(tmp_path_factory, en_vocab):
    """Shards of a few documents of the demo corpus, masked 40% as the recipes mask."""
    root = tmp_path_factory.mktemp("recipe")
    (root / "corpus.txt").write_text("".join("".join(doc) + "\n" for doc in _documents(3, 20)), encoding="utf-8")
    manifest = make(DataConfig(input=[str(root / "corpus.txt")], vocab=str(en_vocab), output=str(root / "shards"),
                               tasks=["knowledge_masking", "capitalization"], max_seq_len=64, shards=1,
                               task_options={"knowledge_masking": {"mask_ratio": 0.4}},
                               stopwords=str(REPO / "configs/stopwords/en.txt")), progress=False)
    (root / "model.yaml").write_text(yaml.safe_dump(dict(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
        max_position_embeddings=64, use_task_id=True, task_type_vocab_size=8)))
    return root, manifest


def _run(root, name, **settings):
    config = dict(model=str(root / "model.yaml"), data=str(root / "shards"), output=str(root / name), seed=1,
                  batch_tokens=512, log_every=10, checkpoint_every=10000,
                  schedule={"strategy": "continual", "stages": [["knowledge_masking"]], "iterations_per_task": 300},
                  **settings)
    (root / f"{name}.yaml").write_text(yaml.safe_dump(config))
    result = subprocess.run([sys.executable, "-m", "ernie.pretrain", "--config", str(root / f"{name}.yaml"),
                             "--quiet"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return result, read_log(root / name)


def test_a_short_recipe_run_gets_under_the_unigram_entropy(tiny_shards):
    root, manifest = tiny_shards
    entropy = manifest["unigram_entropy"]["nats"]
    result, records = _run(root, "recipe", dropout=0.0,
                           optimization={"learning_rate": 1e-3, "warmup_proportion": 0.1, "lr_schedule": "linear"})
    final = summary(records, entropy)
    assert final["final_loss"]["knowledge_masking"] < entropy, (final, entropy)
    assert f"x the unigram entropy of its tokens ({entropy:.3f} nats" in result.stdout
    written = json.loads((root / "recipe" / "summary.json").read_text())
    assert written["knowledge_masking_over_entropy"] == pytest.approx(final["knowledge_masking_over_entropy"])


def test_the_faithful_settings_still_train(tiny_shards):
    """The paper's optimisation (noam, dropout 0.1 from the model preset), post-LN as always."""
    root, _ = tiny_shards
    _, records = _run(root, "faithful", optimization={"learning_rate": 5e-4, "warmup_steps": 30, "lr_schedule": "noam"})
    losses = [r["knowledge_masking/loss"] for r in records]
    assert losses[-1] < losses[0] - 1.0
