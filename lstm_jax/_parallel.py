"""``impl="parallel"``: a linear recurrence run as an associative scan over time, in log space.

A cell whose step is ``h_t = a_t * h_{t-1} + b_t`` with ``a_t > 0``, ``b_t > 0`` computed from
``x_t`` alone (minGRU, minLSTM) declares it with one method::

    linear_recurrence(params, xp) -> (log_a, log_b)     xp: [time, *batch, gates]
                                                          log_a, log_b: [time, *batch, hidden]

Composing step ``s`` after step ``r`` is again such a step, ``(a_r a_s, b_r a_s + b_s)``; in log
space ``(la_r + la_s, logaddexp(lb_r + la_s, lb_s))``, which never forms a tiny product or
subtracts, so ``jax.lax.associative_scan`` gives every prefix ``(A_t, B_t)`` in ``O(log time)``
depth, accumulated in float32 at least (the paper's log-space form). Then ``h_t = A_t h_0 +
B_t``, with the initial carry applied in linear space so it may have any sign (zeros included).

* A padded step is the identity (``log a = 0``, ``log b`` very negative): in reverse a row's
  padded steps come first and change nothing, so each row starts at its own last valid element,
  and its final carry is the one at the scan's last index (index 0 in reverse).
* ``resets`` (packed sequences, in scan order) make the scan segmented: a step that resets drops
  everything composed before it, and a prefix holding a reset starts from ``reset_carry``.

The carry is one array ``h [*batch, hidden]`` and the output ``cell.output(h)``. The step-by-step
implementations run the same cells through ``recur`` (``"scan"``, ``"split"``).

``impl="auto"`` never picks this one. On CPU it measured 3-14x slower than the same cells step
by step at ``time`` 512 to 16,384 (batch 8, hidden 64, forward and training; 2 shared cores,
load 10-15; benchmarks/results/2026-12-01-min-rnn-scan.md): the scan spends ``O(time *
log(time))`` exponentials and logarithms where the loop spends ``O(time)`` cheap steps, and two
cores have no parallelism to trade for them. No other backend has been measured; pass
``impl="parallel"`` to use it there.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lstm_jax.cells.base import Cell
from lstm_jax.impl import register_impl
from lstm_jax.typing import Array, PyTree

# log b of a padded step: exp() of it is 0 and sums with it stay finite (-inf would give NaN
# gradients in logaddexp(-inf, -inf)); far below any log b a cell computes (~ -100 at most).
_LOG_ZERO = -1e30


def check_linear(fn: str, cell: Cell, carry: PyTree) -> None:
    """The cell must declare ``linear_recurrence`` and carry one array."""
    if not callable(getattr(cell, "linear_recurrence", None)):
        raise TypeError(
            f"{fn}: impl='parallel' needs a cell with a linear recurrence (a "
            f"linear_recurrence(params, xp) -> (log_a, log_b) method, as minGRU and minLSTM "
            f"have); {cell.name} has none: use impl='scan' or 'split'"
        )
    if not hasattr(carry, "shape"):
        raise TypeError(
            f"{fn}: impl='parallel' needs a one-array carry [*batch, hidden], {cell.name} "
            f"carries {type(carry).__name__}"
        )


def _compose(earlier, later):
    la1, lb1 = earlier
    la2, lb2 = later
    return la1 + la2, jnp.logaddexp(lb1 + la2, lb2)


def _compose_segmented(earlier, later):
    (la1, lb1, r1), (la2, lb2, r2) = earlier, later
    la, lb = _compose((la1, lb1), (la2, lb2))
    return jnp.where(r2, la2, la), jnp.where(r2, lb2, lb), r1 | r2


def parallel_scan(cell: Cell, params: PyTree, xs: Array, carry: Array, mask: Array | None, *,
                  reverse: bool, resets: Array | None = None,
                  reset_carry: Array | None = None) -> tuple[Array, Array]:  # fmt: skip
    """The contract of ``Impl.run``.

    Args:
      xs: ``[time, *batch, input]``, zero where ``mask`` is False.
      carry: ``h0 [*batch, hidden]``.
      mask: ``[time, *batch]`` booleans or None.
      resets: ``[time, *batch]`` booleans in scan order, or None.
      reset_carry: ``[*batch, hidden]``, what the carry resets to (``carry`` when None).

    Returns:
      ``(final_carry [*batch, hidden], ys [time, *batch, hidden])``.
    """
    if xs.shape[0] == 0:
        return carry, jnp.zeros(
            (0, *carry.shape[:-1], cell.output_size), cell.compute_dtype(params)
        )
    log_a, log_b = cell.linear_recurrence(params, cell.project_inputs(params, xs))
    if mask is not None:
        m = mask[..., None]
        log_a = jnp.where(m, log_a, jnp.zeros_like(log_a))
        log_b = jnp.where(m, log_b, jnp.full_like(log_b, _LOG_ZERO))
    h0 = carry.astype(log_a.dtype)[None]
    if resets is None:
        big_a, big_b = jax.lax.associative_scan(_compose, (log_a, log_b), reverse=reverse)
        start = h0
    else:
        r = resets if mask is None else resets & mask
        elems = (log_a, log_b, jnp.broadcast_to(r[..., None], log_a.shape))
        big_a, big_b, seen = jax.lax.associative_scan(_compose_segmented, elems, reverse=reverse)
        h_reset = (carry if reset_carry is None else reset_carry).astype(log_a.dtype)[None]
        start = jnp.where(seen, h_reset, h0)
    h = jnp.exp(big_a) * start + jnp.exp(big_b)
    final = (h[0] if reverse else h[-1]).astype(cell.resolved_carry_dtype())
    ys = cell.output(h, params)
    if mask is not None:
        ys = jnp.where(mask[..., None], ys, jnp.zeros_like(ys))
    return final, ys


@register_impl
class Parallel:
    """An associative scan over time for cells with ``linear_recurrence`` (minGRU, minLSTM);
    see ``lstm_jax._parallel``."""

    name = "parallel"

    def run(self, cell, params, xs, carry, mask, *, reverse, resets=None, reset_carry=None):
        check_linear("parallel", cell, carry)
        options = dict(reverse=reverse, resets=resets, reset_carry=reset_carry)
        return parallel_scan(cell, params, xs, carry, mask, **options)
