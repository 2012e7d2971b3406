"""The one batching rule of pre-training (`ernie.pretrain.data.fits`/`cut`): no batch holds more
padded slots (examples x longest) than its budget, whatever the lengths and their order, and
every batch is as full as the rule allows (the next example would not have fitted)."""
import numpy as np

from ernie.pretrain.data import cut


def test_a_long_example_after_short_ones_starts_the_next_batch():
    lengths = [100] * 40 + [512]
    assert [len(b) for b in cut(lengths, 8192)] == [40, 1]  # not 41 x 512 = 20,992 slots


def test_random_lengths_never_exceed_the_budget_and_fill_greedily():
    rng = np.random.default_rng(0)
    for trial in range(300):
        budget = int(rng.integers(64, 4096))
        lengths = rng.integers(1, 512, size=int(rng.integers(1, 200))).tolist()
        if trial % 2:
            lengths.sort()
        batches = cut(lengths, budget)
        assert [k for b in batches for k in b] == list(range(len(lengths)))  # every example once, in order
        for b, following in zip(batches, batches[1:] + [None]):
            longest = max(lengths[k] for k in b)
            assert len(b) * longest <= budget or len(b) == 1, (trial, b)
            if following is not None:  # the next example would have broken the budget
                assert (len(b) + 1) * max(longest, lengths[following[0]]) > budget
