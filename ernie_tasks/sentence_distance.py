"""Sentence distance: three classes for a pair of sentence runs (A, B).

0: B directly follows A in the same document; 1: B is from the same document but not adjacent
(at least one sentence between them, either side); 2: B is from another document. A short
document allows fewer classes (a two-sentence one has no "not adjacent"; another document is
always possible), so a uniform draw would favour class 2 on corpora of short documents (40% on
People's Daily). Instead the class is the one, among those the document allows, that has the
fewest examples so far in the chunk (ties drawn at random): the classes stay balanced wherever
the documents allow it (the counts are in the manifest).
"""
from bisect import bisect_left
from typing import List, Optional, Sequence, Tuple

import numpy as np

from data_gen.data_task import DataTask
from ernie.pretrain.task_head import LinearHead
from ernie_common.tasks import SENTENCE, register

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


@register(head=LinearHead)
class SentenceDistance(DataTask):
    name, task_id, level = "sentence_distance", 4, SENTENCE
    text_task = True
    description = "are these two sentence runs adjacent, apart in one document, or from two? (structure-aware)"

    def num_classes(self, generator) -> int:
        return len(CLASS_NAMES)

    def manifest_entries(self, generator, stats) -> dict:
        return {"distance_classes": {name: stats[f"distance_class/{name}"] for name in CLASS_NAMES}}

    def segment_example(self, context, segment, rng, stats):
        """A: the first half of the segment; B: a run as long as the second half, where the class
        (see `choose_pair`) puts it."""
        first, end = segment
        d = context.doc_index
        doc_first, doc_end = int(context.doc_bounds[d]), int(context.doc_bounds[d + 1])
        a_start = first - doc_first
        a_end = a_start + max(1, (end - first) // 2)
        b_len = max(1, (end - first) - (a_end - a_start))
        non_empty = context.non_empty
        n_others = len(non_empty) - 1  # this document is among the non-empty ones
        counts = [stats[f"distance_class/{name}"] for name in CLASS_NAMES]
        choice = choose_pair(doc_end - doc_first, a_start, a_end, b_len, n_others > 0, rng, counts)
        if choice is None:
            stats["skipped/distance_pair_impossible"] += 1
            return None
        label, b_range = choice
        if label == OTHER_DOCUMENT:
            k = int(rng.integers(n_others))
            other = non_empty[k + (k >= bisect_left(non_empty, d))]
            o_first, o_end = int(context.doc_bounds[other]), int(context.doc_bounds[other + 1])
            start = o_first + int(rng.integers(max(1, o_end - o_first - b_len + 1)))
            b = (start, min(start + b_len, o_end))
        else:
            b = (doc_first + b_range[0], doc_first + b_range[1])
        stats[f"distance_class/{CLASS_NAMES[label]}"] += 1
        return context.plan([context.token_range(doc_first + a_start, doc_first + a_end), context.token_range(*b)],
                            self, label, stats)

    def describe(self, example, tokens, original, manifest):
        return {"label": f"{example.label} {CLASS_NAMES[example.label]}"}
