"""The Flax layers, described once: what each layer runs, its options, its parameter layout and
logical axis names. ``lstm_jax.flax.linen`` and ``lstm_jax.flax.nnx`` subclass these
descriptions and add only what their framework needs (where the parameters live, where dropout
keys come from); this file imports no Flax, and the layers hold no maths of their own.

Layers, one per function of the core, and the one parameter each holds (the core's pytree)::

    RNNCell         cell.step                   the cell's params (e.g. LSTMParams)
    RNN             lstm_jax.unroll             the cell's params
    Bidirectional   lstm_jax.bidirectional      (forward, backward)
    StackedRNN,     lstm_jax.stack(...).apply   one entry per layer, a (forward, backward)
      LSTM, GRU                                 pair if bidirectional

Any registered cell (``lstm_jax.register_cell``) runs in every layer: the layers only call the
cell's ``init`` and ``initial_carry`` and the core's sequence functions.

Construction is the same in both frameworks: the first positional argument is what the layer
runs (a cell, a stack, or the hidden size of ``LSTM``/``GRU``); NNX adds the input size as the
second (linen infers it at the first call) and ``rngs``; every other option is keyword-only,
with the same name and default in both. ``__call__`` (one function for both frameworks) takes
the per-call arguments (``seq_lengths``, ``resets``, ``initial_carry``, a stack's
``dropout_key``) and overrides of ``return_carry``, ``reverse`` and ``deterministic`` for one
call.

Names: a cell runs one step and is called ``...Cell`` (``RNNCell``, around any core cell:
``RNNCell(lstm_jax.LSTMCell(64))``); a layer runs a sequence and is not (``RNN``,
``Bidirectional``, ``StackedRNN``, ``LSTM``, ``GRU``). There are no per-cell step modules: the
core's classes are the cells (``lstm_jax.LSTMCell``), and the step module wraps any of them.

Sharding: every parameter leaf gets the logical axis names of its field in ``LOGICAL_AXES``
(``w_ih: ("rnn_input", "rnn_gates")`` ...), or of its field and rank in ``LOGICAL_AXES_BY_RANK``
where that differs between cells (sLSTM's per-head ``w_hh``); a bidirectional pair or a stack
adds no axis. A field with no names there (a new cell's own parameters) is left unsharded:
``(None, ...)``.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

import lstm_jax
from lstm_jax import _checks, regularizers
from lstm_jax._stack import WithInitialCarry, broadcast_carry
from lstm_jax.cells.base import Cell, check_cell
from lstm_jax.impl import Impl
from lstm_jax.typing import Array, DType, PyTree

LOGICAL_AXES: Mapping[str, tuple[str, ...]] = {
    "w_ih": ("rnn_input", "rnn_gates"),
    "w_hh": ("rnn_hidden", "rnn_gates"),
    "b": ("rnn_gates",),
    "b_hn": ("rnn_hidden",),
    "p_i": ("rnn_hidden",),
    "p_f": ("rnn_hidden",),
    "p_o": ("rnn_hidden",),
    "w_hr": ("rnn_hidden", "rnn_proj"),  # LSTMP's projection
    "g_ih": ("rnn_gates",),  # LayerNorm gains of the gate blocks
    "g_hh": ("rnn_gates",),
    "g_c": ("rnn_hidden",),
    "b_c": ("rnn_hidden",),
}

# Fields whose rank differs between cells: their names for that rank. sLSTM's block-diagonal
# recurrence ``w_hh [heads, head, 4*head]`` shards by head with no communication in the step.
# Both tables name a cell's own parameters: a pytree that stacks them along a new leading axis
# (an ensemble) is not described by them, and a 2-D ``w_hh`` stacked that way would be taken
# for sLSTM's.
LOGICAL_AXES_BY_RANK: Mapping[tuple[str, int], tuple[str, ...]] = {
    ("w_hh", 3): ("rnn_heads", "rnn_head", "rnn_head_gates"),
}


def _field_name(path: tuple[Any, ...]) -> str | None:
    """The parameter field a leaf sits in: the last named entry of its key path."""
    for entry in reversed(path):
        if isinstance(entry, jax.tree_util.GetAttrKey):
            return entry.name
        if isinstance(entry, jax.tree_util.DictKey) and isinstance(entry.key, str):
            return entry.key
    return None


def annotate(params: PyTree, wrap: Callable[[Array, tuple[str | None, ...]], Any]) -> PyTree:
    """``params`` (a cell's params, a pair of them or a stack's tuple) with every array ``a``
    replaced by ``wrap(a, names)``: ``names`` are the logical axis names of its field, or
    ``(None,) * a.ndim`` for a field without names in ``LOGICAL_AXES``."""

    def one(path: tuple[Any, ...], leaf: Array) -> Any:
        field = _field_name(path) or ""
        names = LOGICAL_AXES_BY_RANK.get((field, jnp.ndim(leaf)), LOGICAL_AXES.get(field))
        if names is None or len(names) != jnp.ndim(leaf):
            names = (None,) * jnp.ndim(leaf)
        return wrap(leaf, names)

    return jax.tree_util.tree_map_with_path(one, params)


def logical_axes(params: PyTree) -> PyTree:
    """The logical axis names of every leaf of a core parameter pytree: the same structure with
    a tuple of names in place of every array (None stays None)."""
    return annotate(params, lambda leaf, names: names)


def check_core_cell(fn: str, cell: Any, name: str = "cell") -> None:
    """``cell`` must be a core cell, not a Flax module (ours or Flax's own)."""
    if (type(cell).__module__ or "").startswith(("flax.", "lstm_jax.flax")):
        hint = " (its core cell is its .cell)" if hasattr(cell, "cell") else ""
        raise TypeError(
            f"{fn}: {name} must be a core cell such as lstm_jax.LSTMCell(64), got the flax module "
            f"{type(cell).__name__}{hint}"
        )
    check_cell(fn, cell, name)


def describe(layer: type) -> str:
    """The full docstring of a shared layer class: its own, with the ``doc_args`` of every class
    it derives from added to its ``Args:``."""
    doc = inspect.cleandoc(layer.__doc__ or "")
    extra = [a for c in layer.__mro__ for a in c.__dict__.get("doc_args", ())]
    entries = "\n".join("  " + a.replace("\n", "\n    ") for a in extra)
    return f"{doc}\n{entries}\n" if "\nArgs:\n" in doc else f"{doc}\n\nArgs:\n{entries}\n"


def adopt(cls: type) -> None:
    """Makes a framework's layer class document itself (its own docstring, then ``describe`` of
    the shared layer) and own the shared ``__call__``, so the framework treats it as its own
    method (linen wraps a class's own methods)."""
    shared = next(c for c in cls.__mro__ if c.__module__ == __name__ and issubclass(c, Layer))
    own = inspect.cleandoc(cls.__doc__) if cls.__doc__ else ""
    cls.__doc__ = "\n\n".join(d for d in (own, describe(shared)) if d)
    if shared in cls.__bases__ and "__call__" not in cls.__dict__:
        cls.__call__ = shared.__call__


class Layer:
    """What every layer shares. Each framework's base class, which comes first in a layer's
    bases (``class RNN(_Module, layers.RNN)``), calls ``adopt`` on the class and provides:

    * ``_params(fn, input_size) -> params``: the layer's core parameters, created from
      ``init_params`` at the first call (linen) or held since construction (NNX);
    * ``_dropout_key(fn, what, override) -> key``: the key of a training call's dropout
      (``what`` names the rate that needs it, for the error message);
    * ``training_hint``: how to tell the layer whether it is training.
    """

    param_name: ClassVar[str]
    training_hint: ClassVar[str]
    doc_args: ClassVar[tuple[str, ...]] = (
        "input_size: (NNX only, the second positional argument) the width of the inputs;\n"
        "linen infers it at the first call.",
        "rngs: (NNX only, keyword) ``nnx.Rngs``: its ``params`` (or default) stream makes the\n"
        "parameters; a stack with dropout keeps its ``dropout`` (or default) stream.",
    )

    @property
    def core(self) -> Any:  # pragma: no cover - per layer
        """What the layer runs in the core API (what ``lstm_jax.checkpoint.save`` takes)."""
        raise NotImplementedError

    @property
    def dropout_rate(self) -> float:
        return 0.0

    def check(self, fn: str) -> None:
        """Validates the layer's configuration (at construction in NNX, at a call in linen)."""

    def init_params(self, key: Array, input_size: int) -> PyTree:
        """The core parameters of this layer for inputs of width ``input_size``."""
        return self.core.init(key, input_size)


@dataclasses.dataclass(eq=False, repr=False)
class CellLayer(Layer):
    """A layer over one core cell.

    Args:
      cell: any registered core cell (``lstm_jax.LSTMCell(64)``, ``GRUCell(32)``, your own).
    """

    cell: Cell
    param_name: ClassVar[str] = "cell"

    @property
    def core(self) -> Cell:
        return self.cell

    def check(self, fn: str) -> None:
        check_core_cell(fn, self.cell)


@dataclasses.dataclass(eq=False, repr=False)
class RNNCell(CellLayer):
    """One step of a core cell, ``cell.step``, as a Flax cell: ``(carry, x) -> (carry, y)``; it
    also runs inside Flax's own ``RNN``.

    Args:
      cell: any registered core cell (``lstm_jax.LSTMCell(64)``, ``GRUCell(32)``, your own).
    """

    def __call__(self, carry: PyTree, x: Array) -> tuple[PyTree, Array]:
        """``carry``: leaves ``[*batch, hidden]`` (``LSTMCarry(h, c)`` for the LSTM family);
        ``x: [*batch, input]``. Returns ``(carry, y [*batch, hidden])``."""
        fn = type(self).__name__
        self.check(fn)
        _checks.check_floating(fn, "x", x)
        if x.ndim < 1:
            raise ValueError(f"{fn}: x must have shape [*batch, input], got a scalar")
        return self.cell.step(self._params(fn, int(x.shape[-1])), carry, x)

    def carry_for(self, input_shape: tuple[int, ...]) -> PyTree:
        """Zeros for inputs of shape ``(*batch, input)``."""
        return self.cell.initial_carry(tuple(input_shape[:-1]))

    @property
    def num_feature_axes(self) -> int:
        return 1


@dataclasses.dataclass(kw_only=True, eq=False, repr=False)
class SequenceLayer(Layer):
    """The options of every sequence layer."""

    return_carry: bool = False
    time_major: bool = False
    impl: str | Impl = "auto"
    deterministic: bool | None = None
    doc_args: ClassVar[tuple[str, ...]] = (
        "return_carry: return ``(final_carry, ys)`` instead of ``ys``.",
        "time_major: ``xs: [time, *batch, input]`` instead of ``[*batch, time, input]``.",
        'impl: how the recurrence runs (``lstm_jax.impl``): ``"auto"``, ``"scan"``,\n'
        '``"split"``, ``"chunked"`` or an instance such as ``lstm_jax.Chunked(every=100)``;\n'
        "the numbers never depend on it.",
        "deterministic: True disables dropout (between a stack's layers, and the masks and\n"
        "zoneout of ``lstm_jax.regularizers.regularized`` cells), False applies it (linen:\n"
        'needs a ``"dropout"`` rng); must be known, here or per call, when there is dropout.\n'
        "NNX's ``model.train()`` / ``model.eval()`` set it.",
    )

    def _training_key(self, fn: str, deterministic: bool | None, override: Any) -> Any:
        """The key of this call's dropout, or None (evaluation, or nothing to drop)."""
        rate = self.dropout_rate
        if rate == 0:
            return None
        # what needs the key: the stack's dropout, or else a regularized cell's largest rate
        what = (
            f"dropout={rate}"
            if getattr(self.core, "dropout", None) == rate
            else f"a regularized cell's rate {rate}"
        )
        det = self.deterministic if deterministic is None else deterministic
        if det is None:
            raise ValueError(
                f"{fn}: {what} needs to know whether this is training: "
                f"{self.training_hint}, got neither"
            )
        _checks.check_bool(fn, "deterministic", det)
        if det:
            return None
        key = self._dropout_key(fn, what, override)
        _checks.check_key(fn, "dropout_key", key)
        return key

    def _batch_shape(self, xs: Array) -> tuple[int, ...]:
        return tuple(xs.shape[1:-1] if self.time_major else xs.shape[:-2])

    def _sequence_params(self, xs: Array) -> tuple[str, PyTree]:
        fn = type(self).__name__
        self.check(fn)
        _checks.check_sequence(fn, xs, self.time_major)
        return fn, self._params(fn, int(xs.shape[-1]))

    def _learned(self, params: PyTree, xs: Array, initial_carry: Any) -> tuple[PyTree, Any]:
        """``(core params, initial carry)``: with ``learn_initial_carry`` the parameter is a
        ``WithInitialCarry`` whose carry, broadcast over the batch, stands in for a missing
        ``initial_carry``."""
        if not getattr(self, "learn_initial_carry", False):
            return params, initial_carry
        params, learned = params
        if initial_carry is None:
            initial_carry = broadcast_carry(learned, self._batch_shape(xs))
        return params, initial_carry

    def _result(self, fn: str, carry: PyTree, ys: Array, return_carry: bool | None) -> Any:
        ret = self.return_carry if return_carry is None else return_carry
        _checks.check_bool(fn, "return_carry", ret)
        return (carry, ys) if ret else ys


@dataclasses.dataclass(eq=False, repr=False)
class RNN(SequenceLayer, CellLayer):
    """A core cell run over a sequence by ``lstm_jax.unroll``.

    Args:
      cell: any registered core cell (``lstm_jax.LSTMCell(64)``, ``GRUCell(32)``, your own).
      reverse: read each row from its last valid element back to its first; outputs stay
        aligned with the input positions.
      learn_initial_carry: learn the initial carry (leaves ``[hidden]``, zeros at init,
        broadcast over the batch), used when a call gets no ``initial_carry``; the parameter
        is then ``WithInitialCarry(cell params, carry)``.
    """

    _: dataclasses.KW_ONLY
    reverse: bool = False
    learn_initial_carry: bool = False

    def check(self, fn: str) -> None:
        super().check(fn)
        _checks.check_bool(fn, "learn_initial_carry", self.learn_initial_carry)

    @property
    def dropout_rate(self) -> float:
        return regularizers.key_rate(self.cell)

    def init_params(self, key: Array, input_size: int) -> PyTree:
        params = self.cell.init(key, input_size)
        if self.learn_initial_carry:
            return WithInitialCarry(params, self.cell.initial_carry(()))
        return params

    def __call__(
        self,
        xs: Array,
        *,
        seq_lengths: Array | None = None,
        resets: Array | None = None,
        initial_carry: PyTree | None = None,
        deterministic: bool | None = None,
        dropout_key: Any = None,
        return_carry: bool | None = None,
        reverse: bool | None = None,
    ) -> Any:
        """Runs the cell over ``xs: [*batch, time, input]``.

        Args:
          seq_lengths: integers ``[*batch]``; outputs at and past a row's length are zero and
            its final carry is the one after its last valid step (``lstm_jax.unroll``).
          resets: booleans ``[*batch, time]``, True at the first step of each packed sequence
            (several back to back in a row): the carry goes back to ``initial_carry`` there.
          initial_carry: leaves ``[*batch, hidden]``; zeros (or the learned carry) when None.
            A ``regularized`` cell then starts from ``regularizers.start_carry``: its masks
            drawn from the dropout key when training.
          deterministic: overrides the attribute for this call.
          dropout_key: a PRNG key for this call's dropout, in place of the framework's stream
            (used only by a ``regularized`` cell).
          return_carry, reverse: override the attributes for this call.

        Returns:
          ``ys: [*batch, time, hidden]``, or ``(final_carry, ys)`` with ``return_carry``.
        """
        fn, params = self._sequence_params(xs)
        given = initial_carry is not None
        params, initial_carry = self._learned(params, xs, initial_carry)
        if not given:
            key = self._training_key(fn, deterministic, dropout_key)
            initial_carry = regularizers.start_carry(
                self.cell, self._batch_shape(xs), key, initial_carry
            )
        carry, ys = lstm_jax.unroll(
            self.cell,
            params,
            xs,
            initial_carry=initial_carry,
            seq_lengths=seq_lengths,
            resets=resets,
            reverse=self.reverse if reverse is None else reverse,
            time_major=self.time_major,
            impl=self.impl,
        )
        return self._result(fn, carry, ys, return_carry)


@dataclasses.dataclass(eq=False, repr=False)
class Bidirectional(SequenceLayer):
    """A forward and a reversed run of a cell, merged, by ``lstm_jax.bidirectional``; the carry
    is a pair ``(forward, backward)``.

    Args:
      cell: the core cell of the forward direction, and of the backward one unless
        ``backward_cell`` is given (any registered cell).
      backward_cell: another core cell for the backward direction, or None.
      merge: ``"concat"``, ``"sum"``, ``"mean"``, ``"mul"`` or a callable
        ``(forward, backward) -> outputs``.
      learn_initial_carry: learn both directions' initial carries (leaves ``[hidden]``, zeros
        at init), used when a call gets no ``initial_carry``; the parameter is then
        ``WithInitialCarry((forward, backward), (carry_f, carry_b))``.
    """

    cell: Cell
    _: dataclasses.KW_ONLY
    backward_cell: Cell | None = None
    merge: str | Callable[[Array, Array], Array] = "concat"
    learn_initial_carry: bool = False
    param_name: ClassVar[str] = "cells"

    @property
    def core(self) -> tuple[Cell, Cell]:
        """The core cells ``(forward, backward)``."""
        return (self.cell, self.cell if self.backward_cell is None else self.backward_cell)

    def check(self, fn: str) -> None:
        check_core_cell(fn, self.cell)
        if self.backward_cell is not None:
            check_core_cell(fn, self.backward_cell, "backward_cell")
        _checks.check_bool(fn, "learn_initial_carry", self.learn_initial_carry)

    @property
    def dropout_rate(self) -> float:
        return max(regularizers.key_rate(c) for c in self.core)

    def init_params(self, key: Array, input_size: int) -> PyTree:
        k_f, k_b = jax.random.split(key)
        forward, backward = self.core
        params = (forward.init(k_f, input_size), backward.init(k_b, input_size))
        if self.learn_initial_carry:
            return WithInitialCarry(params, (forward.initial_carry(()), backward.initial_carry(())))
        return params

    def __call__(
        self,
        xs: Array,
        *,
        seq_lengths: Array | None = None,
        resets: Array | None = None,
        initial_carry: tuple[PyTree, PyTree] | None = None,
        deterministic: bool | None = None,
        dropout_key: Any = None,
        return_carry: bool | None = None,
    ) -> Any:
        """Runs both directions over ``xs: [*batch, time, input]``.

        Args:
          seq_lengths: integers ``[*batch]``; the backward direction reads each row from its
            own last valid element.
          resets: booleans ``[*batch, time]``, True at the first step of each packed sequence;
            the backward direction reads each sequence from its own end back to its start.
          initial_carry: a pair ``(forward, backward)``; zeros (or the learned carries) when
            None, from ``regularizers.start_carry`` for a ``regularized`` cell.
          deterministic: overrides the attribute for this call.
          dropout_key: a PRNG key for this call's dropout, in place of the framework's stream
            (used only by ``regularized`` cells; split between the directions).
          return_carry: overrides the attribute for this call.

        Returns:
          ``ys: [*batch, time, merged]`` (``merged = 2 * hidden`` for ``"concat"``), or
          ``((carry_f, carry_b), ys)`` with ``return_carry``.
        """
        fn, params = self._sequence_params(xs)
        given = initial_carry is not None
        params, initial_carry = self._learned(params, xs, initial_carry)
        if not given:
            key = self._training_key(fn, deterministic, dropout_key)
            keys = (None, None) if key is None else tuple(jax.random.split(key))
            pair = (None, None) if initial_carry is None else initial_carry
            initial_carry = tuple(
                regularizers.start_carry(cell, self._batch_shape(xs), k, c)
                for cell, k, c in zip(self.core, keys, pair, strict=True)
            )
            if all(c is None for c in initial_carry):
                initial_carry = None
        carry, ys = lstm_jax.bidirectional(
            self.cell,
            params,
            xs,
            seq_lengths=seq_lengths,
            resets=resets,
            merge=self.merge,
            backward_cell=self.backward_cell,
            initial_carry=initial_carry,
            time_major=self.time_major,
            impl=self.impl,
        )
        return self._result(fn, carry, ys, return_carry)


@dataclasses.dataclass(kw_only=True, eq=False, repr=False)
class StackLayer(SequenceLayer):
    """What ``StackedRNN``, ``LSTM`` and ``GRU`` share: the call, and dropout between layers."""

    param_name: ClassVar[str] = "layers"

    @property
    def dropout_rate(self) -> float:
        return self.core.key_rate

    def __call__(
        self,
        xs: Array,
        *,
        seq_lengths: Array | None = None,
        resets: Array | None = None,
        initial_carry: PyTree | None = None,
        deterministic: bool | None = None,
        dropout_key: Any = None,
        return_carry: bool | None = None,
    ) -> Any:
        """Runs the layers over ``xs: [*batch, time, input]``.

        Args:
          seq_lengths: integers ``[*batch]``, used by every layer.
          resets: booleans ``[*batch, time]``, True at the first step of each packed
            sequence; every layer goes back to its initial carry there.
          initial_carry: one carry per layer (a pair per layer if bidirectional); zeros when
            None.
          deterministic: overrides the attribute for this call.
          dropout_key: a PRNG key for this call's dropout, in place of the framework's stream
            (linen: the ``"dropout"`` rng; NNX: the ``dropout`` stream of the construction's
            ``rngs``, and here also an ``nnx.Rngs`` or ``nnx.RngStream``).
          return_carry: overrides the attribute for this call.

        Returns:
          ``ys: [*batch, time, output]``, or ``(carries, ys)`` with one carry per layer.
        """
        fn, params = self._sequence_params(xs)
        net = self.core
        carry, ys = net.apply(
            params,
            xs,
            seq_lengths=seq_lengths,
            resets=resets,
            initial_carry=initial_carry,
            dropout_key=self._training_key(fn, deterministic, dropout_key),
            time_major=self.time_major,
            impl=self.impl,
        )
        return self._result(fn, carry, ys, return_carry)


@dataclasses.dataclass(eq=False, repr=False)
class StackedRNN(StackLayer):
    """Any core stack, ``lstm_jax.stack(...)``, as a layer.

    Args:
      stack: the network, e.g. ``lstm_jax.stack(lstm_jax.GRUCell(32), 3, dropout=0.1)``; its
        cells may be any registered cells.
    """

    stack: lstm_jax.Stack

    @property
    def core(self) -> lstm_jax.Stack:
        return self.stack

    def check(self, fn: str) -> None:
        if not isinstance(self.stack, lstm_jax.Stack):
            raise TypeError(
                f"{fn}: stack must be an lstm_jax.stack(...), got {type(self.stack).__name__}"
            )


@dataclasses.dataclass(eq=False, repr=False)
class CellStack(StackLayer):
    """What ``LSTM`` and ``GRU`` share: a stack of ``cell_type`` cells (see ``LSTM``)."""

    hidden_size: int
    _: dataclasses.KW_ONLY
    num_layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.0
    locked_dropout: bool = False
    residual: bool = False
    merge: str = "concat"
    learn_initial_carry: bool = False
    use_bias: bool = True
    dtype: DType | None = None
    param_dtype: DType = jnp.float32
    carry_dtype: DType | None = None
    cell_type: ClassVar[type[Cell]]
    doc_args: ClassVar[tuple[str, ...]] = (
        "num_layers, bidirectional, dropout, locked_dropout, residual, merge,\n"
        "learn_initial_carry: as for ``lstm_jax.stack``.",
        "use_bias, dtype, param_dtype, carry_dtype: the cell's options.",
    )

    def make_cell(self) -> Cell:
        """A ``cell_type`` with every option of this layer that the cell has."""
        options = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self.cell_type)
            if f.name != "hidden_size" and f.name in self.__dataclass_fields__
        }
        return self.cell_type(self.hidden_size, **options)

    @property
    def core(self) -> lstm_jax.Stack:
        return lstm_jax.stack(
            self.make_cell(),
            self.num_layers,
            bidirectional=self.bidirectional,
            dropout=self.dropout,
            locked_dropout=self.locked_dropout,
            residual=self.residual,
            merge=self.merge,
            learn_initial_carry=self.learn_initial_carry,
        )


@dataclasses.dataclass(eq=False, repr=False)
class LSTM(CellStack):
    """A stack of ``lstm_jax.LSTMCell`` layers.

    Args:
      hidden_size: the width of every layer's ``h`` and ``c``.
      forget_bias: added to the forget gate's bias at init (``lstm_jax.LSTMCell``).
    """

    _: dataclasses.KW_ONLY
    forget_bias: float = 1.0
    cell_type: ClassVar[type[Cell]] = lstm_jax.LSTMCell


@dataclasses.dataclass(eq=False, repr=False)
class GRU(CellStack):
    """A stack of ``lstm_jax.GRUCell`` layers.

    Args:
      hidden_size: the width of every layer's ``h``.
      reset_after: the cuDNN/PyTorch form (True) or Cho et al.'s original (False).
    """

    _: dataclasses.KW_ONLY
    reset_after: bool = True
    cell_type: ClassVar[type[Cell]] = lstm_jax.GRUCell
