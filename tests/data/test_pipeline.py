"""grain pipelines: bucketed padded batches and plain batches, epoch by epoch."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lstm_jax import data


def make_source(lengths):
    # Each token holds its example's id + 1, so a batch row can be traced back to its source.
    return [
        {"ids": np.full((n,), k + 1, np.int32), "tags": np.arange(n, dtype=np.int32)}
        for k, n in enumerate(lengths)
    ]


def identity(example):
    return example


@given(
    st.lists(st.integers(1, 30), min_size=1, max_size=40),
    st.integers(1, 6),
    st.booleans(),
    st.integers(0, 1000),
)
def test_bucketed_batches_invariants(lengths, batch_size, fill, seed):
    boundaries = [8, 16, 30]
    source = make_source(lengths)
    ds = data.bucketed_batches(
        source, identity, boundaries=boundaries, batch_size=batch_size, seed=seed,
        num_epochs=2, fill_batch=fill,
    )  # fmt: skip
    per_epoch = len(ds) // 2
    for epoch in range(2):
        seen = []
        for j in range(epoch * per_epoch, (epoch + 1) * per_epoch):
            batch = ds[j]
            width = batch["ids"].shape[1]
            assert width in boundaries
            assert batch["tags"].shape == batch["ids"].shape
            if fill:
                assert batch["ids"].shape[0] == batch_size
            for row, (index, n) in enumerate(
                zip(batch["index"].tolist(), batch["seq_lengths"].tolist(), strict=True)
            ):
                if index < 0:
                    assert fill and n == 0 and not batch["ids"][row].any()
                    continue
                seen.append(index)
                assert n == lengths[index]
                np.testing.assert_array_equal(batch["ids"][row, :n], index + 1)
                np.testing.assert_array_equal(batch["tags"][row, :n], np.arange(n))
                assert not batch["ids"][row, n:].any() and not batch["tags"][row, n:].any()
                lower = max([0] + [b for b in boundaries if b < width])
                assert lower < n <= width
        assert sorted(seen) == list(range(len(lengths)))


def test_epochs_are_reshuffled_and_reproducible():
    source = make_source([3] * 20)
    ds = data.bucketed_batches(source, identity, boundaries=[4], batch_size=5, num_epochs=2)
    again = data.bucketed_batches(source, identity, boundaries=[4], batch_size=5, num_epochs=2)
    order = [ds[j]["index"].tolist() for j in range(len(ds))]
    assert order == [again[j]["index"].tolist() for j in range(len(again))]
    assert order[:4] != order[4:]


def test_iterator_matches_random_access():
    source = make_source([2, 5, 9, 1, 7])
    ds = data.bucketed_batches(source, identity, boundaries=[4, 9], batch_size=2, seed=7)
    streamed = [b["index"].tolist() for b in ds.to_iter_dataset()]
    assert streamed == [ds[j]["index"].tolist() for j in range(len(ds))]


def test_lengths_are_computed_when_omitted():
    source = make_source([2, 5])
    ds = data.bucketed_batches(source, identity, boundaries=[8], batch_size=2, seed=None)
    assert ds[0]["seq_lengths"].tolist() == [2, 5]


def test_fields_of_unequal_length_are_rejected():
    source = [{"a": np.zeros(3), "b": np.zeros(2)}]
    ds = data.bucketed_batches(source, identity, boundaries=[4], batch_size=1, lengths=[3])
    with pytest.raises(ValueError, match="one length per example"):
        ds[0]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"source": 3}, TypeError, "source"),
        ({"encode": 3}, TypeError, "encode"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"lengths": [1]}, ValueError, "lengths"),
        ({"boundaries": [2]}, ValueError, "last boundary"),
    ],
)
def test_bucketed_batches_rejects_bad_arguments(kwargs, error, match):
    args = {
        "source": make_source([3, 4]),
        "encode": identity,
        "boundaries": [8],
        "batch_size": 2,
        **kwargs,
    }
    with pytest.raises(error, match=match):
        data.bucketed_batches(**args)


@given(st.integers(1, 25), st.integers(1, 7), st.booleans())
def test_batches_visit_every_example_once_per_epoch(n, batch_size, shuffle):
    ds = data.batches(list(range(n)), batch_size, seed=3, shuffle=shuffle, num_epochs=3)
    flat = np.concatenate([np.asarray(b) for b in ds]).tolist()
    assert len(flat) == 3 * n
    epochs = [flat[e * n : (e + 1) * n] for e in range(3)]
    assert all(sorted(e) == list(range(n)) for e in epochs)
    if not shuffle:
        assert epochs[0] == list(range(n))


def test_batches_transform_and_drop_remainder():
    ds = data.batches(list(range(7)), 3, shuffle=False, transform=lambda x: 2 * x,
                      drop_remainder=True)  # fmt: skip
    assert [b.tolist() for b in ds] == [[0, 2, 4], [6, 8, 10]]
