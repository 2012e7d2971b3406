"""BERT tokenization of a whole chunk of text at numpy speed, token for token what the
`tokenizers` pipeline it wraps gives sentence by sentence.

BERT's normaliser works character by character, and its pre-tokenizer cuts at whitespace and
isolates every CJK character and punctuation mark. So the text can be cut at those characters
without changing a single token:
- an *isolated* character is tokenized once and afterwards looked up by code point;
- a *run* (the characters between isolated ones and ASCII whitespace: a word, a number) is
  tokenized once, cached by its text, and reused wherever it recurs.
Which characters are isolated is asked of the tokenizer itself, so the table follows its
normaliser: c is isolated when "cc" gives c's single token twice, which a character that joins
its neighbours into one word cannot (a word's second piece carries "##", or the word is one
token). Everything per occurrence is then array work; Python touches each distinct run once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence

import numpy as np
from tokenizers import Tokenizer

_UNKNOWN, _RUN, _SPACE = -1, -2, -3
_ASCII_SPACE = (9, 10, 13, 32)
SEPARATOR = "\n"  # between the texts of a batch: whitespace, so no token spans two texts


@dataclass
class TokenStream:
    """Tokens of a batch of texts, concatenated. Character offsets refer to the texts joined by
    `SEPARATOR`; `text_tokens[i]:text_tokens[i + 1]` are text i's tokens."""
    ids: np.ndarray          # int32 [T]
    starts: np.ndarray       # int64 [T] first character of each token
    ends: np.ndarray         # int64 [T] one past its last character
    word_start: np.ndarray   # bool [T] first token of a pre-tokenizer word
    text_tokens: np.ndarray  # int64 [n + 1]
    text_chars: np.ndarray   # int64 [n + 1] where each text starts in the joined string
    joined: str


def intern_slices(text: str, starts: np.ndarray, ends: np.ndarray, table: Dict[str, int],
                  add: Callable[[List[str]], List[int]]) -> np.ndarray:
    """int64 `table[text[a:b]]` for each slice; `add` gives the values (>= 0) of the distinct
    slices the table lacks, which are then kept in it."""
    get = table.get
    spans = list(zip(starts.tolist(), ends.tolist()))
    values = [get(text[a:b], -1) for a, b in spans]
    missing = [i for i, v in enumerate(values) if v < 0]
    if missing:
        new = list(dict.fromkeys(text[spans[i][0]:spans[i][1]] for i in missing))
        table.update(zip(new, add(new)))
        for i in missing:
            values[i] = table[text[spans[i][0]:spans[i][1]]]
    return np.asarray(values, np.int64)


class PieceTokenizer:
    """Caches the tokenization of isolated characters and runs; `max_pieces` bounds the cache
    (it is emptied and refilled when full, between batches), as `tokenized.Lexicon` bounds the
    words."""

    def __init__(self, backend: Tokenizer, max_pieces: int = 100_000):
        self.backend = backend
        self.max_pieces = max_pieces
        self._reset()

    def _reset(self) -> None:
        self.char_code = np.full(0x110000, _UNKNOWN, dtype=np.int32)  # piece index, _RUN or _SPACE
        self.char_code[list(_ASCII_SPACE)] = _SPACE
        self.run_piece: Dict[str, int] = {}
        self.piece_text: List[str] = []
        self._new_ids: List[List[int]] = []
        self._new_offsets: List[List[tuple]] = []
        self._new_words: List[List[int]] = []
        # CSR store of the pieces' tokens: piece p has tokens token_offsets[p]:token_offsets[p + 1]
        self.token_offsets = np.zeros(1, np.int64)
        self.token_ids = np.zeros(0, np.int32)
        self.token_starts = np.zeros(0, np.int64)
        self.token_ends = np.zeros(0, np.int64)
        self.token_word_start = np.zeros(0, bool)

    def __len__(self) -> int:
        return len(self.piece_text)

    # ---- the cache ----------------------------------------------------------------------------

    def _add_pieces(self, texts: Sequence[str]) -> None:
        encodings = self.backend.encode_batch(list(texts), add_special_tokens=False)
        for text, enc in zip(texts, encodings):
            self.piece_text.append(text)
            self._new_ids.append(enc.ids)
            self._new_offsets.append(enc.offsets)
            self._new_words.append(enc.word_ids)

    def _add_runs(self, runs: List[str]) -> List[int]:
        first = len(self.piece_text)
        self._add_pieces(runs)
        return list(range(first, first + len(runs)))

    def _flush(self) -> None:
        """Moves pieces added since the last flush into the CSR arrays."""
        if not self._new_ids:
            return
        lengths = np.fromiter((len(i) for i in self._new_ids), np.int64, len(self._new_ids))
        ids = np.fromiter((t for i in self._new_ids for t in i), np.int32, int(lengths.sum()))
        offsets = np.asarray([o for os in self._new_offsets for o in os], np.int64).reshape(-1, 2)
        words = np.fromiter((w for ws in self._new_words for w in ws), np.int64, len(ids))
        first = np.zeros(len(ids), bool)
        token_starts_of_piece = np.cumsum(lengths) - lengths
        first[token_starts_of_piece[lengths > 0]] = True
        word_start = first.copy()
        word_start[1:] |= words[1:] != words[:-1]
        self.token_offsets = np.concatenate([self.token_offsets, self.token_offsets[-1] + np.cumsum(lengths)])
        self.token_ids = np.concatenate([self.token_ids, ids])
        self.token_starts = np.concatenate([self.token_starts, offsets[:, 0]])
        self.token_ends = np.concatenate([self.token_ends, offsets[:, 1]])
        self.token_word_start = np.concatenate([self.token_word_start, word_start])
        self._new_ids, self._new_offsets, self._new_words = [], [], []

    def _classify(self, code_points: np.ndarray) -> None:
        """Probes characters not seen before: isolated (gets a piece), run or whitespace."""
        chars = [chr(c) for c in code_points.tolist()]
        alone = self.backend.encode_batch(chars, add_special_tokens=False)
        doubled = self.backend.encode_batch([c + c for c in chars], add_special_tokens=False)
        isolated = []
        for c, cp, one, two in zip(chars, code_points.tolist(), alone, doubled):
            if len(one.ids) == 1 and two.ids == one.ids * 2 and two.offsets == [(0, 1), (1, 2)]:
                self.char_code[cp] = len(self.piece_text) + len(isolated)
                isolated.append(c)
            else:
                self.char_code[cp] = _RUN
        self._add_pieces(isolated)

    # ---- encoding -----------------------------------------------------------------------------

    def encode(self, texts: Sequence[str]) -> TokenStream:
        if len(self.piece_text) > self.max_pieces:
            self._reset()
        joined = SEPARATOR.join(texts)
        cps = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
        code = self.char_code[cps]
        if (code == _UNKNOWN).any():
            self._classify(np.unique(cps[code == _UNKNOWN]))
            code = self.char_code[cps]
        in_run = code == _RUN
        edges = np.diff(np.concatenate(([False], in_run, [False])).view(np.int8))
        run_starts, run_ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        run_pieces = intern_slices(joined, run_starts, run_ends, self.run_piece, self._add_runs)
        self._flush()

        isolated_at = np.flatnonzero(code >= 0)
        at = np.concatenate([isolated_at, run_starts])
        pieces = np.concatenate([code[isolated_at], run_pieces])
        order = np.argsort(at, kind="stable")
        at, pieces = at[order], pieces[order]

        first = self.token_offsets[pieces]
        counts = self.token_offsets[pieces + 1] - first
        total = int(counts.sum())
        begin = np.cumsum(counts) - counts
        rows = np.repeat(first - begin, counts) + np.arange(total)
        base = np.repeat(at, counts)
        starts = base + self.token_starts[rows]
        text_chars = np.concatenate([[0], np.cumsum([len(t) + len(SEPARATOR) for t in texts])])
        return TokenStream(
            ids=self.token_ids[rows], starts=starts, ends=base + self.token_ends[rows],
            word_start=self.token_word_start[rows], text_tokens=np.searchsorted(starts, text_chars),
            text_chars=text_chars, joined=joined)
