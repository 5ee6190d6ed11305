"""Flax NNX modules over the pure core: every number comes from ``lstm_jax.unroll``,
``bidirectional`` and ``stack(...).apply``; the modules only hold parameters and route arguments.

Parameter layout. Each module holds its parameters in one attribute, ``params``: the core's
parameter pytree (the same NamedTuples, shapes and dtypes) with every array in an
``nnx.Param``::

    RNNCell, RNN                 params: the cell's params (e.g. LSTMParams)
    Bidirectional                params: (forward, backward)
    StackedRNN, LSTM, GRU        params: one entry per layer, a (forward, backward) pair if
                                 bidirectional

``module.core_params()`` returns the plain pytree (so ``lstm_jax.unroll(module.core,
module.core_params(), xs)`` gives the module's outputs) and ``module.load_core_params(params)``
puts parameters made by ``cell.init`` (or restored from a checkpoint) into the module.

Sharding. Every ``nnx.Param`` carries ``out_sharding``: the logical axis names of
``lstm_jax.flax.linen.LOGICAL_AXES`` (``w_ih: ("rnn_input", "rnn_gates")`` ...), with
``eager_sharding=False`` so that modules can be built without a mesh. Map the names to mesh axes
with ``flax.linen.logical_axis_rules(rules)`` around ``nnx.get_partition_spec(nnx.state(m))``
and place the state with ``jax.device_put``.

Dropout between a stack's layers uses the ``dropout`` stream of the ``rngs`` given at
construction (or to ``__call__``) and runs only when the module is not ``deterministic``:
``model.train()`` / ``model.eval()`` and ``nnx.view(model, deterministic=...)`` set it.

Variable lengths follow the core (see ``lstm_jax.flax.linen``): padded outputs are zero and rows
of length 0 keep their initial carry, where ``flax.nnx.RNN`` (as of flax 0.12) does neither.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from lstm_jax import _checks
from lstm_jax.bidirectional import bidirectional
from lstm_jax.cells.base import Cell
from lstm_jax.cells.gru import gru
from lstm_jax.cells.lstm import cifg_lstm, lstm, peephole_lstm
from lstm_jax.cells.simple import simple_rnn
from lstm_jax.flax.linen import logical_axes
from lstm_jax.stack import Stack, stack
from lstm_jax.typing import Array, DType, PyTree
from lstm_jax.unroll import unroll as unroll_fn


def _is_names(x: Any) -> bool:
    return isinstance(x, tuple) and all(isinstance(n, str) for n in x)


def _is_variable(x: Any) -> bool:
    return isinstance(x, nnx.Variable)


def as_params(params: PyTree) -> PyTree:
    """Wraps every array of a core parameter pytree in an ``nnx.Param`` that carries its logical
    axis names as ``out_sharding`` (not applied eagerly)."""
    return jax.tree_util.tree_map(
        lambda names, leaf: nnx.Param(leaf, out_sharding=names, eager_sharding=False),
        logical_axes(params),
        params,
        is_leaf=_is_names,
    )


def _check_cell(fn: str, cell: Any, name: str = "cell") -> None:
    if isinstance(cell, nnx.Module):
        raise TypeError(
            f"{fn}: {name} must be a core cell such as lstm_jax.lstm(64), got the nnx module "
            f"{type(cell).__name__}"
        )
    _checks.check_cell(fn, cell, name)


def _check_rngs(fn: str, rngs: Any) -> None:
    if not isinstance(rngs, nnx.Rngs):
        raise TypeError(f"{fn}: rngs must be an nnx.Rngs, got {type(rngs).__name__}")


def _check_xs(fn: str, xs: Any, time_major: bool, input_size: int) -> None:
    _checks.check_sequence(fn, xs, time_major)
    if xs.shape[-1] != input_size:
        layout = "[time, *batch, input]" if time_major else "[*batch, time, input]"
        raise ValueError(
            f"{fn}: xs must have shape {layout} with input={input_size} (the module's "
            f"input_size), got shape {tuple(xs.shape)}"
        )


class _CoreParams(nnx.Module):
    """What every module here shares: ``params`` and the conversions to and from the core."""

    params: PyTree

    def _set_params(self, params: PyTree) -> None:
        self.params = nnx.data(as_params(params))

    def core_params(self) -> PyTree:
        """The core parameter pytree (plain arrays, no ``nnx.Param``)."""
        return jax.tree_util.tree_map(lambda v: v[...], self.params, is_leaf=_is_variable)

    def load_core_params(self, params: PyTree) -> None:
        """Replaces the parameters by ``params``, a core pytree of the same structure, shapes and
        dtypes (e.g. from ``cell.init`` or ``lstm_jax.checkpoint.restore``)."""
        fn = f"{type(self).__name__}.load_core_params"
        current = self.core_params()
        if jax.tree_util.tree_structure(params) != jax.tree_util.tree_structure(current):
            raise TypeError(
                f"{fn}: params must have the structure {jax.tree_util.tree_structure(current)}, "
                f"got {jax.tree_util.tree_structure(params)}"
            )
        for new, old in zip(
            jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(current), strict=True
        ):
            if getattr(new, "shape", None) != old.shape or getattr(new, "dtype", None) != old.dtype:
                raise ValueError(
                    f"{fn}: every leaf must keep its shape and dtype: got "
                    f"{getattr(new, 'dtype', type(new).__name__)}{list(getattr(new, 'shape', []))}"
                    f" where the module holds {old.dtype}{list(old.shape)}"
                )
        jax.tree_util.tree_map(
            lambda var, new: var.set_value(jnp.asarray(new)), self.params, params,
            is_leaf=_is_variable,
        )  # fmt: skip


class RNNCell(_CoreParams, nnx.RNNCellBase):
    """One step of a core cell as an NNX cell: ``(carry, x) -> (carry, y)``; it also runs inside
    ``flax.nnx.RNN``.

    Args:
      cell: the core cell, e.g. ``lstm_jax.lstm(64)``.
      input_size: width of ``x``.
      rngs: ``nnx.Rngs`` with a ``params`` (or default) stream.
    """

    def __init__(self, cell: Cell, input_size: int, *, rngs: nnx.Rngs) -> None:
        _check_cell("RNNCell", cell)
        _check_rngs("RNNCell", rngs)
        self.cell = cell
        self.input_size = input_size
        self._set_params(cell.init(rngs.params(), input_size))

    @property
    def core(self) -> Cell:
        return self.cell

    def __call__(self, carry: PyTree, x: Array) -> tuple[PyTree, Array]:  # type: ignore[override]
        """``carry``: leaves ``[*batch, hidden]``; ``x: [*batch, input]``. Returns
        ``(carry, y [*batch, hidden])``."""
        return self.cell.step(self.core_params(), carry, x)

    def initialize_carry(  # type: ignore[override]
        self, input_shape: tuple[int, ...], rngs: Any = None
    ) -> PyTree:
        """Zeros for inputs of shape ``(*batch, input)``; ``rngs`` is unused."""
        del rngs
        return self.cell.initial_carry(tuple(input_shape[:-1]))

    @property
    def num_feature_axes(self) -> int:
        return 1


def LSTMCell(input_size: int, hidden_size: int, *, rngs: nnx.Rngs, **config: Any) -> RNNCell:
    """``RNNCell(lstm_jax.lstm(hidden_size, **config), input_size, rngs=rngs)``."""
    return RNNCell(lstm(hidden_size, **config), input_size, rngs=rngs)


def PeepholeLSTMCell(
    input_size: int, hidden_size: int, *, rngs: nnx.Rngs, **config: Any
) -> RNNCell:
    """``RNNCell(lstm_jax.peephole_lstm(hidden_size, **config), input_size, rngs=rngs)``."""
    return RNNCell(peephole_lstm(hidden_size, **config), input_size, rngs=rngs)


def CIFGLSTMCell(input_size: int, hidden_size: int, *, rngs: nnx.Rngs, **config: Any) -> RNNCell:
    """``RNNCell(lstm_jax.cifg_lstm(hidden_size, **config), input_size, rngs=rngs)``."""
    return RNNCell(cifg_lstm(hidden_size, **config), input_size, rngs=rngs)


def GRUCell(input_size: int, hidden_size: int, *, rngs: nnx.Rngs, **config: Any) -> RNNCell:
    """``RNNCell(lstm_jax.gru(hidden_size, **config), input_size, rngs=rngs)``."""
    return RNNCell(gru(hidden_size, **config), input_size, rngs=rngs)


def SimpleRNNCell(input_size: int, hidden_size: int, *, rngs: nnx.Rngs, **config: Any) -> RNNCell:
    """``RNNCell(lstm_jax.simple_rnn(hidden_size, **config), input_size, rngs=rngs)``."""
    return RNNCell(simple_rnn(hidden_size, **config), input_size, rngs=rngs)


class RNN(_CoreParams):
    """A core cell run over a sequence by ``lstm_jax.unroll``.

    Args:
      cell: the core cell, e.g. ``lstm_jax.lstm(64)``.
      input_size: width of the inputs.
      rngs: ``nnx.Rngs`` for the parameters.
      return_carry: return ``(carry, ys)`` instead of ``ys``.
      reverse: read each row from its last valid element to its first; outputs stay aligned
        with the input positions.
      time_major: ``xs: [time, *batch, input]`` instead of ``[*batch, time, input]``.
      unroll, hoist_projection: as for ``lstm_jax.unroll``.
    """

    def __init__(
        self,
        cell: Cell,
        input_size: int,
        *,
        rngs: nnx.Rngs,
        return_carry: bool = False,
        reverse: bool = False,
        time_major: bool = False,
        unroll: int | bool = 1,
        hoist_projection: bool | None = None,
    ) -> None:
        _check_cell("RNN", cell)
        _check_rngs("RNN", rngs)
        self.cell = cell
        self.input_size = input_size
        self.return_carry = return_carry
        self.reverse = reverse
        self.time_major = time_major
        self.unroll = unroll
        self.hoist_projection = hoist_projection
        self._set_params(cell.init(rngs.params(), input_size))

    @property
    def core(self) -> Cell:
        """The core cell this module runs."""
        return self.cell

    def __call__(
        self,
        xs: Array,
        *,
        seq_lengths: Array | None = None,
        initial_carry: PyTree | None = None,
        return_carry: bool | None = None,
        reverse: bool | None = None,
    ) -> Array | tuple[PyTree, Array]:
        """Runs the cell over ``xs: [*batch, time, input]``.

        Args:
          seq_lengths: integers ``[*batch]``; steps at and after a row's length are padding.
          initial_carry: leaves ``[*batch, hidden]``; zeros when None.
          return_carry, reverse: override the attributes of the same name.

        Returns:
          ``ys: [*batch, time, hidden]``, or ``(final_carry, ys)`` with ``return_carry``.
        """
        _check_xs("RNN", xs, self.time_major, self.input_size)
        carry, ys = unroll_fn(
            self.cell,
            self.core_params(),
            xs,
            initial_carry=initial_carry,
            seq_lengths=seq_lengths,
            reverse=self.reverse if reverse is None else reverse,
            time_major=self.time_major,
            unroll=self.unroll,
            hoist_projection=self.hoist_projection,
        )
        ret = self.return_carry if return_carry is None else return_carry
        return (carry, ys) if ret else ys


class Bidirectional(_CoreParams):
    """A forward and a reversed run of a cell, merged, by ``lstm_jax.bidirectional``.

    Args:
      cell: the core cell of the forward direction (and of the backward one unless
        ``backward_cell`` is given).
      input_size: width of the inputs.
      rngs: ``nnx.Rngs`` for the parameters.
      backward_cell: another core cell for the backward direction, or None.
      merge: ``"concat"``, ``"sum"``, ``"mean"``, ``"mul"`` or a callable
        ``(forward, backward) -> outputs``.
      return_carry: return ``((carry_f, carry_b), ys)`` instead of ``ys``.
      time_major, unroll, fused, hoist_projection: as for ``lstm_jax.bidirectional``.
    """

    def __init__(
        self,
        cell: Cell,
        input_size: int,
        *,
        rngs: nnx.Rngs,
        backward_cell: Cell | None = None,
        merge: str | Callable[[Array, Array], Array] = "concat",
        return_carry: bool = False,
        time_major: bool = False,
        unroll: int | bool = 1,
        fused: bool | None = None,
        hoist_projection: bool | None = None,
    ) -> None:
        fn = "Bidirectional"
        _check_cell(fn, cell)
        if backward_cell is not None:
            _check_cell(fn, backward_cell, "backward_cell")
        _check_rngs(fn, rngs)
        self.cell = cell
        self.backward_cell = backward_cell
        self.input_size = input_size
        self.merge = merge
        self.return_carry = return_carry
        self.time_major = time_major
        self.unroll = unroll
        self.fused = fused
        self.hoist_projection = hoist_projection
        k_f, k_b = jax.random.split(rngs.params())
        self._set_params((cell.init(k_f, input_size), self.core[1].init(k_b, input_size)))

    @property
    def core(self) -> tuple[Cell, Cell]:
        """The core cells ``(forward, backward)`` this module runs."""
        return (self.cell, self.cell if self.backward_cell is None else self.backward_cell)

    def __call__(
        self,
        xs: Array,
        *,
        seq_lengths: Array | None = None,
        initial_carry: tuple[PyTree, PyTree] | None = None,
        return_carry: bool | None = None,
    ) -> Array | tuple[tuple[PyTree, PyTree], Array]:
        """Runs both directions over ``xs: [*batch, time, input]``.

        Returns:
          ``ys: [*batch, time, merged]``, or ``((carry_f, carry_b), ys)`` with
          ``return_carry``.
        """
        _check_xs("Bidirectional", xs, self.time_major, self.input_size)
        carry, ys = bidirectional(
            self.cell,
            self.core_params(),
            xs,
            seq_lengths=seq_lengths,
            merge=self.merge,
            backward_cell=self.backward_cell,
            initial_carry=initial_carry,
            time_major=self.time_major,
            unroll=self.unroll,
            fused=self.fused,
            hoist_projection=self.hoist_projection,
        )
        ret = self.return_carry if return_carry is None else return_carry
        return (carry, ys) if ret else ys


class StackedRNN(_CoreParams):
    """Any core stack (``lstm_jax.stack(...)``) as an NNX module.

    Args:
      stack: the network, e.g. ``lstm_jax.stack(lstm_jax.gru(32), 3, dropout=0.1)``.
      input_size: width of the inputs.
      rngs: ``nnx.Rngs`` for the parameters; its ``dropout`` stream (or default one) is kept
        for dropout between layers.
      deterministic: True disables dropout; ``model.eval()`` / ``model.train()`` set it.
      return_carry, time_major, unroll, hoist_projection: as for ``RNN``.
    """

    def __init__(
        self,
        stack: Stack,
        input_size: int,
        *,
        rngs: nnx.Rngs,
        deterministic: bool | None = None,
        return_carry: bool = False,
        time_major: bool = False,
        unroll: int | bool = 1,
        hoist_projection: bool | None = None,
    ) -> None:
        fn = type(self).__name__
        if not isinstance(stack, Stack):
            raise TypeError(
                f"{fn}: stack must be an lstm_jax.stack(...), got {type(stack).__name__}"
            )
        _check_rngs(fn, rngs)
        self.stack = stack
        self.input_size = input_size
        self.deterministic = deterministic
        self.return_carry = return_carry
        self.time_major = time_major
        self.unroll = unroll
        self.hoist_projection = hoist_projection
        self._set_params(stack.init(rngs.params(), input_size))
        self.rngs = nnx.data(None)
        if stack.dropout > 0:
            try:
                self.rngs = rngs["dropout"].fork()
            except KeyError:
                pass  # no stream to keep: training then needs rngs in __call__

    @property
    def core(self) -> Stack:
        """The core network this module runs."""
        return self.stack

    def set_view(self, deterministic: bool | None = None) -> None:
        """Used by ``nnx.view(model, deterministic=...)``."""
        if deterministic is not None:
            self.deterministic = deterministic

    def __call__(
        self,
        xs: Array,
        *,
        seq_lengths: Array | None = None,
        initial_carry: PyTree | None = None,
        deterministic: bool | None = None,
        rngs: nnx.Rngs | nnx.RngStream | Array | None = None,
        return_carry: bool | None = None,
    ) -> Any:
        """Runs the layers over ``xs: [*batch, time, input]``.

        Args:
          seq_lengths: integers ``[*batch]``, used by every layer.
          initial_carry: one carry per layer (a pair per layer if bidirectional); zeros when
            None.
          deterministic: overrides the attribute; False applies dropout between the layers.
          rngs: a dropout key source overriding the one kept at construction: ``nnx.Rngs``
            (its ``dropout`` stream), an ``nnx.RngStream`` or a key.
          return_carry: overrides the attribute.

        Returns:
          ``ys: [*batch, time, output]``, or ``(carries, ys)`` with one carry per layer.
        """
        fn = type(self).__name__
        _check_xs(fn, xs, self.time_major, self.input_size)
        dropout_key = None
        if self.stack.dropout > 0:
            det = self.deterministic if deterministic is None else deterministic
            if det is None:
                raise ValueError(
                    f"{fn}: dropout={self.stack.dropout} needs to know whether this is "
                    f"training: call model.train() / model.eval(), or pass deterministic=True "
                    f"(inference) or False (training), got neither"
                )
            if not det:
                dropout_key = self._dropout_key(fn, rngs)
        carry, ys = self.stack.apply(
            self.core_params(),
            xs,
            seq_lengths=seq_lengths,
            initial_carry=initial_carry,
            dropout_key=dropout_key,
            time_major=self.time_major,
            unroll=self.unroll,
            hoist_projection=self.hoist_projection,
        )
        ret = self.return_carry if return_carry is None else return_carry
        return (carry, ys) if ret else ys

    def _dropout_key(self, fn: str, rngs: Any) -> Array:
        source = self.rngs if rngs is None else rngs
        if isinstance(source, nnx.Rngs):
            try:
                source = source["dropout"]
            except KeyError:
                source = None
        if isinstance(source, nnx.RngStream):
            return source()
        if isinstance(source, jax.Array):
            return source
        raise ValueError(
            f"{fn}: dropout={self.stack.dropout} in training mode (deterministic=False) needs a "
            f"'dropout' PRNG stream: build the module with rngs=nnx.Rngs(params=..., "
            f"dropout=...) or pass rngs= to the call, got "
            f"{'none' if source is None else type(source).__name__}"
        )


class LSTM(StackedRNN):
    """A stack of LSTM layers: ``LSTM(16, 256, num_layers=2, bidirectional=True, rngs=rngs)``.

    Args:
      input_size: width of the inputs.
      hidden_size: width of every layer's ``h`` and ``c``.
      num_layers, bidirectional, dropout, residual, merge: as for ``lstm_jax.stack``.
      forget_bias, use_bias, dtype, param_dtype, carry_dtype: the cell's options
        (``lstm_jax.lstm``).
      rngs, deterministic, return_carry, time_major, unroll, hoist_projection: as for
        ``StackedRNN``.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        rngs: nnx.Rngs,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        residual: bool = False,
        merge: str = "concat",
        forget_bias: float = 1.0,
        use_bias: bool = True,
        dtype: DType | None = None,
        param_dtype: DType = jnp.float32,
        carry_dtype: DType | None = None,
        **options: Any,
    ) -> None:
        cell = lstm(
            hidden_size,
            forget_bias=forget_bias,
            use_bias=use_bias,
            dtype=dtype,
            param_dtype=param_dtype,
            carry_dtype=carry_dtype,
        )
        net = stack(
            cell,
            num_layers,
            bidirectional=bidirectional,
            dropout=dropout,
            residual=residual,
            merge=merge,
        )
        super().__init__(net, input_size, rngs=rngs, **options)


class GRU(StackedRNN):
    """A stack of GRU layers: ``GRU(16, 128, num_layers=2, dropout=0.1, rngs=rngs)``.

    Args:
      input_size: width of the inputs.
      hidden_size: width of every layer's ``h``.
      reset_after: the cuDNN/PyTorch form (True) or Cho et al.'s original (False).
      num_layers, bidirectional, dropout, residual, merge, use_bias, dtype, param_dtype,
        carry_dtype, rngs, deterministic, return_carry, time_major, unroll, hoist_projection:
        as for ``LSTM``.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        rngs: nnx.Rngs,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        residual: bool = False,
        merge: str = "concat",
        reset_after: bool = True,
        use_bias: bool = True,
        dtype: DType | None = None,
        param_dtype: DType = jnp.float32,
        carry_dtype: DType | None = None,
        **options: Any,
    ) -> None:
        cell = gru(
            hidden_size,
            reset_after=reset_after,
            use_bias=use_bias,
            dtype=dtype,
            param_dtype=param_dtype,
            carry_dtype=carry_dtype,
        )
        net = stack(
            cell,
            num_layers,
            bidirectional=bidirectional,
            dropout=dropout,
            residual=residual,
            merge=merge,
        )
        super().__init__(net, input_size, rngs=rngs, **options)


__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "Bidirectional",
    "CIFGLSTMCell",
    "GRUCell",
    "LSTMCell",
    "PeepholeLSTMCell",
    "RNNCell",
    "SimpleRNNCell",
    "StackedRNN",
    "as_params",
]
