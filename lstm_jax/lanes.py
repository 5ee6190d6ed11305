"""Batch lanes: the rows of a batch split into independent chains inside each scan step.

A recurrent step is a chain of small matmuls and elementwise kernels that depend on one
another. Rows of a batch never interact, so the step can be written as ``lanes`` independent
copies over slices of the batch, which XLA's CPU thunk executor may run concurrently on its
thread pool. Whether that pays depends on how well XLA:CPU already spreads one small dot over
the cores, which on the 2-core VM used for development changed from hour to hour: LSTM
B32 T128 I128 H256 forward, in one process, interleaved, lanes 1 vs 2:

* when one step's dot ran at 150-180 GFLOP/s (about one core): 20.3 vs 13.5 ms, and in the
  benchmark suite 20.8 vs 16.4 ms;
* when it ran at about 300 GFLOP/s (both cores): 11.5 vs 14.4 ms.

Training (the custom-VJP backward also runs in lanes) changed by less than 5 % either way.
The default is therefore one lane; ``lanes`` is an option to measure on one's own machine
(``python -m benchmarks.run --variants lanes``). On GPU one kernel per lane only adds
launches.

Every function here works on time-major data with one flattened batch axis: step inputs
``[batch, ...]``, carries ``[batch, hidden]``; inside the scan a carry is a tuple of lane
carries ``[lane_rows, hidden]``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from lstm_jax.typing import Array, PyTree


def check_lanes(fn: str, lanes: Any) -> None:
    if isinstance(lanes, bool) or not isinstance(lanes, int) or lanes < 1:
        raise ValueError(f"{fn}: lanes must be a positive int, got {lanes!r}")


def lane_bounds(batch_size: int, lanes: int) -> tuple[tuple[int, int], ...]:
    """``(start, stop)`` rows of each lane: ``lanes`` nearly equal slices, none empty."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 0:
        raise ValueError(f"lane_bounds: batch_size must be an int >= 0, got {batch_size!r}")
    check_lanes("lane_bounds", lanes)
    lanes = max(1, min(lanes, batch_size))
    base, extra = divmod(batch_size, lanes)
    bounds, start = [], 0
    for j in range(lanes):
        stop = start + base + (1 if j < extra else 0)
        bounds.append((start, stop))
        start = stop
    return tuple(bounds)


def split(tree: PyTree, bounds: Sequence[tuple[int, int]], axis: int = 0) -> list[PyTree]:
    """One tree per lane, each leaf sliced (statically) along ``axis``; None leaves stay None."""
    if len(bounds) == 1:
        return [tree]

    def take(a: Array, start: int, stop: int) -> Array:
        index = (slice(None),) * axis + (slice(start, stop),)
        return a[index]

    return [jax.tree_util.tree_map(lambda a, s=s, e=e: take(a, s, e), tree) for s, e in bounds]


def join(trees: Sequence[PyTree], axis: int = 0) -> PyTree:
    """The inverse of ``split``: leaves concatenated along ``axis``."""
    if len(trees) == 1:
        return trees[0]
    return jax.tree_util.tree_map(lambda *a: jnp.concatenate(a, axis=axis), *trees)


def in_lanes(
    step: Callable[[PyTree, Any], tuple[PyTree, PyTree]],
    bounds: Sequence[tuple[int, int]],
) -> Callable[[tuple[PyTree, ...], Any], tuple[tuple[PyTree, ...], PyTree]]:
    """A scan body over lane carries from ``step(carry, step_input) -> (carry, output)``.

    ``step_input`` and ``output`` leaves have a leading batch axis; the step input is sliced
    per lane and the lanes' outputs are concatenated, so the scan's outputs keep their shape.
    """

    def body(lane_carries: tuple[PyTree, ...], step_input: Any):
        results = [
            step(carry, inp)
            for carry, inp in zip(lane_carries, split(step_input, bounds), strict=True)
        ]
        return tuple(r[0] for r in results), join([r[1] for r in results])

    return body


def flatten_batch(tree: PyTree, batch_ndim: int, lead: int) -> PyTree:
    """Leaves ``[*lead_axes, *batch, ...]`` (``lead`` leading axes) -> one batch axis."""

    def flat(a: Array) -> Array:
        shape = a.shape
        rows = 1
        for d in shape[lead : lead + batch_ndim]:
            rows *= d
        return a.reshape(*shape[:lead], rows, *shape[lead + batch_ndim :])

    return jax.tree_util.tree_map(flat, tree)


def unflatten_batch(tree: PyTree, batch_shape: tuple[int, ...], lead: int) -> PyTree:
    """The inverse of ``flatten_batch``."""

    def unflat(a: Array) -> Array:
        return a.reshape(*a.shape[:lead], *batch_shape, *a.shape[lead + 1 :])

    return jax.tree_util.tree_map(unflat, tree)
