"""Sentence distance: three classes for a pair of sentence runs (A, B).

0: B directly follows A in the same document; 1: B is from the same document but not adjacent
(at least one sentence between them, either side); 2: B is from another document. A short
document allows fewer classes (a two-sentence one has no "not adjacent"; another document is
always possible), so a uniform draw would favour class 2 on corpora of short documents (40% on
People's Daily). Instead the class is the one, among those the document allows, that has the
fewest examples so far in the chunk (ties drawn at random): the classes stay balanced wherever
the documents allow it (the counts are in the manifest).
"""
from typing import List, Optional, Sequence, Tuple

import numpy as np

ADJACENT, SAME_DOCUMENT, OTHER_DOCUMENT = 0, 1, 2
CLASS_NAMES = ("adjacent", "same_document_not_adjacent", "other_document")


def choose_pair(n_sentences: int, a_start: int, a_end: int, b_len: int, has_other_document: bool,
                rng: np.random.Generator, counts: Sequence[int] = (0, 0, 0)
                ) -> Optional[Tuple[int, Optional[Tuple[int, int]]]]:
    """Class and B's sentence range in A's document (None for another document's B); `counts`
    are the examples per class so far."""
    options: List[Tuple[int, Optional[Tuple[int, int]]]] = []
    if a_end + b_len <= n_sentences:
        options.append((ADJACENT, (a_end, a_end + b_len)))
    # B at least one sentence away: starts 0 .. a_start - b_len - 1, or a_end + 1 .. n - b_len
    before, after = max(0, a_start - b_len), max(0, n_sentences - b_len - a_end)
    if before + after:
        k = int(rng.integers(before + after))
        start = k if k < before else a_end + 1 + k - before
        options.append((SAME_DOCUMENT, (start, start + b_len)))
    if has_other_document:
        options.append((OTHER_DOCUMENT, None))
    if not options:
        return None
    fewest = min(counts[label] for label, _ in options)
    options = [option for option in options if counts[option[0]] == fewest]
    return options[int(rng.integers(len(options)))]
