"""Bucketing by length: batches of similar lengths, padded to a few fixed widths.

Examples are assigned to the bucket ``(boundaries[k-1], boundaries[k]]`` holding their length
and padded to ``boundaries[k]``. Two things follow:

* padding waste is bounded: an example of length ``n`` in bucket ``k`` carries fewer than
  ``boundaries[k] - boundaries[k-1]`` padded steps (``boundaries[k]`` for the first bucket);
* a jitted step sees only ``len(boundaries)`` distinct widths, so it compiles at most that often.

``bucket_batches`` plans one epoch: every example appears in exactly one batch, batches never
mix buckets, and the plan is a pure function of ``(lengths, boundaries, batch_size, seed)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _check_boundaries(fn: str, boundaries: Sequence[int]) -> np.ndarray:
    b = np.asarray(boundaries)
    if b.ndim != 1 or b.size == 0 or not np.issubdtype(b.dtype, np.integer):
        raise TypeError(
            f"{fn}: boundaries must be a non-empty sequence of ints, got {list(boundaries)!r}"
        )
    if b[0] < 1 or np.any(np.diff(b) <= 0):
        raise ValueError(
            f"{fn}: boundaries must be positive and strictly increasing, got {b.tolist()}"
        )
    return b


def _check_lengths(fn: str, lengths: Sequence[int]) -> np.ndarray:
    n = np.asarray(lengths)
    if n.ndim != 1 or (n.size and not np.issubdtype(n.dtype, np.integer)):
        raise TypeError(f"{fn}: lengths must be a 1-D sequence of ints, got shape {n.shape}")
    if n.size and n.min() < 0:
        raise ValueError(f"{fn}: lengths must be >= 0, got {int(n.min())}")
    return n.astype(np.int64)


def length_boundaries(lengths: Sequence[int], num_buckets: int, *, multiple: int = 8) -> list[int]:
    """Boundaries at the length quantiles, rounded up to ``multiple``; the last covers the max.

    Quantiles put about the same number of examples in each bucket; rounding keeps widths
    friendly to vectorised kernels.
    """
    n = _check_lengths("length_boundaries", lengths)
    if n.size == 0:
        raise ValueError("length_boundaries: lengths must not be empty")
    for name, v in (("num_buckets", num_buckets), ("multiple", multiple)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"length_boundaries: {name} must be an int >= 1, got {v!r}")
    qs = np.quantile(n, np.arange(1, num_buckets + 1) / num_buckets)
    rounded = {int(-(-max(int(np.ceil(q)), 1) // multiple) * multiple) for q in qs}
    return sorted(rounded)


def bucket_of(lengths: Sequence[int], boundaries: Sequence[int]) -> np.ndarray:
    """``int [n]``: the index of the bucket holding each length (``length <= boundaries[k]``)."""
    b = _check_boundaries("bucket_of", boundaries)
    n = _check_lengths("bucket_of", lengths)
    if n.size and n.max() > b[-1]:
        raise ValueError(
            f"bucket_of: every length must be <= the last boundary {int(b[-1])}, got "
            f"{int(n.max())}; truncate or split longer sequences, or add a boundary"
        )
    return np.searchsorted(b, n, side="left")


def bucket_batches(
    lengths: Sequence[int],
    boundaries: Sequence[int],
    batch_size: int,
    *,
    seed: int | None = 0,
    drop_remainder: bool = False,
) -> list[tuple[int, np.ndarray]]:
    """One epoch of batches as ``(width, indices int64 [<= batch_size])`` pairs.

    Args:
      lengths: ``[n]`` the length of every example.
      boundaries: increasing bucket upper bounds; the last must be >= every length.
      batch_size: examples per batch; a bucket's last batch may be smaller.
      seed: shuffles examples within buckets and the order of batches; None keeps index order.
      drop_remainder: drop each bucket's incomplete last batch (then some examples are skipped).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"bucket_batches: batch_size must be an int >= 1, got {batch_size!r}")
    b = _check_boundaries("bucket_batches", boundaries)
    which = bucket_of(lengths, b)
    rng = None if seed is None else np.random.default_rng(seed)
    batches: list[tuple[int, np.ndarray]] = []
    for k, width in enumerate(b.tolist()):
        members = np.flatnonzero(which == k)
        if rng is not None:
            members = rng.permutation(members)
        for start in range(0, members.size, batch_size):
            chunk = members[start : start + batch_size]
            if drop_remainder and chunk.size < batch_size:
                continue
            batches.append((int(width), chunk))
    if rng is not None:
        order = rng.permutation(len(batches))
        batches = [batches[i] for i in order]
    return batches
