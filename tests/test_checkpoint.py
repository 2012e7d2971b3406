import json

import numpy as np
import pytest

from ernie.formats.checkpoint import CheckpointError, load_model_dir, save_model_dir
from ernie.model.config import ConfigError
from ernie.model.modeling import ErnieModel
from ernie.model.params_io import layer_params
from tests.conftest import small_config


@pytest.fixture()
def saved(tmp_path):
    config = small_config()
    params = layer_params(ErnieModel(config))
    vocab = tmp_path / "vocab.txt"
    tokens = ["[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]"] + [f"t{i}" for i in range(5, config.vocab_size)]
    vocab.write_text("".join(f"{t}\n" for t in tokens))
    path = save_model_dir(tmp_path / "model", config, params, vocab_file=vocab)
    return path, config, params


def test_round_trip(saved):
    path, config, params = saved
    assert sorted(p.name for p in path.iterdir()) == ["ernie_config.json", "params.safetensors", "vocab.txt"]
    config2, params2, vocab = load_model_dir(path)
    assert config2 == config and vocab == path / "vocab.txt"
    for name, value in params.items():
        np.testing.assert_array_equal(params2[name], value)


def test_truncated_parameter_file(saved):
    path = saved[0] / "params.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt") as err:
        load_model_dir(saved[0])
    assert "params.safetensors" in str(err.value)


def test_shapes_that_do_not_match_the_config(saved):
    path, config, _ = saved
    values = json.loads((path / "ernie_config.json").read_text())
    values["intermediate_size"] = 64
    (path / "ernie_config.json").write_text(json.dumps(values))
    with pytest.raises(CheckpointError, match=r"encoder_layer_0_ffn_fc_0.w_0 has shape \(32, 48\), config implies \(32, 64\)"):
        load_model_dir(path)


def test_more_layers_in_config_than_in_file(saved):
    path = saved[0]
    values = json.loads((path / "ernie_config.json").read_text())
    values["num_hidden_layers"] = 3
    (path / "ernie_config.json").write_text(json.dumps(values))
    with pytest.raises(CheckpointError, match="missing 16 encoder parameter"):
        load_model_dir(path)


def test_vocab_that_does_not_match(saved):
    path = saved[0]
    with open(path / "vocab.txt", "a") as f:
        f.write("extra\n")
    with pytest.raises(CheckpointError, match="121 tokens but the model config says vocab_size 120"):
        load_model_dir(path)


def test_bad_config_in_directory(saved):
    path = saved[0]
    (path / "ernie_config.json").write_text('{"vocab_size": 120, "hidden_size": 30}')
    with pytest.raises(ConfigError, match="not divisible"):
        load_model_dir(path)


def test_wrong_shapes_are_refused_before_writing(saved):
    path, config, params = saved
    broken = dict(params)
    broken["word_embedding"] = np.zeros((3, 3), np.float32)
    with pytest.raises(CheckpointError, match="word_embedding has shape"):
        save_model_dir(path, config, broken)


def test_save_killed_midway_leaves_previous_directory_intact(saved, monkeypatch):
    path, config, params = saved
    before = (path / "params.safetensors").read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("ernie.formats.checkpoint.save_params", disk_full)
    with pytest.raises(OSError):
        save_model_dir(path, config, params)
    assert (path / "params.safetensors").read_bytes() == before
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []
