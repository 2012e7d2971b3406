"""Which features go into which batch.

A batch is padded to its longest sequence, so random batches of sentences whose lengths vary
(MSRA-NER: 3 to 126 characters; review sentiment: 5 to 128 tokens) spend much of their compute
on padding. With `group_by_length`, each epoch's shuffled order is cut into windows of
`WINDOW_BATCHES` batches, each window is sorted by length and cut into batches, and the batches
are shuffled: batches hold similar lengths and stay random in order.

Grouping is off by default, as the released scripts batch at random: where length goes with the
label, length-sorted batches go with it too, each holding a few classes. On Brown genre, whose
passage length goes with the genre, a randomly initialised encoder fine-tuned on grouped
batches never left the majority class (docs/pretraining.md, "The fine-tuning path"). Turn it
on for speed where length says nothing of the label.
"""
from __future__ import annotations

from typing import List, Sequence

import numpy as np

WINDOW_BATCHES = 50


def epoch_batches(lengths: Sequence[int], batch_size: int, seed: int, epoch: int,
                  group_by_length: bool) -> List[np.ndarray]:
    """Row indices of each training batch of `epoch`: every row once, ceil(n / batch_size)
    batches (a window is a whole number of batches, so only the last batch can be short), the
    same for the same (seed, epoch)."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    if not group_by_length:
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    lengths = np.asarray(lengths)
    window = batch_size * WINDOW_BATCHES
    batches = []
    for start in range(0, len(order), window):
        rows = order[start:start + window]
        rows = rows[np.argsort(lengths[rows], kind="stable")]
        batches += [rows[i:i + batch_size] for i in range(0, len(rows), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def by_length(lengths: Sequence[int], batch_size: int) -> List[np.ndarray]:
    """Row indices of evaluation batches, shortest sequences first (results are put back in
    row order by the caller)."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
