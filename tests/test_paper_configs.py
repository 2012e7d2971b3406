"""The paper-scale configs as a cluster user launches them: each loads with the paper's settings,
prints its plan with the batch and the memory a device needs at 8 and 64 devices, and trains a
few steps on this CPU in smoke mode (its own data config at 512 tokens on a small text, the model
cut to two layers of its own width, the global batch and the per-device limit shrunk so a step
accumulates two micro-batches, float32, `--max-steps 2`)."""
import json
import subprocess
import sys

import pytest
import yaml

from data_gen.config import DataConfig
from data_gen.make import make
from ernie.pretrain.config import load_config
from tests.conftest import REPO

CONFIGS = REPO / "configs" / "pretrain"
PAPER = {  # config -> (language, data config, learning rate)
    "ernie2_base_en": ("en", "corpus_en_512", 5e-5), "ernie2_large_en": ("en", "corpus_en_512", 5e-5),
    "ernie2_base_zh": ("zh", "corpus_zh_512", 1.28e-4), "ernie2_large_zh": ("zh", "corpus_zh_512", 1.28e-4),
    "table7_continual": ("en", "corpus_en_512", 5e-5), "table7_multitask": ("en", "corpus_en_512", 5e-5),
    "table7_continual_multitask": ("en", "corpus_en_512", 5e-5),
}
SMOKE = ["ernie2_base_en", "ernie2_large_en", "ernie2_base_zh", "ernie2_large_zh", "table7_continual_multitask"]


@pytest.mark.parametrize("name", sorted(PAPER))
def test_a_paper_config_has_the_papers_settings_and_prints_its_plan(name):
    lang, data_config, lr = PAPER[name]
    config = load_config(CONFIGS / f"{name}.yaml")
    assert (config.global_batch_tokens, config.amp, config.optimization.learning_rate) == (393216, "fp16", lr)
    assert (config.optimization.warmup_steps, config.optimization.lr_schedule, config.optimization.beta2) == \
        (4000, "noam", 0.98)
    assert config.data == f"output/{data_config}/shards"
    data = yaml.safe_load((REPO / "configs" / "data" / f"{data_config}.yaml").read_text())
    assert (data["max_seq_len"], data["lang"], data["task_options"]["knowledge_masking"]["mask_ratio"]) == (512, lang, 0.15)
    assert {t for stage in config.schedule["stages"] for t in stage} <= set(data["tasks"])
    plans = {n: config.batch_plan(n) for n in (8, 48, 64)}
    assert [(p.accumulate, p.micro_tokens) for p in plans.values()] == [(6, 8192), (1, 8192), (1, 6144)]
    printed = subprocess.run([sys.executable, "-m", "ernie.pretrain", "--config", str(CONFIGS / f"{name}.yaml"),
                              "--print-schedule"], capture_output=True, text=True, cwd=REPO)
    assert printed.returncode == 0, printed.stderr
    for line in ("  8 device(s): 393,216 tokens a step = 8 rank(s) x 6 micro-batch(es) of 8,192; ",
                 " 64 device(s): 393,216 tokens a step = 64 rank(s) x 1 micro-batch(es) of 6,144; "):
        assert line in printed.stdout, printed.stdout
    assert "GB a device (estimate:" in printed.stdout


@pytest.fixture(scope="module")
def corpora(tmp_path_factory, en_vocab, en_lines, zh_vocab, zh_lines):
    """A small text, its vocabulary and (Chinese) a click log, per language."""
    root = tmp_path_factory.mktemp("paper_corpora")
    (root / "en.txt").write_text("\n".join(en_lines[:3000]) + "\n", encoding="utf-8")
    (root / "zh.txt").write_text("\n".join(zh_lines[:1500]) + "\n", encoding="utf-8")
    clicks = [f"{line[:6]}\t{line[:24]}\t{k % 4}\t{3 + k % 5}" for k, line in enumerate(zh_lines[:400]) if len(line) > 24]
    (root / "clicks.tsv").write_text("\n".join(clicks) + "\n", encoding="utf-8")
    return root, {"en": en_vocab, "zh": zh_vocab}


def _shards(corpora, lang, data_config):
    root, vocabs = corpora
    out = root / f"shards_{data_config}"
    if not (out / "manifest.json").is_file():
        overrides = {"input": [str(root / f"{lang}.txt")], "vocab": str(vocabs[lang]), "output": str(out),
                     "shards": 1, "workers": 1, "layout": "paragraph_per_line" if lang == "zh" else "sentence_per_line"}
        values = {**yaml.safe_load((REPO / "configs" / "data" / f"{data_config}.yaml").read_text()), **overrides}
        if lang == "zh":
            values["task_options"]["ir_relevance"] = {"click_log": str(root / "clicks.tsv")}
        (root / f"{data_config}.yaml").write_text(yaml.safe_dump(values))
        make(DataConfig.from_yaml(root / f"{data_config}.yaml"), progress=False)
    return out


@pytest.mark.parametrize("name", SMOKE)
def test_a_paper_config_trains_a_few_steps_in_smoke_mode(name, corpora, tmp_path):
    lang, data_config, _ = PAPER[name]
    shards = _shards(corpora, lang, data_config)
    config = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
    model = yaml.safe_load((REPO / config["model"]).read_text())
    (tmp_path / "model.yaml").write_text(yaml.safe_dump({**model, "num_hidden_layers": 2}))
    result = subprocess.run(
        [sys.executable, "-m", "ernie.pretrain", "--config", str(CONFIGS / f"{name}.yaml"), "--quiet", "--amp", "off",
         "--max-steps", "2", "--output", str(tmp_path / "run"),
         "--set", f"data={shards}", "--set", f"model={tmp_path / 'model.yaml'}", "--set", "global_batch_tokens=2048",
         "--set", "max_tokens_per_device=1024", "--set", "heldout.examples=4"],
        capture_output=True, text=True, cwd=REPO, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "batch: 2,048 tokens a step = 1 rank(s) x 2 micro-batch(es) of 1,024" in result.stdout
    assert "stopped after step 2 of" in result.stdout
    state = json.loads((tmp_path / "run" / "checkpoints" / "step-00000002" / "trainer_state.json").read_text())
    assert state["step"] == 2
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [2]
    assert records[0]["step"] == 0 and "heldout_loss/knowledge_masking" in records[0]
    assert not (tmp_path / "run" / "model").exists()
