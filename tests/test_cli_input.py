"""A user's mistake on a command line is a short error naming what is wrong, before any work:
not a raw traceback from inside Paddle or Python, not a file written after the work to a place
it cannot go."""
import subprocess
import sys

import pytest
import yaml

from data_gen.__main__ import main as data_gen_main
from ernie.finetune.__main__ import main as finetune_main
from ernie.pretrain.config import PretrainError, load_config
from tests.conftest import DEMO_CORPUS


def _pretrain_config(tmp_path, **values):
    config = {"model": "configs/model/micro.yaml", "data": str(tmp_path / "shards"), "output": str(tmp_path / "run"),
              "schedule": {"strategy": "continual", "stages": [["knowledge_masking"]], "iterations_per_task": 2},
              **values}
    (tmp_path / "pretrain.yaml").write_text(yaml.safe_dump(config))
    return tmp_path / "pretrain.yaml"


@pytest.mark.parametrize("values,says", [
    ({"seed": -1}, "seed must be a whole number from 0 to 4294967295, got -1"),
    ({"optimization": {"warmup_steps": 0}}, "warmup_steps must be at least 1 .noam's decay is set by its warm-up"),
    ({"optimization": {"warmup_steps": -5, "lr_schedule": "linear"}}, "warmup_steps must be at least 0"),
    ({"optimization": {"epsilon": 0.0}}, "epsilon must be positive, got 0.0"),
    ({"optimization": {"weight_decay": -0.1}}, r"weight_decay must be in \[0.0, inf\), got -0.1"),
    ({"optimization": {"beta2": 1.0}}, r"beta2 must be in \[0.0, 1.0\), got 1.0"),
], ids=["seed", "noam-warmup-0", "negative-warmup", "epsilon-0", "negative-decay", "beta2-1"])
def test_pretraining_values_that_fail_inside_paddle_or_train_nothing_are_refused(tmp_path, values, says):
    """A noam warm-up of 0 divided by zero, -5 compared a complex number; epsilon 0 skipped most
    steps as non-finite and wrote a model; a negative seed failed in Paddle's manual_seed."""
    with pytest.raises(PretrainError, match=says):
        load_config(_pretrain_config(tmp_path, **values))


def test_outputs_of_the_wrong_kind_are_refused_before_the_work(tmp_path, capsys):
    """A directory where a file is written failed at the rename, after the work, with a raw
    traceback; a file where a directory is written, at its mkdir."""
    (tmp_path / "a_dir").mkdir()
    (tmp_path / "a_file").write_text("mine")
    with pytest.raises(SystemExit) as stopped:
        data_gen_main(["build-vocab", "--input", str(DEMO_CORPUS), "--lang", "en", "--size", "500",
                       "--output", str(tmp_path / "a_dir")])
    assert stopped.value.code == 2
    assert f"argument --output: {tmp_path / 'a_dir'} is a directory, where a file is written" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        finetune_main(["--task", "SST-2", "--data", str(tmp_path), "--output", str(tmp_path / "a_file")])
    assert f"argument --output: {tmp_path / 'a_file'} is a file, where a directory is written" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        finetune_main(["--task", "SST-2", "--data", str(tmp_path), "--output", str(tmp_path / "a_file" / "out")])
    assert "a folder of the path is a file" in capsys.readouterr().err
    with pytest.raises(PretrainError, match="is a file, where the run's directory is written"):
        load_config(_pretrain_config(tmp_path, output=str(tmp_path / "a_file")))
    config = tmp_path / "data.yaml"  # a data config's vocabulary at a directory: build-vocab
    config.write_text(yaml.safe_dump({"input": [str(DEMO_CORPUS)], "vocab": str(tmp_path / "a_dir"),
                                      "output": str(tmp_path / "shards")}))
    assert data_gen_main(["build-vocab", "--config", str(config), "--size", "300"]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'a_dir'} is a directory, where a file is written: name the file\n"
    assert (tmp_path / "a_file").read_text() == "mine"


@pytest.mark.parametrize("argv,says", [
    (["get", "--config", "CONFIG", "vocab", "--set", "noequals"], "error: --set: 'noequals' is not key=value"),
    (["build-vocab", "--config", "CONFIG", "--min-frequency", "-1"], "argument --min-frequency: expected 0 or more, got -1"),
], ids=["set-without-equals", "negative-frequency"])
def test_data_gen_arguments_that_raised_tracebacks_are_one_line_errors(tmp_path, argv, says):
    config = tmp_path / "data.yaml"
    config.write_text(yaml.safe_dump({"input": [str(DEMO_CORPUS)], "vocab": str(tmp_path / "vocab.txt"),
                                      "output": str(tmp_path / "shards")}))
    done = subprocess.run([sys.executable, "-m", "data_gen", *[str(config) if a == "CONFIG" else a for a in argv]],
                          capture_output=True, text=True)
    assert done.returncode == 2 and says in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_a_negative_seed_is_refused_by_the_fine_tuning_command_lines(tmp_path, capsys):
    with pytest.raises(SystemExit):
        finetune_main(["--task", "SST-2", "--data", str(tmp_path), "--output", str(tmp_path / "o"), "--first-seed", "-3"])
    assert "argument --first-seed: a seed is a whole number from 0 to 4294967295, got -3" in capsys.readouterr().err


def test_inputs_and_options_that_were_ignored_or_raised_are_refused(tmp_path, capsys):
    """A directory given as --input raised IsADirectoryError; --vocab beside --init-model was
    ignored without a word; a negative iteration count was reported as 'missing: []'."""
    from ernie.encode import main as encode_main
    from ernie.pretrain.schedule import ScheduleError, load_schedule
    with pytest.raises(SystemExit):
        encode_main(["--model", str(tmp_path), "--input", str(tmp_path), "--output", str(tmp_path / "o")])
    assert f"argument --input: {tmp_path} is a directory, where a file is read" in capsys.readouterr().err
    from ernie.finetune.probe import main as probe_main
    for main in (finetune_main, probe_main):
        assert main(["--task", "SST-2", "--data", str(tmp_path), "--output", str(tmp_path / "o.json"),
                     "--init-model", str(tmp_path), "--vocab", str(tmp_path / "vocab.txt")]) == 2
        assert "error: --vocab and --model-config are for random initialisation" in capsys.readouterr().err
    _pretrain_config(tmp_path, schedule={"strategy": "continual", "stages": [["knowledge_masking"]],
                                         "iterations_per_task": {"knowledge_masking": -3}})
    with pytest.raises(ScheduleError, match=r"every task needs a positive iteration count, not \{'knowledge_masking': -3\}"):
        load_schedule(tmp_path / "pretrain.yaml")


def test_build_vocab_input_errors_advise_what_input_can_do(tmp_path, capsys):
    """`build-vocab --input` on a Latin-1 file advised the data config's encoding: and
    on_decode_error: keys, which --input has not; on UTF-16 it said a byte was not UTF-8."""
    latin = tmp_path / "latin.txt"
    latin.write_bytes("Un café.\n".encode("latin-1"))
    wide = tmp_path / "wide.txt"
    wide.write_bytes("A line of text.\n".encode("utf-16-le"))  # no byte-order mark
    for path, says in ((latin, "not utf-8 text: convert it to UTF-8 (e.g. iconv -f latin-1 -t utf-8), or build from "
                               "a data config (--config) whose encoding: reads it"),
                       (wide, "UTF-16 text without a byte-order mark"),
                       (tmp_path / "train.tsv", "train.tsv is a tsv file by its name, and --input reads lines of "
                                                "text: build from a data config (--config) with format: tsv")):
        path.write_text("text_a\tlabel\nA line.\t1\n") if path.suffix == ".tsv" else None
        assert data_gen_main(["build-vocab", "--input", str(path), "--lang", "en", "--size", "100",
                              "--output", str(tmp_path / "vocab.txt")]) == 2
        err = capsys.readouterr().err
        assert says in err and len(err.splitlines()) == 1 and not (tmp_path / "vocab.txt").exists()
