"""The paper-scale configs as a cluster user launches them: each loads with the paper's settings,
prints its plan with the batch and the memory a device needs at 8 and 64 devices, and trains a
few steps on this CPU in smoke mode (its own data config at 512 tokens on a small text, the model
cut to two layers of its own width, the global batch and the per-device limit shrunk so a step
accumulates two micro-batches, float32, `--max-steps 2`). Their comments state the steps and
tokens `--print-schedule` computes; a data config makes the tasks its configs train; IR relevance
is optional by the data config's one key, `click_log`."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from data_gen.config import DataConfig
from data_gen.make import make
from ernie.pretrain.config import load_config, shard_tasks, without_tasks
from ernie.pretrain.schedule import load_schedule, schedule_from_config
from ernie.pretrain.trainer import main as pretrain_main
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
    assert Path(config.data).resolve() == REPO / "output" / data_config / "shards"
    data = yaml.safe_load((REPO / "configs" / "data" / f"{data_config}.yaml").read_text())
    assert (data["max_seq_len"], data["lang"], data["task_options"]["knowledge_masking"]["mask_ratio"]) == (512, lang, 0.15)
    assert data.get("layout") == {"en": None, "zh": "paragraph_per_line"}[lang]  # zh: encyclopedia and news dumps
    # the held-out losses are measured on documents no training example holds, not on kept-out examples
    assert config.heldout.examples and data.get("heldout_documents", 0) > 0
    trained = {t for stage in config.schedule["stages"] for t in stage}
    assert trained == set(data["tasks"]) if name.startswith("ernie2_") else trained <= set(data["tasks"])
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


def _shards(corpora, lang, data_config, click_log=True):
    """Shards of the small text made with the data config; `click_log` false: without its
    `click_log` key, as a user without one runs it (IR relevance skipped)."""
    root, vocabs = corpora
    name = f"{data_config}{'' if click_log else '_without_click_log'}"
    out = root / f"shards_{name}"
    if not (out / "manifest.json").is_file():
        overrides = {"input": [str(root / f"{lang}.txt")], "vocab": str(vocabs[lang]), "output": str(out),
                     "shards": 1, "workers": 1, "layout": "paragraph_per_line" if lang == "zh" else "sentence_per_line"}
        values = {**yaml.safe_load((REPO / "configs" / "data" / f"{data_config}.yaml").read_text()), **overrides}
        if "ir_relevance" in values["task_options"]:
            del values["task_options"]["ir_relevance"]["click_log"]
            if click_log:
                values["task_options"]["ir_relevance"]["click_log"] = str(root / "clicks.tsv")
        (root / f"{name}.yaml").write_text(yaml.safe_dump(values))
        make(DataConfig.from_yaml(root / f"{name}.yaml"), progress=False)
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
    # the losses of the two steps, said at the stop; the log's records are the whole run's (log_every)
    assert re.search(r", the steps since the last log record: .*knowledge_masking/loss \d+\.\d{4}", result.stdout)
    state = json.loads((tmp_path / "run" / "checkpoints" / "step-00000002" / "trainer_state.json").read_text())
    assert state["step"] == 2 and set(state["log_window"]["sums"]) >= {"loss", "knowledge_masking/loss"}
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [0] and "heldout_loss/knowledge_masking" in records[0]
    assert not (tmp_path / "run" / "model").exists()


# ---- the comments' numbers, the task sets, IR relevance optional ---------------------------------

STATED = re.compile(r"([\d,]+) steps of ([\d,]+) tokens, ([\d.]+) billion tokens")


def _number(text: str) -> int:
    return int(text.replace(",", ""))


@pytest.mark.parametrize("name", sorted(PAPER))
def test_a_paper_configs_comment_states_the_steps_and_tokens_print_schedule_computes(name, capsys):
    """`N steps of T tokens, B billion tokens`: the run's, and where tasks are optional, the run's
    without them, in that order."""
    path = CONFIGS / f"{name}.yaml"
    config = load_config(path)
    assert pretrain_main(["--config", str(path), "--print-schedule", "--json"]) == 0
    totals = [json.loads(capsys.readouterr().out)["total_steps"]]
    if config.optional_tasks:
        totals.append(schedule_from_config(without_tasks(config.schedule, config.optional_tasks)).total_steps)
    tokens = config.global_batch_tokens
    stated = [(_number(steps), _number(per_step), float(billions)) for steps, per_step, billions in STATED.findall(path.read_text())]
    assert stated == [(n, tokens, round(n * tokens / 1e9, 1)) for n in totals]


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_a_recipes_comment_states_the_steps_its_schedule_takes(path):
    """`the run takes N steps`, `the same N steps`: the small recipes' totals."""
    for steps in re.findall(r"(?:takes|the same) ([\d,]+) steps", path.read_text()):
        assert _number(steps) == load_schedule(path).total_steps, path.name


def test_one_english_task_set():
    """The English paper configs, their data config and the English recipes train the released
    English models' five tasks (corpus_en_512.yaml says why not sentence distance)."""
    released = ["knowledge_masking", "capitalization", "token_document", "sentence_reordering", "discourse_relation"]
    data = yaml.safe_load((REPO / "configs/data/corpus_en_512.yaml").read_text())
    assert data["tasks"] == released
    for name in ("ernie2_base_en", "ernie2_large_en", "demo_en", "small_en"):
        assert [t for stage in load_config(CONFIGS / f"{name}.yaml").schedule["stages"] for t in stage] == released, name


def test_ir_relevance_is_optional_by_the_data_configs_click_log_key(corpora, capsys):
    """Without its `click_log` key the Chinese data config makes shards without IR relevance, and
    the Chinese paper configs leave its stage out (optional_tasks): the schedule their comment
    states. With it, IR relevance stays; a task not optional the shards lack stays in, for the
    trainer to refuse by name."""
    without = _shards(corpora, "zh", "corpus_zh_512", click_log=False)
    with_log = _shards(corpora, "zh", "corpus_zh_512")
    assert "ir_relevance" not in shard_tasks(without) and "ir_relevance" in shard_tasks(with_log)
    capsys.readouterr()
    config = load_config(CONFIGS / "ernie2_base_zh.yaml", overrides=[f"data={without}"])
    assert "ir_relevance left out (optional_tasks)" in capsys.readouterr().err
    assert config.schedule["stages"] == [["knowledge_masking"], ["sentence_reordering"], ["sentence_distance"],
                                         ["discourse_relation"]]
    assert schedule_from_config(config.schedule).total_steps == 170000
    assert load_config(CONFIGS / "ernie2_base_zh.yaml", overrides=[f"data={with_log}"]).schedule["stages"][-1] == ["ir_relevance"]
    strict = load_config(CONFIGS / "ernie2_base_zh.yaml", overrides=[f"data={without}", "optional_tasks=[]"])
    assert strict.schedule["stages"][-1] == ["ir_relevance"]
    assert "optional_tasks" not in load_config(CONFIGS / "ernie2_base_en.yaml").training_settings()  # old checkpoints resume
