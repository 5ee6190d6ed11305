"""Running a cell over time: ``unroll``, and ``gates`` for introspection.

Variable lengths work by masking, never by gathering: padded inputs are zeroed before the scan
(so no garbage, not even NaN or inf, reaches any output or gradient), and at a padded step the
carry is kept and the output set to zero. For ``reverse=True`` each row is read from its own
last valid element back to its first; outputs stay aligned with the input positions. How the
loop runs (``impl``) is chosen in ``lstm_jax.impl``.

Packed rows, several sequences back to back, work by ``resets [*batch, time]``: True at each
sequence's first step, where the carry goes back to the initial carry. In reverse each sequence
is read from its own end back to its start.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from lstm_jax import _checks
from lstm_jax._scan import scan, step_resets, time_mask
from lstm_jax.cells.base import Cell, check_carry, check_cell, check_params
from lstm_jax.impl import Impl, check_impl, resolve
from lstm_jax.typing import Array, PyTree


class Sequence(NamedTuple):
    """Validated, time-major inputs: ``xs [time, *batch, input]`` zero past each length, the
    batch shape, and ``mask [time, *batch]`` (None without lengths)."""

    xs: Array
    batch_shape: tuple[int, ...]
    mask: Array | None


def prepare_sequence(
    fn: str, cell: Cell, params: PyTree, xs: Any, seq_lengths: Any, time_major: Any
) -> Sequence:
    """Checks ``xs`` and ``seq_lengths`` against ``params`` and returns the time-major,
    masked sequence every implementation runs on."""
    _checks.check_bool(fn, "time_major", time_major)
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
    return Sequence(xs_t, batch_shape, mask)


def prepare_resets(fn: str, resets: Any, seq: Sequence, time_major: bool) -> Array | None:
    """Checks ``resets`` (bool ``[*batch, time]``, ``[time, *batch]`` when ``time_major``)
    against ``seq`` and returns them time-major, or None."""
    if resets is None:
        return None
    time = seq.xs.shape[0]
    layout, want = (
        ("[time, *batch]", (time, *seq.batch_shape))
        if time_major
        else ("[*batch, time]", (*seq.batch_shape, time))
    )
    _checks.check_is_array(fn, "resets", resets)
    if resets.dtype != jnp.bool_:
        raise TypeError(
            f"{fn}: resets must be booleans {layout} (True at each packed sequence's first "
            f"step), got dtype {jnp.dtype(resets.dtype).name}"
        )
    if tuple(resets.shape) != want:
        raise ValueError(
            f"{fn}: resets must have shape {layout} = {want} (from xs), got shape "
            f"{tuple(resets.shape)}"
        )
    resets = jnp.asarray(resets)
    return resets if time_major else jnp.moveaxis(resets, -1, 0)


def run_resets(starts: Array | None, seq: Sequence, reverse: bool) -> dict[str, Array]:
    """The ``resets`` keyword of ``Impl.run`` for one direction ({} without resets)."""
    if starts is None:
        return {}
    return dict(resets=step_resets(starts, seq.mask, reverse))


def start_carry(
    fn: str, cell: Cell, initial_carry: Any, batch_shape: tuple[int, ...], name: str
) -> PyTree:
    """``initial_carry`` checked against the cell, or the cell's zeros when None."""
    if initial_carry is None:
        return cell.initial_carry(batch_shape)
    check_carry(cell, initial_carry, batch_shape, fn, name)
    return initial_carry


def _checked(fn, cell, params, xs, initial_carry, seq_lengths, resets, reverse, time_major):
    """The checks that ``unroll`` and ``gates`` share; returns ``(Sequence, carry, options)``
    with ``options`` the resets keyword of ``Impl.run``."""
    check_cell(fn, cell)
    check_params(cell, params, fn)
    _checks.check_bool(fn, "reverse", reverse)
    seq = prepare_sequence(fn, cell, params, xs, seq_lengths, time_major)
    options = run_resets(prepare_resets(fn, resets, seq, time_major), seq, reverse)
    return seq, start_carry(fn, cell, initial_carry, seq.batch_shape, "initial_carry"), options


def unroll(
    cell: Cell,
    params: PyTree,
    xs: Array,
    *,
    initial_carry: PyTree | None = None,
    seq_lengths: Array | None = None,
    resets: Array | None = None,
    reverse: bool = False,
    time_major: bool = False,
    impl: str | Impl = "auto",
) -> tuple[PyTree, Array]:
    """Runs ``cell`` over a sequence.

    Args:
      cell: an lstm_jax cell (``lstm_jax.LSTMCell(...)``, ``GRUCell(...)``, ...).
      params: its parameters, from ``cell.init(key, input)``.
      xs: ``[*batch, time, input]`` (zero or more batch dimensions), or
        ``[time, *batch, input]`` when ``time_major``.
      initial_carry: the carry before the first step, leaves ``[*batch, hidden]`` in the
        cell's carry dtype; zeros when None.
      seq_lengths: integers ``[*batch]`` (any integer dtype), each row's number of valid
        steps. Outputs at and past a row's length are exactly zero, its final carry is the
        carry after its own last valid step (a length of 0 returns ``initial_carry``), and
        nothing past its length affects any output or gradient. Lengths are not checked
        against ``time`` (they may be traced): a length above ``time`` acts as ``time``, a
        negative one as 0.
      resets: booleans ``[*batch, time]`` (``[time, *batch]`` when ``time_major``) for packed
        rows: True at the first step of each sequence, where the carry goes back to
        ``initial_carry`` before the step, so each sequence runs as if on its own. The final
        carry is the last sequence's (the first's, with ``reverse``). Combines with
        ``seq_lengths`` (resets past a row's length are ignored).
      reverse: read each row from its own last valid element back to the first (each packed
        sequence from its own end back to its start); outputs stay aligned with the input
        positions.
      time_major: layout of ``xs`` and ``ys``.
      impl: how the loop runs (``lstm_jax.impl``): ``"auto"``, ``"scan"``, ``"split"``,
        ``"chunked"`` or an instance such as ``lstm_jax.Chunked(every=100)``. The result does
        not depend on it; forward- and reverse-mode differentiation work with every one.

    Returns:
      ``(final_carry, ys)`` with ``ys: [*batch, time, hidden]`` (``[time, *batch, hidden]``
      when ``time_major``).
    """
    check_impl("unroll", impl)
    seq, carry, options = _checked(
        "unroll", cell, params, xs, initial_carry, seq_lengths, resets, reverse, time_major
    )
    carry, ys = resolve(impl).run(cell, params, seq.xs, carry, seq.mask, reverse=reverse, **options)
    return carry, ys if time_major else jnp.moveaxis(ys, 0, -2)


def gates(
    cell: Cell,
    params: PyTree,
    xs: Array,
    *,
    initial_carry: PyTree | None = None,
    seq_lengths: Array | None = None,
    resets: Array | None = None,
    reverse: bool = False,
    time_major: bool = False,
) -> Any:
    """The gate activations of every step of ``unroll`` with the same arguments, for
    introspection: the cell's gates NamedTuple (``LSTMGates(i, f, g, o)``, ...) with fields
    ``[*batch, time, hidden]`` (``[time, *batch, hidden]`` when ``time_major``), zero past each
    length. Runs the plain scan; differentiable like any JAX function."""
    seq, carry, options = _checked(
        "gates", cell, params, xs, initial_carry, seq_lengths, resets, reverse, time_major
    )
    options |= dict(reverse=reverse, with_gates=True)
    _, _, out = scan(cell, params, seq.xs, carry, seq.mask, **options)
    if out is None:
        raise TypeError(f"gates: {cell.name} returns no gates from its recur step")
    if time_major:
        return out
    return jax.tree_util.tree_map(lambda g: jnp.moveaxis(g, 0, -2), out)
