"""Where the paths a config names point (`ernie_common.configfile.config_path`), whatever the
working directory: a config file's relative paths from its own folder, or from the repository root
for a config inside the checkout (the shipped ones, the examples: as they were); a `configs/...`
path is a shipped config; a path typed on the command line (`--set`, a command's option) is the
working directory's."""
import json
from pathlib import Path

import pytest
import yaml

from data_gen.config import DataConfig
from ernie.model.config import ErnieConfig
from ernie.pretrain.config import load_config
from ernie_common import configfile
from ernie_common.shipped_configs import repository_root, shipped
from tests.conftest import REPO

SCHEDULE = {"strategy": "continual", "stages": [["knowledge_masking"]], "iterations_per_task": 2}


@pytest.fixture
def experiment(tmp_path, monkeypatch):
    """A user's pre-training and data configs in tmp/exp, and a working directory elsewhere."""
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "pretrain.yaml").write_text(yaml.safe_dump({
        "model": "../presets/model.yaml", "data": "shards", "output": "runs/one", "init_model": "../models/base",
        "task_modules": ["my_task.py", "my_package.tasks"], "schedule": SCHEDULE}))
    (exp / "data.yaml").write_text(yaml.safe_dump({
        "input": ["corpus.txt", "texts/**/*.txt"], "vocab": "vocab.txt", "output": "shards",
        "stopwords": "configs/stopwords/en.txt", "tasks": ["knowledge_masking", "discourse_relation"],
        "task_options": {"discourse_relation": {"discourse_markers": "markers.yaml"}}}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return exp


def test_a_configs_relative_paths_are_read_from_its_folder(experiment, tmp_path):
    config = load_config(experiment / "pretrain.yaml")
    assert (config.data, config.output) == (str(experiment / "shards"), str(experiment / "runs/one"))
    assert (config.model, config.init_model) == (str(tmp_path / "presets/model.yaml"), str(tmp_path / "models/base"))
    assert config.task_modules == [str(experiment / "my_task.py"), "my_package.tasks"]  # a module name is no path


def test_a_configs_paths_are_written_from_the_working_directory_where_they_lie_under_it(experiment, tmp_path,
                                                                                         monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(Path("exp") / "pretrain.yaml")
    assert (config.data, config.model) == ("exp/shards", "presets/model.yaml")
    monkeypatch.chdir(experiment)
    config = load_config("pretrain.yaml")
    assert (config.data, config.model) == ("shards", str(tmp_path / "presets/model.yaml"))  # outside: absolute


def test_command_line_paths_are_the_working_directorys(experiment):
    config = load_config(experiment / "pretrain.yaml", {"output": "mine"}, ["data=typed/shards", "model=m.yaml"])
    assert (config.output, config.data, config.model) == ("mine", "typed/shards", "m.yaml")
    assert config.init_model == str(experiment.parent / "models/base")  # the file's, not overridden


def test_a_data_configs_paths_and_its_tasks_files_are_read_from_its_folder(experiment):
    config = DataConfig.from_yaml(experiment / "data.yaml", check_files=False)
    assert config.input == [str(experiment / "corpus.txt"), str(experiment / "texts/**/*.txt")]
    assert (config.vocab, config.output) == (str(experiment / "vocab.txt"), str(experiment / "shards"))
    assert config.task_options["discourse_relation"].discourse_markers == str(experiment / "markers.yaml")
    assert config.stopwords == str(shipped("stopwords", "en.txt"))  # configs/...: the shipped stop words
    typed = DataConfig.from_yaml(experiment / "data.yaml", ["vocab=v.txt", "task_options.discourse_relation.discourse_markers=m.yaml"],
                                 check_files=False, output="out")
    assert (typed.vocab, typed.output, typed.task_options["discourse_relation"].discourse_markers) == ("v.txt", "out", "m.yaml")


def test_a_configs_path_is_a_shipped_config_from_anywhere(experiment):
    (experiment / "tiny.yaml").write_text(yaml.safe_dump({"model": "configs/model/tiny.yaml", "data": "s", "output": "o",
                                                          "schedule": SCHEDULE}))
    config = load_config(experiment / "tiny.yaml")
    assert config.model == "configs/model/tiny.yaml"
    assert ErnieConfig.from_file(config.model, vocab_size=100).hidden_size == 256


@pytest.mark.parametrize("config, key, value", [
    ("configs/pretrain/table7_small_en_continual.yaml", "output", "output/table7_small_en/continual"),
    ("configs/pretrain/table7_small_en_multitask.yaml", "data", "output/table7_small_en/shards"),
    ("configs/pretrain/ernie2_base_zh.yaml", "model", "configs/model/base.yaml"),
    ("configs/data/table7_en.yaml", "input", ["data/sotu/sotu.txt"]),
    ("configs/data/table7_en.yaml", "vocab", "data/sotu/vocab.txt"),
    ("configs/data/corpus_zh_512.yaml", "task_options", "data/corpus_zh/click_log.tsv"),
    ("examples/custom_task/pretrain.yaml", "output", "output/custom_task/pretrain"),
    # (not through its data config, which would register the task's module under this path for the session)
    ("examples/custom_task/pretrain.yaml", "task_modules", ["examples/custom_task/next_sentence.py"]),
])
def test_a_config_inside_the_repository_reads_its_paths_from_the_root(config, key, value, tmp_path, monkeypatch):
    """From the root the paths a run saves (and a resumed run's fingerprint) are what they were
    before paths were read from a config's folder; from elsewhere the same files, absolute."""
    def loaded(path):
        if "pretrain" not in config:
            values = DataConfig.from_yaml(path, check_files=False).to_dict()
            return values[key]["ir_relevance"]["click_log"] if key == "task_options" else values[key]
        return getattr(load_config(path), key)

    monkeypatch.chdir(REPO)
    assert loaded(config) == value
    monkeypatch.chdir(tmp_path)
    found = loaded(config if config.startswith("configs/") else REPO / config)  # configs/...: found from anywhere
    if value == "configs/model/base.yaml":
        assert found == value
    else:
        assert found == ([str(REPO / v) for v in value] if isinstance(value, list) else str(REPO / value))


def test_a_plain_installs_shipped_configs_read_their_paths_from_the_working_directory(tmp_path, monkeypatch):
    """An installed `ernie_configs` has no repository around it: its recipes' paths stay the
    working directory's, as they always were (`repository_root` None)."""
    assert repository_root() == REPO
    monkeypatch.setattr(configfile, "repository_root", lambda: None)
    monkeypatch.chdir(tmp_path)
    config = load_config("configs/pretrain/small_en.yaml")
    assert (config.data, config.output) == ("output/small_en/shards", "output/small_en/pretrain")


def test_print_schedule_reads_a_whole_config_as_a_run_does(tmp_path, monkeypatch, capsys):
    """From any directory, with the command line's --set: the schedule a run would train."""
    from ernie.pretrain.trainer import main as pretrain_main
    monkeypatch.chdir(tmp_path)
    assert pretrain_main(["--config", "configs/pretrain/demo_en.yaml", "--print-schedule", "--json",
                          "--set", "schedule.iterations_per_task=7"]) == 0
    schedule = json.loads(capsys.readouterr().out)
    assert {n for stage in schedule["stages"] for n in stage.values()} <= set(range(8))
    assert sum(sum(stage.values()) for stage in schedule["stages"]) == 7 * len(schedule["tasks"])


@pytest.mark.parametrize("data,says", [(b"schedule: {strategy: [continual\n", "not valid YAML: line 2, column 1"),
                                        (b"\xff\xfe", "not UTF-8 text"), (b"- a\n- b\n", "expected a mapping"),
                                        (None, "cannot read")])
def test_print_schedule_of_a_config_it_cannot_read_is_one_line_naming_it(tmp_path, capsys, data, says):
    """Both ways in (the trainer's --print-schedule and the schedule module's) read a config as a
    run does; they gave PyYAML's traceback, or none of the file's name."""
    from ernie.pretrain.schedule import main as schedule_main
    from ernie.pretrain.trainer import main as pretrain_main
    path = tmp_path / "c.yaml"
    if data is not None:
        path.write_bytes(data)
    for main in (lambda: pretrain_main(["--config", str(path), "--print-schedule"]),
                 lambda: schedule_main(["--config", str(path)])):
        assert main() == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and str(path) in err and says in err and err.count("\n") == 1
