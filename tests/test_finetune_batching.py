import numpy as np
import pytest

from ernie.finetune.batching import WINDOW_BATCHES, by_length, epoch_batches


def padded_tokens(batches, lengths):
    return sum(len(rows) * lengths[rows].max() for rows in batches)


@pytest.mark.parametrize("group", [False, True])
@pytest.mark.parametrize("n", [1, 31, 32, 33, 32 * WINDOW_BATCHES + 5])
def test_epoch_batches_cover_every_row_once(group, n):
    lengths = np.random.default_rng(n).integers(3, 128, n)
    batches = epoch_batches(lengths, 32, seed=7, epoch=2, group_by_length=group)
    assert len(batches) == -(-n // 32)
    assert sorted(np.concatenate(batches).tolist()) == list(range(n))
    assert sum(len(b) < 32 for b in batches) <= 1


def test_epoch_batches_are_a_function_of_seed_and_epoch():
    lengths = np.random.default_rng(0).integers(3, 128, 5000)
    first = epoch_batches(lengths, 32, seed=1, epoch=0, group_by_length=True)
    again = epoch_batches(lengths, 32, seed=1, epoch=0, group_by_length=True)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    for other in (epoch_batches(lengths, 32, seed=1, epoch=1, group_by_length=True),
                  epoch_batches(lengths, 32, seed=2, epoch=0, group_by_length=True)):
        assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_grouping_by_length_cuts_padding():
    lengths = np.random.default_rng(0).integers(3, 128, 5000)
    grouped = epoch_batches(lengths, 32, seed=1, epoch=0, group_by_length=True)
    shuffled = epoch_batches(lengths, 32, seed=1, epoch=0, group_by_length=False)
    assert padded_tokens(grouped, lengths) < 0.6 * padded_tokens(shuffled, lengths)
    # the batches' order is shuffled, not sorted by length
    longest = [lengths[rows].max() for rows in grouped]
    assert longest != sorted(longest)


def test_evaluation_batches_sorted_by_length():
    lengths = np.array([5, 1, 9, 3, 3, 7, 2])
    batches = by_length(lengths, 3)
    assert [b.tolist() for b in batches] == [[1, 6, 3], [4, 0, 5], [2]]
