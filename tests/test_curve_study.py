"""The curve study's report (studies/curve.py) from hand-written run files whose figures are known:
the suite means per seed, the crossover with random initialisation, the gain per doubling
(against NumPy's least-squares fit), the 16 M-token comparisons, the document and its plot."""
import dataclasses
import json

import numpy as np
import pytest
import yaml

from studies import curve, downstream
from tests.test_floors import rows, write_texts

# test accuracy per seed, per model, per setting (few labels, full set)
SCORES = {
    "tokens-1000000": {"few": [0.60, 0.62, 0.58], "full": [0.80, 0.80, 0.80]},
    "tokens-4000000": {"few": [0.63, 0.65, 0.61], "full": [0.81, 0.81, 0.81]},
    "tokens-16000000": {"few": [0.68, 0.70, 0.69], "full": [0.82, 0.83, 0.81]},
    "end": {"few": [0.70, 0.72, 0.71], "full": [0.84, 0.84, 0.84]},
    "random": {"few": [0.65, 0.66, 0.64], "full": [0.83, 0.83, 0.83]},
    "decay-16m": {"few": [0.70, 0.71, 0.70], "full": [0.83, 0.83, 0.83]},
    "seq64-16m": {"few": [0.66, 0.67, 0.68], "full": [0.83, 0.82, 0.84]},
}
TOKENS = {"tokens-1000000": 1_000_300, "tokens-4000000": 4_001_200, "tokens-16000000": 16_000_800}


def _run(tmp_path, name, shards):
    config = tmp_path / f"{name}.yaml"
    config.write_text(yaml.safe_dump({"model": str(tmp_path / "model.yaml"), "output": str(tmp_path / name),
                                      "save_models_at_tokens": [1_000_000, 4_000_000, 16_000_000],
                                      "optimization": {"lr_schedule": "constant"}}), encoding="utf-8")
    data = tmp_path / "data.yaml"
    data.write_text(yaml.safe_dump({"output": str(shards)}), encoding="utf-8")
    return config, data


def make_study(tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "manifest.json").write_text(json.dumps({"unigram_entropy": {"nats": 8.0}}), encoding="utf-8")
    (tmp_path / "model.yaml").write_text(yaml.safe_dump({"num_hidden_layers": 4, "hidden_size": 256}))
    config, data = _run(tmp_path, "long", shards)
    long = curve.Run("long", config, data, tmp_path / "long")
    runs = tuple(curve.Run(n, config, data, tmp_path / n, c) for n, c in
                 (("decay-16m", "decayed"), ("seq64-16m", "64 tokens")))
    for name, tokens in TOKENS.items():  # the long run's saved models, its log and summary
        saved = long.output / "models" / name
        saved.mkdir(parents=True)
        (saved / "tokens.json").write_text(json.dumps({"tokens_seen": tokens, "step": tokens // 4000, "target": 0}))
        (saved / "params.safetensors").write_bytes(b"")
    log = [{"step": s, "knowledge_masking/loss": 8.0 - s / 1000} for s in range(100, 5001, 100)]
    for run, summary in ((long, {"tokens_seen": 20_000_000, "train_seconds": 7200.0, "machine": "CPU: X; 2 cores"}),
                         (runs[0], {"tokens_seen": 16_100_000, "train_seconds": 3600.0, "machine": "CPU: X"}),
                         (runs[1], {"tokens_seen": 16_050_000, "train_seconds": 3500.0, "machine": "CPU: X"})):
        run.output.mkdir(parents=True, exist_ok=True)
        (run.output / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
        (run.output / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log), encoding="utf-8")
        (run.output / "model").mkdir()
        (run.output / "model" / "params.safetensors").write_bytes(b"")
    rng = np.random.default_rng(3)
    labelled = write_texts(tmp_path / "labelled", {
        split: rows(rng, n, "good", "positive") + rows(rng, n, "bad", "negative")
        for split, n in (("train", 10), ("dev", 4), ("test", 4))})
    settings = (downstream.Setting("few", "review-sentiment", str(labelled), 8, 1),
                downstream.Setting("full", "review-sentiment", str(labelled), None, 1))
    out = tmp_path / "out"
    for model, scores in SCORES.items():
        for setting in settings:
            run = out / "finetune" / setting.name / model / "lr-0.001"
            run.mkdir(parents=True)
            (run / "metrics.json").write_text(json.dumps(
                {"seeds": [{"dev": {"acc": 0.6}, "test": {"acc": s}} for s in scores[setting.name]]}))
    return curve.Study(out, long, runs, settings, settings[1], (1e-3,), 3,
                       ({"name": "BERT-Tiny", "tokens": 4e10, "score": 83.2, "what": "SST-2"},))


def test_the_crossover_is_the_first_model_two_points_ahead_of_random_initialisation(tmp_path):
    study = make_study(tmp_path)
    assert [m.name for m in curve.curve_models(study)] == ["tokens-1000000", "tokens-4000000", "tokens-16000000", "end"]
    few, full = curve.crossover(study)
    # differences paired by seed: tokens-4M -2, -1, -3 (behind); tokens-16M +3, +4, +5: 4.0 ± 1.0
    assert few.startswith("- **300 labels**: pre-training is 2 points ahead of random initialisation from 16.0 M "
                          "tokens on (tokens-16000000: +4.0 ± 1.0 points")
    assert few.endswith("the last measured, end at 20.0 M tokens: +6.0 ± 1.0 points.")
    assert full.startswith("- **full training sets**: no model of the curve is 2 points ahead")


def test_the_gain_per_doubling_is_a_least_squares_line_over_the_last_three_models(tmp_path):
    study = make_study(tmp_path)
    few = next(line for line in curve.per_doubling(study) if "300 labels" in line)
    tokens = [4_001_200, 16_000_800, 20_000_000]
    means = [np.mean(SCORES[m]["few"]) for m in ("tokens-4000000", "tokens-16000000", "end")]
    slope = np.polyfit(np.log2(tokens), means, 1)[0]
    assert f"{100 * slope:+.2f} points per doubling" in few


def test_the_16m_runs_are_compared_with_the_first_paired_by_seed(tmp_path):
    study = make_study(tmp_path)
    lines = curve.ablation_table(study)
    rows_by_name = {line.split(" | ")[0].lstrip("| "): line for line in lines[2:]}
    assert list(rows_by_name) == ["decay-16m", "tokens-16000000", "seq64-16m"]
    # seq64 - decay on 300 labels: -0.04, -0.04, -0.02 -> -3.3 ± 1.2
    assert rows_by_name["seq64-16m"].endswith("| -3.3 ± 1.2 | +0.0 ± 1.0 |")
    # the long run at 16M tokens: knowledge masking over the windows up to its step (4,000)
    expected = np.mean([8.0 - s / 1000 for s in range(100, 4001, 100)][-curve.FINAL_WINDOW:]) / 8.0
    assert f"| {expected:.3f} |" in rows_by_name["tokens-16000000"]


def test_the_report_is_written_with_its_plot(tmp_path):
    study = make_study(tmp_path)
    doc = tmp_path / "docs" / "curve.md"
    doc.parent.mkdir()
    curve.report(study, doc)
    text = doc.read_text(encoding="utf-8")
    assert "${" not in text and "![the suite mean against the tokens seen](pretraining_curve.png)" in text
    assert "| end | 20.0 M | 71.0 ± 1.0 | 84.0 ± 0.0 | 71.0 ± 1.0 | 84.0 ± 0.0 |" in text
    floors = [100 * downstream.floor(study.finetune_dir, s)["test"]["acc"] for s in study.settings]
    assert (f"| floor (TF-IDF + logistic regression) | – | {floors[0]:.1f} | {floors[1]:.1f} | {floors[0]:.1f} | "
            f"{floors[1]:.1f} |") in text  # each setting's floor, and the means of one setting a group
    assert "- long: finished, 20.0 M tokens in 2.00 h of training on CPU: X; 2 cores." in text
    assert (doc.parent / "pretraining_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_study_file_names_settings_of_the_suite():
    study = curve.load_study()
    assert {s.name for s in study.settings} <= {s.name for s in downstream.language_settings("en-suite")}
    assert study.pos.task == "brown-pos" and study.runs[0].name == "decay-16m"
    assert all(isinstance(p["tokens"], float) for p in study.published)


def test_fine_tuning_takes_every_models_few_labels_before_any_full_set(tmp_path, monkeypatch):
    """The full sets take the most of the hours: an interrupted study has whole curves to report.
    Every initialisation gets the study's fine-tuning settings."""
    study = dataclasses.replace(make_study(tmp_path), finetune_settings=("amp=auto",))
    order, first = [], []
    monkeypatch.setattr(downstream, "fetch_missing", lambda settings, log_dir: None)  # no fetch
    monkeypatch.setattr(curve, "run_all", lambda jobs, what, parallel: [job() for job in jobs])
    monkeypatch.setattr(downstream, "evaluate_all", lambda settings, inits, *args, **kwargs: first.extend(inits))
    monkeypatch.setattr(downstream, "evaluate", lambda setting, init, out, **kwargs: order.append(
        (setting.name, init.name, kwargs["grid"], init.settings)))
    curve.finetune(study, parallel=1)
    models = ["tokens-1000000", "tokens-4000000", "tokens-16000000", "decay-16m", "seq64-16m"]
    assert order == [(group, m, [0.001], ("amp=auto",)) for group in ("few", "full") for m in models]
    assert [(i.name, i.settings) for i in first] == [("end", ("amp=auto",)), ("random", ("amp=auto",))]


def test_while_the_long_run_trains_random_initialisation_fine_tunes_alone(tmp_path, monkeypatch):
    study = make_study(tmp_path)
    (study.long.output / "summary.json").unlink()  # the end model is not there yet
    evaluated, others = [], []
    monkeypatch.setattr(downstream, "fetch_missing", lambda settings, log_dir: None)
    monkeypatch.setattr(curve, "run_all", lambda jobs, what, parallel: others.extend(jobs))
    monkeypatch.setattr(downstream, "evaluate_all", lambda settings, inits, *args, **kwargs: evaluated.append(
        ([s.name for s in settings], [(i.name, i.source) for i in inits])))
    curve.finetune(study, parallel=1)
    first = study.long.output / "models" / "tokens-1000000"
    assert evaluated == [(["few", "full", "full"], [("random", ("--vocab", str(first / "vocab.txt"), "--model-config",
                                                                 str(first / "ernie_config.json")))])]
    assert not others


def test_models_whose_records_came_without_them_are_not_fine_tuned(tmp_path, monkeypatch):
    """The study's records (summaries, tokens.json) come to a new machine without the models:
    fine-tuning a model that is not there failed in every run."""
    study = make_study(tmp_path)
    for path in tmp_path.rglob("params.safetensors"):
        if "seq64-16m" in str(path) or "tokens-4000000" in str(path):
            path.unlink()
    order = []
    monkeypatch.setattr(downstream, "fetch_missing", lambda settings, log_dir: None)
    monkeypatch.setattr(curve, "run_all", lambda jobs, what, parallel: [job() for job in jobs])
    monkeypatch.setattr(downstream, "evaluate_all", lambda *args, **kwargs: None)
    monkeypatch.setattr(downstream, "evaluate", lambda setting, init, out, **kwargs: order.append(init.name))
    curve.finetune(study, parallel=1)
    assert sorted(set(order)) == ["decay-16m", "tokens-1000000", "tokens-16000000"]
    for path in tmp_path.rglob("params.safetensors"):
        path.unlink()
    with pytest.raises(SystemExit, match="needs a saved model of the long run first"):
        curve.finetune(study, parallel=1)


def test_the_setup_counts_the_fine_tuning_runs_of_each_precision(tmp_path):
    study = dataclasses.replace(make_study(tmp_path), finetune_settings=("amp=auto",))
    runs = sorted(study.finetune_dir.rglob("metrics.json"))
    for path, amp in zip(runs, ["bf16", "bf16", "off"]):
        record = json.loads(path.read_text())
        path.write_text(json.dumps({**record, "settings": {"amp": amp}}))
    (runs[0].parent / "more").mkdir()
    (runs[0].parent / "more" / "metrics.json").write_text(json.dumps({"settings": {"amp": "bf16"}}))
    text = curve.setup_text(study)
    n_default = len(runs) - 3
    assert text.endswith(f"with `amp=auto`; of the fine-tuning runs so far, 3 in bfloat16 matrix products, "
                         f"{n_default + 1} in float32.")
