"""grain pipelines over data sources: shuffled fixed-shape batches, and bucketed padded ones.

Both return a ``grain.MapDataset``: random access (``ds[i]`` is the i-th batch), deterministic
given the seed, reshuffled every epoch, and turned into a prefetching iterator with
``ds.to_iter_dataset()`` (add ``.mp_prefetch(...)`` for worker processes, under a
``if __name__ == "__main__":`` guard).

Multi-process training: with ``shard=(index, count)`` a pipeline yields only rows
``[index * b, (index + 1) * b)``, ``b = batch_size / count``, of each *global* batch of
``batch_size`` rows, and reads only the examples of those rows. The global batches, their order
and (bucketed) their widths are those of the unsharded pipeline, so the batches do not depend
on the process layout; ``shard_for_process()`` gives this process's ``(index, count)`` (its
rows on a mesh over all devices in ``jax.devices()`` order, see
``training.distributed.process_rows``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import grain
import numpy as np

from lstm_jax.data.bucketing import bucket_batches, bucket_of
from lstm_jax.data.padding import pad_sequences

SEQ_LENGTHS = "seq_lengths"
INDEX = "index"


def _check_positive_int(fn: str, name: str, value: Any, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        wanted = "None or an int >= 1" if allow_none else "an int >= 1"
        raise ValueError(f"{fn}: {name} must be {wanted}, got {value!r}")


def shard_for_process() -> tuple[int, int]:
    """``(jax.process_index(), jax.process_count())``: the ``shard`` of this process."""
    import jax

    return jax.process_index(), jax.process_count()


def _check_shard(fn: str, shard: Any, batch_size: int, complete: bool, hint: str) -> None:
    if shard is None:
        return
    ok = (
        isinstance(shard, tuple)
        and len(shard) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in shard)
        and shard[1] >= 1
        and 0 <= shard[0] < shard[1]
    )
    if not ok:
        raise ValueError(
            f"{fn}: shard must be None or (index, count) with 0 <= index < count, got {shard!r}"
        )
    if batch_size % shard[1]:
        raise ValueError(
            f"{fn}: batch_size ({batch_size}) must be a multiple of the shard count {shard[1]}"
        )
    if shard[1] > 1 and not complete:
        raise ValueError(
            f"{fn}: a sharded pipeline needs batches of one size on every process; pass {hint}"
        )


class _ShardRows:
    """The elements of rows ``[lo, lo + local)`` of every full global batch of ``ds``: element
    ``i`` is row ``lo + i % local`` of global batch ``i // local`` (a class, so it pickles)."""

    def __init__(self, ds: grain.MapDataset, batch_size: int, index: int, count: int) -> None:
        self.ds, self.batch_size = ds, batch_size
        self.local = batch_size // count
        self.lo = index * self.local
        self.num_batches = len(ds) // batch_size

    def __len__(self) -> int:
        return self.num_batches * self.local

    def __getitem__(self, i: int) -> Any:
        j, k = divmod(int(i), self.local)
        return self.ds[j * self.batch_size + self.lo + k]


def _check_source(fn: str, source: Any) -> None:
    if not hasattr(source, "__len__") or not hasattr(source, "__getitem__"):
        raise TypeError(
            f"{fn}: source must be a random-access sequence (a TFDS data source, a list), got "
            f"{type(source).__name__}"
        )


def batches(
    source: Sequence[Any],
    batch_size: int,
    *,
    seed: int = 0,
    shuffle: bool = True,
    num_epochs: int | None = 1,
    transform: Callable[[Any], Any] | None = None,
    drop_remainder: bool = False,
    shard: tuple[int, int] | None = None,
) -> grain.MapDataset:
    """Batches of same-shape examples: leaves stacked to ``[batch, *leaf]``.

    Args:
      source: a TFDS data source or any sequence of examples.
      batch_size: examples per batch.
      seed: the shuffle seed; each epoch gets its own permutation.
      shuffle: False keeps the source's order.
      num_epochs: passes over the data; None repeats forever.
      transform: applied to each example before batching (e.g. decode and normalise).
      drop_remainder: drop the last incomplete batch.
      shard: ``(index, count)``: yield only this shard's ``batch_size / count`` rows of each
        global batch (multi-process; ``shard_for_process()``); needs ``drop_remainder``.
    """
    _check_source("batches", source)
    _check_positive_int("batches", "batch_size", batch_size)
    _check_positive_int("batches", "num_epochs", num_epochs, allow_none=True)
    _check_shard("batches", shard, batch_size, drop_remainder, "drop_remainder=True")
    ds = grain.MapDataset.source(source)
    if transform is not None:
        ds = ds.map(transform)
    if shuffle:
        ds = ds.seed(seed).shuffle()
    # shuffle-then-repeat draws a fresh permutation per epoch (repeat-then-shuffle would mix
    # epochs, so an example could appear twice before another appears once).
    ds = ds.repeat(num_epochs)
    if shard is None or shard[1] == 1:
        return ds.batch(batch_size, drop_remainder=drop_remainder)
    rows = _ShardRows(ds, batch_size, *shard)
    return grain.MapDataset.source(rows).batch(rows.local, drop_remainder=True)


class _PadBucket:
    """Builds batch ``j`` of a bucketed epoch plan: a class, not a closure, so it pickles."""

    def __init__(self, source, encode, lengths, boundaries, batch_size, seed, drop_remainder,
                 fill_batch, pad_values, shard=None):  # fmt: skip
        self.source = source
        self.encode = encode
        self.lengths = lengths
        self.boundaries = boundaries
        self.batch_size = batch_size
        self.seed = seed
        self.drop_remainder = drop_remainder
        self.fill_batch = fill_batch
        self.pad_values = pad_values
        index, count = shard or (0, 1)
        # The rows of each global batch this shard yields.
        self.rows = batch_size // count
        self.lo = index * self.rows
        self._plan: tuple[int, list[tuple[int, np.ndarray]]] | None = None
        self.per_epoch = len(self.plan(0))

    def plan(self, epoch: int) -> list[tuple[int, np.ndarray]]:
        """The batches of ``epoch``; kept until another epoch is asked for (reads are mostly
        in order, and planning costs a sort of the whole epoch)."""
        if self._plan is None or self._plan[0] != epoch:
            seed = None
            if self.seed is not None:
                seed = int(np.random.SeedSequence((self.seed, epoch)).generate_state(1)[0])
            batches = bucket_batches(
                self.lengths,
                self.boundaries,
                self.batch_size,
                seed=seed,
                drop_remainder=self.drop_remainder,
            )
            self._plan = (epoch, batches)
        return self._plan[1]

    def __call__(self, j: int, _: Any) -> dict[str, np.ndarray]:
        width, indices = self.plan(j // self.per_epoch)[j % self.per_epoch]
        indices = indices[self.lo : self.lo + self.rows]
        examples = [self.encode(self.source[int(i)]) for i in indices]
        # A shard of a filled batch may hold no example: its fields' shapes come from the
        # batch's first example.
        template = examples[0] if examples else self.encode(self.source[int(self._first(j))])
        out: dict[str, np.ndarray] = {}
        lengths = None
        for field in template:
            seqs = [ex[field] for ex in examples]
            if self.fill_batch and len(seqs) < self.rows:
                like = np.asarray(template[field])
                empty = np.zeros((0, *like.shape[1:]), like.dtype)
                seqs = seqs + [empty] * (self.rows - len(seqs))
            padded, field_lengths = pad_sequences(
                seqs, width=width, pad_value=self.pad_values.get(field, 0)
            )
            if lengths is not None and not np.array_equal(lengths, field_lengths):
                raise ValueError(
                    f"bucketed_batches: encode must return fields of one length per example; "
                    f"field {field!r} has lengths {field_lengths.tolist()}, the first field "
                    f"{lengths.tolist()}"
                )
            lengths = field_lengths
            out[field] = padded
        index = np.full((len(lengths),), -1, np.int64)
        index[: len(indices)] = indices
        out[SEQ_LENGTHS] = lengths
        out[INDEX] = index
        return out

    def _first(self, j: int) -> int:
        return int(self.plan(j // self.per_epoch)[j % self.per_epoch][1][0])


def bucketed_batches(
    source: Sequence[Any],
    encode: Callable[[Any], dict[str, np.ndarray]],
    *,
    boundaries: Sequence[int],
    batch_size: int,
    lengths: Sequence[int] | None = None,
    seed: int | None = 0,
    num_epochs: int | None = 1,
    drop_remainder: bool = False,
    fill_batch: bool = False,
    pad_values: dict[str, Any] | None = None,
    shard: tuple[int, int] | None = None,
) -> grain.MapDataset:
    """Batches of variable-length sequences, bucketed by length and padded to the bucket width.

    Args:
      source: a TFDS data source or any sequence of examples.
      encode: example -> ``{field: array [len, *feature]}``; every field of one example has the
        same ``len`` (e.g. ``{"inputs": ids, "labels": tags}``). Must be picklable for
        multiprocess prefetch (a module-level function or ``functools.partial``).
      boundaries: increasing bucket widths; the last must be >= every length.
      batch_size: rows per batch.
      lengths: ``[len(source)]`` the length of each encoded example (computed by encoding
        every example once when omitted).
      seed: shuffles within buckets and the batch order, anew each epoch; None: index order.
      num_epochs: passes over the data; None repeats forever.
      drop_remainder: drop each bucket's last incomplete batch.
      fill_batch: pad the batch axis of incomplete batches with empty rows (length 0, index
        -1), so every batch has ``batch_size`` rows: a jitted step compiles once per width.
      pad_values: per-field value written past the length (default 0).
      shard: ``(index, count)``: yield only this shard's ``batch_size / count`` rows of each
        global batch, padded to the global batch's width (multi-process;
        ``shard_for_process()``); needs ``drop_remainder`` or ``fill_batch``.

    Returns:
      A ``grain.MapDataset`` of dicts: each field ``[batch, width, *feature]``, plus
      ``seq_lengths: int32 [batch]`` and ``index: int64 [batch]`` (the examples' source
      indices, -1 on filled rows).
    """
    _check_source("bucketed_batches", source)
    if not callable(encode):
        raise TypeError(f"bucketed_batches: encode must be callable, got {type(encode).__name__}")
    _check_positive_int("bucketed_batches", "batch_size", batch_size)
    _check_positive_int("bucketed_batches", "num_epochs", num_epochs, allow_none=True)
    _check_shard(
        "bucketed_batches",
        shard,
        batch_size,
        drop_remainder or fill_batch,
        "drop_remainder=True or fill_batch=True",
    )
    if lengths is None:
        lengths = [len(next(iter(encode(source[i]).values()))) for i in range(len(source))]
    if len(lengths) != len(source):
        raise ValueError(
            f"bucketed_batches: lengths must have one entry per example ({len(source)}), got "
            f"{len(lengths)}"
        )
    lengths = np.asarray(lengths, dtype=np.int64)
    bucket_of(lengths, boundaries)  # validates boundaries and that they cover every length
    make = _PadBucket(
        source, encode, lengths, tuple(int(b) for b in boundaries), batch_size, seed,
        drop_remainder, fill_batch, dict(pad_values or {}), shard,
    )  # fmt: skip
    if make.per_epoch == 0:
        raise ValueError(
            "bucketed_batches: no batch to make (empty source, or drop_remainder with every "
            "bucket smaller than batch_size)"
        )
    return grain.MapDataset.range(make.per_epoch).repeat(num_epochs).map_with_index(make)
