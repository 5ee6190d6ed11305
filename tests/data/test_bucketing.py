"""Bucketing invariants (hypothesis): each example once per epoch, bounded padding waste."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lstm_jax import data

lengths_st = st.lists(st.integers(0, 40), min_size=1, max_size=60)
boundaries_st = st.lists(st.integers(1, 40), min_size=1, max_size=5, unique=True).map(
    lambda b: sorted({*b, 40})
)


@given(lengths_st, boundaries_st, st.integers(1, 9), st.integers(0, 2**31 - 1))
def test_every_example_once_per_epoch(lengths, boundaries, batch_size, seed):
    plan = data.bucket_batches(lengths, boundaries, batch_size, seed=seed)
    seen = np.concatenate([idx for _, idx in plan])
    assert sorted(seen.tolist()) == list(range(len(lengths)))
    assert all(1 <= idx.size <= batch_size for _, idx in plan)


@given(lengths_st, boundaries_st, st.integers(1, 9), st.integers(0, 100))
def test_bucket_width_bounds_the_padding(lengths, boundaries, batch_size, seed):
    lengths = np.array(lengths)
    lower = dict(zip(boundaries, [0, *boundaries[:-1]], strict=True))
    for width, idx in data.bucket_batches(lengths, boundaries, batch_size, seed=seed):
        assert width in boundaries
        assert np.all(lengths[idx] <= width)
        assert np.all(lengths[idx] > lower[width]) or lower[width] == 0
        assert np.all(width - lengths[idx] < width - lower[width] + (lower[width] == 0))


@given(lengths_st, boundaries_st, st.integers(1, 9))
def test_drop_remainder_keeps_only_full_batches(lengths, boundaries, batch_size):
    plan = data.bucket_batches(lengths, boundaries, batch_size, seed=0, drop_remainder=True)
    assert all(idx.size == batch_size for _, idx in plan)


def test_plan_depends_on_the_seed_only():
    lengths = np.arange(50) % 17
    a = data.bucket_batches(lengths, [8, 17], 4, seed=3)
    b = data.bucket_batches(lengths, [8, 17], 4, seed=3)
    c = data.bucket_batches(lengths, [8, 17], 4, seed=4)
    assert [x.tolist() for _, x in a] == [x.tolist() for _, x in b]
    assert [x.tolist() for _, x in a] != [x.tolist() for _, x in c]


def test_seed_none_keeps_index_order():
    plan = data.bucket_batches([5, 1, 7, 2], [4, 8], 8, seed=None)
    assert [(w, i.tolist()) for w, i in plan] == [(4, [1, 3]), (8, [0, 2])]


def test_length_boundaries_cover_the_longest_and_round_up():
    lengths = [3, 9, 17, 30, 31]
    b = data.length_boundaries(lengths, 3, multiple=8)
    assert b == sorted(set(b)) and all(x % 8 == 0 for x in b) and b[-1] >= 31


@pytest.mark.parametrize(
    ("lengths", "boundaries", "match"),
    [
        ([1, 50], [8, 16], "last boundary 16"),
        ([-1], [8], "lengths must be >= 0"),
        ([1], [8, 4], "strictly increasing"),
        ([1], [0, 4], "positive"),
    ],
)
def test_bucket_of_rejects_bad_input(lengths, boundaries, match):
    with pytest.raises(ValueError, match=match):
        data.bucket_of(lengths, boundaries)


def test_bucket_batches_rejects_a_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size"):
        data.bucket_batches([1], [4], 0)
