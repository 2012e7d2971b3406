"""Ids must equal Hugging Face's pure-Python BERT tokenizer on real English and Chinese text."""
import pytest
from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy, WordpieceTokenizer

from ernie_common.tokenization import CharTokenizer, FullTokenizer, VocabError, load_vocab

EDGE_CASES = [
    "", "   ", "Café naïve résumé — ÀÉÎÕÜ", "tab\tand\u00a0nbsp\u3000ideographic space",
    "control\x00chars\x07here\ufffd", "x" * 150 + " after-a-very-long-word", "U.S.A. $3.50, 1,000.5%!?",
    "混合 mixed 中文 text。", "emoji 🙂 and ﬁ ligature", "日本語のテキストと한국어",
]


def _reference_ids(ref, lines):
    return [ref.convert_tokens_to_ids(ref.tokenize(line)) for line in lines]


@pytest.mark.parametrize("lower", [True, False], ids=["uncased", "cased"])
def test_english_ids_equal_hf_bert_tokenizer(en_lines, en_vocab, lower):
    lines = (en_lines if lower else en_lines[:10000]) + EDGE_CASES
    assert len(lines) >= 10000
    ours = FullTokenizer(en_vocab, do_lower_case=lower)
    ref = BertTokenizerLegacy(str(en_vocab), do_lower_case=lower)
    assert ours.encode_batch(lines) == _reference_ids(ref, lines)


def test_chinese_ids_equal_hf_bert_tokenizer(zh_lines, zh_vocab):
    lines = zh_lines[:10000] + EDGE_CASES
    ours = FullTokenizer(zh_vocab)
    ref = BertTokenizerLegacy(str(zh_vocab))
    ids = ours.encode_batch(lines)
    assert ids == _reference_ids(ref, lines)
    assert sum(map(len, ids)) > 500_000  # real text, not a handful of tokens


def test_char_tokenizer_matches_the_original_algorithm(zh_vocab):
    """The original CharTokenizer: lower-case, split on spaces, WordPiece each piece."""
    vocab = load_vocab(zh_vocab)
    wordpiece = WordpieceTokenizer(vocab=vocab, unk_token="[UNK]")
    lines = ["中共中央 总书记 、 国家 主席", "ＡＢＣ 新年 讲话 ABC", "一九九八年 １２月"]
    ours = CharTokenizer(zh_vocab)
    for line in lines:
        expected = [t for word in line.lower().split() for t in wordpiece.tokenize(word)]
        assert ours.tokenize(line) == expected


def test_offsets_point_into_the_original_text(en_vocab):
    tok = FullTokenizer(en_vocab)
    text = "The Congress of the United States"
    ids, offsets = tok.encode_with_offsets(text)
    assert [text[s:e].lower() for s, e in offsets] == [t.lstrip("#") for t in tok.convert_ids_to_tokens(ids)]


def test_vocab_with_tab_separated_ids(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("[PAD]\t0\n[CLS]\t1\n[SEP]\t2\n[MASK]\t3\n[UNK]\t4\n中\t5\n##国\t6\n", encoding="utf-8")
    tok = FullTokenizer(path)
    assert tok.encode("中国") == [5, 4]  # CJK characters are split, so 国 is a word of its own
    assert CharTokenizer(path).encode("中国") == [5, 6]


@pytest.mark.parametrize("content,message", [
    ("[PAD]\n[CLS]\n[SEP]\n[MASK]\n", "missing special token"),
    ("[PAD]\n[CLS]\n[SEP]\n[MASK]\n[UNK]\n[CLS]\n", "repeats"),
    ("[PAD]\t0\n[CLS]\t1\n[SEP]\t2\n[MASK]\t3\n[UNK]\t7\n", "not exactly"),
    ("[PAD]\t0\n[CLS]\tone\n", "expected 'token' or 'token<TAB>id'"),
])
def test_bad_vocab_is_a_clear_error(tmp_path, content, message):
    path = tmp_path / "vocab.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(VocabError, match=message) as err:
        load_vocab(path)
    assert str(path) in str(err.value)
