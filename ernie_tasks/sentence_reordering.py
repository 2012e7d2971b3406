"""Sentence reordering: a paragraph is split into n segments (1 <= n <= m), shuffled, and the
model names the permutation among k = 1! + 2! + ... + m! classes (33 for m = 4).

Canonical order of the classes: by n, then the permutations of n in lexicographic order, so
class 0 is n = 1, classes 1-2 are n = 2 ((0,1) then (1,0)), classes 3-8 are n = 3, and so on.
A permutation p lists, for each position of the shuffled input, the original index of the
segment placed there: the input is segment p[0], then p[1], ...
Segments are runs of whole sentences; the class is drawn uniformly among the classes the
paragraph's number of sentences allows, so the classes are balanced.
"""
import itertools
import math
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np

from data_gen.data_task import DataTask
from ernie.pretrain.task_head import LinearHead
from ernie_common.tasks import SENTENCE, TaskOptions, register


def num_classes(max_segments: int) -> int:
    return sum(math.factorial(n) for n in range(1, max_segments + 1))


def _offset(n: int) -> int:
    return sum(math.factorial(k) for k in range(1, n))


def permutation_class(perm: Sequence[int]) -> int:
    n = len(perm)
    rank = list(itertools.permutations(range(n))).index(tuple(perm))
    return _offset(n) + rank


def class_permutation(label: int, max_segments: int) -> Tuple[int, ...]:
    for n in range(1, max_segments + 1):
        if label < _offset(n + 1):
            return list(itertools.permutations(range(n)))[label - _offset(n)]
    raise ValueError(f"class {label} is outside the {num_classes(max_segments)} classes of m={max_segments}")


def split_and_shuffle(n_sentences: int, max_segments: int, rng: np.random.Generator
                      ) -> Tuple[List[Tuple[int, int]], Tuple[int, ...], int]:
    """(segments as sentence ranges in shuffled order, permutation, class) for a paragraph."""
    feasible = num_classes(min(max_segments, n_sentences))
    label = int(rng.integers(feasible))
    perm = class_permutation(label, max_segments)
    n = len(perm)
    cuts = sorted(rng.choice(np.arange(1, n_sentences), n - 1, replace=False).tolist()) if n > 1 else []
    bounds = [0] + cuts + [n_sentences]
    segments = [(bounds[i], bounds[i + 1]) for i in range(n)]
    return [segments[i] for i in perm], perm, label


@dataclass
class SentenceReorderingOptions(TaskOptions):
    reorder_max_segments: int = 4  # m: a paragraph is cut into at most m segments

    def __post_init__(self):
        if not 1 <= self.reorder_max_segments <= 5:
            raise ValueError("reorder_max_segments must be between 1 and 5")


@register(options=SentenceReorderingOptions, head=LinearHead)
class SentenceReordering(DataTask):
    name, task_id, level = "sentence_reordering", 3, SENTENCE
    text_task = True
    description = "which permutation shuffled this paragraph's segments? (structure-aware)"

    def max_parts(self) -> int:
        return self.options.reorder_max_segments

    def num_classes(self, generator) -> int:
        return num_classes(self.options.reorder_max_segments)

    def segment_example(self, context, segment, rng, stats):
        first, end = segment
        order, _, label = split_and_shuffle(end - first, self.options.reorder_max_segments, rng)
        return context.plan([context.token_range(first + a, first + b) for a, b in order], self, label, stats)

    def describe(self, example, tokens, original, manifest):
        permutation = class_permutation(example.label, self.options.reorder_max_segments)
        return {"label": f"{example.label} permutation={list(permutation)}"}
