"""The grain pipelines' ``shard`` option: the shards of a layout partition every global batch,
row for row, and each shard reads only the examples of its rows."""

from __future__ import annotations

import numpy as np
import pytest

from lstm_jax.data import pipeline


class CountingSource:
    """A random-access source that records which examples were read."""

    def __init__(self, n: int) -> None:
        self.n, self.read = n, set()

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i):
        self.read.add(int(i))
        return {"x": np.full((2,), i, np.float32), "label": np.int64(i % 3)}


def _joined(shards):
    return {k: np.concatenate([s[k] for s in shards]) for k in shards[0]}


@pytest.mark.parametrize("count", [2, 4])
def test_batch_shards_partition_the_global_batch(count):
    whole = pipeline.batches(CountingSource(21), 8, seed=3, num_epochs=2, drop_remainder=True)
    shards = [
        pipeline.batches(
            CountingSource(21), 8, seed=3, num_epochs=2, drop_remainder=True, shard=(p, count)
        )
        for p in range(count)
    ]
    assert all(len(s) == len(whole) == 5 for s in shards)
    for j in range(len(whole)):
        parts = [s[j] for s in shards]
        assert all(part["x"].shape == (8 // count, 2) for part in parts)
        joined = _joined(parts)
        for k in whole[j]:
            np.testing.assert_array_equal(joined[k], whole[j][k])


def test_a_batch_shard_reads_only_its_rows():
    source = CountingSource(16)
    ds = pipeline.batches(source, 8, seed=0, drop_remainder=True, shard=(1, 2))
    first = ds[0]
    assert source.read == {int(v) for v in first["x"][:, 0]} and len(source.read) == 4


def _encode(example):
    n = int(example) % 5 + 1
    return {"ids": np.arange(n, dtype=np.int32) + int(example)}


@pytest.mark.parametrize("count", [2, 4])
def test_bucketed_shards_partition_the_global_batch_at_its_width(count):
    source = list(range(30))
    kw = dict(boundaries=[2, 5], batch_size=8, seed=1, fill_batch=True)
    whole = pipeline.bucketed_batches(source, _encode, **kw)
    shards = [
        pipeline.bucketed_batches(source, _encode, shard=(p, count), **kw) for p in range(count)
    ]
    assert all(len(s) == len(whole) for s in shards)
    for j in range(len(whole)):
        parts = [s[j] for s in shards]
        widths = {part["ids"].shape for part in parts}
        assert widths == {(8 // count, whole[j]["ids"].shape[1])}
        joined = _joined(parts)
        for k in whole[j]:
            np.testing.assert_array_equal(joined[k], whole[j][k])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"shard": (2, 2), "drop_remainder": True}, r"0 <= index < count, got \(2, 2\)"),
        ({"shard": (0, 3), "drop_remainder": True}, r"multiple of the shard count 3"),
        ({"shard": (0, 2)}, r"pass drop_remainder=True"),
    ],
)
def test_bad_shards_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        pipeline.batches(CountingSource(10), 8, **kwargs)
    with pytest.raises(ValueError, match="drop_remainder=True or fill_batch=True"):
        pipeline.bucketed_batches(
            list(range(10)), _encode, boundaries=[5], batch_size=4, shard=(0, 2)
        )


def test_shard_for_process_is_the_single_process_on_one_host():
    assert pipeline.shard_for_process() == (0, 1)
