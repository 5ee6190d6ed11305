"""Flax linen modules over the pure core: every number comes from ``lstm_jax.unroll``,
``bidirectional`` and ``stack(...).apply``; the modules only create parameters and route
arguments.

Parameter layout. Each module has exactly one parameter, and it *is* the core's parameter
pytree (the same NamedTuples, the same shapes and dtypes)::

    RNNCell, RNN        variables["params"]["cell"]    the cell's params (e.g. LSTMParams)
    Bidirectional       variables["params"]["cells"]   (forward, backward)
    StackedRNN, LSTM,   variables["params"]["layers"]  one entry per layer, a
      GRU                                              (forward, backward) pair if bidirectional

so ``lstm_jax.unroll(cell, core_params(variables), xs)`` gives the module's outputs, and
``module.apply(module_variables(module, params), xs)`` runs parameters made by ``cell.init`` (or
restored from a checkpoint, or converted from torch) in the module.

Sharding. Every leaf is created as a ``flax.linen.LogicallyPartitioned`` box with the logical
axis names of ``LOGICAL_AXES`` (``w_ih: ("rnn_input", "rnn_gates")`` and so on), so
``nn.get_partition_spec(variables)`` gives a PartitionSpec per leaf and
``nn.logical_to_mesh_sharding(specs, mesh, rules)`` a sharding. Inside a module the boxes are
unwrapped (``self.param`` does it), so the maths never sees them; ``nn.unbox(variables)`` strips
them outside.

Dropout between the layers of a stack uses the ``"dropout"`` PRNG stream and runs only when the
module is not ``deterministic`` (a field, or an argument of ``__call__`` that overrides it).

Variable lengths follow the core: with ``seq_lengths``, outputs at and after a row's length are
exactly zero and the final carry is the carry after the row's last valid step, also for rows of
length 0 (whose carry is the initial one). ``flax.linen.RNN`` (as of flax 0.12) leaves its padded
outputs unzeroed and returns, for a row of length 0, the carry after the *last* time step; the
tests in ``tests/flax/test_linen.py`` show the difference.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from lstm_jax import _checks
from lstm_jax.bidirectional import bidirectional
from lstm_jax.cells.base import Cell
from lstm_jax.cells.gru import gru
from lstm_jax.cells.lstm import cifg_lstm, lstm, peephole_lstm
from lstm_jax.cells.simple import simple_rnn
from lstm_jax.stack import Stack, stack
from lstm_jax.typing import Array, DType, PyTree
from lstm_jax.unroll import unroll as unroll_fn

# Logical axis names of every parameter field of every cell. A bidirectional pair or a stack's
# tuple of layers adds no axis: each leaf keeps its field's names.
LOGICAL_AXES: Mapping[str, tuple[str, ...]] = {
    "w_ih": ("rnn_input", "rnn_gates"),
    "w_hh": ("rnn_hidden", "rnn_gates"),
    "b": ("rnn_gates",),
    "b_hn": ("rnn_hidden",),
    "p_i": ("rnn_hidden",),
    "p_f": ("rnn_hidden",),
    "p_o": ("rnn_hidden",),
}

# The name of the one parameter each kind of module holds.
CELL_PARAM = "cell"
BIDIRECTIONAL_PARAM = "cells"
STACK_PARAM = "layers"


def _is_params_tuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(x, "_fields")


def logical_axes(params: PyTree) -> PyTree:
    """The logical axis names of every leaf of a core parameter pytree.

    Args:
      params: a cell's params, a ``(forward, backward)`` pair or a stack's tuple of layers.

    Returns:
      The same structure with a tuple of names (``LOGICAL_AXES``) in place of every array and
      None where the params hold None (a cell without bias).
    """

    def names(p: Any) -> Any:
        if _is_params_tuple(p):
            unknown = [f for f in p._fields if f not in LOGICAL_AXES]
            if unknown:
                raise ValueError(
                    f"logical_axes: params has fields {unknown} with no logical axis names; "
                    f"known fields are {sorted(LOGICAL_AXES)}"
                )
            return type(p)(
                *(None if v is None else LOGICAL_AXES[f] for f, v in zip(p._fields, p, strict=True))
            )
        if isinstance(p, tuple | list):
            return type(p)(names(q) for q in p)
        raise TypeError(
            f"logical_axes: params must be a cell's params (a NamedTuple such as LSTMParams) or "
            f"tuples of them, got {type(p).__name__}"
        )

    return names(params)


def box(params: PyTree) -> PyTree:
    """Wraps every leaf of a core parameter pytree in ``nn.LogicallyPartitioned`` with its
    logical axis names (see ``logical_axes``)."""
    return jax.tree_util.tree_map(
        lambda names, leaf: nn.LogicallyPartitioned(leaf, names),
        logical_axes(params),
        params,
        is_leaf=lambda x: isinstance(x, tuple) and all(isinstance(n, str) for n in x),
    )


def core_params(variables: Mapping[str, Any]) -> PyTree:
    """The core parameter pytree of one of this file's modules, boxes removed.

    Args:
      variables: the module's variables (``{"params": {name: params}}``), or the
        ``{name: params}`` mapping of its parameters (e.g. ``variables["params"]["encoder"]``
        for a module named ``encoder`` inside a larger model).
    """
    if not isinstance(variables, Mapping):
        raise TypeError(
            f"core_params: variables must be a mapping (the module's variables), got "
            f"{type(variables).__name__}"
        )
    params = variables.get("params", variables)
    keys = sorted(params) if isinstance(params, Mapping) else None
    known = (CELL_PARAM, BIDIRECTIONAL_PARAM, STACK_PARAM)
    if keys is None or len(keys) != 1 or keys[0] not in known:
        raise ValueError(
            f"core_params: variables must hold exactly one of the parameters {list(known)} (an "
            f"lstm_jax.flax.linen module's variables), got keys {keys}"
        )
    return nn.unbox(params[keys[0]])


def module_variables(module: nn.Module, params: PyTree) -> dict[str, Any]:
    """The variables that run core parameters ``params`` in ``module``:
    ``module.apply(module_variables(module, params), xs)``.

    The leaves are boxed with their logical axis names, as ``module.init`` makes them.
    """
    name = _PARAM_NAMES.get(type(module))
    if name is None:
        raise TypeError(
            f"module_variables: module must be a module of lstm_jax.flax.linen, got "
            f"{type(module).__name__}"
        )
    return {"params": {name: box(params)}}


def _check_cell(fn: str, cell: Any, name: str = "cell") -> None:
    if isinstance(cell, nn.Module):
        raise TypeError(
            f"{fn}: {name} must be a core cell such as lstm_jax.lstm(64), got the flax module "
            f"{type(cell).__name__} (an RNNCell module's core cell is its .cell)"
        )
    _checks.check_cell(fn, cell, name)


def _check_xs(fn: str, xs: Any, time_major: bool) -> None:
    _checks.check_sequence(fn, xs, time_major)


def _input_size(xs: Array) -> int:
    return int(xs.shape[-1])


class RNNCell(nn.RNNCellBase):
    """One step of a core cell as a linen cell: ``(carry, x) -> (carry, y)``.

    It is an ``nn.RNNCellBase``, so it also runs inside ``flax.linen.RNN``; ``RNN`` below runs
    the core's scan instead.

    Attributes:
      cell: the core cell, e.g. ``lstm_jax.lstm(64)``.
    """

    cell: Cell

    @property
    def core(self) -> Cell:
        """The core cell this module runs (what ``lstm_jax.checkpoint.save`` takes)."""
        return self.cell

    @nn.compact
    def __call__(self, carry: PyTree, x: Array) -> tuple[PyTree, Array]:
        """``carry``: leaves ``[*batch, hidden]`` (``LSTMCarry(h, c)`` for the LSTM family);
        ``x: [*batch, input]``. Returns ``(carry, y [*batch, hidden])``."""
        fn = "RNNCell"
        _check_cell(fn, self.cell)
        _checks.check_floating(fn, "x", x)
        if x.ndim < 1:
            raise ValueError(f"{fn}: x must have shape [*batch, input], got a scalar")
        params = self.param(CELL_PARAM, lambda k, n: box(self.cell.init(k, n)), _input_size(x))
        return self.cell.step(params, carry, x)

    @nn.nowrap
    def initialize_carry(self, rng: Array, input_shape: tuple[int, ...]) -> PyTree:
        """Zeros for inputs of shape ``input_shape = (*batch, input)``; ``rng`` is unused (the
        signature is ``nn.RNNCellBase``'s)."""
        del rng
        return self.cell.initial_carry(tuple(input_shape[:-1]))

    @property
    def num_feature_axes(self) -> int:
        return 1


def LSTMCell(hidden_size: int, *, name: str | None = None, **config: Any) -> RNNCell:
    """``RNNCell(lstm_jax.lstm(hidden_size, **config))``, named ``name``."""
    return RNNCell(lstm(hidden_size, **config), name=name)


def PeepholeLSTMCell(hidden_size: int, *, name: str | None = None, **config: Any) -> RNNCell:
    """``RNNCell(lstm_jax.peephole_lstm(hidden_size, **config))``, named ``name``."""
    return RNNCell(peephole_lstm(hidden_size, **config), name=name)


def CIFGLSTMCell(hidden_size: int, *, name: str | None = None, **config: Any) -> RNNCell:
    """``RNNCell(lstm_jax.cifg_lstm(hidden_size, **config))``, named ``name``."""
    return RNNCell(cifg_lstm(hidden_size, **config), name=name)


def GRUCell(hidden_size: int, *, name: str | None = None, **config: Any) -> RNNCell:
    """``RNNCell(lstm_jax.gru(hidden_size, **config))``, named ``name``."""
    return RNNCell(gru(hidden_size, **config), name=name)


def SimpleRNNCell(hidden_size: int, *, name: str | None = None, **config: Any) -> RNNCell:
    """``RNNCell(lstm_jax.simple_rnn(hidden_size, **config))``, named ``name``."""
    return RNNCell(simple_rnn(hidden_size, **config), name=name)


class RNN(nn.Module):
    """A core cell run over a sequence by ``lstm_jax.unroll``.

    Attributes:
      cell: the core cell, e.g. ``lstm_jax.lstm(64)``.
      return_carry: return ``(carry, ys)`` instead of ``ys``.
      reverse: read each row from its last valid element to its first; outputs stay aligned
        with the input positions.
      time_major: ``xs: [time, *batch, input]`` instead of ``[*batch, time, input]``.
      unroll: scan steps per loop iteration (``jax.lax.scan``'s ``unroll``).
      hoist_projection: as for ``lstm_jax.unroll`` (None: by backend).
    """

    cell: Cell
    return_carry: bool = False
    reverse: bool = False
    time_major: bool = False
    unroll: int | bool = 1
    hoist_projection: bool | None = None

    @property
    def core(self) -> Cell:
        """The core cell this module runs (what ``lstm_jax.checkpoint.save`` takes)."""
        return self.cell

    @nn.compact
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
        fn = "RNN"
        _check_cell(fn, self.cell)
        _check_xs(fn, xs, self.time_major)
        params = self.param(CELL_PARAM, lambda k, n: box(self.cell.init(k, n)), _input_size(xs))
        carry, ys = unroll_fn(
            self.cell,
            params,
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


class Bidirectional(nn.Module):
    """A forward and a reversed run of a cell, merged, by ``lstm_jax.bidirectional``.

    Attributes:
      cell: the core cell of the forward direction (and of the backward one unless
        ``backward_cell`` is given).
      backward_cell: another core cell for the backward direction, or None.
      merge: ``"concat"``, ``"sum"``, ``"mean"``, ``"mul"`` or a callable
        ``(forward, backward) -> outputs``.
      return_carry: return ``((carry_f, carry_b), ys)`` instead of ``ys``.
      time_major, unroll, hoist_projection: as for ``RNN``.
      fused: as for ``lstm_jax.bidirectional`` (None: by batch size).
    """

    cell: Cell
    backward_cell: Cell | None = None
    merge: str | Callable[[Array, Array], Array] = "concat"
    return_carry: bool = False
    time_major: bool = False
    unroll: int | bool = 1
    fused: bool | None = None
    hoist_projection: bool | None = None

    @property
    def core(self) -> tuple[Cell, Cell]:
        """The core cells ``(forward, backward)`` this module runs."""
        return (self.cell, self.cell if self.backward_cell is None else self.backward_cell)

    @nn.compact
    def __call__(
        self,
        xs: Array,
        *,
        seq_lengths: Array | None = None,
        initial_carry: tuple[PyTree, PyTree] | None = None,
        return_carry: bool | None = None,
    ) -> Array | tuple[tuple[PyTree, PyTree], Array]:
        """Runs both directions over ``xs: [*batch, time, input]``.

        Args:
          seq_lengths: integers ``[*batch]``.
          initial_carry: a pair ``(forward, backward)``; zeros when None.
          return_carry: overrides the attribute.

        Returns:
          ``ys: [*batch, time, merged]`` (``merged = 2 * hidden`` for ``"concat"``), or
          ``((carry_f, carry_b), ys)`` with ``return_carry``.
        """
        fn = "Bidirectional"
        _check_cell(fn, self.cell)
        backward = self.cell if self.backward_cell is None else self.backward_cell
        _check_cell(fn, backward, "backward_cell")
        _check_xs(fn, xs, self.time_major)

        def init(key: Array, n: int) -> PyTree:
            k_f, k_b = jax.random.split(key)
            return box((self.cell.init(k_f, n), backward.init(k_b, n)))

        params = self.param(BIDIRECTIONAL_PARAM, init, _input_size(xs))
        carry, ys = bidirectional(
            self.cell,
            params,
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


def _run_stack(
    module: nn.Module,
    fn: str,
    net: Stack,
    xs: Array,
    seq_lengths: Array | None,
    initial_carry: PyTree | None,
    deterministic: bool | None,
    return_carry: bool | None,
) -> Any:
    """The body shared by ``StackedRNN``, ``LSTM`` and ``GRU``."""
    _check_xs(fn, xs, module.time_major)
    params = module.param(STACK_PARAM, lambda k, n: box(net.init(k, n)), _input_size(xs))
    dropout_key = None
    if net.dropout > 0:
        if deterministic is None and module.deterministic is None:
            raise ValueError(
                f"{fn}: dropout={net.dropout} needs to know whether this is training: set "
                f"deterministic=True (inference) or False (training, needs a 'dropout' rng) as "
                f"an attribute or an argument of __call__, got neither"
            )
        if not (module.deterministic if deterministic is None else deterministic):
            if not module.has_rng("dropout"):
                raise ValueError(
                    f"{fn}: dropout={net.dropout} in training mode (deterministic=False) needs "
                    f"a 'dropout' PRNG stream: apply(..., rngs={{'dropout': key}}), got none"
                )
            dropout_key = module.make_rng("dropout")
    carry, ys = net.apply(
        params,
        xs,
        seq_lengths=seq_lengths,
        initial_carry=initial_carry,
        dropout_key=dropout_key,
        time_major=module.time_major,
        unroll=module.unroll,
        hoist_projection=module.hoist_projection,
    )
    ret = module.return_carry if return_carry is None else return_carry
    return (carry, ys) if ret else ys


_STACK_CALL_DOC = """Runs the layers over ``xs: [*batch, time, input]``.

        Args:
          seq_lengths: integers ``[*batch]``, used by every layer.
          initial_carry: one carry per layer (a pair per layer if bidirectional); zeros when
            None.
          deterministic: overrides the attribute; False applies dropout between the layers and
            needs a ``"dropout"`` rng.
          return_carry: overrides the attribute.

        Returns:
          ``ys: [*batch, time, output]``, or ``(carries, ys)`` with one carry per layer.
        """


class StackedRNN(nn.Module):
    """Any core stack (``lstm_jax.stack(...)``) as a linen module.

    Attributes:
      stack: the network, e.g. ``lstm_jax.stack(lstm_jax.gru(32), 3, dropout=0.1)``.
      deterministic: True disables dropout between layers; may be given to ``__call__``
        instead (needed when the stack has dropout).
      return_carry, time_major, unroll, hoist_projection: as for ``RNN``.
    """

    stack: Stack
    deterministic: bool | None = None
    return_carry: bool = False
    time_major: bool = False
    unroll: int | bool = 1
    hoist_projection: bool | None = None

    @property
    def core(self) -> Stack:
        """The core network this module runs."""
        return self.stack

    @nn.compact
    def __call__(
        self,
        xs: Array,
        *,
        seq_lengths: Array | None = None,
        initial_carry: PyTree | None = None,
        deterministic: bool | None = None,
        return_carry: bool | None = None,
    ) -> Any:
        if not isinstance(self.stack, Stack):
            raise TypeError(
                f"StackedRNN: stack must be an lstm_jax.stack(...), got {type(self.stack).__name__}"
            )
        net = self.stack
        return _run_stack(
            self, "StackedRNN", net, xs, seq_lengths, initial_carry, deterministic, return_carry
        )

    __call__.__doc__ = _STACK_CALL_DOC


class _CellStack(nn.Module):
    """The fields and the call shared by ``LSTM`` and ``GRU``; subclasses build the cell."""

    hidden_size: int
    num_layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.0
    residual: bool = False
    merge: str = "concat"
    use_bias: bool = True
    dtype: DType | None = None
    param_dtype: DType = jnp.float32
    carry_dtype: DType | None = None
    deterministic: bool | None = None
    return_carry: bool = False
    time_major: bool = False
    unroll: int | bool = 1
    hoist_projection: bool | None = None

    def _cell(self) -> Cell:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def core(self) -> Stack:
        """The core network this module runs."""
        return stack(
            self._cell(),
            self.num_layers,
            bidirectional=self.bidirectional,
            dropout=self.dropout,
            residual=self.residual,
            merge=self.merge,
        )

    @nn.compact
    def __call__(
        self,
        xs: Array,
        *,
        seq_lengths: Array | None = None,
        initial_carry: PyTree | None = None,
        deterministic: bool | None = None,
        return_carry: bool | None = None,
    ) -> Any:
        name = type(self).__name__
        return _run_stack(
            self, name, self.core, xs, seq_lengths, initial_carry, deterministic, return_carry
        )

    __call__.__doc__ = _STACK_CALL_DOC


class LSTM(_CellStack):
    """A stack of LSTM layers: ``LSTM(hidden_size=256, num_layers=2, bidirectional=True)``.

    Attributes:
      hidden_size: width of every layer's ``h`` and ``c``.
      num_layers: number of layers.
      bidirectional: every layer runs both ways; outputs merge with ``merge``.
      dropout: drop rate on every layer's output but the last (training only, ``"dropout"``
        rng).
      residual: add a layer's input to its output where the widths agree.
      merge: ``"concat"``, ``"sum"``, ``"mean"`` or ``"mul"``.
      forget_bias, use_bias, dtype, param_dtype, carry_dtype: the cell's options
        (``lstm_jax.lstm``).
      deterministic, return_carry, time_major, unroll, hoist_projection: as for
        ``StackedRNN``.
    """

    forget_bias: float = 1.0

    def _cell(self) -> Cell:
        return lstm(
            self.hidden_size,
            forget_bias=self.forget_bias,
            use_bias=self.use_bias,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            carry_dtype=self.carry_dtype,
        )


class GRU(_CellStack):
    """A stack of GRU layers: ``GRU(hidden_size=128, num_layers=2, dropout=0.1)``.

    Attributes:
      hidden_size: width of every layer's ``h``.
      reset_after: the cuDNN/PyTorch form (True) or Cho et al.'s original (False).
      num_layers, bidirectional, dropout, residual, merge, use_bias, dtype, param_dtype,
        carry_dtype, deterministic, return_carry, time_major, unroll, hoist_projection: as for
        ``LSTM``.
    """

    reset_after: bool = True

    def _cell(self) -> Cell:
        return gru(
            self.hidden_size,
            reset_after=self.reset_after,
            use_bias=self.use_bias,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            carry_dtype=self.carry_dtype,
        )


_PARAM_NAMES: dict[type, str] = {
    RNNCell: CELL_PARAM,
    RNN: CELL_PARAM,
    Bidirectional: BIDIRECTIONAL_PARAM,
    StackedRNN: STACK_PARAM,
    LSTM: STACK_PARAM,
    GRU: STACK_PARAM,
}

__all__ = [
    "GRU",
    "LOGICAL_AXES",
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
    "box",
    "core_params",
    "logical_axes",
    "module_variables",
]
