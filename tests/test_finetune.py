"""Fine-tuning end to end on small files in public formats, and the kinds' feature and decoding
rules on hand-computed cases."""
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score

from ernie.finetune.__main__ import main as finetune_main
from ernie.finetune.examples import MrcExample, TaggedExample, TextExample
from ernie.finetune.labelling_kind import LabellingKind
from ernie.finetune.mrc_kind import MrcKind
from ernie.finetune.settings import SettingsError, config_for, load_settings
from ernie.finetune.tasks import get_task
from ernie.finetune.trainer import FinetuneJob, label_set, read_data, resolve_casing
from ernie.formats.checkpoint import model_lower_cases
from ernie.model.params_io import scope_params
from ernie_common.tokenization import FullTokenizer

WORDS = ["war", "peace", "economy", "congress", "nation", "people", "freedom", "taxes"]


def write_sst2(directory, n_train=48, n_dev=16):
    """SST-2 files whose label says whether the sentence mentions war or taxes."""
    rng = np.random.default_rng(0)
    directory.mkdir(parents=True, exist_ok=True)

    def rows(n):
        for _ in range(n):
            words = list(rng.choice(WORDS, 6))
            yield " ".join(words), int("war" in words or "taxes" in words)

    (directory / "train.tsv").write_text("sentence\tlabel\n" + "".join(f"{s}\t{l}\n" for s, l in rows(n_train)))
    (directory / "dev.tsv").write_text("sentence\tlabel\n" + "".join(f"{s}\t{l}\n" for s, l in rows(n_dev)))
    (directory / "test.tsv").write_text("index\tsentence\n" + "".join(f"{i + 10}\t{s}\n" for i, (s, _) in enumerate(rows(5))))
    return directory


def finetune_sst2(root, init_model, *overrides):
    """The model directory of one epoch on write_sst2's files under `root` (`key=value` overrides)."""
    data = write_sst2(root / "SST-2")
    assert finetune_main(["--task", "SST-2", "--data", str(data), "--init-model", str(init_model), "--output",
                          str(root / "out"), "--quiet", "--set", "epochs=1", "--set", "max_seq_len=16",
                          *(arg for override in overrides for arg in ("--set", override))]) == 0
    return root / "out" / "seed-1" / "model"


def test_a_gpu_this_process_cannot_use_or_running_out_of_memory_is_one_line(tmp_path, init_model, monkeypatch,
                                                                              capsys):
    """A launcher's GPU that this process does not see stops the run before its data is read
    (exit 2); an allocation that fails in a seed (Paddle's MemoryError, a GPU's) says what fits
    the batch in less (exit 1); neither is a traceback."""
    import propeller.device
    from ernie.finetune import trainer
    data = write_sst2(tmp_path / "SST-2")
    args = ["--task", "SST-2", "--data", str(data), "--init-model", str(init_model), "--output", str(tmp_path / "o"),
            "--quiet", "--set", "epochs=1", "--set", "max_seq_len=16"]
    with monkeypatch.context() as patch:
        patch.setattr(propeller.device, "cuda_device_count", lambda: 1)
        patch.setenv("FLAGS_selected_gpus", "1")
        assert finetune_main(args) == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith(
        "error: FLAGS_selected_gpus='1' names GPU 1, but this process sees 1 GPU(s)")

    def out_of_memory(*args, **kwargs):
        raise MemoryError("ResourceExhaustedError: Out of memory error on GPU 0")
    monkeypatch.setattr(trainer.FinetuneJob, "run_seed", out_of_memory)
    assert finetune_main(args) == 1
    assert re.fullmatch(r"error: seed 1: out of memory \(ResourceExhaustedError: .*\): a device holds fewer sequences "
                        r"with max_sequences_per_device .* smaller eval_batch_size; .*", capsys.readouterr().err.strip())


def test_a_seed_resumes_only_where_it_computes_as_it_did(monkeypatch):
    """The run's fingerprint names where it computes, other than on a CPU with the fused kernels:
    a seed begun there is not continued on a GPU or with the kernels off (other kernels, other
    dropout draws), nor read back among their results."""
    import propeller.device
    from ernie.finetune.__main__ import run_fingerprint
    from ernie.kernels import cpu_kernels
    from ernie.model.config import ErnieConfig

    class Data:
        train = dev = test = extra_test = ()
    vocab = Path(__file__).parent / "conftest.py"  # any file: the fingerprint reads its bytes

    def fingerprint():
        return run_fingerprint("task", "settings", ErnieConfig(vocab_size=8), vocab, {}, Data())
    monkeypatch.setattr(cpu_kernels, "enabled", lambda: True)
    monkeypatch.delenv("FLAGS_selected_gpus", raising=False)
    cpu = fingerprint()
    monkeypatch.setattr(cpu_kernels, "enabled", lambda: False)
    unfused = fingerprint()
    monkeypatch.setattr(propeller.device, "cuda_device_count", lambda: 1)
    gpu = fingerprint()
    assert len({cpu, unfused, gpu}) == 3


def test_cli_trains_evaluates_and_writes_glue_submission(tmp_path, init_model):
    data = write_sst2(tmp_path / "SST-2")
    out = tmp_path / "out"
    code = finetune_main(["--task", "SST-2", "--data", str(data), "--init-model", str(init_model),
                          "--output", str(out), "--seeds", "2", "--quiet", "--set", "epochs=2",
                          "--set", "batch_size=8", "--set", "learning_rate=1e-3", "--set", "max_seq_len=16", "--set", "log_every=1"])
    assert code == 0
    report = json.loads((out / "metrics.json").read_text())
    assert [r["seed"] for r in report["seeds"]] == [1, 2]
    accs = [r["dev"]["acc"] for r in report["seeds"]]
    assert report["dev"]["median"]["acc"] == pytest.approx(np.median(accs))
    assert report["dev"]["mean"]["acc"] == pytest.approx(np.mean(accs))
    evals = [json.loads(l) for l in (out / "seed-1" / "log.jsonl").read_text().splitlines() if "dev/acc" in l]
    assert [e["dev/acc"] for e in evals][-1] == report["seeds"][0]["last_dev"]["acc"]
    assert report["seeds"][0]["last_epoch"] == 2
    assert max(e["dev/acc"] for e in evals) == report["seeds"][0]["dev"]["acc"]
    assert report["last_dev"]["mean"]["acc"] == pytest.approx(np.mean([r["last_dev"]["acc"] for r in report["seeds"]]))
    for seed, result in zip((1, 2), report["seeds"]):
        rows = [l.split("\t") for l in (out / f"seed-{seed}" / "dev_predictions.tsv").read_text().splitlines()[1:]]
        gold = [l.split("\t")[1] for l in (data / "dev.tsv").read_text().splitlines()[1:]]
        assert accuracy_score(gold, [r[1] for r in rows]) == pytest.approx(result["dev"]["acc"])
        submission = (out / f"seed-{seed}" / "SST-2.tsv").read_text().splitlines()
        assert submission[0] == "index\tprediction"
        assert [line.split("\t")[0] for line in submission[1:]] == ["10", "11", "12", "13", "14"]
        assert (out / f"seed-{seed}" / "model" / "finetune.json").is_file()
    first = [json.loads(l) for l in (out / "seed-1" / "log.jsonl").read_text().splitlines() if "loss" in l]
    assert first[-1]["loss"] < first[0]["loss"]


def test_resume_reads_back_finished_seeds_of_the_same_run_only(tmp_path, init_model, monkeypatch):
    data = write_sst2(tmp_path / "SST-2", n_train=16, n_dev=8)
    out = tmp_path / "out"
    args = ["--task", "SST-2", "--data", str(data), "--init-model", str(init_model), "--output", str(out),
            "--seeds", "2", "--quiet", "--set", "epochs=1", "--set", "batch_size=8", "--set", "max_seq_len=16"]
    assert finetune_main(args) == 0
    first = (out / "metrics.json").read_text()
    (out / "metrics.json").unlink()
    trained = []
    real_run_seed = FinetuneJob.run_seed

    def counting(self, seed, out_dir, **options):
        trained.append(seed)
        return real_run_seed(self, seed, out_dir, **options)

    monkeypatch.setattr(FinetuneJob, "run_seed", counting)
    (out / "seed-2" / "result.json").write_text("{truncated")  # unreadable (atomic writes leave none; a hand edit may)
    assert finetune_main(args + ["--resume"]) == 0
    assert trained == [2]  # seed 1 read back, seed 2's unreadable record trained again
    assert (out / "metrics.json").read_text() == first  # and the same result as the uninterrupted run
    assert finetune_main(args + ["--resume", "--set", "learning_rate=1e-4"]) == 0
    assert trained == [2, 1, 2]  # other settings: nothing is read back
    assert finetune_main(args) == 0
    assert trained == [2, 1, 2, 1, 2]  # without --resume every seed trains


def test_a_seed_killed_while_training_resumes_to_the_uninterrupted_result(tmp_path, init_model, monkeypatch, capsys):
    """Killed during its 11th step of 18 (3 epochs of 6), with its state saved after every step,
    a seed resumed with --resume ends with the uninterrupted run's result, log, predictions and
    model: its parameters, optimizer moments and dev history (the best epoch so far) come back.
    Killed where an earlier run had finished, it left that run's metrics, result and model
    beside its own log, looking complete."""
    import propeller.learner
    from ernie.formats.checkpoint import load_params, save_params
    data = write_sst2(tmp_path / "SST-2")
    args = ["--task", "SST-2", "--data", str(data), "--init-model", str(init_model), "--quiet", "--set", "epochs=3",
            "--set", "batch_size=8", "--set", "max_seq_len=16", "--set", "learning_rate=1e-3", "--set", "log_every=2",
            "--checkpoint-minutes", "0"]
    assert finetune_main(args + ["--output", str(tmp_path / "whole")]) == 0
    train = propeller.learner.Learner.train

    def killed(self, plan, total, start=0):
        def until_step_11(index):
            if index == 10:
                raise KeyboardInterrupt
            return plan(index)
        return train(self, until_step_11, total, start)
    monkeypatch.setattr(propeller.learner.Learner, "train", killed)
    shutil.copytree(tmp_path / "whole", tmp_path / "killed")  # an earlier run's output, complete
    with pytest.raises(KeyboardInterrupt):
        finetune_main(args + ["--output", str(tmp_path / "killed")])
    monkeypatch.undo()
    seed_dir, whole = tmp_path / "killed" / "seed-1", tmp_path / "whole" / "seed-1"
    # the stopped run left none of the earlier run's marks of completion beside its own files
    assert not any(p.exists() for p in (tmp_path / "killed" / "metrics.json", seed_dir / "result.json",
                                        seed_dir / "model"))
    assert json.loads((seed_dir / "checkpoint" / "progress.json").read_text())["step"] == 10
    assert finetune_main(args + ["--output", str(tmp_path / "killed"), "--resume"]) == 0
    assert not (seed_dir / "checkpoint").exists()  # removed once the result is written
    assert json.loads((seed_dir / "result.json").read_text()) == json.loads((whole / "result.json").read_text())
    for name in ("dev_predictions.tsv", "SST-2.tsv"):
        assert (seed_dir / name).read_text() == (whole / name).read_text()

    def log(directory):
        return [{k: v for k, v in json.loads(line).items() if k != "tokens_per_s"}
                for line in (directory / "log.jsonl").read_text().splitlines()]
    assert log(seed_dir) == log(whole)
    resumed, uninterrupted = (load_params(d / "model" / "params.safetensors") for d in (seed_dir, whole))
    assert all(np.array_equal(resumed[name], uninterrupted[name]) for name in uninterrupted)

    # a checkpoint whose variables this program does not have (the code changed since): trained afresh
    monkeypatch.setattr(propeller.learner.Learner, "train", killed)
    with pytest.raises(KeyboardInterrupt):
        finetune_main(args + ["--output", str(tmp_path / "changed")])
    monkeypatch.undo()
    checkpoint = tmp_path / "changed" / "seed-1" / "checkpoint" / "state.safetensors"
    state = load_params(checkpoint)
    save_params(checkpoint, {f"renamed_{name}": value for name, value in state.items()})
    assert finetune_main(args + ["--output", str(tmp_path / "changed"), "--resume"]) == 0
    assert "does not fit this program" in capsys.readouterr().out
    assert (json.loads((tmp_path / "changed" / "seed-1" / "result.json").read_text()) ==
            json.loads((whole / "result.json").read_text()))


def test_the_casing_is_the_models_record_and_a_setting_against_it_is_refused(tmp_path, init_model, capsys):
    """A cased model fine-tuned on lower-cased text would lose what its cased pieces learned, and
    no score would say why."""
    cased = tmp_path / "cased"
    shutil.copytree(init_model, cased)
    (cased / "tokenizer_config.json").write_text('{"do_lower_case": false}')
    common = ["--task", "SST-2", "--data", str(write_sst2(tmp_path / "SST-2")), "--quiet", "--set", "epochs=1",
              "--set", "max_seq_len=16"]
    assert finetune_main([*common, "--init-model", str(cased), "--output", str(tmp_path / "out")]) == 0
    assert f"do_lower_case: false, as {cased / 'tokenizer_config.json'} records" in capsys.readouterr().out
    assert json.loads((tmp_path / "out" / "seed-1" / "model" / "finetune.json").read_text())["do_lower_case"] is False
    assert model_lower_cases(tmp_path / "out" / "seed-1" / "model") is False  # the fine-tuned model keeps the record
    assert finetune_main([*common, "--init-model", str(cased), "--output", str(tmp_path / "out"),
                          "--set", "do_lower_case=true"]) == 2
    assert ("records that the model learned from cased text; reading lower-cased text would lose what it learned: "
            "leave do_lower_case out, or set it to false"
            in capsys.readouterr().err)
    # a random twin (the model's vocabulary and shape, fresh parameters) reads the record too
    assert finetune_main([*common, "--vocab", str(cased / "vocab.txt"), "--model-config", str(cased / "ernie_config.json"),
                          "--output", str(tmp_path / "random")]) == 0
    assert "do_lower_case: false" in capsys.readouterr().out
    # without a record: as set, else lower-cased (the released scripts' default)
    vocab = init_model / "vocab.txt"
    assert resolve_casing(load_settings(overrides=["do_lower_case=false"]), vocab).do_lower_case is False
    assert resolve_casing(load_settings(), vocab).do_lower_case is True


def test_init_model_sets_the_encoder_and_random_init_does_not(tmp_path, init_model, en_vocab):
    from ernie.formats.checkpoint import load_model_dir
    config, params, vocab = load_model_dir(init_model)
    task, settings = get_task("SST-2"), resolve_casing(load_settings(overrides=["max_seq_len=16"]), init_model / "vocab.txt")
    data = read_data(task, write_sst2(tmp_path / "SST-2"))
    for init, expect_equal in ((params, True), (None, False)):
        job = FinetuneJob(task, settings, config, vocab, init, data)
        runner, _, names = job.build(seed=3)
        got = scope_params(names, runner.scope)
        assert "cls_out_w" in got and got["cls_out_w"].shape == (config.hidden_size, 2)
        same = np.array_equal(got["word_embedding"], params["word_embedding"])
        assert same == expect_equal


def test_cli_errors_are_clear(tmp_path, init_model, capsys):
    data = write_sst2(tmp_path / "SST-2")
    args = ["--task", "SST-2", "--data", str(data), "--init-model", str(init_model), "--output", str(tmp_path / "o"),
            "--quiet", "--set", "max_seq_len=16"]
    (data / "dev.tsv").write_text("sentence\tlabel\nwar war\t2\n")
    assert finetune_main(args) == 2
    assert f"error: {data / 'dev.tsv'}: line 2: SST-2: label '2' is not one of ['0', '1']" in capsys.readouterr().err
    code = finetune_main(["--task", "SST-2", "--data", str(data), "--output", str(tmp_path / "o")])
    assert code == 2 and "random initialisation needs --vocab" in capsys.readouterr().err
    assert finetune_main(args + ["--set", "epoch=3"]) == 2
    assert "unknown key(s) ['epoch']" in capsys.readouterr().err
    (data / "dev.tsv").write_text("sentence\tlabel\nwar war\t1\n")
    (data / "test.tsv").write_text("sentence\tlabel\nwar war\t1\n")
    assert finetune_main(args) == 2
    assert "the epoch would be selected on the test split" in capsys.readouterr().err
    # a dev or test split that is the training data scored the model on what it trained on
    (data / "test.tsv").write_text("sentence\tlabel\nwar war\t0\n")
    assert finetune_main(args + ["--test-file", "train.tsv"]) == 2
    assert "train.tsv are the same data: the test scores would be the training data's" in capsys.readouterr().err
    shutil.copy(data / "train.tsv", data / "dev.tsv")
    assert finetune_main(args) == 2
    assert "the dev scores, and the epoch they select, would be the training data's" in capsys.readouterr().err


def test_a_text_the_models_vocabulary_does_not_fit_is_said(tmp_path, init_model, capsys):
    """Chinese text on an English model trained on [UNK]s alone, to accuracy 0.5, and said nothing
    (data_gen make says it of a corpus)."""
    from ernie.finetune.trainer import unknown_share
    data = write_sst2(tmp_path / "SST-2", n_train=16, n_dev=8)
    args = ["--task", "SST-2", "--data", str(data), "--init-model", str(init_model), "--output", str(tmp_path / "o"),
            "--quiet", "--set", "epochs=1", "--set", "max_seq_len=16"]
    assert finetune_main(args) == 0 and "[UNK]" not in capsys.readouterr().err
    (data / "train.tsv").write_text("sentence\tlabel\n" + "".join(f"战争与和平 {k}\t{k % 2}\n" for k in range(16)))
    assert finetune_main(args) == 0
    assert "of the training text's tokens are [UNK]: does the model's vocabulary fit" in capsys.readouterr().err
    assert unknown_share([{"src": [1, 4, 4, 9]}, {"src": [2, 9]}], 4) == 2 / 6


def write_genre(directory, train_labels=("news", "fiction"), test_labels=("news", "fiction")):
    """brown-genre's label<TAB>text_a files, four examples of each training label, the dev file
    news and fiction, the test file one example of each of `test_labels`."""
    text = {"news": "war economy congress"}
    directory.mkdir(parents=True, exist_ok=True)
    for split, labels in (("train", list(train_labels) * 4), ("dev", ["news", "fiction"]), ("test", test_labels)):
        (directory / f"{split}.tsv").write_text(
            "label\ttext_a\n" + "".join(f"{label}\t{text.get(label, 'peace people freedom')}\n" for label in labels))
    return directory


def model_with_broken_vocab(init_model, directory):
    """A copy of `init_model` whose vocab.txt has an empty line 100."""
    import shutil
    shutil.copytree(init_model, directory)
    lines = (directory / "vocab.txt").read_text(encoding="utf-8").split("\n")
    lines[99] = ""
    (directory / "vocab.txt").write_text("\n".join(lines), encoding="utf-8")
    return directory


def test_cli_refuses_before_training_what_failed_later(tmp_path, init_model, capsys, monkeypatch):
    """A test label the training data lacks (found after a seed's training, nothing saved), a
    max_seq_len beyond the model's positions or a task id beyond its task embedding (Paddle
    tracebacks), a broken vocab.txt (a traceback): each one line and exit 2, before training."""
    monkeypatch.setattr(FinetuneJob, "run_seed", lambda *args, **kwargs: pytest.fail("trained"))
    genre, sst = write_genre(tmp_path / "genre", test_labels=("news", "humor")), write_sst2(tmp_path / "SST-2")
    broken = model_with_broken_vocab(init_model, tmp_path / "broken")
    for task, data, init, settings, message in (
            ("brown-genre", genre, init_model, [], f"{genre / 'test.tsv'}: line 3: brown-genre: label 'humor' "
                                                  "is not one of ['fiction', 'news']"),
            ("SST-2", sst, init_model, ["max_seq_len=65"], "max_seq_len 65 exceeds the model's max_position_embeddings 64"),
            ("SST-2", sst, init_model, ["max_seq_len=16", "task_id=3"],
             "task_id 3 does not fit the model's task embedding (3 rows: task ids 0 to 2)"),
            ("SST-2", sst, broken, ["max_seq_len=16"], "vocab.txt:100: empty token")):
        code = finetune_main(["--task", task, "--data", str(data), "--init-model", str(init), "--output",
                              str(tmp_path / "out"), "--quiet", "--set", "max_seq_len=16",
                              *(arg for setting in settings for arg in ("--set", setting))])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1, err
    with pytest.raises(SystemExit) as exit:
        finetune_main(["--task", "SST-2", "--data", str(sst), "--output", str(tmp_path / "out"), "--seeds", "0"])
    assert exit.value.code == 2 and "argument --seeds: expected a positive integer, got 0" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_labels_taken_from_the_training_data_are_shown_with_counts_before_training(tmp_path, init_model, capsys,
                                                                                   monkeypatch):
    """A one-off `Fiction` beside `fiction` is a class of its own (the label set is the training
    data's), shown at start-up rather than only in finetune.json after training."""
    class Stop(Exception):
        pass

    def stop(*args, **kwargs):
        raise Stop
    monkeypatch.setattr(FinetuneJob, "run_seed", stop)
    data = write_genre(tmp_path / "genre", train_labels=("news", "fiction", "news", "Fiction"),
                       test_labels=("news",))
    with pytest.raises(Stop):
        finetune_main(["--task", "brown-genre", "--data", str(data), "--init-model", str(init_model),
                       "--output", str(tmp_path / "out"), "--quiet", "--set", "max_seq_len=16"])
    assert "brown-genre: 3 labels in the 16 training examples: 'Fiction' 4, 'fiction' 4, 'news' 8" \
        in capsys.readouterr().err


def test_settings_out_of_range_are_refused_and_the_model_s_limits_checked():
    from ernie.finetune.trainer import check_fits_model
    from tests.conftest import small_config
    for override, message in (("task_id=-1", "task_id must be at least 0, got -1"),
                              ("max_train_examples=-3", "max_train_examples must be at least 1, got -3"),
                              ("max_train_examples=0", "max_train_examples must be at least 1, got 0"),
                              ("doc_stride=0", "doc_stride must be at least 1, got 0"),
                              ("n_best=0", "n_best must be at least 1, got 0"),
                              ("max_seq_len=4", "max_seq_len must be at least 5")):
        with pytest.raises(SettingsError, match=re.escape(f"defaults: {message}")):
            load_settings(overrides=[override])
    config = small_config(max_position_embeddings=64, task_type_vocab_size=3)
    check_fits_model(load_settings(overrides=["max_seq_len=64", "task_id=2"]), config)
    with pytest.raises(SettingsError, match="max_seq_len 65 exceeds the model's max_position_embeddings 64"):
        check_fits_model(load_settings(overrides=["max_seq_len=65"]), config)
    with pytest.raises(SettingsError, match=re.escape("task_id 1 does not fit the model's task embedding (1 row: "
                                                      "task ids 0 to 0)")):
        check_fits_model(load_settings(overrides=["max_seq_len=64", "task_id=1"]), small_config(use_task_id=False,
                                                                                                max_position_embeddings=64))


def test_mrc_max_seq_len_without_room_for_the_context_is_a_settings_error(en_vocab):
    kind = MrcKind(get_task("SQuAD"), FullTokenizer(en_vocab), max_seq_len=8, max_query_len=64)
    with pytest.raises(SettingsError, match=re.escape("max_seq_len 8 leaves no room for the context beside a question "
                                                      "of 5 pieces: raise max_seq_len to max_query_len + 4 (68)")):
        kind.features([MrcExample("q", "where did congress meet then", "the nation", [])], with_labels=False)


def test_learning_rate_schedules():
    linear = load_settings(overrides=["learning_rate=1e-3", "warmup_proportion=0.1"])
    assert [linear.learning_rate_at(s, 100) for s in (5, 10, 55, 100)] == pytest.approx([5e-4, 1e-3, 5e-4, 0.0])
    constant = load_settings(overrides=["learning_rate=1e-3", "warmup_proportion=0", "lr_schedule=constant"])
    assert {constant.learning_rate_at(s, 100) for s in (1, 50, 100)} == {1e-3}
    with pytest.raises(SettingsError, match="constant has no warm-up"):
        load_settings(overrides=["lr_schedule=constant", "warmup_proportion=0.1"])


def test_released_settings_where_the_paper_is_silent():
    """GLUE: weight decay 0; Chinese tasks: no warm-up (constant rate), ChnSentiCorp 256 and XNLI 512
    tokens, as the released ERNIE 2.0 scripts run them."""
    for glue in ("SST-2", "CoLA", "MRPC", "QQP", "MNLI-m", "QNLI", "RTE", "STS-B", "WNLI"):
        assert load_settings(config_for(glue)).weight_decay == 0.0, glue
    for zh in ("ChnSentiCorp", "XNLI", "LCQMC", "BQ", "MSRA-NER", "NLPCC-DBQA"):
        s = load_settings(config_for(zh), preset="base")
        assert (s.warmup_proportion, s.lr_schedule) == (0.0, "constant"), zh
    assert load_settings(config_for("ChnSentiCorp")).max_seq_len == 256
    assert load_settings(config_for("XNLI")).max_seq_len == 512


def test_labelling_pieces_take_inside_tags_and_decode_to_words(en_vocab):
    tokenizer = FullTokenizer(en_vocab)
    words = ["Washington", "unbelievably", "spoke"]
    pieces = [tokenizer.tokenize(w) for w in words]
    assert len(pieces[1]) > 1  # the case needs a word split into several pieces
    labels = ["B-PER", "I-PER", "B-MISC", "I-MISC", "O"]
    kind = LabellingKind(get_task("MSRA-NER"), tokenizer, 64, labels)
    (feature,) = kind.features([TaggedExample("0", words, ["B-PER", "B-MISC", "O"])], with_labels=True)
    expected = [-1] + [0] + [1] * (len(pieces[0]) - 1) + [2] + [3] * (len(pieces[1]) - 1) + [4] * len(pieces[2]) + [-1]
    assert feature["labels"] == expected
    # Decoding reads each word's first piece: make every piece predict I-MISC except the firsts.
    probs = np.zeros((1, len(feature["src"]), len(labels)))
    probs[0, :, 3] = 1.0
    firsts = [1, 1 + len(pieces[0]), 1 + len(pieces[0]) + len(pieces[1])]
    for position, label in zip(firsts, (0, 2, 4)):
        probs[0, position] = np.eye(len(labels))[label]
    assert kind.decode([feature], {"probs": probs}) == [["B-PER", "B-MISC", "O"]]


def test_tag_sets_take_the_dev_data_s_tags_and_class_labels_do_not():
    """A rare tag only dev shows is a label the model can miss (People's Daily's POS tag Mg);
    a class label only dev shows stays an error (test_cli_errors_are_clear)."""
    train = [TaggedExample("0", ["a", "b"], ["B-n", "B-v"])]
    dev = [TaggedExample("1", ["c"], ["B-Mg"])]
    assert label_set(get_task("peoples-daily-pos"), train, dev) == ["B-Mg", "B-n", "B-v", "I-Mg", "I-n", "I-v"]
    sentences = [TextExample("0", "a", label="pos"), TextExample("1", "b", label="neg")]
    assert label_set(get_task("brown-genre"), sentences, [TextExample("2", "c", label="odd")]) == ["neg", "pos"]


def test_mrc_windows_answer_positions_and_best_span(en_vocab):
    tokenizer = FullTokenizer(en_vocab)
    context = " ".join(["the nation"] * 10 + ["Congress met in Philadelphia in 1787"] + ["the people"] * 10)
    start = context.index("Philadelphia")
    example = MrcExample("q", "Where did Congress meet?", context, [("Philadelphia", start)])
    kind = MrcKind(get_task("SQuAD"), tokenizer, max_seq_len=24, doc_stride=8, max_query_len=8)
    features = kind.features([example], with_labels=True)
    question = tokenizer.encode(example.question)
    window = 24 - len(question) - 3
    ids, offsets = tokenizer.encode_with_offsets(context)
    assert len(features) == 1 + -(-(len(ids) - window) // 8)
    answer = [i for i, (a, b) in enumerate(offsets) if a < start + 12 and b > start]
    for f, window_start in zip(features, range(0, len(ids), 8)):
        inside = window_start <= answer[0] and answer[-1] < window_start + window
        expected = (answer[0] - window_start + f["first"], answer[-1] - window_start + f["first"]) if inside else (0, 0)
        assert f["position"] == expected
    # Logits pointing at the answer in the window that holds it decode to the context's text.
    holder = next(i for i, f in enumerate(features) if f["position"] != (0, 0))
    outputs = []
    for i, f in enumerate(features):
        starts, ends = np.zeros(len(f["src"])), np.zeros(len(f["src"]))
        if i == holder:
            starts[f["position"][0]], ends[f["position"][1]] = 5.0, 5.0
        outputs.append(kind.decode([f], {"start_logits": starts[None], "end_logits": ends[None]})[0])
    assert kind.predictions(outputs, features, [example]) == ["Philadelphia"]


def test_cli_reading_comprehension_end_to_end(tmp_path, init_model, capsys):
    """SQuAD-style JSON in, a trained span head, `{id: answer}` predictions whose EM/F1 are
    the ones metrics.json reports."""
    from ernie.finetune.qa_metrics import squad_scores
    rng = np.random.default_rng(1)

    def squad(n, prefix):
        paragraphs = []
        for i in range(n):
            words = list(rng.choice(WORDS, 7))
            answer = words[3]
            context = " ".join(words)
            paragraphs.append({"context": context, "qas": [{"id": f"{prefix}{i}", "question": f"which {words[2]}",
                               "answers": [{"text": answer, "answer_start": len(" ".join(words[:3])) + 1}]}]})
        return {"version": "1.1", "data": [{"title": "t", "paragraphs": paragraphs}]}
    data = tmp_path / "squad"
    data.mkdir()
    dev = squad(8, "d")
    (data / "train-v1.1.json").write_text(json.dumps(squad(32, "t")))
    (data / "dev-v1.1.json").write_text(json.dumps(dev))
    out = tmp_path / "out"
    assert finetune_main(["--task", "SQuAD", "--data", str(data), "--init-model", str(init_model), "--output", str(out),
                          "--quiet", "--set", "epochs=1", "--set", "batch_size=8", "--set", "max_seq_len=32"]) == 0
    predictions = json.loads((out / "seed-1" / "dev_predictions.json").read_text())
    answers = {qa["id"]: [a["text"] for a in qa["answers"]] for p in dev["data"][0]["paragraphs"] for qa in p["qas"]}
    contexts = {p["qas"][0]["id"]: p["context"] for p in dev["data"][0]["paragraphs"]}
    assert sorted(predictions) == sorted(answers)
    assert all(predictions[q] in contexts[q] for q in predictions)
    report = json.loads((out / "metrics.json").read_text())
    assert report["seeds"][0]["dev"] == pytest.approx(squad_scores(predictions, answers))
    # a dev question without answers (SQuAD 2.0's kind) would have crashed the first evaluation,
    # after an epoch of training: it is refused before
    dev["data"][0]["paragraphs"][2]["qas"][0]["answers"] = []
    (data / "dev-v1.1.json").write_text(json.dumps(dev))
    assert finetune_main(["--task", "SQuAD", "--data", str(data), "--init-model", str(init_model), "--output",
                          str(tmp_path / "unanswered"), "--quiet"]) == 2
    assert not (tmp_path / "unanswered").exists()
    # a training file none of whose answers is in its context trained no step, then failed in a traceback
    dev["data"][0]["paragraphs"][2]["qas"][0]["answers"] = [{"text": "zzz", "answer_start": 0}]
    (data / "dev-v1.1.json").write_text(json.dumps(dev))
    train = squad(4, "t")
    for paragraph in train["data"][0]["paragraphs"]:
        paragraph["qas"][0]["answers"] = [{"text": "nowhere", "answer_start": 0}]
    (data / "train-v1.1.json").write_text(json.dumps(train))
    assert finetune_main(["--task", "SQuAD", "--data", str(data), "--init-model", str(init_model), "--output",
                          str(tmp_path / "unfound"), "--quiet", "--set", "max_seq_len=32"]) == 2
    assert (f"error: {data / 'train-v1.1.json'}: none of its 4 example(s) gave a training feature"
            in capsys.readouterr().err)


def test_cli_ranking_end_to_end(tmp_path, init_model):
    """NLPCC-DBQA's `qid` TSV: a trained pair classifier ranks each question's answers; the
    reported MRR is a mean of reciprocal ranks, and accuracy matches the written predictions."""
    import itertools
    rng = np.random.default_rng(2)

    def rows(n_questions):
        for q in range(n_questions):
            for k in range(3):
                words = list(rng.choice(WORDS, 5))
                label = int(k == 0)
                yield q, " ".join(words[:2]), " ".join(words if label else words[2:]), label
    data = tmp_path / "dbqa"
    data.mkdir()
    for name, n in (("train.tsv", 16), ("dev.tsv", 6)):
        (data / name).write_text("qid\ttext_a\ttext_b\tlabel\n" + "".join(f"{q}\t{a}\t{b}\t{l}\n" for q, a, b, l in rows(n)))
    out = tmp_path / "out"
    assert finetune_main(["--task", "NLPCC-DBQA", "--data", str(data), "--init-model", str(init_model), "--output",
                          str(out), "--quiet", "--set", "epochs=1", "--set", "batch_size=8", "--set", "max_seq_len=16"]) == 0
    scores = json.loads((out / "metrics.json").read_text())["seeds"][0]["dev"]
    # six questions, one gold answer among three each: MRR is a mean of six values in {1, 1/2, 1/3}
    possible = {round(sum(c) / 6, 9) for c in itertools.combinations_with_replacement((1, 1 / 2, 1 / 3), 6)}
    assert round(scores["mrr"], 9) in possible
    gold = [line.split("\t")[3] for line in (data / "dev.tsv").read_text().splitlines()[1:]]
    written = [line.split("\t")[1] for line in (out / "seed-1" / "dev_predictions.tsv").read_text().splitlines()[1:]]
    assert accuracy_score(gold, written) == pytest.approx(scores["acc"])
