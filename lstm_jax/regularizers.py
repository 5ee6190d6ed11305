"""Regularisers of recurrent networks, with explicit PRNG keys; without a key each one is off.

* ``locked_dropout(key, rate, xs)``: variational (locked) dropout of a sequence's inputs or
  outputs, one mask per sequence, the same at every step (Gal & Ghahramani 2016).
* ``drop_weights(key, rate, params)``: DropConnect on the recurrent weights ``w_hh``, one mask
  per forward pass (weight drop, Merity et al. 2018).
* ``regularized(cell, state_dropout=..., zoneout_h=..., zoneout_c=...)``: a wrapper cell, the
  same parameters as ``cell``, whose carry holds a locked mask of the recurrent state (the
  ``h`` that enters ``h @ w_hh``, one mask per sequence) and raw per-row keys for zoneout
  (Krueger et al. 2017: each unit keeps its previous value with probability ``p``). Its carry
  comes from ``regularized_carry(cell, batch_shape, key)``; with ``key=None`` (evaluation) the
  state mask is all ones and zoneout takes its expectation, ``p * old + (1 - p) * new``.

``stack(...).apply(dropout_key=...)`` and the Flax layers start ``regularized`` cells from
``start_carry`` (masks from their key; the evaluation carry without one), and
``stack(..., locked_dropout=True)`` makes the dropout between layers locked.

Kept units are scaled by ``1 / (1 - rate)``, so every dropout's expectation is the plain
value. Every piece is a plain function of arrays, so it works with ``unroll``,
``bidirectional``, ``stack`` and every ``impl``, with ``seq_lengths`` and ``resets`` (a reset
restores the carry's masks with the rest of the initial carry).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from lstm_jax import _checks
from lstm_jax.cells.base import Cell, check_batch_shape, check_cell, register_cell
from lstm_jax.typing import Array, PyTree


def check_rate(fn: str, name: str, rate: Any) -> float:
    """A drop rate must be a real number in ``[0, 1)``."""
    _checks.check_real(fn, name, rate)
    if not 0.0 <= float(rate) < 1.0:
        raise ValueError(f"{fn}: {name} must be a rate in [0, 1), got {rate!r}")
    return float(rate)


def _keep_mask(key: Array, rate: float, shape: tuple[int, ...], dtype: Any) -> Array:
    """``1 / (1 - rate)`` where a unit is kept, 0 where it is dropped."""
    keep = jax.random.bernoulli(key, 1.0 - rate, shape)
    return jnp.where(keep, jnp.asarray(1.0 / (1.0 - rate), dtype), jnp.asarray(0.0, dtype))


def locked_dropout(key: Array | None, rate: float, xs: Array, *, time_major: bool = False) -> Array:
    """Variational dropout of a sequence: one mask per sequence and feature, the same at every
    step.

    Args:
      key: a PRNG key; None returns ``xs`` unchanged (evaluation).
      rate: the drop rate, in ``[0, 1)``.
      xs: ``[*batch, time, features]`` (``[time, *batch, features]`` when ``time_major``).

    Returns:
      ``xs`` with the dropped features zero and the kept ones scaled by ``1 / (1 - rate)``.
    """
    fn = "locked_dropout"
    rate = check_rate(fn, "rate", rate)
    _checks.check_bool(fn, "time_major", time_major)
    _checks.check_sequence(fn, xs, time_major)
    if key is None or rate == 0.0:
        return xs
    _checks.check_key(fn, "key", key)
    time_axis = 0 if time_major else xs.ndim - 2
    shape = tuple(1 if a == time_axis else n for a, n in enumerate(xs.shape))
    return xs * _keep_mask(key, rate, shape, xs.dtype)


def drop_weights(key: Array | None, rate: float, params: PyTree, field: str = "w_hh") -> PyTree:
    """DropConnect: ``params`` with entries of its recurrent matrix ``field`` dropped (and the
    kept ones scaled by ``1 / (1 - rate)``), one mask for the whole forward pass; pass the
    result to ``unroll``. ``key=None`` returns ``params`` unchanged."""
    fn = "drop_weights"
    rate = check_rate(fn, "rate", rate)
    if not hasattr(params, field) or not hasattr(getattr(params, field), "shape"):
        raise TypeError(
            f"{fn}: params must have an array field {field!r} (a cell's parameters), got "
            f"{_checks.describe(params)}"
        )
    if key is None or rate == 0.0:
        return params
    _checks.check_key(fn, "key", key)
    w = getattr(params, field)
    return params._replace(**{field: w * _keep_mask(key, rate, w.shape, w.dtype)})


class RegularizedCarry(NamedTuple):
    """The wrapper cell's carry: the inner cell's, the locked mask of ``h`` in the recurrent
    projection ``[*batch, hidden]``, per-row zoneout keys ``[*batch, 4]`` (a raw ``uint32[2]``
    key as four 16-bit halves in float32), and ``training [*batch, 1]`` (0: zoneout takes its
    expectation)."""

    inner: PyTree
    h_mask: Array
    key: Array
    training: Array


@register_cell
class RegularizedCell(Cell):
    """``inner`` with a locked dropout of its recurrent state and zoneout; build it with
    ``regularized``. Its parameters are ``inner``'s."""

    inner: Cell | None = None
    state_dropout: float = 0.0
    zoneout_h: float = 0.0
    zoneout_c: float = 0.0
    name = "regularized"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_cell(self.name, self.inner, "inner")
        if self.hidden_size != self.inner.hidden_size:
            raise ValueError(f"{self.name}: hidden_size must be inner's {self.inner.hidden_size}")
        for field in ("state_dropout", "zoneout_h", "zoneout_c"):
            check_rate(self.name, field, getattr(self, field))

    def init(self, key: Array, input_size: int) -> PyTree:
        return self.inner.init(key, input_size)

    def initial_carry(self, batch_shape: tuple[int, ...] | int = ()) -> RegularizedCarry:
        """The evaluation carry: no dropout, zoneout by its expectation."""
        shape = check_batch_shape(f"{self.name}.initial_carry", batch_shape)
        inner = self.inner.initial_carry(shape)
        h = _h_of(inner)
        return RegularizedCarry(
            inner,
            jnp.ones(h.shape, h.dtype),
            jnp.zeros((*shape, 4), jnp.float32),
            jnp.zeros((*shape, 1), jnp.float32),
        )

    def project_inputs(self, params: PyTree, x: Array) -> Array:
        return self.inner.project_inputs(params, x)

    def recurrent_projection(self, params: PyTree, carry: RegularizedCarry) -> Array:
        dropped = _with_h(carry.inner, _h_of(carry.inner) * carry.h_mask)
        return self.inner.recurrent_projection(params, dropped)

    def recur(self, params, carry, xp, hh):
        out = self.inner.recur(params, carry.inner, xp, hh)
        new, y = out[:2]
        gates = out[2] if len(out) == 3 else None
        keys = jax.vmap(jax.random.split)(_to_key(carry.key).reshape(-1, 2))  # [rows, 2, 2]
        new = self._zoneout(carry, new, keys[:, 0])
        if self.zoneout_h > 0.0:  # the output is the state that was kept
            y = self.inner.output(_h_of(new), params)
        next_key = _from_key(keys[:, 1]).reshape(carry.key.shape)
        return RegularizedCarry(new, carry.h_mask, next_key, carry.training), y, gates

    def _zoneout(self, carry: RegularizedCarry, new: PyTree, row_keys: Array) -> PyTree:
        """Each unit keeps its old value with probability ``p`` (training) or mixes by the
        expectation ``p * old + (1 - p) * new`` (evaluation)."""
        for i, (name, p) in enumerate((("h", self.zoneout_h), ("c", self.zoneout_c))):
            if p == 0.0 or (name == "c" and not hasattr(new, "c")):
                continue
            n = getattr(new, name) if hasattr(new, "_fields") else new
            o = getattr(carry.inner, name) if hasattr(new, "_fields") else carry.inner
            draw = lambda k, i=i, p=p, n=n: jax.random.bernoulli(
                jax.random.fold_in(k, i), p, n.shape[n.ndim - 1 :]
            )
            keep_old = jax.vmap(draw)(row_keys).reshape(n.shape)
            sampled = jnp.where(keep_old, o, n)
            expected = (p * o.astype(jnp.float32) + (1 - p) * n.astype(jnp.float32)).astype(n.dtype)
            value = jnp.where(carry.training > 0, sampled, expected)
            new = new._replace(**{name: value}) if hasattr(new, "_fields") else value
        return new

    def input_size(self, params: PyTree) -> int:
        return self.inner.input_size(params)

    def compute_dtype(self, params: PyTree) -> Any:
        return self.inner.compute_dtype(params)

    def resolved_carry_dtype(self) -> Any:
        return self.inner.resolved_carry_dtype()

    @property
    def output_size(self) -> int:
        return self.inner.output_size


def _to_key(halves: Array) -> Array:
    """Raw ``uint32[..., 2]`` keys from their 16-bit halves held as float32 ``[..., 4]`` (exact
    integers; a float leaf keeps the carry differentiable under every ``impl``)."""
    h = halves.astype(jnp.uint32)
    return (h[..., 0::2] << 16) | h[..., 1::2]


def _from_key(raw: Array) -> Array:
    hi, lo = raw >> 16, raw & jnp.uint32(0xFFFF)
    return jnp.stack([hi, lo], axis=-1).reshape(*raw.shape[:-1], 4).astype(jnp.float32)


def _h_of(carry: PyTree) -> Array:
    return carry.h if hasattr(carry, "h") else carry


def _with_h(carry: PyTree, h: Array) -> PyTree:
    return carry._replace(h=h) if hasattr(carry, "h") else h


def regularized(
    cell: Cell, *, state_dropout: float = 0.0, zoneout_h: float = 0.0, zoneout_c: float = 0.0
) -> RegularizedCell:
    """``cell`` with a locked dropout of the recurrent state (``state_dropout``) and zoneout of
    ``h`` and ``c`` (``c`` for the LSTM family only); rates in ``[0, 1)``."""
    check_cell("regularized", cell)
    return RegularizedCell(
        cell.hidden_size,
        inner=cell,
        state_dropout=state_dropout,
        zoneout_h=zoneout_h,
        zoneout_c=zoneout_c,
    )


def regularized_carry(
    cell: RegularizedCell,
    batch_shape: tuple[int, ...] | int,
    key: Array | None = None,
    initial_carry: PyTree | None = None,
) -> RegularizedCarry:
    """The carry that starts a training sequence of ``cell`` (a ``regularized`` cell): a locked
    state mask per row and zoneout keys, from ``key``; ``key=None`` gives the evaluation carry.
    ``initial_carry`` is the inner cell's (zeros when None)."""
    fn = "regularized_carry"
    if not isinstance(cell, RegularizedCell):
        raise TypeError(f"{fn}: cell must be lstm_jax.regularizers.regularized(...), got {cell!r}")
    carry = cell.initial_carry(batch_shape)
    if initial_carry is not None:
        carry = carry._replace(inner=initial_carry)
    if key is None:
        return carry
    _checks.check_key(fn, "key", key)
    k_mask, k_zone = jax.random.split(key)
    h = _h_of(carry.inner)
    h_mask = carry.h_mask
    if cell.state_dropout > 0.0:
        h_mask = _keep_mask(k_mask, cell.state_dropout, h.shape, h.dtype)
    batch = carry.key.shape[:-1]
    rows = 1
    for n in batch:
        rows *= n
    raw = jax.random.split(k_zone, rows)
    if jnp.issubdtype(raw.dtype, jax.dtypes.prng_key):
        raw = jax.random.key_data(raw)
    keys = _from_key(raw).reshape(carry.key.shape)
    return carry._replace(h_mask=h_mask, key=keys, training=jnp.ones_like(carry.training))


def key_rate(cell: Cell) -> float:
    """The largest rate of ``cell``'s regularisers (0 for a cell that is not ``regularized``):
    whether a training run of it needs a key."""
    check_cell("key_rate", cell)
    if not isinstance(cell, RegularizedCell):
        return 0.0
    return max(cell.state_dropout, cell.zoneout_h, cell.zoneout_c)


def start_carry(
    cell: Cell,
    batch_shape: tuple[int, ...],
    key: Array | None = None,
    initial_carry: PyTree | None = None,
) -> PyTree | None:
    """The carry a run of ``cell`` starts from where the caller gave none (what ``stack`` and
    the Flax layers use): for a ``regularized`` cell, ``regularized_carry(cell, batch_shape,
    key, inner)`` with ``inner`` the inner cell's part of ``initial_carry`` (a learned carry;
    zeros when None), so the masks are drawn from ``key`` and never learned; any other cell's
    ``initial_carry`` is returned unchanged."""
    fn = "start_carry"
    check_cell(fn, cell)
    check_batch_shape(fn, batch_shape)
    if key is not None:
        _checks.check_key(fn, "key", key)
    if not isinstance(cell, RegularizedCell):
        return initial_carry
    if isinstance(initial_carry, RegularizedCarry):
        initial_carry = initial_carry.inner
    return regularized_carry(cell, batch_shape, key, initial_carry)
