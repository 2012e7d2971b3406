"""Knowledge masking (ERNIE 1.0, kept in 2.0): mask whole units at three levels.

- basic: an English word (all its word pieces), a Chinese character;
- phrase: an English collocation (a bigram whose pointwise mutual information over the corpus is
  high, `Collocations`), a Chinese multi-character word of the segmentation (the corpus's own, or
  jieba's, whose dictionary is built from word frequencies);
- entity: a People's Daily person/place/organisation span (`nr`/`ns`/`nt`, consecutive `nr`
  merged, e.g. 江/nr 泽民/nr), an entry of a user-supplied entity list, or for English a run of
  two or more capitalised words ("United States", "Social Security Administration").
Units are stored as boundaries, like the original `seg_labels`: 0 starts a unit, 1 continues
one, -1 marks [CLS]/[SEP]. Two arrays per example: `seg_basic` (basic units only) and
`seg_knowledge` (entities, then phrases, then basic units), so masking runs offline here or on
the fly in the reader with `mask_units`.
Masking chooses 15% of the units; every token of a chosen unit is replaced by [MASK] with
probability 0.8, by a random token with 0.1, or kept with 0.1 (decided per token, as BERT's
whole-word masking does).
"""
from __future__ import annotations

import math
import re
from collections import Counter
from typing import Iterable, List, Optional, Sequence, Set, Tuple

import numpy as np

from ..tokenized import TokSentence

PHRASE, ENTITY = 1, 2
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
_ENTITY_TAGS = {"nr", "ns", "nt", "nz"}


class Collocations:
    """English bigram phrases by pointwise mutual information, from one pass over the corpus."""

    def __init__(self, min_count: int = 5, min_pmi: float = 3.0, max_phrases: int = 50000,
                 stopwords: Set[str] = frozenset()):
        self.min_count, self.min_pmi, self.max_phrases = min_count, min_pmi, max_phrases
        self.stopwords = stopwords
        self.unigrams: Counter = Counter()
        self.bigrams: Counter = Counter()
        self.phrases: Set[Tuple[str, str]] = set()

    def count(self, sentence_text: str) -> None:
        words = _WORD.findall(sentence_text.lower())
        self.unigrams.update(words)
        self.bigrams.update(zip(words, words[1:]))

    def finish(self) -> "Collocations":
        total = sum(self.unigrams.values()) or 1
        scored = []
        for (a, b), n in self.bigrams.items():
            if n < self.min_count or a in self.stopwords or b in self.stopwords:
                continue
            pmi = math.log(n * total / (self.unigrams[a] * self.unigrams[b]))
            if pmi >= self.min_pmi:
                scored.append((pmi * math.log(n), a, b))
        scored.sort(reverse=True)
        self.phrases = {(a, b) for _, a, b in scored[:self.max_phrases]}
        self.unigrams, self.bigrams = Counter(), Counter()  # the counts are no longer needed
        return self


def _entity_list_spans(words: Sequence[str], entities: Set[Tuple[str, ...]], max_len: int, lang: str):
    """Longest matches of the entity list: word sequences (English) or their concatenation."""
    spans, i = [], 0
    if not entities:
        return spans
    while i < len(words):
        for n in range(min(max_len, len(words) - i), 0, -1):
            key = tuple(words[i:i + n]) if lang == "en" else ("".join(words[i:i + n]),)
            if key in entities:
                spans.append((i, i + n))
                i += n
                break
        else:
            i += 1
    return spans


def unit_spans(sent: TokSentence, lang: str, phrases: Set[Tuple[str, str]],
               entities: Set[Tuple[str, ...]], stopwords: Set[str] = frozenset(),
               max_entity_words: int = 6) -> List[Tuple[int, int, int]]:
    """Non-overlapping (first word, end word, level) spans of phrases and entities.

    A capitalised run does not start with a sentence-initial stop word ("And Mitch" is not an
    entity; "Mitch" alone is a basic unit)."""
    n = len(sent.words)
    taken = np.zeros(n, dtype=bool)
    spans = []

    def add(start, end, level):
        if end - start >= (2 if lang == "en" else 1) and not taken[start:end].any():
            taken[start:end] = True
            spans.append((start, end, level))

    for start, end in _entity_list_spans(sent.words, entities, max_entity_words, lang):
        add(start, end, ENTITY)
    if lang == "en":
        capital = sent.word_case == 1
        if n and sent.words[0] in stopwords:
            capital = capital.copy()
            capital[0] = False
        edges = np.diff(np.concatenate(([0], capital.view(np.int8), [0])))
        for start, end in zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()):
            add(start, end, ENTITY)  # runs of capitalised words (add keeps those of 2 or more)
        if phrases:
            words = sent.words
            for i, pair in enumerate(zip(words, words[1:])):
                if pair in phrases:
                    add(i, i + 2, PHRASE)
    else:
        i = 0
        while i < n:  # tagged named entities; consecutive person-name parts form one name
            j = i + 1
            if sent.tags[i] in _ENTITY_TAGS:
                while j < n and sent.tags[i] == "nr" and sent.tags[j] == "nr":
                    j += 1
                add(i, j, ENTITY)
            i = j
        for w, word in enumerate(sent.words):
            if len(word) > 1 and not taken[w]:
                add(w, w + 1, PHRASE)
    return sorted(spans)


def segment_labels(sent: TokSentence, spans) -> Tuple[np.ndarray, np.ndarray]:
    """(seg_basic, seg_knowledge) over the sentence's tokens: 0 starts a unit, 1 continues."""
    seg_basic = np.where(sent.basic_start, 0, 1).astype(np.int8)
    seg_knowledge = seg_basic.copy()
    for start, end, _ in spans:
        in_span = (sent.word_of_token >= start) & (sent.word_of_token < end)
        idx = np.flatnonzero(in_span)
        if idx.size:
            seg_knowledge[idx] = 1
            seg_knowledge[idx[0]] = 0
    return seg_basic, seg_knowledge


def unit_starts(seg: np.ndarray) -> np.ndarray:
    return np.flatnonzero(seg == 0)


def mask_units(ids: np.ndarray, seg: np.ndarray, rng: np.random.Generator, vocab_size: int,
               mask_id: int, first_normal_id: int, ratio: float = 0.15):
    """Masks 15% of the units of `seg`. Returns (masked ids, positions, original ids)."""
    starts = unit_starts(seg)
    if starts.size == 0:
        return ids.copy(), np.zeros(0, np.int32), np.zeros(0, np.int32)
    n_chosen = max(1, int(round(ratio * starts.size)))
    chosen = np.sort(rng.choice(starts.size, n_chosen, replace=False))
    # a unit runs from its start to the next position that is not a continuation (1)
    positions = []
    for u in chosen:
        p = starts[u]
        positions.append(p)
        p += 1
        while p < len(seg) and seg[p] == 1:
            positions.append(p)
            p += 1
    positions = np.asarray(positions, dtype=np.int32)
    labels = ids[positions].astype(np.int32)
    masked = ids.copy()
    roll = rng.random(positions.size)
    masked[positions[roll < 0.8]] = mask_id
    random_pos = positions[(roll >= 0.8) & (roll < 0.9)]
    masked[random_pos] = rng.integers(first_normal_id, vocab_size, random_pos.size)
    return masked, positions, labels


def mask_example(ids: np.ndarray, seg_basic: np.ndarray, seg_knowledge: np.ndarray,
                 rng: np.random.Generator, knowledge_prob: float, vocab_size: int, mask_id: int,
                 first_normal_id: int, ratio: float = 0.15):
    """Masks one example by knowledge units (probability `knowledge_prob`) or by basic units;
    the same rule offline (`data_gen make`) and online (the pre-training reader)."""
    seg = seg_knowledge if rng.random() < knowledge_prob else seg_basic
    return mask_units(ids, seg, rng, vocab_size, mask_id, first_normal_id, ratio)


def load_entity_list(path: Optional[str], lang: str) -> Set[Tuple[str, ...]]:
    """One entity a line; English entities are matched as word sequences, Chinese as words."""
    if not path:
        return set()
    entities = set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip().lower()
            if line:
                entities.add(tuple(line.split()) if lang == "en" else (line,))
    return entities


def count_levels(spans: Iterable[Tuple[int, int, int]]) -> Counter:
    return Counter({PHRASE: "phrase_units", ENTITY: "entity_units"}[level] for _, _, level in spans)
