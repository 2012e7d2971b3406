"""The chunk tokenizer gives, token for token, what the `tokenizers` pipeline gives sentence by
sentence: ids, character offsets and word boundaries, on real text and on awkward characters."""
import numpy as np
import pytest

from data_gen.pieces import PieceTokenizer
from ernie_common.tokenization import FullTokenizer

AWKWARD = [
    "Café  naïve\u00a0test\x07x and e\u0301 combining",  # accents, no-break space, control, combining mark
    "ＡＢＣ１９９８年 中\u0301文 ﬁne \U0001F600 ΑΣ. a\u200bb",  # fullwidth, CJK + mark, ligature, emoji, sigma
    "tab\there, new\rline, \u3000ideographic space, \ufeffbom, \u2028separator",
    "", "   ", "U.S. $3.5bn -- \"quoted\" (parenthesised) [bracketed] 50%!?",
    "x" * 150 + " a word over the tokenizer's 100 characters",
]


def _reference(backend, texts):
    out = []
    for enc in backend.encode_batch(texts, add_special_tokens=False):
        words = np.asarray(enc.word_ids, np.int64)
        starts = np.ones(len(words), bool)
        starts[1:] = words[1:] != words[:-1]
        out.append((enc.ids, [o[0] for o in enc.offsets], [o[1] for o in enc.offsets], starts.tolist()))
    return out


def _check(tokenizer, backend, texts):
    stream = tokenizer.encode(texts)
    for i, expected in enumerate(_reference(backend, texts)):
        a, b = stream.text_tokens[i], stream.text_tokens[i + 1]
        offset = stream.text_chars[i]
        got = (stream.ids[a:b].tolist(), (stream.starts[a:b] - offset).tolist(),
               (stream.ends[a:b] - offset).tolist(), stream.word_start[a:b].tolist())
        assert got == expected, texts[i]


@pytest.mark.parametrize("lower", [True, False])
def test_same_tokens_as_the_tokenizer_on_english(en_vocab, en_lines, lower):
    backend = FullTokenizer(en_vocab, do_lower_case=lower).backend
    tokenizer = PieceTokenizer(backend)
    _check(tokenizer, backend, en_lines[:1500] + AWKWARD)
    _check(tokenizer, backend, en_lines[1500:3000])  # now mostly from the cache


def test_same_tokens_as_the_tokenizer_on_chinese(zh_vocab, zh_lines):
    backend = FullTokenizer(zh_vocab).backend
    _check(PieceTokenizer(backend), backend, zh_lines[:600] + AWKWARD)


def test_a_full_cache_is_emptied_between_batches(en_vocab, en_lines):
    backend = FullTokenizer(en_vocab).backend
    tokenizer = PieceTokenizer(backend, max_pieces=200)
    sizes = []
    for start in range(0, 600, 100):
        _check(tokenizer, backend, en_lines[start:start + 100])
        sizes.append(len(tokenizer))
    assert any(after < before for before, after in zip(sizes, sizes[1:]))  # it was emptied
