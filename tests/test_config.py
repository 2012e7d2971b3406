import json

import pytest

from ernie.model.config import ConfigError, ErnieConfig
from tests.conftest import REPO


def test_reads_original_ernie2_config(tmp_path):
    # The keys of the released ERNIE 2.0 English base config.
    original = {"attention_probs_dropout_prob": 0.1, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
                "hidden_size": 768, "initializer_range": 0.02, "max_position_embeddings": 512,
                "num_attention_heads": 12, "num_hidden_layers": 12, "sent_type_vocab_size": 4,
                "task_type_vocab_size": 16, "vocab_size": 30522}
    (tmp_path / "ernie_config.json").write_text(json.dumps(original))
    config = ErnieConfig.from_file(tmp_path)
    assert config.sent_type_vocab_size == 4 and config.task_type_vocab_size == 16
    assert config.use_task_id is False and config.intermediate_size == 3072
    assert config.layer_norm_eps == 1e-5


def test_ernie1_type_vocab_size_is_an_alias(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"vocab_size": 18000, "type_vocab_size": 2, "hidden_act": "relu"}))
    assert ErnieConfig.from_file(path).sent_type_vocab_size == 2


@pytest.mark.parametrize("preset,expected", [("tiny", (4, 256, 4, 1024)), ("base", (12, 768, 12, 3072)),
                                             ("large", (24, 1024, 16, 4096))])
def test_presets(preset, expected):
    config = ErnieConfig.from_file(REPO / "configs" / "model" / f"{preset}.yaml", vocab_size=1000)
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads,
            config.intermediate_size) == expected


@pytest.mark.parametrize("values,message", [
    ({"vocab_size": 10, "hidden_size": 30, "num_attention_heads": 4}, "not divisible"),
    ({"vocab_size": 10, "hiden_size": 32}, r"unknown key\(s\) \['hiden_size'\]"),
    ({"vocab_size": 10, "hidden_act": "swish"}, "hidden_act"),
    ({"vocab_size": 10, "type_vocab_size": 2, "sent_type_vocab_size": 4}, "contradicts"),
    ({"vocab_size": 0}, "vocab_size must be a positive integer"),
    ({"hidden_size": 32}, "vocab_size is required"),
    ({"vocab_size": 10, "hidden_dropout_prob": 1.5}, "hidden_dropout_prob"),
])
def test_bad_configs_are_clear_errors(tmp_path, values, message):
    path = tmp_path / "ernie_config.json"
    path.write_text(json.dumps(values))
    with pytest.raises(ConfigError, match=message) as err:
        ErnieConfig.from_file(path)
    assert str(path) in str(err.value)


def test_malformed_file(tmp_path):
    path = tmp_path / "ernie_config.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        ErnieConfig.from_file(path)


@pytest.mark.parametrize("data, says", [
    (b"markers: [however, thus\nlang: en\n", r"c.yaml: not valid YAML: line 2, column 5: expected ',' or ']', but got ':'"),
    (b"a: 1\n  b: 2\n", r"c.yaml: not valid YAML: line 2, column 4: mapping values are not allowed here"),
    (b"stopwords: caf\xe9.txt\n", r"c.yaml: not UTF-8 text \(byte 14: invalid continuation byte\)"),
])
def test_a_config_file_that_cannot_be_read_is_one_line_naming_where(tmp_path, data, says):
    from ernie_common.configfile import read
    (tmp_path / "c.yaml").write_bytes(data)
    with pytest.raises(ConfigError, match=says) as err:
        read(tmp_path / "c.yaml")
    assert "\n" not in str(err.value)


def test_off_on_yes_and_no_are_words_and_only_true_and_false_booleans(tmp_path):
    """YAML 1.2's booleans, not PyYAML's 1.1 ones: `amp: off` names the precision (it read as False,
    which a str key refused), and a boolean key given `yes` says what it takes."""
    from ernie.pretrain.config import PretrainError, load_config
    base = "model: m\ndata: d\noutput: o\nschedule: {}\n"
    path = tmp_path / "c.yaml"
    path.write_text(base + "amp: off\nrecompute: True\n")
    config = load_config(path)
    assert (config.amp, config.recompute) == ("off", True)
    assert load_config(path, overrides=["amp=off", "recompute=false"]).recompute is False
    path.write_text(base + "recompute: yes\n")
    with pytest.raises(PretrainError, match="recompute must be true or false, got 'yes'"):
        load_config(path)
