"""Metric accumulation: weighted running means of scalar metrics.

``MetricSums`` is a pytree (a dict of weighted sums and the total weight), so the same three
pure functions work on the host between steps and inside a jitted evaluation loop. Weights are
the number of examples behind each value, so the mean over uneven batches is the mean over
examples, not the mean of batch means.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lstm_jax.typing import Array, PyTree


class MetricSums(NamedTuple):
    """``sums[name] = sum_k weight_k * value_k``; ``weight = sum_k weight_k``."""

    sums: dict[str, Array]
    weight: Array


def init_metrics() -> MetricSums:
    """An empty accumulator."""
    return MetricSums({}, jnp.zeros((), jnp.float32))


def update_metrics(acc: MetricSums, metrics: Mapping[str, Any], weight: Any = 1.0) -> MetricSums:
    """Adds one set of scalar metrics with the given weight (for example the batch size).

    Args:
      acc: the accumulator so far.
      metrics: ``{name: scalar}``; the first update fixes the names, later ones must match.
      weight: a non-negative scalar.

    Returns:
      The new accumulator.
    """
    fn = "update_metrics"
    if not isinstance(acc, MetricSums):
        raise TypeError(f"{fn}: acc must be a MetricSums, got {type(acc).__name__}")
    if not isinstance(metrics, Mapping):
        raise TypeError(f"{fn}: metrics must be a dict of scalars, got {type(metrics).__name__}")
    if acc.sums and set(acc.sums) != set(metrics):
        raise ValueError(
            f"{fn}: metrics must have the names accumulated so far {sorted(acc.sums)}, got "
            f"{sorted(metrics)}"
        )
    w = jnp.asarray(weight, jnp.float32)
    if w.shape != ():
        raise ValueError(f"{fn}: weight must be a scalar, got shape {w.shape}")
    sums = {}
    for name, value in metrics.items():
        v = jnp.asarray(value).astype(jnp.float32)
        if v.shape != ():
            raise ValueError(f"{fn}: metrics[{name!r}] must be a scalar, got shape {v.shape}")
        sums[name] = acc.sums.get(name, jnp.zeros((), jnp.float32)) + w * v
    return MetricSums(sums, acc.weight + w)


def compute_metrics(acc: MetricSums) -> dict[str, float]:
    """The weighted means, as Python floats (NaN for an empty accumulator)."""
    if not isinstance(acc, MetricSums):
        raise TypeError(f"compute_metrics: acc must be a MetricSums, got {type(acc).__name__}")
    sums, weight = jax.device_get((acc.sums, acc.weight))
    if weight == 0:
        return {name: float("nan") for name in sums}
    return {name: float(np.asarray(s) / weight) for name, s in sums.items()}


def evaluate(
    eval_step: Callable[[PyTree, PyTree], Mapping[str, Array]],
    params: PyTree,
    batches: Iterable[PyTree],
    *,
    batch_size: Callable[[PyTree], int] | None = None,
) -> dict[str, float]:
    """Runs ``eval_step`` over ``batches`` and returns the example-weighted mean metrics.

    Args:
      eval_step: ``eval_step(params, batch) -> dict of scalars`` (from ``make_eval_step``).
      params: the parameters to evaluate.
      batches: an iterable of batches.
      batch_size: ``batch -> number of examples`` (the weight); by default the leading
        dimension of the batch's first leaf.
    """
    size = batch_size or (lambda b: jax.tree_util.tree_leaves(b)[0].shape[0])
    acc = init_metrics()
    for batch in batches:
        acc = update_metrics(acc, eval_step(params, batch), size(batch))
    return compute_metrics(acc)
