"""The study tools (studies/): a report's template refuses a field without a value and a value
without a field, and Table 7's report reads forgetting, ordering and floors from a study's files
(hand-written run files of three strategies whose figures are known)."""
import json
import shutil

import numpy as np
import pytest
import yaml

from studies import table7
from studies.template import TemplateError, fill
from tests.conftest import REPO
from tests.test_floors import rows, write_texts


def test_a_template_needs_exactly_its_fields(tmp_path):
    template = tmp_path / "t.md"
    template.write_text("# ${title}\n\n${body}\n", encoding="utf-8")
    assert fill(template, {"title": "A", "body": "b"}) == "# A\n\nb\n"
    with pytest.raises(TemplateError, match=r"fields without values \['body'\], values without fields \[\]"):
        fill(template, {"title": "A"})
    with pytest.raises(TemplateError, match=r"values without fields \['extra'\]"):
        fill(template, {"title": "A", "body": "b", "extra": "c"})


TASKS = ("knowledge_masking", "sentence_reordering")
# held-out loss per strategy at its logged steps: continual forgets knowledge masking in stage 2
HELDOUT = {
    "continual": {0: (9.0, 3.5), 4: (6.0, 3.5), 8: (7.5, 2.0)},       # stages end at 4 and 8
    "multitask": {0: (9.0, 3.5), 4: (6.5, 2.6), 8: (6.2, 2.2)},       # one stage, ends at 8
    "continual_multitask": {0: (9.0, 3.5), 3: (6.4, 3.5), 8: (6.1, 2.1)},  # stages end at 3 and 8
}
TEST_SCORES = {"continual": [0.60, 0.62], "multitask": [0.70, 0.72], "continual_multitask": [0.80, 0.82],
               "random": [0.65, 0.65]}


def study(tmp_path):
    """A run list of one variant whose strategies and fine-tuning runs have written their files."""
    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "manifest.json").write_text(json.dumps(
        {"corpus": {"documents": 3, "sentences": 40, "tokens": 500}}), encoding="utf-8")
    data = tmp_path / "data.yaml"
    data.write_text(yaml.safe_dump({"input": "corpus.txt", "output": str(shards)}), encoding="utf-8")
    strategies = {}
    stages = {"continual": [["knowledge_masking"], ["sentence_reordering"]],
              "multitask": [["knowledge_masking", "sentence_reordering"]],
              "continual_multitask": [["knowledge_masking"], ["sentence_reordering"]]}
    for strategy in table7.STRATEGIES:
        run_dir = tmp_path / "runs" / strategy
        run_dir.mkdir(parents=True)
        config = {"model": "configs/model/micro.yaml", "data": str(shards), "output": str(run_dir), "seed": 1,
                  "batch_tokens": 256, "schedule": {"strategy": strategy, "stages": stages[strategy],
                                                    "iterations_per_task": 4, "joint_token_tasks": False}}
        strategies[strategy] = tmp_path / f"t7_{strategy}.yaml"
        strategies[strategy].write_text(yaml.safe_dump(config), encoding="utf-8")
        records = [{"step": step, **{f"heldout_loss/{t}": v for t, v in zip(TASKS, values)}}
                   for step, values in HELDOUT[strategy].items()]
        (run_dir / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        (run_dir / "summary.json").write_text(json.dumps(
            {"final_loss": {"knowledge_masking": 6.0, "sentence_reordering": 2.0},
             "knowledge_masking_over_entropy": 0.7, "train_seconds": 7200.0,
             "machine": "CPU: Test CPU; 2 cores; flags: avx2; OMP_NUM_THREADS=1",
             "segments": [{"from_step": 0, "amp": "off", "machine": None},
                          {"from_step": 4, "amp": "bf16", "machine": "CPU: Test CPU; 2 cores; flags: avx2"}]}),
            encoding="utf-8")
    rng = np.random.default_rng(3)
    labelled = write_texts(tmp_path / "labelled", {
        split: rows(rng, n, "good", "positive") + rows(rng, n, "bad", "negative")
        for split, n in (("train", 10), ("dev", 4), ("test", 4))})
    for init, scores in TEST_SCORES.items():
        run = tmp_path / "out" / "finetune" / "toy" / init / "lr-0.001"
        run.mkdir(parents=True)
        (run / "metrics.json").write_text(json.dumps(
            {"seeds": [{"dev": {"acc": 0.6}, "test": {"acc": s}} for s in scores]}), encoding="utf-8")
    run_list = tmp_path / "table7.yaml"
    run_list.write_text(yaml.safe_dump({"toy": {
        "title": "Toy variant", "data": str(data), "strategies": {s: str(p) for s, p in strategies.items()},
        "output": str(tmp_path / "out"),
        "downstream": [{"name": "toy", "task": "review-sentiment", "data": str(labelled),
                        "train_examples": None, "epochs": 1}]}}), encoding="utf-8")
    return table7.variants(run_list)["toy"]


def test_table7_report_reads_forgetting_ordering_and_floors_from_the_runs(tmp_path):
    variant = study(tmp_path)
    table = table7.forgetting_table(variant)
    assert table[2:] == [
        "| continual learning | no training (step 0) | 9.000 | 3.500 |",
        "| continual learning | stage 1 (step 4) | 6.000 | 3.500 |",
        "| continual learning | stage 2 (step 8) | 7.500 | 2.000 |",
        "| multi-task learning | no training (step 0) | 9.000 | 3.500 |",
        "| multi-task learning | stage 1 (step 8) | 6.200 | 2.200 |",
        "| continual multi-task learning | no training (step 0) | 9.000 | 3.500 |",
        "| continual multi-task learning | stage 1 (step 3) | 6.400 | 3.500 |",
        "| continual multi-task learning | stage 2 (step 8) | 6.100 | 2.100 |"]
    found = table7.forgetting(variant)
    assert found["continual"]["knowledge_masking"] == (6.0, 4, 7.5)  # lowest, its step, final
    assert found["continual_multitask"]["knowledge_masking"] == (6.1, 8, 6.1)
    summary = table7.forgetting_summary(variant)
    assert summary[4] == "| continual learning | +1.500 (6.000 at 4) | +0.000 (2.000 at 8) |"

    ordering = table7.ordering(variant)
    line = ordering[2]
    assert line == ("- review-sentiment, full training set: continual multi-task learning (81.0) > "
                    "multi-task learning (71.0) > random initialisation (65.0) > continual learning (61.0). "
                    "The paper's order of the strategies holds; ahead of random initialisation: "
                    "multi-task learning, continual multi-task learning.")
    reasons = ordering[ordering.index("") + 1:]  # the measured reasons after the order
    assert ("- review-sentiment, full training set: continual multi-task learning − multi-task learning +10.0 ± 0.0 "
            "points (seeds 1-2): beyond the spread; multi-task learning − continual learning +10.0 ± 0.0 points "
            "(seeds 1-2): beyond the spread.") in reasons
    assert "- continual learning: knowledge_masking +1.500, sentence_reordering +0.000." in reasons
    assert reasons[-1] == ("Knowledge masking's final training loss against the unigram entropy: continual learning "
                           "0.700, multi-task learning 0.700, continual multi-task learning 0.700.")
    summary_file = variant.run_dir("continual") / "summary.json"
    summary_file.write_text(json.dumps({**json.loads(summary_file.read_text()), "knowledge_masking_over_entropy": 0.752}))
    assert table7.pretraining_table(variant)[-1] == (
        "The budget was set for knowledge masking to end at most 0.75 x the unigram entropy under every strategy, "
        "well past the plateau: met by multi-task learning (0.700), continual multi-task learning (0.700); missed by "
        "continual learning (0.752).")
    assert "Training time (summary.json, over resumes): continual learning 2.00 h" in table7.machine_text(variant)
    assert ("continual learning: from step 0 in float32 on a machine not recorded, from step 4 in bfloat16 products "
            "on Test CPU;") in table7.machine_text(variant)

    doc = tmp_path / "docs" / "table7.md"
    doc.parent.mkdir()
    table7.report(doc, [variant])
    text = doc.read_text(encoding="utf-8")
    assert "${" not in text and "\n\n\n" not in text
    assert "The held-out set: examples of the training shards kept out of training" in text
    manifest = variant.data.parent / "shards" / "manifest.json"  # shards made with held-out documents
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()),
                                    "heldout": {"share": 0.05, "documents": 2, "tokens": 900}}))
    assert ("The held-out set: 2 documents (900 tokens) kept out of training whole (`heldout_documents: 0.05`)"
            in table7.setup_text(variant))
    assert "(3 documents, 40 sentences, 500 tokens)" in text and (doc.parent / "table7_toy.png").is_file()
    assert "| review-sentiment, full training set (acc) | floor: TF-IDF" in text
    # every initialisation scores below the toy set's floor (its cue words separate it): each is named
    assert text.count("against its floor's 100.0") == text.count("does not beat it, not yet useful") == 4


def test_pretraining_findings_take_their_judgement_from_the_figures():
    from studies import pretraining

    def run(loss, share, wall=60):
        return pretraining.Measured(loss, share, 1500, 1500 * 1024, wall, 1000.0, [(10, loss), (1500, loss)])

    (agree, *_) = pretraining.ablation_findings({"release": run(6.214, 0.959), "release-hf": run(6.204, 0.958)})
    assert agree.startswith("- **The two implementations agree** (0.010 nats apart) with the release settings")
    assert agree.count("on the unigram plateau") == 2
    (apart, *_) = pretraining.ablation_findings({"release": run(6.214, 0.959), "release-hf": run(5.500, 0.849)})
    assert "**The two implementations disagree** (0.714 nats apart)" in apart and "off the unigram plateau" in apart
    (task_id, *_) = pretraining.ablation_findings({"mask-40": run(5.900, 0.9), "no-task-id": run(5.990, 0.91)})
    assert task_id == "- **The task embedding.** Removing it: +0.090 (outside 0.05 nats)."


@pytest.mark.parametrize("user_set,threads,child", [(False, None, "unset"), (True, None, "1"), (False, 3, "3")])
def test_a_studys_command_trains_on_the_threads_the_user_chose_or_every_core(tmp_path, monkeypatch, user_set,
                                                                            threads, child):
    """Paddle's import sets OMP_NUM_THREADS=1 in the study's process; a child must not inherit it
    as if the user had chosen one thread."""
    import ernie
    from studies.jobs import run_python
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(ernie, "USER_SET_THREADS", user_set)
    log = tmp_path / "child.log"
    run_python(["-c", "import os; print(os.environ.get('OMP_NUM_THREADS', 'unset'))"], log=log, threads=threads)
    assert log.read_text().strip() == child


@pytest.mark.parametrize("user_set,value,parallel,threads", [(True, "1", 1, 1), (True, "3", 2, 3), (False, "1", 1, 2),
                                                               (False, "1", 2, 1)])
def test_each_run_of_a_study_takes_the_users_threads_or_its_share_of_the_cores(monkeypatch, user_set, value,
                                                                               parallel, threads):
    """With OMP_NUM_THREADS=1 set beside another study, one run at a time took both cores."""
    import ernie
    from studies import jobs
    monkeypatch.setenv("OMP_NUM_THREADS", value)
    monkeypatch.setattr(ernie, "USER_SET_THREADS", user_set)
    monkeypatch.setattr(jobs, "usable_cores", lambda: 2)
    assert jobs.job_threads(parallel) == threads


def test_a_studys_shards_are_made_once(tmp_path, monkeypatch):
    """Made again at every restart, after a change to data generation they would stop the runs'
    resume; a make that stopped (no manifest, which make removes first) is made again."""
    from studies import jobs
    made = []
    monkeypatch.setattr(jobs.subprocess, "run", lambda args, **kwargs: made.append(kwargs["env"]["DATA_CONFIG"]))
    config = tmp_path / "data.yaml"
    config.write_text(yaml.safe_dump({"output": str(tmp_path / "shards")}))
    jobs.make_shards(config)
    (tmp_path / "shards").mkdir()
    (tmp_path / "shards" / "manifest.json").write_text('{"shards": []}')
    jobs.make_shards(config)
    assert made == [str(config)]


def test_a_rate_is_chosen_only_once_its_whole_grid_has_run_and_every_grid_runs_before_the_seeds(tmp_path, monkeypatch):
    """An interrupted grid reported its best rate so far as the chosen one; and a study that ran
    grid then seeds per initialisation had no whole table until near its end."""
    import subprocess

    from studies import downstream
    setting = downstream.Setting("few", "review-sentiment", str(tmp_path), 300, 1)
    inits = [downstream.Init("a", ()), downstream.Init("b", ())]
    runs, killed = [], {("b", 1e-3)}

    def finetune(setting, init, lr, first_seed, seeds, out, threads):  # as downstream's: a finished run is read
        if (out / "metrics.json").is_file():
            return json.loads((out / "metrics.json").read_text())
        runs.append((init.name, lr, first_seed, seeds))
        if (init.name, lr) in killed:
            raise subprocess.CalledProcessError(1, ["finetune"])
        dev = {1e-4: 0.70, 1e-3: 0.80}[lr]
        report = {"seeds": [{"dev": {"acc": dev}, "test": {"acc": dev}} for _ in range(seeds)]}
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(report))
        return report
    monkeypatch.setattr(downstream, "_finetune", finetune)
    with pytest.raises(SystemExit, match="1 run"):
        downstream.evaluate_all([setting], inits, tmp_path, parallel=1, seeds=3, grid=[1e-4, 1e-3])
    assert runs == [("a", 1e-4, 1, 1), ("a", 1e-3, 1, 1), ("b", 1e-4, 1, 1), ("b", 1e-3, 1, 1)]  # the grids first
    assert downstream.collect(tmp_path, setting, "a")["lr"] == 1e-3
    assert downstream.collect(tmp_path, setting, "b") is None  # 1e-4 alone is not a choice
    killed.clear()
    downstream.evaluate_all([setting], inits, tmp_path, parallel=1, seeds=3, grid=[1e-4, 1e-3])
    assert runs[4:] == [("b", 1e-3, 1, 1), ("a", 1e-3, 2, 2), ("b", 1e-3, 2, 2)]
    assert downstream.collect(tmp_path, setting, "b")["dev"] == [0.8, 0.8, 0.8]


def test_table7_fine_tunes_the_strategies_that_have_finished_and_random_initialisation(tmp_path, capsys):
    """A core that frees up while a strategy still trains fine-tunes the others."""
    variant = study(tmp_path)
    with pytest.raises(SystemExit, match="needs a pre-trained model first"):
        table7.inits(variant)
    for strategy in ("multitask", "continual"):
        (variant.run_dir(strategy) / "model").mkdir()
        (variant.run_dir(strategy) / "model" / "params.safetensors").write_bytes(b"")
    found = table7.inits(variant)
    assert [i.name for i in found] == ["continual", "multitask", "random"]
    assert str(variant.run_dir("continual") / "model" / "vocab.txt") in found[-1].source
    assert "not pre-trained yet, fine-tuned when this runs again: continual multi-task learning" in capsys.readouterr().out


def _remade_by(variant, heldout, params_sha256=None):
    """A stand-in for `ernie.pretrain` that writes a finished run whose log holds `heldout`'s
    records, at its own pace (`tokens_per_s`, which says nothing of the model), and whose summary
    gives its parameters' sha256."""
    def run_python(args, log, threads=None):
        out = next(d for d in map(variant.run_dir, table7.STRATEGIES)
                   if str(variant.strategies[d.name]) == args[args.index("--config") + 1])
        (out / "model").mkdir(parents=True)
        (out / "model" / "params.safetensors").write_bytes(b"")
        records = [{"step": step, **{f"heldout_loss/{t}": v for t, v in zip(TASKS, values)}, "tokens_per_s": 99.0}
                   for step, values in heldout.items()]
        (out / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        (out / "summary.json").write_text(json.dumps({"params_sha256": params_sha256}), encoding="utf-8")
    return run_python


@pytest.mark.parametrize("same, by", [(True, "log"), (False, "log"), (True, "parameters"), (False, "parameters")])
def test_a_run_whose_records_came_without_its_model_is_made_again_and_keeps_its_fine_tuning_records_only_if_the_same(
        tmp_path, monkeypatch, capsys, same, by):
    """A study's records are committed, its models and checkpoints are not: on a new machine a
    finished run was skipped for its summary, and its model's fine-tuning then waited for ever (or
    a run made again would have shared a table with the lost model's scores). A run made again on
    the same kind of machine is the same run, to the last digit: its hours of fine-tuning stand."""
    from studies import jobs
    variant = study(tmp_path)  # every run has its records (log, summary) and nothing else
    if by == "parameters":  # a summary since 2026-12-08: the parameters decide, whatever the log says
        (variant.run_dir("continual_multitask") / "summary.json").write_text(json.dumps({"params_sha256": "ab12"}))
    finetuned = variant.output / "finetune" / "toy"
    (variant.run_dir("continual") / "model").mkdir()
    (variant.run_dir("continual") / "model" / "params.safetensors").write_bytes(b"")  # finished here
    (variant.run_dir("multitask") / "checkpoints").mkdir()  # training here: resumes, its records stay
    (variant.run_dir("multitask") / "checkpoints" / "latest").write_text("step-4")
    (variant.run_dir("multitask") / "summary.json").unlink()
    for init in ("continual", "continual_multitask", "random"):
        (finetuned / init / "lr-0.001").mkdir(parents=True, exist_ok=True)
    ran = []
    monkeypatch.setattr(table7, "make_shards", lambda data: None)
    monkeypatch.setattr(jobs, "run_python", lambda args, log, threads=None: ran.append(args))
    with pytest.raises(SystemExit, match="not the repository's: another process may be starting it"):
        table7.pretrain(variant, parallel=1)  # records of this machine's (not committed): never removed
    assert variant.run_dir("continual_multitask").is_dir() and (finetuned / "continual_multitask").is_dir()
    ran.clear()
    monkeypatch.setattr(jobs, "_committed_unchanged", lambda folder: True)  # the repository's records
    table7.pretrain(variant, parallel=1)  # killed before the run made again ends
    assert [(a[a.index("--config") + 1], "--resume" in a) for a in ran] == [
        (str(variant.strategies["multitask"]), True), (str(variant.strategies["continual_multitask"]), False)]
    assert not variant.run_dir("continual_multitask").exists()
    assert (variant.run_dir("multitask") / "log.jsonl").is_file()
    assert "its model's 1 fine-tuning records stay if it makes the same model" in capsys.readouterr().out
    recorded = jobs.remade_record(variant.run_dir("continual_multitask"))
    assert json.loads(recorded.read_text())["dependents"] == [str(finetuned / "continual_multitask")]

    # on the next machine the partial run is the repository's record: the first record still counts
    variant.run_dir("continual_multitask").mkdir()
    (variant.run_dir("continual_multitask") / "log.jsonl").write_text('{"step": 0, "loss": 1.0}\n')
    if by == "log":
        heldout, params = {**HELDOUT["continual_multitask"], **({} if same else {8: (6.1, 2.2)})}, None
    else:  # the log unlike the record's where the parameters are the same, and like it where they are not
        heldout, params = {**HELDOUT["continual_multitask"], **({8: (6.1, 2.2)} if same else {})}, "ab12" if same else "cd34"
    monkeypatch.setattr(jobs, "run_python", _remade_by(variant, heldout, params))
    (variant.run_dir("multitask") / "summary.json").write_text("{}")
    table7.pretrain(variant, parallel=1)
    assert not recorded.exists()
    assert sorted(p.name for p in finetuned.iterdir()) == (
        ["continual", "continual_multitask", "multitask", "random"] if same else ["continual", "multitask", "random"])
    assert (f"its {by} equal to the recorded run's: the same model, its 1 fine-tuning records stand" if same else
            f"its {by} unlike the recorded run's: another model, its 1 fine-tuning records removed") \
        in capsys.readouterr().out


def test_fine_tuning_settles_a_run_made_again_that_ended_unsettled_and_waits_for_one_still_ending(tmp_path, monkeypatch):
    """Killed between its end and its settling (or ended by another command), a run made again
    left its lost model's records beside its own model: a fine-tuning then would mix the two."""
    from studies import jobs
    variant = study(tmp_path)
    finetuned = variant.output / "finetune" / "toy"
    monkeypatch.setattr(table7, "make_shards", lambda data: None)
    monkeypatch.setattr(jobs, "_committed_unchanged", lambda folder: True)
    monkeypatch.setattr(jobs, "run_python", lambda args, log, threads=None: None)
    for strategy in table7.STRATEGIES:
        (finetuned / strategy / "lr-0.001").mkdir(parents=True, exist_ok=True)
    table7.pretrain(variant, parallel=1)  # all three made again, killed at once
    run = variant.run_dir("multitask")
    _remade_by(variant, {0: (1.0, 1.0)})(["--config", str(variant.strategies["multitask"])], None)  # ended elsewhere
    (variant.run_dir("continual") / "model").mkdir(parents=True)  # its model written, its summary not yet
    (variant.run_dir("continual") / "model" / "params.safetensors").write_bytes(b"")
    ran = []
    monkeypatch.setattr(table7.downstream, "evaluate_all", lambda *args, **kwargs: ran.append(args))
    with pytest.raises(SystemExit, match=r"continual: a run made again whose model is written but whose run has not "
                                         r"ended: let its pre-training end"):
        table7.finetune(variant, seeds=1)
    assert not jobs.remade_record(run).exists() and not (finetuned / "multitask").exists() and not ran
    assert (finetuned / "continual").is_dir() and jobs.remade_record(variant.run_dir("continual")).is_file()


@pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(), reason="needs the repository's git")
def test_records_count_as_the_repositorys_only_when_committed_and_unchanged(tmp_path):
    from studies import jobs
    assert jobs._committed_unchanged(jobs.ROOT / "data_gen" / "demo")  # tracked, never edited
    (tmp_path / "summary.json").write_text("{}")
    assert not jobs._committed_unchanged(tmp_path)  # outside the repository
    assert not jobs._committed_unchanged(tmp_path / "empty")
    (tmp_path / "run").mkdir()  # a run stopped before it wrote anything starts again
    assert not jobs.pretraining_finished(tmp_path / "run", tmp_path / "run" / "model")


def test_shards_count_as_made_only_with_every_shard_the_manifest_lists(tmp_path):
    """The manifest is among a study's records; on a new machine it comes without its shards."""
    from studies import jobs
    assert not jobs.shards_made(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"shards": [{"file": "part-00000.shard"}]}))
    assert not jobs.shards_made(tmp_path)
    (tmp_path / "part-00000.shard").write_bytes(b"")
    assert jobs.shards_made(tmp_path)


def test_a_studys_labelled_sets_missing_on_a_new_machine_are_fetched(tmp_path, monkeypatch):
    """The continual study's fine-tuning failed on a new machine: its spam-email set was never
    fetched (only its task-adaptive texts were)."""
    from studies import downstream
    fetched = []
    monkeypatch.setattr(downstream, "run_python", lambda args, log: fetched.append((args, log)))
    (tmp_path / "here").mkdir()
    settings = [downstream.Setting("a-300", "spam-email", str(tmp_path / "data" / "spam-email"), 300, 1),
                downstream.Setting("a-full", "spam-email", str(tmp_path / "data" / "spam-email"), None, 1),
                downstream.Setting("b", "review-sentiment", str(tmp_path / "here"), None, 1)]
    downstream.fetch_missing(settings, tmp_path / "logs")
    assert fetched == [(["-m", "data_gen", "fetch", "spam-email", "--dir", str(tmp_path / "data")],
                        tmp_path / "logs" / "fetch-spam-email.log")]
