"""studies.continual read from run files: which initialisations need more seeds, the goal's
questions answered from the figures, and seeds added at the chosen rate counted once, in order."""
import json

from studies import continual, downstream

SETTING = downstream.Setting("review-sentiment-300", "review-sentiment", "data/review-sentiment", 300, 10)


def write(out, init, lr, tests, dev=0.7, more=None, first=1):
    """metrics.json of seeds `first`, ... scoring `tests` on test and `dev` (one value, or one a seed)."""
    run = out / SETTING.name / init / f"lr-{lr:g}" / (more or "")
    run.mkdir(parents=True, exist_ok=True)
    devs = dev if isinstance(dev, list) else [dev] * len(tests)
    (run / "metrics.json").write_text(json.dumps({"seeds": [{"seed": first + k, "dev": {"acc": d}, "test": {"acc": t}}
                                                            for k, (t, d) in enumerate(zip(tests, devs))]}))


def test_initialisations_their_seeds_do_not_tell_apart_on_dev_are_close(tmp_path):
    """On dev (test chooses nothing), paired by seed: the 95% interval of the difference holds 0."""
    write(tmp_path, "start", 2e-5, [0.5] * 3, dev=[0.80, 0.82, 0.84])
    write(tmp_path, "continued", 2e-5, [0.9] * 3, dev=[0.81, 0.84, 0.83])  # +0.01, +0.02, -0.01: holds 0
    write(tmp_path, "random", 1e-3, [0.5] * 3, dev=[0.60, 0.61, 0.62])    # far from both
    assert continual.close_pairs(tmp_path, SETTING, ["start", "continued", "random"]) == ["continued", "start"]
    write(tmp_path, "continued", 2e-5, [0.5] * 3, dev=[0.83, 0.85, 0.86])  # +0.03, +0.03, +0.02: told apart
    assert continual.close_pairs(tmp_path, SETTING, ["start", "continued", "random"]) == []


def test_more_seeds_join_the_chosen_rate_in_seed_order(tmp_path):
    write(tmp_path, "start", 2e-5, [0.80], dev=0.9)
    write(tmp_path, "start", 1e-4, [0.10], dev=0.5)  # not chosen: its dev is lower
    write(tmp_path, "start", 2e-5, [0.81, 0.82], more="more", first=2)
    write(tmp_path, "start", 2e-5, [0.83, 0.84], more="more-4", first=4)
    found = downstream.collect(tmp_path, SETTING, "start")
    assert found["lr"] == 2e-5 and found["test"] == [0.80, 0.81, 0.82, 0.83, 0.84] and found["seeds"] == [1, 2, 3, 4, 5]


def test_the_reading_pairs_seeds_and_names_what_has_not_run(tmp_path, monkeypatch):
    """A verdict from means alone called -0.2 points 'behind' where the seeds' spread was 0.9; the
    seeds a model had beyond the other's entered its mean; a setting of one seed counted."""
    from scipy.stats import t
    study = continual.load_study()
    assert study["seeds"] == 3
    monkeypatch.setattr(continual, "suite_settings", lambda s: [SETTING])
    write(tmp_path, "start", 2e-5, [0.79, 0.80, 0.81])
    write(tmp_path, "start", 2e-5, [0.70, 0.70], more="more-4", first=4)  # seeds continued lacks: left out
    write(tmp_path, "continued", 2e-5, [0.78, 0.80, 0.80])  # -0.01, 0, -0.01
    write(tmp_path, "tapt-review-sentiment", 2e-5, [0.82])  # 1 of 3 seeds
    lines = continual.reading(tmp_path, study)
    half = 100 * t.ppf(0.975, 2) * 0.005773502691896258 / 3 ** 0.5  # the sd of (-0.01, 0, -0.01), over 3 seeds
    assert lines[0] == (f"- Continued against start, test suite mean over the 1 setting(s) both have complete: -0.7 ± "
                        f"{half:.1f} points (seeds 1-3): within the spread; level within the spread: not measurably "
                        f"behind, so the goal (at least level) is met as far as 3 seeds can tell, and no gain is shown.")
    assert lines[1] == ("- task-adaptive (review-sentiment texts) against start on its own task (the goal: at least +1 "
                        "point): review-sentiment-300 not measured yet: not measured on every setting yet.")
    assert lines[2].endswith("review-sentiment-300 -0.7 ± 1.4 points (seeds 1-3): within the spread; 0 of 1 beyond the spread.")
    assert "task-adaptive (review-sentiment texts) on review-sentiment-300 (1 of 3 seeds)" in lines[-1 if "edge" not in
                                                                                                    lines[-1] else -2]
    write(tmp_path, "continued", 2e-5, [0.75, 0.76, 0.77])  # -0.04 each seed: beyond
    write(tmp_path, "tapt-review-sentiment", 2e-5, [0.82, 0.81, 0.83])  # +0.03, +0.01, +0.02
    lines = continual.reading(tmp_path, study)
    assert lines[0].endswith("-4.0 ± 0.0 points (seeds 1-3): beyond the spread; **behind** beyond the spread: against the goal.")
    assert lines[1].endswith("+2.0 ± 2.5 points (seeds 1-3): within the spread: +1 point by the mean, but the seeds do not "
                             "tell it from no gain: **not shown**.")
    write(tmp_path, "tapt-review-sentiment", 2e-5, [0.81, 0.82, 0.83])  # +0.02 each seed
    assert continual.reading(tmp_path, study)[1].endswith(
        "+2.0 ± 0.0 points (seeds 1-3): beyond the spread: met: at least +1 point, and ahead beyond the spread.")


def test_the_texts_table_reads_each_runs_manifest(tmp_path, monkeypatch):
    """One-sentence documents: reordering examples all in order, no token-document label."""
    def shards(name, reorder, tokdoc):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "manifest.json").write_text(json.dumps({
            "corpus": {"documents": 10, "sentences_per_document": 1.0, "words_per_sentence": 9.5},
            "labels_per_task": {"sentence_reordering": reorder},
            "token_labels": {"capitalization": {"0": 5}, **({"token_document": tokdoc} if tokdoc else {})}}))
        return continual.Run(name, tmp_path, tmp_path, (), (), folder, tmp_path / name / "run")
    found = [shards("continued", {"0": 3, "1": 1}, {"0": 4, "1": 6}), shards("tapt-x", {"0": 10}, None)]
    monkeypatch.setattr(continual, "runs", lambda study: found)
    lines = continual.texts_table({})
    assert lines[2] == "| continued | 10 | 1.0 | 9.5 | 4 | 75% | 10 |"
    assert lines[3] == "| tapt-x | 10 | 1.0 | 9.5 | 10 | 100% | 0 |"


def test_the_recipes_minutes_are_its_tokens_over_the_pace_measured_alone(tmp_path, monkeypatch):
    recipe = continual.Run("continued", tmp_path, tmp_path, (), (), tmp_path / "shards", tmp_path / "recipe")
    recipe.run_dir.mkdir()
    (recipe.run_dir / "log.jsonl").write_text("".join(
        json.dumps({"step": s, "loss": 1.0, "tokens": 100_000, "tokens_per_s": 900.0}) + "\n" for s in (10, 20, 30)))
    monkeypatch.setattr(continual, "runs", lambda study: [recipe])
    study = {"output": str(tmp_path / "study")}
    assert "python -m studies.continual speed" in continual.speed_text(study)
    for amp, recorded, paces in (("off", "off", (500.0, 2000.0, 2000.0)), ("auto", "bf16", (500.0, 3000.0, 1000.0))):
        out = tmp_path / "study" / "recipe-speed" / amp
        out.mkdir(parents=True)  # the run's records only (what the repository keeps of it)
        (out / continual.SPEED_RECORD).write_text(json.dumps(
            {"from_step": 0, "amp": recorded, "machine": "CPU: Test CPU; 2 cores"}))
        (out / "log.jsonl").write_text("".join(json.dumps({"step": 10 * (i + 1), "tokens": 40_000, "tokens_per_s": p})
                                               + "\n" for i, p in enumerate(paces)))
    text = continual.speed_text(study)
    # the first window (start-up) left out; the pace is tokens over seconds: 80,000 / 40 s, 80,000 / 53.3 s
    assert "in float32 (amp off) 2,000 tokens/s: continued 2.5 min (0.30 M tokens)" in text
    assert "in bfloat16 products (amp auto) 1,500 tokens/s: continued 3.3 min" in text
    assert "on CPU: Test CPU; 2 cores" in text


def write_probe(out, setting, init, score):
    (out / setting.name / init).mkdir(parents=True, exist_ok=True)
    (out / setting.name / init / "probe.json").write_text(json.dumps({"test": {"acc": score}}))


def test_the_probe_table_reads_each_initialisations_probe_and_marks_the_missing(tmp_path, monkeypatch):
    study = continual.load_study()
    study["settings"] = [SETTING.name]
    monkeypatch.setattr(continual, "suite_settings", lambda s: [SETTING])
    assert continual.probe_table(tmp_path, study)[0].startswith("No linear probe")
    for init, score in (("start", 0.85), ("continued", 0.80)):
        write_probe(tmp_path, SETTING, init, score)
    header, _, row = continual.probe_table(tmp_path, study)
    titles = [m.title for m in continual.measured(study)]
    assert header == "| task | " + " | ".join(titles) + " |"
    cells = dict(zip(titles, row.strip("|").split(" | ")[1:]))
    assert cells[titles[0]] == "85.0" and cells["continued (corpus)"] == "80.0 (-5.0)"
    assert cells["task-adaptive (review-sentiment texts)"] == "…"  # measured here, its probe not run yet
    assert cells["task-adaptive (tweet-sentiment texts)"].strip() == ""  # not measured on this task
    assert continual.probe_lines(tmp_path, study) == [
        "- The frozen vectors (linear probe below, continued minus start; one fit on one training sample each, no "
        "spread over seeds): -5.0 points over 1 setting(s) with few labels."]


def test_the_probe_gaps_are_stated_without_a_reading_beyond_them(tmp_path, monkeypatch):
    """Few labels losing and many gaining once made the report tell why, from the signs of two
    single fits."""
    full = downstream.Setting("review-sentiment-full", "review-sentiment", "data/review-sentiment", None, 3)
    study = continual.load_study()
    study["settings"] = [SETTING.name, full.name]
    monkeypatch.setattr(continual, "suite_settings", lambda s: [SETTING, full])
    for setting, start, continued in ((SETTING, 0.85, 0.80), (full, 0.88, 0.90)):
        write_probe(tmp_path, setting, "start", start)
        write_probe(tmp_path, setting, "continued", continued)
    [line] = continual.probe_lines(tmp_path, study)
    assert line.endswith("): -5.0 points over 1 setting(s) with few labels; +2.0 points over 1 setting(s) with the "
                         "full training sets.")


def test_a_rate_chosen_at_the_edge_of_its_grid_is_named(tmp_path, monkeypatch):
    study = continual.load_study()
    study["settings"] = [SETTING.name]
    monkeypatch.setattr(continual, "suite_settings", lambda s: [SETTING])
    for lr, dev in ((2e-5, 0.70), (1e-4, 0.75), (5e-4, 0.80)):  # the highest wins on dev
        write(tmp_path, "continued", lr, [0.8], dev=dev)
    for lr, dev in ((2e-5, 0.70), (1e-4, 0.85), (5e-4, 0.80)):  # the middle
        write(tmp_path, "start", lr, [0.8], dev=dev)
    write(tmp_path, "random", 1e-4, [0.6], dev=0.6)  # its grid not complete yet: not judged
    assert continual.grid_edges(tmp_path, study) == ["continued (corpus) on review-sentiment-300: 0.0005 (highest)"]
