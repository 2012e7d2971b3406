import shutil
import subprocess
import sys

import numpy as np
import pytest

from ernie.formats.checkpoint import save_model_dir
from ernie.model.features import pack_pair, pad_batch
from ernie.model.modeling import ErnieModel
from ernie.model.params_io import layer_params
from ernie.model.static_graph import StaticEncoder
from ernie_common.tokenization import FullTokenizer, load_vocab
from tests.conftest import small_config


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, en_vocab):
    config = small_config(vocab_size=len(load_vocab(en_vocab)), max_position_embeddings=64)
    path = tmp_path_factory.mktemp("model") / "m"
    save_model_dir(path, config, layer_params(ErnieModel(config)), vocab_file=en_vocab)
    return path, config


def _encode(model, inp, out, *extra):
    return subprocess.run([sys.executable, "-m", "ernie.encode", "--model", str(model), "--input", str(inp),
                           "--output", str(out), *extra], capture_output=True, text=True)


def test_encode_writes_pooled_and_top_layer(model_dir, en_vocab, tmp_path):
    path, config = model_dir
    lines = ["The Congress shall make no law.", "We the people\tof the United States",
             "In order to form a more perfect union " * 10]
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n")
    result = _encode(path, tmp_path / "in.txt", tmp_path / "out", "--max-seq-len", "32", "--task-id", "2",
                     "--batch-size", "2")
    assert result.returncode == 0, result.stderr
    cls_emb = np.load(tmp_path / "out" / "cls_emb.npy")
    top = np.load(tmp_path / "out" / "top_layer_emb.npy")
    assert cls_emb.shape == (3, config.hidden_size) and top.shape == (3, 32, config.hidden_size)

    tok = FullTokenizer(en_vocab)
    examples = [pack_pair(tok.encode("We the people"), tok.encode("of the United States"), 32, tok.cls_id, tok.sep_id)]
    feeds = pad_batch(examples, tok.pad_id, task_id=2)
    seq, pooled = StaticEncoder(config, layer_params_from(path)).run(feeds)
    n = len(examples[0][0])
    np.testing.assert_allclose(cls_emb[1], pooled[0], atol=1e-6)
    np.testing.assert_allclose(top[1, :n], seq[0, :n], atol=1e-6)
    assert not top[1, n:].any()  # zeros past the line's length
    assert top[2].any(axis=1).sum() == 32  # the long line is truncated to max_seq_len
    assert "1 of them longer than 32 tokens, cut to it" in result.stdout


def layer_params_from(path):
    from ernie.formats.checkpoint import load_model_dir
    return load_model_dir(path)[1]


def test_pack_pair_truncates_the_longer_side():
    src, sent = pack_pair([5] * 10, [6] * 4, 12, cls_id=1, sep_id=2)
    assert src == [1] + [5] * 5 + [2] + [6] * 4 + [2]
    assert sent == [0] * 7 + [1] * 5


@pytest.mark.parametrize("content,message", [
    (b"one\ttwo\tthree\n", "in.txt:1: expected text_a or text_a<TAB>text_b, found 3"),
    (b"fine\n\xff\xfe bad\n", "in.txt:2: not UTF-8"),
    (b"fine\n\n", "in.txt:2: text_a is empty"),
])
def test_bad_input_lines(model_dir, tmp_path, content, message):
    (tmp_path / "in.txt").write_bytes(content)
    result = _encode(model_dir[0], tmp_path / "in.txt", tmp_path / "out")
    assert result.returncode == 2 and message in result.stderr
    assert not (tmp_path / "out" / "cls_emb.npy").exists()


def test_task_id_outside_the_embedding(model_dir, tmp_path):
    (tmp_path / "in.txt").write_text("hello\n")
    result = _encode(model_dir[0], tmp_path / "in.txt", tmp_path / "out", "--task-id", "3", "--max-seq-len", "16")
    assert result.returncode == 2 and "task_id 3 does not fit the model's task embedding (3 rows" in result.stderr
    result = _encode(model_dir[0], tmp_path / "in.txt", tmp_path / "out", "--max-seq-len", "65")
    assert result.returncode == 2 and "max_seq_len 65 exceeds the model's max_position_embeddings 64" in result.stderr


@pytest.mark.parametrize("option, value, message", [
    ("--batch-size", "0", "argument --batch-size: expected a positive integer, got 0"),
    ("--batch-size", "-1", "argument --batch-size: expected a positive integer, got -1"),
    ("--max-seq-len", "1", "--max-seq-len 1 leaves no room for a token between [CLS] and [SEP]"),
], ids=["batch-size-0", "batch-size-negative", "max-seq-len-1"])
def test_counts_below_their_least(model_dir, tmp_path, option, value, message):
    """A batch size of -1 wrote all-zero embeddings; 0, or a maximum length of 1, gave a traceback."""
    (tmp_path / "in.txt").write_text("hello\nworld\n")
    result = _encode(model_dir[0], tmp_path / "in.txt", tmp_path / "out", "--max-seq-len", "16", option, value)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "cls_emb.npy").exists()


def test_text_is_cased_as_the_model_records(model_dir, tmp_path):
    """A model that records cased text is encoded cased without a flag (as --cased does on one
    that records nothing); --cased on a model that records lower-cased text is refused."""
    path, _ = model_dir
    (tmp_path / "in.txt").write_text("The Congress shall make no law.\n")
    cased = tmp_path / "cased"
    shutil.copytree(path, cased)
    (cased / "tokenizer_config.json").write_text('{"do_lower_case": false}')
    assert _encode(cased, tmp_path / "in.txt", tmp_path / "by-record", "--max-seq-len", "16").returncode == 0
    assert _encode(path, tmp_path / "in.txt", tmp_path / "by-flag", "--max-seq-len", "16", "--cased").returncode == 0
    assert _encode(path, tmp_path / "in.txt", tmp_path / "lower", "--max-seq-len", "16").returncode == 0
    by_record, by_flag, lower = (np.load(tmp_path / d / "cls_emb.npy") for d in ("by-record", "by-flag", "lower"))
    np.testing.assert_array_equal(by_record, by_flag)
    assert not np.allclose(by_record, lower)
    (cased / "tokenizer_config.json").write_text('{"do_lower_case": true}')
    result = _encode(cased, tmp_path / "in.txt", tmp_path / "refused", "--max-seq-len", "16", "--cased")
    assert result.returncode == 2 and "records that the model learned from lower-cased text" in result.stderr
