"""Bidirectional layers: a forward and a reversed run over the same sequence, merged.

The backward direction reads each row from its own last valid element (``unroll(...,
reverse=True)``), so padding never reaches it; outputs past a row's length are exactly zero
whatever the merge does. The two directions may use different cells.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax.numpy as jnp

from lstm_jax._unroll import prepare_resets, prepare_sequence, run_resets, start_carry
from lstm_jax.cells.base import Cell, check_cell, check_params
from lstm_jax.impl import Impl, check_impl, resolve
from lstm_jax.typing import Array, PyTree

MERGE_MODES: dict[str, Callable[[Array, Array], Array]] = {
    "concat": lambda f, b: jnp.concatenate([f, b], axis=-1),
    "sum": lambda f, b: f + b,
    "mean": lambda f, b: (f + b) / 2,
    "mul": lambda f, b: f * b,
}


def merged_size(merge: str | Callable, hidden_size: int) -> int | None:
    """Width of the merged output, or None for a callable merge (unknown until called)."""
    if callable(merge):
        return None
    return 2 * hidden_size if merge == "concat" else hidden_size


def check_merge(fn: str, merge: Any) -> None:
    if callable(merge):
        return
    if merge not in MERGE_MODES:
        raise ValueError(
            f"{fn}: merge must be one of {sorted(MERGE_MODES)} or a callable (forward, backward) "
            f"-> outputs, got {merge!r}"
        )


def check_merged(fn: str, ys: Any, leading: tuple[int, ...]) -> None:
    """A callable merge must return one floating array ``[time, *batch, features]``."""
    if not hasattr(ys, "shape") or not hasattr(ys, "dtype"):
        raise TypeError(
            f"{fn}: merge must return one array [*batch, time, features], got {type(ys).__name__}"
        )
    if not jnp.issubdtype(ys.dtype, jnp.floating) or tuple(ys.shape[:-1]) != tuple(leading):
        raise ValueError(
            f"{fn}: merge must return a floating array whose leading dimensions match the "
            f"directions' outputs {tuple(leading)} (time first here) plus a feature axis, got "
            f"{jnp.dtype(ys.dtype).name}{list(ys.shape)}"
        )


def check_pair(fn: str, name: str, value: Any) -> tuple[Any, Any]:
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise TypeError(
            f"{fn}: {name} must be a pair (forward, backward), got {type(value).__name__}"
            + (f" of length {len(value)}" if isinstance(value, tuple | list) else "")
        )
    return value[0], value[1]


def bidirectional(
    cell: Cell,
    params: tuple[PyTree, PyTree],
    xs: Array,
    *,
    seq_lengths: Array | None = None,
    resets: Array | None = None,
    merge: str | Callable[[Array, Array], Array] = "concat",
    backward_cell: Cell | None = None,
    initial_carry: tuple[PyTree, PyTree] | None = None,
    time_major: bool = False,
    impl: str | Impl = "auto",
) -> tuple[tuple[PyTree, PyTree], Array]:
    """Runs ``cell`` forward and (``backward_cell`` or ``cell``) backward and merges the outputs.

    Args:
      cell: the forward cell.
      params: ``(forward_params, backward_params)``.
      xs: ``[*batch, time, input]`` (``[time, *batch, input]`` when ``time_major``).
      seq_lengths: integers ``[*batch]``, the semantics of ``unroll``: the backward direction
        reads each row from its own last valid element.
      resets: booleans ``[*batch, time]`` (``[time, *batch]`` when ``time_major``), True at
        the first step of each packed sequence, the semantics of ``unroll``: both directions
        go back to their initial carry at every sequence boundary; the backward one reads
        each sequence from its own end back to its start.
      merge: ``"concat"`` (``[..., 2*hidden]``), ``"sum"``, ``"mean"``, ``"mul"``, or a
        callable ``(forward_ys, backward_ys) -> ys`` returning ``[..., features]``.
      backward_cell: the cell of the backward direction; ``cell`` when None.
      initial_carry: ``(forward_carry, backward_carry)``; zeros when None.
      time_major, impl: as for ``unroll``.

    Returns:
      ``((forward_carry, backward_carry), ys)``; the backward carry is the state after reading
      each row back to its first element.
    """
    fn = "bidirectional"
    check_cell(fn, cell)
    if backward_cell is not None:
        check_cell(fn, backward_cell, "backward_cell")
    bcell = cell if backward_cell is None else backward_cell
    params_f, params_b = check_pair(fn, "params", params)
    check_params(cell, params_f, fn, "params[0] (forward)")
    check_params(bcell, params_b, fn, "params[1] (backward)")
    if cell.input_size(params_f) != bcell.input_size(params_b):
        raise ValueError(
            f"{fn}: forward and backward params disagree on the input size: "
            f"{cell.input_size(params_f)} vs {bcell.input_size(params_b)}"
        )
    check_merge(fn, merge)
    check_impl(fn, impl)
    seq = prepare_sequence(fn, cell, params_f, xs, seq_lengths, time_major)
    starts = prepare_resets(fn, resets, seq, time_major)
    if initial_carry is None:
        initial_carry = (None, None)
    carry_f, carry_b = check_pair(fn, "initial_carry", initial_carry)
    carry_f = start_carry(fn, cell, carry_f, seq.batch_shape, "initial_carry[0] (forward)")
    carry_b = start_carry(fn, bcell, carry_b, seq.batch_shape, "initial_carry[1] (backward)")
    run = resolve(impl).run
    options_f, options_b = run_resets(starts, seq, False), run_resets(starts, seq, True)
    carry_f, ys_f = run(cell, params_f, seq.xs, carry_f, seq.mask, reverse=False, **options_f)
    carry_b, ys_b = run(bcell, params_b, seq.xs, carry_b, seq.mask, reverse=True, **options_b)
    ys = merge(ys_f, ys_b) if callable(merge) else MERGE_MODES[merge](ys_f, ys_b)
    if callable(merge):
        check_merged(fn, ys, ys_f.shape[:-1])
        if seq.mask is not None:
            ys = jnp.where(seq.mask[..., None], ys, jnp.zeros_like(ys))
    return (carry_f, carry_b), ys if time_major else jnp.moveaxis(ys, 0, -2)
