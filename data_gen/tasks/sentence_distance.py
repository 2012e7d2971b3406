"""Sentence distance: three classes for a pair of sentence runs (A, B).

0: B directly follows A in the same document; 1: B is from the same document but not adjacent
(at least one sentence between them, either side); 2: B is from another document. The class is
drawn uniformly among those the document allows, which keeps the classes balanced on any corpus
whose documents have a few sentences (the counts are in the manifest).
"""
from typing import List, Optional, Tuple

import numpy as np

ADJACENT, SAME_DOCUMENT, OTHER_DOCUMENT = 0, 1, 2
CLASS_NAMES = ("adjacent", "same_document_not_adjacent", "other_document")


def choose_pair(n_sentences: int, a_start: int, a_end: int, b_len: int, has_other_document: bool,
                rng: np.random.Generator) -> Optional[Tuple[int, Optional[Tuple[int, int]]]]:
    """Class and B's sentence range in A's document (None for another document's B)."""
    options: List[Tuple[int, Optional[Tuple[int, int]]]] = []
    if a_end + b_len <= n_sentences:
        options.append((ADJACENT, (a_end, a_end + b_len)))
    far = [s for s in range(0, n_sentences - b_len + 1)
           if s + b_len <= a_start - 1 or s >= a_end + 1]
    if far:
        start = int(rng.choice(far))
        options.append((SAME_DOCUMENT, (start, start + b_len)))
    if has_other_document:
        options.append((OTHER_DOCUMENT, None))
    if not options:
        return None
    return options[int(rng.integers(len(options)))]
