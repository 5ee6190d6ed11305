"""Running a cell over time: one ``jax.lax.scan``, with masks for variable-length batches.

Variable lengths work by masking, never by gathering: padded inputs are zeroed before the scan
(so no garbage, not even NaN or inf, reaches any output or gradient), and at a padded step the
carry is kept and the output set to zero. For ``reverse=True`` the scan runs from the last time
index down to 0; a row's padded steps come first and leave its carry untouched, so each row
starts from its own last valid element, and outputs stay aligned with the input positions.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from lstm_jax import _checks
from lstm_jax import lanes as batch_lanes
from lstm_jax.cells.base import Cell
from lstm_jax.scan_vjp import scan_split_vjp
from lstm_jax.typing import Array, PyTree


def default_hoist_projection() -> bool:
    """Whether the input projection is hoisted out of the loop on the default backend.

    On XLA:CPU the in-loop form measured 1.6-2.6x faster (the hoisted form's per-step slice of
    the ``[time, batch, gates]`` buffer fused into a scalar gate kernel); on GPU/TPU one large
    matmul over all time steps is the cuDNN way.
    """
    return jax.default_backend() != "cpu"


def time_mask(seq_lengths: Array, num_steps: int) -> Array:
    """``[time, *batch]`` booleans: True where ``t < seq_lengths``."""
    t = jnp.arange(num_steps, dtype=seq_lengths.dtype)
    t = t.reshape((num_steps,) + (1,) * seq_lengths.ndim)
    return t < seq_lengths[None]


def _keep_where(mask: Array | None, new: PyTree, old: PyTree) -> PyTree:
    if mask is None:
        return new
    return jax.tree_util.tree_map(lambda n, o: jnp.where(mask[..., None], n, o), new, old)


def _zero_where_not(mask: Array | None, y: PyTree) -> PyTree:
    if mask is None:
        return y
    return jax.tree_util.tree_map(lambda v: jnp.where(mask[..., None], v, jnp.zeros_like(v)), y)


def scan_time_major(
    cell: Cell,
    params: PyTree,
    xs: Array,
    carry: PyTree,
    mask: Array | None,
    *,
    reverse: bool,
    unroll: int | bool,
    hoist_projection: bool,
    return_gates: bool = False,
    custom_vjp: bool = False,
    checkpoint_every: int | None = None,
    num_lanes: int = 1,
) -> tuple[PyTree, Array, Any]:
    """The scan itself, on validated inputs.

    Args:
      xs: ``[time, *batch, input]``, already zero where ``mask`` is False.
      carry: the initial carry, leaves ``[*batch, hidden]``.
      mask: ``[time, *batch]`` or None.
      num_lanes: split the rows into this many independent chains per step
        (``lstm_jax.lanes``); ignored without a batch axis.

    Returns:
      ``(final_carry, ys [time, *batch, hidden], gates or None)``.
    """
    batch_shape = tuple(xs.shape[1:-1])
    if num_lanes > 1 and len(batch_shape) != 1:
        if not batch_shape:  # a single row has nothing to split
            num_lanes = 1
        else:  # lanes slice one batch axis: flatten the batch dimensions around the scan
            nb = len(batch_shape)
            carry, ys, gates = scan_time_major(
                cell,
                params,
                batch_lanes.flatten_batch(xs, nb, 1),
                batch_lanes.flatten_batch(carry, nb, 0),
                None if mask is None else batch_lanes.flatten_batch(mask, nb, 1),
                reverse=reverse,
                unroll=unroll,
                hoist_projection=hoist_projection,
                return_gates=return_gates,
                custom_vjp=custom_vjp,
                checkpoint_every=checkpoint_every,
                num_lanes=num_lanes,
            )
            return (
                batch_lanes.unflatten_batch(carry, batch_shape, 0),
                batch_lanes.unflatten_batch(ys, batch_shape, 1),
                None if gates is None else batch_lanes.unflatten_batch(gates, batch_shape, 1),
            )
    # No batch axis: one lane (single-lane split and join are the identity).
    bounds = batch_lanes.lane_bounds(batch_shape[0], num_lanes) if batch_shape else ((0, 1),)
    if checkpoint_every is not None and not return_gates:
        return _scan_in_checkpointed_chunks(
            cell,
            params,
            xs,
            carry,
            mask,
            chunk=checkpoint_every,
            reverse=reverse,
            unroll=unroll,
            hoist_projection=hoist_projection,
            custom_vjp=custom_vjp,
            num_lanes=num_lanes,
        )
    if custom_vjp and cell.splits_recurrence and not return_gates:
        carry, ys = scan_split_vjp(
            cell,
            params,
            xs,
            carry,
            mask,
            reverse=reverse,
            unroll=unroll,
            hoist_projection=hoist_projection,
            lane_bounds=bounds,
        )
        return carry, ys, None
    inputs = cell.project_inputs(params, xs) if hoist_projection else xs

    def step(carry, step_in):
        x, m = step_in
        xp = x if hoist_projection else cell.project_inputs(params, x)
        new_carry, y, gates = cell.recur_with_gates(params, carry, xp)
        new_carry = _keep_where(m, new_carry, carry)
        y = _zero_where_not(m, y)
        return new_carry, (y, _zero_where_not(m, gates) if return_gates else None)

    lane_carries, (ys, gates) = jax.lax.scan(
        batch_lanes.in_lanes(step, bounds),
        tuple(batch_lanes.split(carry, bounds)),
        (inputs, mask),
        reverse=reverse,
        unroll=unroll,
    )
    return batch_lanes.join(lane_carries), ys, gates


def _scan_in_checkpointed_chunks(
    cell: Cell,
    params: PyTree,
    xs: Array,
    carry: PyTree,
    mask: Array | None,
    *,
    chunk: int,
    reverse: bool,
    **options: Any,
) -> tuple[PyTree, Array, None]:
    """An outer scan over chunks of ``chunk`` steps, each chunk under ``jax.checkpoint``.

    The backward pass keeps only the carry at each chunk boundary and recomputes one chunk's
    activations at a time, so the memory beyond inputs and outputs is
    ``O(time / chunk + chunk)`` steps' worth instead of ``O(time)``: ``chunk ~ sqrt(time)``
    makes it grow as ``sqrt(time)``. When ``chunk`` does not divide ``time`` the last
    ``time % chunk`` steps run as one more checkpointed chunk of their own (padding the time
    axis instead would copy the inputs and outputs, measured at 61 MiB against 7 MiB at
    ``time`` = 100,000; benchmarks/long_sequence.py).
    """
    num_steps = xs.shape[0]
    num_chunks, tail = divmod(num_steps, chunk)

    @jax.checkpoint
    def run_chunk(params, carry, xs_k, mask_k):
        carry, ys_k, _ = scan_time_major(
            cell, params, xs_k, carry, mask_k, reverse=reverse, **options
        )
        return carry, ys_k

    def run_chunks(carry, xs_part, mask_part):
        def by_chunk(a: Array) -> Array:
            return a.reshape(num_chunks, chunk, *a.shape[1:])

        def body(carry, inp):
            return run_chunk(params, carry, *inp)

        chunks = (by_chunk(xs_part), None if mask_part is None else by_chunk(mask_part))
        carry, ys = jax.lax.scan(body, carry, chunks, reverse=reverse)
        return carry, ys.reshape(num_chunks * chunk, *ys.shape[2:])

    split = num_chunks * chunk
    head = (xs[:split], None if mask is None else mask[:split])
    rest = (xs[split:], None if mask is None else mask[split:])
    if tail == 0:
        carry, ys = run_chunks(carry, *head)
    elif num_chunks == 0:
        carry, ys = run_chunk(params, carry, *rest)
    elif reverse:  # the last steps come first
        carry, ys_tail = run_chunk(params, carry, *rest)
        carry, ys_head = run_chunks(carry, *head)
        ys = jnp.concatenate([ys_head, ys_tail])
    else:
        carry, ys_head = run_chunks(carry, *head)
        carry, ys_tail = run_chunk(params, carry, *rest)
        ys = jnp.concatenate([ys_head, ys_tail])
    return carry, ys, None


def prepare_sequence(
    fn: str,
    cell: Cell,
    params: PyTree,
    xs: Any,
    seq_lengths: Any,
    time_major: bool,
) -> tuple[Array, tuple[int, ...], Array | None]:
    """Validates ``xs`` and ``seq_lengths`` and returns ``(xs [time, *batch, input] zeroed past
    each length, batch_shape, mask [time, *batch] or None)``."""
    _checks.check_sequence(fn, xs, time_major)
    input_size = cell.input_size(params)
    if xs.shape[-1] != input_size:
        layout = "[time, *batch, input]" if time_major else "[*batch, time, input]"
        raise ValueError(
            f"{fn}: xs must have shape {layout} with input={input_size} (from params), got "
            f"shape {tuple(xs.shape)}"
        )
    xs_t = xs if time_major else jnp.moveaxis(xs, -2, 0)
    batch_shape = tuple(xs_t.shape[1:-1])
    mask = None
    if seq_lengths is not None:
        _checks.check_seq_lengths(fn, seq_lengths, batch_shape)
        mask = time_mask(jnp.asarray(seq_lengths), xs_t.shape[0])
        xs_t = jnp.where(mask[..., None], xs_t, jnp.zeros_like(xs_t))
    return xs_t, batch_shape, mask


def check_unroll(fn: str, unroll: Any) -> None:
    if isinstance(unroll, bool):
        return
    if not isinstance(unroll, int) or unroll < 1:
        raise ValueError(f"{fn}: unroll must be a positive int or a bool, got {unroll!r}")


def check_checkpoint_every(fn: str, checkpoint_every: Any) -> None:
    if checkpoint_every is None:
        return
    if (
        isinstance(checkpoint_every, bool)
        or not isinstance(checkpoint_every, int)
        or checkpoint_every < 1
    ):
        raise ValueError(
            f"{fn}: checkpoint_every must be None or a positive int, got {checkpoint_every!r}"
        )


def unroll(
    cell: Cell,
    params: PyTree,
    xs: Array,
    *,
    initial_carry: PyTree | None = None,
    seq_lengths: Array | None = None,
    reverse: bool = False,
    time_major: bool = False,
    unroll: int | bool = 1,
    hoist_projection: bool | None = None,
    return_gates: bool = False,
    custom_vjp: bool = True,
    checkpoint_every: int | None = None,
    lanes: int = 1,
) -> tuple[PyTree, Array] | tuple[PyTree, Array, Any]:
    """Runs ``cell`` over a sequence with one ``jax.lax.scan``.

    Args:
      cell: an lstm_jax cell (``lstm_jax.lstm(...)``, ``gru(...)``, ...).
      params: its parameters, from ``cell.init(key, input)``.
      xs: ``[*batch, time, input]`` (zero or more batch dimensions), or
        ``[time, *batch, input]`` when ``time_major``.
      initial_carry: the carry before the first step, leaves ``[*batch, hidden]``; zeros when
        None.
      seq_lengths: integers ``[*batch]``, each row's number of valid steps. Outputs at and past
        a row's length are exactly zero, its final carry is the carry after its own last valid
        step (a length of 0 returns ``initial_carry``), and nothing past its length affects any
        output or gradient. Lengths are not checked against ``time`` (they may be traced): a
        length above ``time`` acts as ``time``, a negative one as 0.
      reverse: read each row from its own last valid element back to the first; outputs stay
        aligned with the input positions.
      time_major: layout of ``xs`` and ``ys``.
      unroll: passed to ``jax.lax.scan``.
      hoist_projection: project all time steps' inputs in one matmul before the scan (True) or
        inside each step (False); None picks by backend (``default_hoist_projection``).
      return_gates: also return the gate activations of every step (for introspection).
      custom_vjp: differentiate with the cuDNN-style backward of ``lstm_jax.scan_vjp`` where
        the cell allows it (every cell but the original-form GRU); False uses plain autodiff
        of the scan, which forward-mode differentiation (``jax.jvp``, ``jacfwd``) needs.
      checkpoint_every: for long sequences: recompute activations in the backward pass in
        chunks of this many steps, keeping only the carries between chunks, so that training
        memory grows as ``time / k + k`` rather than ``time`` (``k ~ sqrt(time)`` is best).
        Costs one extra forward pass. Ignored with ``return_gates``.
      lanes: split the batch rows into this many independent chains inside each step, which
        XLA:CPU may run on separate cores (``lstm_jax.lanes``: faster on some machines,
        slower on others; measure). Results do not depend on it.

    Returns:
      ``(final_carry, ys)`` with ``ys: [*batch, time, hidden]`` (``[time, *batch, hidden]``
      when ``time_major``); with ``return_gates`` a third element, the cell's gates NamedTuple
      with fields of the same shape as ``ys`` (zero past each length).
    """
    fn = "unroll"
    _checks.check_cell(fn, cell)
    _checks.check_params(cell, params, fn)
    check_unroll(fn, unroll)
    check_checkpoint_every(fn, checkpoint_every)
    batch_lanes.check_lanes(fn, lanes)
    xs_t, batch_shape, mask = prepare_sequence(fn, cell, params, xs, seq_lengths, time_major)
    if initial_carry is None:
        initial_carry = cell.initial_carry(batch_shape)
    else:
        _checks.check_carry(cell, initial_carry, batch_shape, fn, "initial_carry")
    if hoist_projection is None:
        hoist_projection = default_hoist_projection()
    carry, ys, gates = scan_time_major(
        cell,
        params,
        xs_t,
        initial_carry,
        mask,
        reverse=reverse,
        unroll=unroll,
        hoist_projection=hoist_projection,
        return_gates=return_gates,
        custom_vjp=custom_vjp,
        checkpoint_every=checkpoint_every,
        num_lanes=lanes,
    )
    if not time_major:
        ys = jnp.moveaxis(ys, 0, -2)
        if gates is not None:
            gates = jax.tree_util.tree_map(lambda g: jnp.moveaxis(g, 0, -2), gates)
    if return_gates:
        return carry, ys, gates
    return carry, ys
