"""The plain recurrence: one ``jax.lax.scan`` over time, masked for variable lengths.

Every implementation of ``impl`` works on validated, time-major data: ``xs: [time, *batch,
input]`` already zero past each row's length, a carry with leaves ``[*batch, hidden]`` and a
mask ``[time, *batch]`` (or None). At a masked step the carry is kept and the output is zero.
For ``reverse=True`` the scan runs from the last time index down to 0; a row's padded steps come
first and leave its carry untouched, so each row starts from its own last valid element.

Packed rows (several sequences back to back) come as ``resets [time, *batch]`` in *scan order*
(``step_resets`` makes them from the user's segment starts): True where the carry goes back to
the reset carry (the initial carry) before the step at that index. Reading in reverse, a
segment runs from its own end back to its start, so there the carry resets before the last
element of every segment but the final one.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from lstm_jax.cells.base import Cell
from lstm_jax.typing import Array, PyTree


def time_mask(seq_lengths: Array, num_steps: int) -> Array:
    """``[time, *batch]`` booleans: True where ``t < seq_lengths``.

    Lengths of any integer dtype give the same mask: they are clipped to ``[0, time]`` in their
    own dtype and compared in int32 (a time index in the lengths' dtype would wrap, e.g. int8
    at ``time`` > 127).
    """
    dtype = jnp.dtype(seq_lengths.dtype)
    lengths = seq_lengths
    if num_steps <= jnp.iinfo(dtype).max:
        lengths = jnp.minimum(lengths, jnp.asarray(num_steps, dtype))
    if jnp.issubdtype(dtype, jnp.signedinteger):
        lengths = jnp.maximum(lengths, jnp.asarray(0, dtype))
    t = jnp.arange(num_steps, dtype=jnp.int32)
    t = t.reshape((num_steps,) + (1,) * seq_lengths.ndim)
    return t < lengths.astype(jnp.int32)[None]


def step_resets(starts: Array, mask: Array | None, reverse: bool) -> Array:
    """The ``resets`` of ``Impl.run`` from segment starts ``[time, *batch]`` (True at the first
    step of each packed sequence): where the carry resets before the step, in scan order.

    Forward, that is the start itself. In reverse the scan meets a segment's end first, so the
    reset moves to the step before each start (the last element of the previous segment). Only
    valid steps reset (the first padded step of a row is not a segment start), so a row's final
    carry is always its own last segment's (its first, in reverse).
    """
    if mask is not None:
        starts = starts & mask
    if not reverse:
        return starts
    return jnp.concatenate([starts[1:], jnp.zeros_like(starts[:1])])


def reset_where(resets: Array | None, reset_carry: PyTree, carry: PyTree) -> PyTree:
    """``reset_carry`` where ``resets [*batch]`` is True, else ``carry``."""
    if resets is None:
        return carry
    return keep_where(resets, reset_carry, carry)


def keep_where(mask: Array | None, new: PyTree, old: PyTree) -> PyTree:
    """``new`` where ``mask [*batch]`` is True, else ``old`` (leaves ``[*batch, features]``)."""
    if mask is None:
        return new
    return jax.tree_util.tree_map(lambda n, o: jnp.where(mask[..., None], n, o), new, old)


def zero_where_not(mask: Array | None, y: PyTree) -> PyTree:
    """``y`` where ``mask [*batch]`` is True, else zero."""
    if mask is None:
        return y
    return jax.tree_util.tree_map(lambda v: jnp.where(mask[..., None], v, jnp.zeros_like(v)), y)


def scan(cell: Cell, params: PyTree, xs: Array, carry: PyTree, mask: Array | None, *,
         reverse: bool, unroll: int = 1, hoist: bool = False, with_gates: bool = False,
         resets: Array | None = None,
         reset_carry: PyTree | None = None) -> tuple[PyTree, Array, Any]:  # fmt: skip
    """Runs the cell step by step; JAX differentiates the scan as it is.

    Args:
      xs: ``[time, *batch, input]``, zero where ``mask`` is False.
      carry: leaves ``[*batch, hidden]``.
      mask: ``[time, *batch]`` or None.
      hoist: project every step's input in one matmul before the loop instead of in each step.
      with_gates: also collect the cell's gates (zero past each length).
      resets: ``[time, *batch]`` booleans in scan order (``step_resets``) or None.
      reset_carry: what the carry resets to; ``carry`` when None.

    Returns:
      ``(final_carry, ys [time, *batch, hidden], gates or None)``.
    """
    inputs = cell.project_inputs(params, xs) if hoist else xs
    reset_carry = carry if reset_carry is None else reset_carry

    def step(carry, step_in):
        x, m, r = step_in
        xp = x if hoist else cell.project_inputs(params, x)
        before = reset_where(r, reset_carry, carry)
        new_carry, y, gates = cell.recur_step(params, before, xp)
        gates = zero_where_not(m, gates) if with_gates else None
        return keep_where(m, new_carry, carry), (zero_where_not(m, y), gates)

    step_in = (inputs, mask, resets)
    carry, (ys, gates) = jax.lax.scan(step, carry, step_in, reverse=reverse, unroll=unroll)
    return carry, ys, gates
