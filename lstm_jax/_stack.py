"""Stacks of recurrent layers, uni- or bidirectional, with dropout and residuals between them.

``stack(cell, num_layers=2, bidirectional=True, dropout=0.1)`` describes the network; like a
cell it has ``init``, ``initial_carry`` and a pure ``apply``. Parameters are a tuple with one
entry per layer: the cell's parameters, or the pair ``(forward, backward)`` for a bidirectional
layer. Dropout (as in PyTorch) is applied to the outputs of every layer but the last, only when
``apply`` is given a ``dropout_key``: a new mask per step, or one per sequence with
``locked_dropout=True``; the same key draws the masks of ``regularized`` cells
(``lstm_jax.regularizers``). Residual connections add a layer's input to its output
wherever the two have the same width (so not on a first layer whose input width differs).

``stack(..., learn_initial_carry=True)`` learns each layer's (and direction's) initial carry:
``init`` returns ``WithInitialCarry(params=<the per-layer tuple>, initial_carry=<one carry
per layer, leaves [hidden], zeros at init>)``, and ``apply`` broadcasts those carries over the
batch whenever it is given no ``initial_carry``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from lstm_jax import _checks, regularizers
from lstm_jax._bidirectional import MERGE_MODES, bidirectional, merged_size
from lstm_jax._scan import time_mask
from lstm_jax._unroll import unroll as unroll_fn
from lstm_jax.cells.base import Cell, check_cell
from lstm_jax.impl import Impl
from lstm_jax.typing import Array, PyTree


class WithInitialCarry(NamedTuple):
    """Parameters with a learned initial carry: ``params`` (a cell's, a bidirectional pair or a
    stack's per-layer tuple) and ``initial_carry`` of the same nesting with leaves ``[hidden]``
    (unbatched; ``broadcast_carry`` spreads them over the batch)."""

    params: PyTree
    initial_carry: PyTree


def broadcast_carry(carry: PyTree, batch_shape: tuple[int, ...]) -> PyTree:
    """Leaves ``[hidden]`` broadcast to ``[*batch, hidden]`` (differentiable: the gradient is
    the sum over the batch)."""
    return jax.tree_util.tree_map(lambda c: jnp.broadcast_to(c, (*batch_shape, c.shape[-1])), carry)


def check_learned(fn: str, params: Any, what: str) -> None:
    """``params`` must be a ``WithInitialCarry`` when the initial carry is learned."""
    if not isinstance(params, WithInitialCarry):
        raise TypeError(
            f"{fn}: params must be a WithInitialCarry(params, initial_carry) ({what} learns its "
            f"initial carry; use its init), got {type(params).__name__}"
        )


@dataclasses.dataclass(frozen=True)
class Stack:
    """A multi-layer recurrent network; build it with ``lstm_jax.stack``."""

    cells: tuple[Cell, ...]
    bidirectional: bool = False
    dropout: float = 0.0
    residual: bool = False
    merge: str = "concat"
    learn_initial_carry: bool = False
    locked_dropout: bool = False

    @property
    def num_layers(self) -> int:
        return len(self.cells)

    def layer_output_size(self, layer: int) -> int:
        h = self.cells[layer].output_size
        return merged_size(self.merge, h) if self.bidirectional else h

    @property
    def output_size(self) -> int:
        return self.layer_output_size(self.num_layers - 1)

    def layer_input_sizes(self, input_size: int) -> list[int]:
        return [input_size] + [self.layer_output_size(i) for i in range(self.num_layers - 1)]

    def init(self, key: Array, input_size: int) -> tuple[PyTree, ...] | WithInitialCarry:
        """One entry per layer: the cell's params, or ``(forward, backward)`` if bidirectional;
        with ``learn_initial_carry``, ``WithInitialCarry(those, per-layer carries [hidden])``."""
        _checks.check_input_size("stack", input_size)
        keys = jax.random.split(key, self.num_layers)
        params = []
        for cell, k, n_in in zip(self.cells, keys, self.layer_input_sizes(input_size), strict=True):
            if self.bidirectional:
                k_f, k_b = jax.random.split(k)
                params.append((cell.init(k_f, n_in), cell.init(k_b, n_in)))
            else:
                params.append(cell.init(k, n_in))
        if self.learn_initial_carry:
            return WithInitialCarry(tuple(params), self.initial_carry(()))
        return tuple(params)

    def initial_carry(self, batch_shape: tuple[int, ...] | int = ()) -> tuple[PyTree, ...]:
        """Zeros, one entry per layer (a ``(forward, backward)`` pair if bidirectional)."""
        carries = []
        for cell in self.cells:
            c = cell.initial_carry(batch_shape)
            carries.append((c, cell.initial_carry(batch_shape)) if self.bidirectional else c)
        return tuple(carries)

    @property
    def key_rate(self) -> float:
        """The largest drop rate of the stack (between layers, or of a ``regularized`` cell):
        whether training needs a ``dropout_key``."""
        return max([self.dropout] + [regularizers.key_rate(c) for c in self.cells])

    def _check_apply(self, params, initial_carry, dropout_key, time_major) -> list | None:
        """Checks ``apply``'s per-layer arguments; returns the between-layer dropout keys
        (None: no dropout)."""
        fn = "stack.apply"
        if self.learn_initial_carry:
            check_learned(fn, params, "this stack")
            params = params.params
        elif isinstance(params, WithInitialCarry):
            raise TypeError(
                f"{fn}: params hold a learned initial carry but the stack was built without "
                f"learn_initial_carry=True"
            )
        if not isinstance(params, tuple | list) or len(params) != self.num_layers:
            raise TypeError(
                f"{fn}: params must be a sequence of {self.num_layers} per-layer entries (from "
                f"init), got {type(params).__name__}"
                + (f" of length {len(params)}" if isinstance(params, tuple | list) else "")
            )
        if initial_carry is not None and (
            not isinstance(initial_carry, tuple | list) or len(initial_carry) != self.num_layers
        ):
            raise TypeError(
                f"{fn}: initial_carry must be a sequence of {self.num_layers} per-layer carries, "
                f"got {type(initial_carry).__name__}"
            )
        _checks.check_bool(fn, "time_major", time_major)
        if dropout_key is None:
            return None
        _checks.check_key(fn, "dropout_key", dropout_key)
        if self.dropout == 0:
            return None
        return list(jax.random.split(dropout_key, self._num_between_keys))

    @property
    def _num_between_keys(self) -> int:
        return max(self.num_layers - 1, 1)

    def cell_key(self, dropout_key: Array, layer: int) -> Array:
        """The key of layer ``layer``'s ``regularized`` cell: ``fold_in(dropout_key, n + layer)``
        with ``n`` the number of between-layer keys ``split(dropout_key, n)``. JAX's
        (partitionable) threefry makes ``split(k, n)[i]`` equal ``fold_in(k, i)``, so folding
        past ``n`` keeps the cells' keys apart from the between-layer masks'."""
        fn = "stack.cell_key"
        _checks.check_key(fn, "dropout_key", dropout_key)
        if (
            isinstance(layer, bool)
            or not isinstance(layer, int)
            or not 0 <= layer < self.num_layers
        ):
            raise ValueError(f"{fn}: layer must be an int in [0, {self.num_layers}), got {layer!r}")
        return jax.random.fold_in(dropout_key, self._num_between_keys + layer)

    def apply(
        self,
        params: Sequence[PyTree],
        xs: Array,
        *,
        seq_lengths: Array | None = None,
        resets: Array | None = None,
        initial_carry: Sequence[PyTree] | None = None,
        dropout_key: Array | None = None,
        time_major: bool = False,
        impl: str | Impl = "auto",
    ) -> tuple[tuple[PyTree, ...], Array]:
        """Runs the layers in turn.

        Args:
          params: from ``init``, one entry per layer (in a ``WithInitialCarry`` with
            ``learn_initial_carry``).
          xs: ``[*batch, time, input]`` (``[time, *batch, input]`` when ``time_major``).
          seq_lengths: integers ``[*batch]``, the semantics of ``unroll`` in every layer.
          resets: booleans ``[*batch, time]`` (``[time, *batch]`` when ``time_major``), True at
            the first step of each packed sequence: every layer goes back to its initial carry
            there (the semantics of ``unroll``).
          initial_carry: one entry per layer, as ``initial_carry()`` returns; when None, zeros,
            or the learned carries broadcast over the batch with ``learn_initial_carry``, and a
            ``regularized`` cell's training carry (``regularizers.start_carry``, its masks from
            ``cell_key(dropout_key, layer)``). A carry given here is used as it is: its masks
            are not redrawn, so ``initial_carry=net.initial_carry(b)`` means no state dropout
            or zoneout.
          dropout_key: a PRNG key; dropout between layers, and the masks of ``regularized``
            cells (``lstm_jax.regularizers``), are drawn only when it is given.
          time_major, impl: as for ``unroll``.

        Returns:
          ``(final_carries, ys)``: one carry per layer (a pair if bidirectional) and the last
          layer's outputs ``[*batch, time, output_size]``.
        """
        drop_keys = self._check_apply(params, initial_carry, dropout_key, time_major)
        _checks.check_sequence("stack.apply", xs, time_major)
        batch_shape = tuple(xs.shape[1:-1] if time_major else xs.shape[:-2])
        given = initial_carry is not None
        if self.learn_initial_carry:
            params, learned = params
            if not given:
                initial_carry = broadcast_carry(learned, batch_shape)
        carries = []
        h = xs
        for layer, (cell, p) in enumerate(zip(self.cells, params, strict=True)):
            c0 = None if initial_carry is None else initial_carry[layer]
            if not given:
                c0 = self._start_carry(layer, cell, batch_shape, dropout_key, c0)
            options = dict(
                seq_lengths=seq_lengths,
                resets=resets,
                initial_carry=c0,
                time_major=time_major,
                impl=impl,
            )
            if self.bidirectional:
                carry, out = bidirectional(cell, p, h, merge=self.merge, **options)
            else:
                carry, out = unroll_fn(cell, p, h, **options)
            if self.residual and out.shape[-1] == h.shape[-1]:
                # The caller's xs may hold garbage past each length; later layers' inputs are
                # already zero there.
                skip = h if layer > 0 else _zero_past_lengths(h, seq_lengths, time_major)
                out = out + skip.astype(out.dtype)
            if drop_keys is not None and layer < self.num_layers - 1:
                if self.locked_dropout:
                    out = regularizers.locked_dropout(
                        drop_keys[layer], self.dropout, out, time_major=time_major
                    )
                else:
                    out = _dropout(drop_keys[layer], self.dropout, out)
            carries.append(carry)
            h = out
        return tuple(carries), h

    def _start_carry(self, layer, cell, batch_shape, dropout_key, carry):
        """A layer's starting carry where the caller gave none: a ``regularized`` cell's masks
        come from ``cell_key(dropout_key, layer)`` (split per direction); a learned carry gives
        only its inner part."""
        if not isinstance(cell, regularizers.RegularizedCell):
            return carry
        key = None if dropout_key is None else self.cell_key(dropout_key, layer)
        if not self.bidirectional:
            return regularizers.start_carry(cell, batch_shape, key, carry)
        keys = (None, None) if key is None else tuple(jax.random.split(key))
        pair = (None, None) if carry is None else carry
        return tuple(
            regularizers.start_carry(cell, batch_shape, k, c)
            for k, c in zip(keys, pair, strict=True)
        )


def _zero_past_lengths(xs: Array, seq_lengths: Array | None, time_major: bool) -> Array:
    """``xs`` with every step at or past its row's length set to zero."""
    if seq_lengths is None:
        return xs
    mask = time_mask(jnp.asarray(seq_lengths), xs.shape[0 if time_major else -2])
    if not time_major:
        mask = jnp.moveaxis(mask, 0, -1)
    return jnp.where(mask[..., None], xs, jnp.zeros_like(xs))


def _dropout(key: Array, rate: float, x: Array) -> Array:
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / jnp.asarray(1.0 - rate, x.dtype), jnp.zeros_like(x))


jax.tree_util.register_static(Stack)


def stack(
    cell: Cell | Sequence[Cell],
    num_layers: int = 1,
    *,
    bidirectional: bool = False,
    dropout: float = 0.0,
    residual: bool = False,
    merge: str = "concat",
    learn_initial_carry: bool = False,
    locked_dropout: bool = False,
) -> Stack:
    """Describes a stack of ``num_layers`` recurrent layers.

    Args:
      cell: one cell used by every layer, or a sequence of ``num_layers`` cells.
      num_layers: the number of layers.
      bidirectional: every layer runs both ways and merges with ``merge``.
      dropout: the drop rate applied to every layer's output but the last (needs a
        ``dropout_key`` in ``apply``), in ``[0, 1)``.
      locked_dropout: that dropout uses one mask per sequence, the same at every step
        (variational dropout, Gal & Ghahramani 2016; ``lstm_jax.regularizers.locked_dropout``),
        instead of a new mask at every step.
      residual: add each layer's input to its output where their widths agree.
      merge: a merge mode of ``bidirectional`` (a string; callables cannot size the next layer).
      learn_initial_carry: learn every layer's (and direction's) initial carry as parameters
        (``WithInitialCarry``), used when ``apply`` gets no ``initial_carry``.
    """
    fn = "stack"
    if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
        raise ValueError(f"{fn}: num_layers must be a positive int, got {num_layers!r}")
    if isinstance(cell, Cell):
        cells = (cell,) * num_layers
    else:
        cells = tuple(cell)
        if len(cells) != num_layers:
            raise ValueError(
                f"{fn}: cell must be one cell or {num_layers} cells (num_layers), got {len(cells)}"
            )
    for i, c in enumerate(cells):
        check_cell(fn, c, f"cell[{i}]")
    _checks.check_bool(fn, "bidirectional", bidirectional)
    _checks.check_bool(fn, "residual", residual)
    _checks.check_bool(fn, "learn_initial_carry", learn_initial_carry)
    _checks.check_bool(fn, "locked_dropout", locked_dropout)
    if not isinstance(dropout, int | float) or not 0.0 <= dropout < 1.0:
        raise ValueError(f"{fn}: dropout must be a rate in [0, 1), got {dropout!r}")
    if merge not in MERGE_MODES:
        raise ValueError(f"{fn}: merge must be one of {sorted(MERGE_MODES)}, got {merge!r}")
    return Stack(
        cells, bidirectional, float(dropout), residual, merge, learn_initial_carry, locked_dropout
    )
