"""A chunk of sentences tokenized at once, as flat arrays over its tokens and lexical words.

A *lexical word* is the unit that capitalization and token-document relation label, and the
basic unit of English knowledge masking: for English, a word of BERT's pre-tokenizer (split on
whitespace and punctuation), read from the original cased text; for Chinese, a word of the
corpus's segmentation (People's Daily) or of jieba's, whose basic masking unit is the character.
Words are identified by their lower-cased text through a `Lexicon`, so the tasks compare
integers. Every task labels the whole chunk with array operations; Python loops run over
distinct words, sentences and examples, never over tokens.

What a chunk holds of a word is what the text says of it, for any task to read: its lower-cased
text, its case and the part-of-speech tag its corpus gave it (what a tag means to a task, e.g.
which tags are entities, is that task's). The case is read here, once per distinct cased word in
the tokenizer's cache, rather than in the tasks that use it (capitalization's labels, English
entities of knowledge masking): a task reading it from the text would touch every word of every
chunk again. The lexicon's flags (stop word, content word, several characters) are kept per
distinct word for the same reason.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, replace
from typing import Dict, Iterable, List, Sequence, Set, Tuple

import numpy as np

from ernie_common.tokenization import SentencePieceTokenizer, jieba_words

from .documents import Sentence
from .pieces import PieceTokenizer, intern_slices

NO_TAG = ""  # the tag of a word its corpus did not tag (raw text, segmented by jieba)
STOPWORD, CONTENT, MULTI_CHARACTER = 1, 2, 4  # Lexicon.flags bits
_LETTER_OR_DIGIT = re.compile(r"[^\W_]")


class Lexicon:
    """Lower-cased words as integers, with what the tasks ask of a word: is it a stop word, is it
    a content word (not a stop word, has a letter or digit), has it more than one character.
    `pinned` words (the phrase list's) keep ids 0..len(pinned)-1 across `reset`, which empties
    it once it holds more than `max_words` others: memory stays flat on a long corpus, whose
    vocabulary keeps growing. A word costs about 440 bytes in a worker with the caches keyed like
    it (this lexicon, `ChunkTokenizer`'s cased words, `PieceTokenizer`'s runs: 22 MB for the
    50,000 words of `bench_data_gen.py`'s 30 MB of English), so the bound keeps them under 45 MB
    whatever the corpus."""

    def __init__(self, stopwords: Set[str] = frozenset(), pinned: Iterable[str] = (), max_words: int = 100_000):
        self.stopwords = stopwords
        self.pinned = list(dict.fromkeys(pinned))
        self.max_words = max_words
        self.reset()

    def reset(self) -> None:
        self.index: Dict[str, int] = {}
        self.words: List[str] = []
        self.flags = np.zeros(0, np.uint8)
        self.ids(self.pinned)

    def maybe_reset(self) -> bool:
        """Resets a full lexicon; True when it did (ids held elsewhere are then stale)."""
        if len(self.words) - len(self.pinned) > self.max_words:
            self.reset()
            return True
        return False

    def ids(self, words: Sequence[str]) -> np.ndarray:
        get = self.index.get
        ids = [get(w, -1) for w in words]
        if -1 in ids:
            new = list(dict.fromkeys(w for w, i in zip(words, ids) if i < 0))
            for w in new:
                self.index[w] = len(self.words)
                self.words.append(w)
            flags = [(STOPWORD if w in self.stopwords else CONTENT if _LETTER_OR_DIGIT.search(w) else 0)
                     | (MULTI_CHARACTER if len(w) > 1 else 0) for w in new]
            self.flags = np.concatenate([self.flags, np.asarray(flags, np.uint8)])
            ids = [get(w) for w in words]
        return np.asarray(ids, np.int64)


@dataclass
class TokenizedChunk:
    ids: np.ndarray              # int32 [T] token ids
    word: np.ndarray             # int64 [T] the lexical word of each token
    word_start: np.ndarray       # bool [T] first token of its word
    basic_start: np.ndarray      # bool [T] first token of a basic masking unit
    sentence_tokens: np.ndarray  # int64 [S + 1] sentence s is tokens sentence_tokens[s]:[s + 1]
    word_sentence: np.ndarray    # int64 [W] the sentence of each word, -1 for a dropped one
    lexeme: np.ndarray           # int64 [W] the word's lower-cased text in the lexicon
    case: np.ndarray             # int8 [W] 1 capitalised, 0 lower-case, -1 no cased letter
    tag: np.ndarray              # int32 [W] the word's part-of-speech tag in its corpus, as an index of tag_names
    tag_names: Tuple[str, ...]   # the chunk's distinct tags
    lexicon: Lexicon
    # A Chinese corpus word can have no token of its own (a token of the subword tokenizer may
    # straddle two corpus words): it still occurs in its sentence.

    @property
    def n_sentences(self) -> int:
        return len(self.sentence_tokens) - 1

    def sentence_lengths(self) -> np.ndarray:
        return np.diff(self.sentence_tokens)

    def first_word_of_sentence(self) -> np.ndarray:
        """bool [W]."""
        first = np.ones(len(self.word_sentence), bool)
        first[1:] = self.word_sentence[1:] != self.word_sentence[:-1]
        return first

    def split_long(self, budget: int, stats: Counter) -> Tuple["TokenizedChunk", np.ndarray]:
        """Sentences without tokens dropped, sentences over `budget` tokens cut into pieces of
        at most `budget` (a word cut in two becomes two words; a word without tokens stays in the
        earlier piece); returns the new chunk and the source sentence of each new one."""
        lengths = self.sentence_lengths()
        stats["sentence_without_tokens"] += int((lengths == 0).sum())
        stats["long_sentence_split"] += int((lengths > budget).sum())
        pieces = -(-lengths // budget)
        first_piece = np.cumsum(pieces) - pieces
        within = np.arange(int(pieces.sum())) - np.repeat(first_piece, pieces)
        starts = np.repeat(self.sentence_tokens[:-1], pieces) + within * budget
        source = np.repeat(np.arange(self.n_sentences), pieces)
        cuts = starts[within > 0]
        inside = cuts[~self.word_start[cuts]]
        copies = np.bincount(self.word[inside], minlength=len(self.lexeme)) + 1
        shift = np.zeros(len(self.ids) + 1, np.int64)
        shift[inside + 1] = 1
        word = self.word + np.cumsum(shift)[1:]
        word_start = self.word_start.copy()
        word_start[inside] = True
        # a word's new sentence: the first piece of its sentence plus the cuts at or before it
        old_sentence = np.repeat(self.word_sentence, copies)
        cuts_before = np.cumsum(np.maximum(pieces - 1, 0)) - np.maximum(pieces - 1, 0)
        at = np.arange(len(old_sentence))
        valid = old_sentence >= 0
        valid[valid] = pieces[old_sentence[valid]] > 0
        word_sentence = np.full(len(old_sentence), -1, np.int64)
        s = old_sentence[valid]
        word_sentence[valid] = first_piece[s] + np.searchsorted(word[cuts], at[valid], side="right") - cuts_before[s]
        return replace(self, word=word, word_start=word_start, sentence_tokens=np.append(starts, len(self.ids)),
                       word_sentence=word_sentence, lexeme=np.repeat(self.lexeme, copies),
                       case=np.repeat(self.case, copies), tag=np.repeat(self.tag, copies)), source

    def tagged(self, tags: Set[str]) -> np.ndarray:
        """bool [W]: the words whose corpus tag is one of `tags`."""
        return np.isin(self.tag, [i for i, name in enumerate(self.tag_names) if name in tags])


class ChunkTokenizer:
    """Tokenizes the sentences of a chunk into one `TokenizedChunk` for one language, with any
    of `ernie_common.tokenization`'s tokenizers (their `tokenizers` pipeline does the work)."""

    def __init__(self, tokenizer, lang: str, lexicon: Lexicon):
        self.tokenizer = tokenizer
        self.lang = lang
        self.lexicon = lexicon
        self.pieces = PieceTokenizer(tokenizer.backend)
        self.continuation = tokenizer.continues_word()
        # SentencePiece takes Chinese as words separated by spaces: its pieces never cross a word
        self.pieces_by_word = isinstance(tokenizer, SentencePieceTokenizer) and lang == "zh"
        self._surface: Dict[str, int] = {}  # cased English word -> 4 * lexeme + case + 1

    def __call__(self, sentences: Sequence[Sentence]) -> TokenizedChunk:
        # the surface cache holds lexicon ids: it goes whenever the lexicon is reset
        if self.lexicon.maybe_reset() or len(self._surface) > self.lexicon.max_words:
            self._surface = {}
        if self.lang == "en":
            return self._english(self.pieces.encode([s.text for s in sentences]))
        return self._chinese(sentences)

    def encode_texts(self, texts: Sequence[str]):
        """The pieces of texts outside the chunk's sentences (a pair's second sentence without its
        marker, a query, a title), cut as the tokenizer cuts them in fine-tuning (its `prepare`:
        jieba's words for SentencePiece over Chinese, as the vocabulary was learned)."""
        return self.pieces.encode([self.tokenizer.prepare(t) for t in texts])

    def _english(self, stream) -> TokenizedChunk:
        word = np.cumsum(stream.word_start) - 1
        first = np.flatnonzero(stream.word_start)
        last = np.append(first[1:], len(stream.ids)) - 1
        facts = intern_slices(stream.joined, stream.starts[first], stream.ends[last], self._surface, self._surface_facts)
        word_sentence = np.searchsorted(stream.text_tokens, first, side="right") - 1
        return TokenizedChunk(stream.ids, word, stream.word_start, stream.word_start, stream.text_tokens,
                              word_sentence, facts >> 2, ((facts & 3) - 1).astype(np.int8),
                              np.zeros(len(first), np.int32), (NO_TAG,), self.lexicon)

    def _surface_facts(self, surfaces: List[str]) -> List[int]:
        """4 * lexeme + case + 1 of cased English words."""
        lexemes = self.lexicon.ids([s.lower() for s in surfaces]).tolist()
        return [4 * lexeme + (2 if s[:1].isupper() else 1 if s[:1].islower() else 0)
                for s, lexeme in zip(surfaces, lexemes)]

    def _segment(self, sentence: Sentence) -> Tuple[List[str], List[str]]:
        if sentence.tagged is not None:
            return sentence.words_and_tags()
        words = [w for w in jieba_words(sentence.text) if w]
        return words, [NO_TAG] * len(words)

    def _chinese(self, sentences: Sequence[Sentence]) -> TokenizedChunk:
        words: List[str] = []
        tags: List[str] = []
        per_sentence = []
        for s in sentences:
            w, t = self._segment(s)
            if self.pieces_by_word:  # a word of spaces only would be no word of the pipeline's
                w, t = [x for x in w if x.strip()], [y for x, y in zip(w, t) if x.strip()]
            words += w
            tags += t
            per_sentence.append(len(w))
        counts = np.asarray(per_sentence, np.int64)
        sentence_first_word = np.cumsum(counts) - counts
        if self.pieces_by_word:
            texts = [" ".join(words[a:a + n]) for a, n in zip(sentence_first_word, counts)]
        else:
            texts = [s.text for s in sentences]
        stream = self.pieces.encode(texts)
        # a word's first character in the joined text: its sentence's start plus the words (and,
        # between words, the spaces) before it
        lengths = np.fromiter(map(len, words), np.int64, len(words)) + self.pieces_by_word
        before = np.concatenate([[0], np.cumsum(lengths)])
        word_chars = np.repeat(stream.text_chars[:-1] - before[sentence_first_word], counts) + before[:-1]
        word = np.searchsorted(word_chars, stream.starts, side="right") - 1
        word_start = np.ones(len(word), bool)
        word_start[1:] = word[1:] != word[:-1]
        lexeme = self.lexicon.ids([w.lower() for w in words])
        tag_names = tuple(dict.fromkeys(tags))
        tag = np.fromiter(map({t: i for i, t in enumerate(tag_names)}.__getitem__, tags), np.int32, len(tags))
        # characters are the basic unit; a Latin word or number inside Chinese text stays whole
        return TokenizedChunk(stream.ids, word, word_start, ~self.continuation[stream.ids], stream.text_tokens,
                              np.repeat(np.arange(len(sentences)), counts), lexeme,
                              np.full(len(words), -1, np.int8), tag, tag_names, self.lexicon)
