"""The plain recurrence: one ``jax.lax.scan`` over time, masked for variable lengths.

Every implementation of ``impl`` works on validated, time-major data: ``xs: [time, *batch,
input]`` already zero past each row's length, a carry with leaves ``[*batch, hidden]`` and a
mask ``[time, *batch]`` (or None). At a masked step the carry is kept and the output is zero.
For ``reverse=True`` the scan runs from the last time index down to 0; a row's padded steps come
first and leave its carry untouched, so each row starts from its own last valid element.
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
         reverse: bool, unroll: int = 1, hoist: bool = False,
         with_gates: bool = False) -> tuple[PyTree, Array, Any]:  # fmt: skip
    """Runs the cell step by step; JAX differentiates the scan as it is.

    Args:
      xs: ``[time, *batch, input]``, zero where ``mask`` is False.
      carry: leaves ``[*batch, hidden]``.
      mask: ``[time, *batch]`` or None.
      hoist: project every step's input in one matmul before the loop instead of in each step.
      with_gates: also collect the cell's gates (zero past each length).

    Returns:
      ``(final_carry, ys [time, *batch, hidden], gates or None)``.
    """
    inputs = cell.project_inputs(params, xs) if hoist else xs

    def step(carry, step_in):
        x, m = step_in
        xp = x if hoist else cell.project_inputs(params, x)
        new_carry, y, gates = cell.recur_step(params, carry, xp)
        gates = zero_where_not(m, gates) if with_gates else None
        return keep_where(m, new_carry, carry), (zero_where_not(m, y), gates)

    carry, (ys, gates) = jax.lax.scan(step, carry, (inputs, mask), reverse=reverse, unroll=unroll)
    return carry, ys, gates
