"""Bidirectional layers: a forward and a reversed scan over the same sequence, merged.

Two implementations give the same numbers:

* two scans, one per direction (``fused=False``); the backward one may use another cell;
* one fused scan (``fused=True``, same cell type both ways): the two directions' weights are
  stacked on a leading ``dir`` axis and each scan step advances both, the forward direction at
  time ``s`` and the backward direction at time ``time - 1 - s``. Per-row reversal needs no
  gather: the backward direction's padded steps come first and are masked, exactly as in
  ``unroll(..., reverse=True)``.

``fused=None`` picks two scans. Measured on XLA:CPU
(benchmarks/results/2026-11-25-cpu-fused-sweep.md,
BiLSTM T64 I128 H256, batch 1..128): for training the two scans win at every batch size, by
1.2-5.8x, because each runs the custom VJP of ``lstm_jax.scan_vjp`` while the fused scan uses
plain autodiff; forward only, the fused scan gained 10-20 % at batch 2-16 and lost at 128.
``fused=True`` remains for inference at small batches.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from lstm_jax import _checks
from lstm_jax import lanes as batch_lanes
from lstm_jax.cells.base import Cell
from lstm_jax.typing import Array, PyTree
from lstm_jax.unroll import (
    check_checkpoint_every,
    check_unroll,
    default_hoist_projection,
    prepare_sequence,
    scan_time_major,
)

MERGE_MODES: dict[str, Callable[[Array, Array], Array]] = {
    "concat": lambda f, b: jnp.concatenate([f, b], axis=-1),
    "sum": lambda f, b: f + b,
    "mean": lambda f, b: (f + b) / 2,
    "mul": lambda f, b: f * b,
}

# Largest number of rows (product of the batch dimensions) for which fused=None picks the fused
# scan: 0, never, since training with two custom-VJP scans won at every batch size measured.
FUSED_MAX_BATCH = 0


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


def _check_pair(fn: str, name: str, value: Any) -> tuple[Any, Any]:
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise TypeError(
            f"{fn}: {name} must be a pair (forward, backward), got {type(value).__name__}"
            + (f" of length {len(value)}" if isinstance(value, tuple | list) else "")
        )
    return value[0], value[1]


def _stack_pair(a: PyTree, b: PyTree) -> PyTree:
    return jax.tree_util.tree_map(lambda u, v: jnp.stack([u, v]), a, b)


def fused_scan_time_major(
    cell: Cell,
    params_pair: tuple[PyTree, PyTree],
    xs: Array,
    carry_pair: tuple[PyTree, PyTree],
    mask: Array | None,
    *,
    unroll: int | bool,
    hoist_projection: bool,
) -> tuple[tuple[PyTree, PyTree], Array, Array]:
    """Both directions in one scan, on validated inputs.

    Args:
      xs: ``[time, *batch, input]``, zero where ``mask`` is False.
      mask: ``[time, *batch]`` or None.

    Returns:
      ``((forward_carry, backward_carry), ys_forward, ys_backward)``, outputs
      ``[time, *batch, hidden]`` aligned with the input positions.
    """
    params = _stack_pair(*params_pair)
    carry = _stack_pair(*carry_pair)
    xs2 = jnp.stack([xs, jnp.flip(xs, 0)], axis=1)  # [time, dir, *batch, input]
    mask2 = None if mask is None else jnp.stack([mask, jnp.flip(mask, 0)], axis=1)

    project = jax.vmap(cell.project_inputs)
    recur = jax.vmap(cell.recur)
    inputs = jax.vmap(project, in_axes=(None, 0))(params, xs2) if hoist_projection else xs2

    def body(carry, step_in):
        x, m = step_in
        xp = x if hoist_projection else project(params, x)
        new_carry, y = recur(params, carry, xp)
        if m is not None:
            new_carry = jax.tree_util.tree_map(
                lambda n, o: jnp.where(m[..., None], n, o), new_carry, carry
            )
            y = jnp.where(m[..., None], y, jnp.zeros_like(y))
        return new_carry, y

    carry, ys2 = jax.lax.scan(body, carry, (inputs, mask2), unroll=unroll)
    carry_f = jax.tree_util.tree_map(lambda c: c[0], carry)
    carry_b = jax.tree_util.tree_map(lambda c: c[1], carry)
    return (carry_f, carry_b), ys2[:, 0], jnp.flip(ys2[:, 1], 0)


def bidirectional(
    cell: Cell,
    params: tuple[PyTree, PyTree],
    xs: Array,
    *,
    seq_lengths: Array | None = None,
    merge: str | Callable[[Array, Array], Array] = "concat",
    backward_cell: Cell | None = None,
    initial_carry: tuple[PyTree, PyTree] | None = None,
    time_major: bool = False,
    unroll: int | bool = 1,
    fused: bool | None = None,
    hoist_projection: bool | None = None,
    custom_vjp: bool = True,
    checkpoint_every: int | None = None,
    lanes: int = 1,
) -> tuple[tuple[PyTree, PyTree], Array]:
    """Runs ``cell`` forward and (``backward_cell`` or ``cell``) backward and merges the outputs.

    Args:
      cell: the forward cell.
      params: ``(forward_params, backward_params)``.
      xs: ``[*batch, time, input]`` (``[time, *batch, input]`` when ``time_major``).
      seq_lengths: integers ``[*batch]``; the same semantics as ``unroll``: the backward
        direction reads each row from its own last valid element, outputs past a row's length
        are exactly zero, whatever ``merge`` does.
      merge: ``"concat"`` (``[..., 2*hidden]``), ``"sum"``, ``"mean"``, ``"mul"``, or a
        callable ``(forward_ys, backward_ys) -> ys``.
      backward_cell: the cell of the backward direction; ``cell`` when None.
      initial_carry: ``(forward_carry, backward_carry)``; zeros when None.
      time_major, unroll, hoist_projection, custom_vjp, checkpoint_every, lanes: as for
        ``unroll`` (the fused scan uses plain autodiff, no checkpointing and no lanes).
      fused: run both directions in one scan (needs the same cell both ways); None chooses by
        batch size, and never fuses when ``checkpoint_every`` is given.

    Returns:
      ``((forward_carry, backward_carry), ys)``; the backward carry is the state after reading
      each row back to its first element.
    """
    fn = "bidirectional"
    _checks.check_cell(fn, cell)
    if backward_cell is not None:
        _checks.check_cell(fn, backward_cell, "backward_cell")
    bcell = cell if backward_cell is None else backward_cell
    params_f, params_b = _check_pair(fn, "params", params)
    _checks.check_params(cell, params_f, fn, "params[0] (forward)")
    _checks.check_params(bcell, params_b, fn, "params[1] (backward)")
    if cell.input_size(params_f) != bcell.input_size(params_b):
        raise ValueError(
            f"{fn}: forward and backward params disagree on the input size: "
            f"{cell.input_size(params_f)} vs {bcell.input_size(params_b)}"
        )
    check_merge(fn, merge)
    check_unroll(fn, unroll)
    check_checkpoint_every(fn, checkpoint_every)
    batch_lanes.check_lanes(fn, lanes)
    xs_t, batch_shape, mask = prepare_sequence(fn, cell, params_f, xs, seq_lengths, time_major)
    if initial_carry is None:
        carry_f, carry_b = cell.initial_carry(batch_shape), bcell.initial_carry(batch_shape)
    else:
        carry_f, carry_b = _check_pair(fn, "initial_carry", initial_carry)
        _checks.check_carry(cell, carry_f, batch_shape, fn, "initial_carry[0] (forward)")
        _checks.check_carry(bcell, carry_b, batch_shape, fn, "initial_carry[1] (backward)")
    if hoist_projection is None:
        hoist_projection = default_hoist_projection()
    can_fuse = bcell == cell
    if fused and not can_fuse:
        raise ValueError(
            f"{fn}: fused=True needs the same cell in both directions, got {cell!r} and {bcell!r}"
        )
    if fused is None:
        fused = can_fuse and checkpoint_every is None and math.prod(batch_shape) <= FUSED_MAX_BATCH

    if fused:
        (carry_f, carry_b), ys_f, ys_b = fused_scan_time_major(
            cell,
            (params_f, params_b),
            xs_t,
            (carry_f, carry_b),
            mask,
            unroll=unroll,
            hoist_projection=hoist_projection,
        )
    else:
        options = dict(
            unroll=unroll,
            hoist_projection=hoist_projection,
            custom_vjp=custom_vjp,
            checkpoint_every=checkpoint_every,
            num_lanes=lanes,
        )
        carry_f, ys_f, _ = scan_time_major(
            cell, params_f, xs_t, carry_f, mask, reverse=False, **options
        )
        carry_b, ys_b, _ = scan_time_major(
            bcell, params_b, xs_t, carry_b, mask, reverse=True, **options
        )
    merge_fn = merge if callable(merge) else MERGE_MODES[merge]
    ys = merge_fn(ys_f, ys_b)
    if callable(merge) and mask is not None:
        ys = jnp.where(mask[..., None], ys, jnp.zeros_like(ys))
    if not time_major:
        ys = jnp.moveaxis(ys, 0, -2)
    return (carry_f, carry_b), ys
