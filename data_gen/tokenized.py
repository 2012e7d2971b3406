"""Sentences tokenized once, with what every task needs to know about their words.

A *lexical word* is the unit that capitalization and token-document relation label, and the
basic unit of English knowledge masking: for English, a word of BERT's pre-tokenizer (split on
whitespace and punctuation), read from the original cased text; for Chinese, a word of the
corpus's segmentation (People's Daily) or of jieba's, whose basic masking unit is the character.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence

import numpy as np

from ernie.tokenization import FullTokenizer

from .documents import Sentence


@dataclass
class TokSentence:
    ids: np.ndarray            # int32 [n] token ids
    word_of_token: np.ndarray  # int32 [n] index of the lexical word each token belongs to
    words: List[str]           # lower-cased lexical words
    tags: List[str]            # part-of-speech tag of each word ("" when the corpus has none)
    word_case: np.ndarray      # int8 per word: 1 capitalised, 0 lower-case, -1 no cased letter
    basic_start: np.ndarray    # bool [n] token starts a basic masking unit
    word_start: np.ndarray     # bool [n] token is the first of its lexical word

    def __len__(self) -> int:
        return len(self.ids)

    def slice(self, begin: int, end: int) -> "TokSentence":
        """Tokens [begin, end), for splitting a sentence longer than an example."""
        w = self.word_of_token[begin:end]
        first = int(w[0]) if len(w) else 0
        last = int(w[-1]) + 1 if len(w) else 0
        word_start = self.word_start[begin:end].copy()
        word_start[:1] = True
        return TokSentence(self.ids[begin:end], w - first, self.words[first:last], self.tags[first:last],
                           self.word_case[first:last], self.basic_start[begin:end], word_start)


def _word_starts(word_of_token: np.ndarray) -> np.ndarray:
    start = np.ones(len(word_of_token), dtype=bool)
    start[1:] = word_of_token[1:] != word_of_token[:-1]
    return start


class SentenceTokenizer:
    """Tokenizes batches of sentences into `TokSentence`s for one language."""

    def __init__(self, tokenizer: FullTokenizer, lang: str):
        self.tokenizer = tokenizer
        self.lang = lang
        self._jieba = None

    def _segment(self, sentence: Sentence):
        if sentence.words is not None:
            return [w for w, _ in sentence.words], [t for _, t in sentence.words]
        if self._jieba is None:
            import jieba
            jieba.setLogLevel(60)
            self._jieba = jieba
        words = [w for w in self._jieba.cut(sentence.text, HMM=True) if w]
        return words, [""] * len(words)

    def __call__(self, sentences: Sequence[Sentence]) -> List[TokSentence]:
        texts = [s.text for s in sentences]
        encodings = self.tokenizer.backend.encode_batch(texts, add_special_tokens=False)
        if self.lang == "en":
            return [self._english(text, enc) for text, enc in zip(texts, encodings)]
        return [self._chinese(s, enc) for s, enc in zip(sentences, encodings)]

    def _english(self, text: str, enc) -> TokSentence:
        # Every pre-tokenized word yields at least one piece ([UNK] at worst), so the word ids
        # run 0..k-1 without gaps.
        ids = np.asarray(enc.ids, dtype=np.int32)
        word_of_token = np.asarray(enc.word_ids, dtype=np.int32)
        start = _word_starts(word_of_token)
        offsets = np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2)
        first = np.flatnonzero(start)
        last = np.append(first[1:], len(ids)) - 1
        surfaces = [text[a:b] for a, b in zip(offsets[first, 0].tolist(), offsets[last, 1].tolist())]
        # 1 capitalised, 0 lower-case, -1 no cased letter (numbers, punctuation)
        case = [1 if w[:1].isupper() else 0 if w[:1].islower() else -1 for w in surfaces]
        return TokSentence(ids, word_of_token, [w.lower() for w in surfaces], [""] * len(surfaces),
                           np.asarray(case, dtype=np.int8), start, start)

    def _chinese(self, sentence: Sentence, enc) -> TokSentence:
        words, tags = self._segment(sentence)
        ids = np.asarray(enc.ids, dtype=np.int32)
        starts = np.cumsum([0] + [len(w) for w in words[:-1]])
        token_starts = np.asarray([s for s, _ in enc.offsets], dtype=np.int64)
        word_of_token = (np.searchsorted(starts, token_starts, side="right") - 1).astype(np.int32)
        # Characters are the basic unit; a Latin word or number inside Chinese text stays whole.
        basic_start = np.asarray([not t.startswith("##") for t in enc.tokens], dtype=bool)
        return TokSentence(ids, word_of_token, [w.lower() for w in words], tags,
                           np.full(len(words), -1, dtype=np.int8), basic_start, _word_starts(word_of_token))
