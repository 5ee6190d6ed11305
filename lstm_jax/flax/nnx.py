"""Flax NNX layers over the pure core: ``RNNCell``, ``RNN``, ``Bidirectional``, ``StackedRNN``,
``LSTM`` and ``GRU``.

Each is the shared description of ``lstm_jax.flax._layers`` (its options, its call, its
docstring) made an NNX module; this file adds only where NNX keeps parameters and dropout keys.
NNX creates parameters at construction, so every layer takes the input size as its second
positional argument and ``rngs`` as a keyword; the rest is as in ``lstm_jax.flax.linen``::

    from lstm_jax.flax import nnx as rnn
    rnn.RNN(lstm_jax.LSTMCell(64), 16, rngs=nnx.Rngs(0), return_carry=True)
    rnn.LSTM(256, 16, num_layers=2, bidirectional=True, dropout=0.1, rngs=nnx.Rngs(0))

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
``lstm_jax.flax.LOGICAL_AXES`` (``w_ih: ("rnn_input", "rnn_gates")`` ...), with
``eager_sharding=False`` so that modules can be built without a mesh. Map the names to mesh axes
with ``flax.linen.logical_axis_rules(rules)`` around ``nnx.get_partition_spec(nnx.state(m))`` and
place the state with ``jax.device_put``.

Dropout between a stack's layers uses the ``dropout`` stream of the ``rngs`` given at
construction (or a call's ``dropout_key``) and runs only when the module is not
``deterministic``: ``model.train()`` / ``model.eval()`` and ``nnx.view(model,
deterministic=...)`` set it.

Variable lengths follow the core (see ``lstm_jax.flax.linen``): padded outputs are zero and rows
of length 0 keep their initial carry, where ``flax.nnx.RNN`` (as of flax 0.12) does neither.
"""

from __future__ import annotations

import dataclasses
from typing import Any, dataclass_transform

import jax
import jax.numpy as jnp
from flax import nnx

from lstm_jax import _checks
from lstm_jax.flax import _layers as layers
from lstm_jax.flax._layers import annotate
from lstm_jax.typing import Array, PyTree


def _param(leaf: Array, names: tuple[str | None, ...]) -> nnx.Param:
    return nnx.Param(leaf, out_sharding=names, eager_sharding=False)


def as_params(params: PyTree) -> PyTree:
    """Wraps every array of a core parameter pytree in an ``nnx.Param`` that carries its logical
    axis names as ``out_sharding`` (not applied eagerly)."""
    return annotate(params, _param)


def _is_variable(x: Any) -> bool:
    return isinstance(x, nnx.Variable)


@dataclass_transform()
@dataclasses.dataclass(eq=False, repr=False)
class _Module(nnx.Module):
    """The NNX side of every layer. Like a linen module, every subclass is a dataclass: the
    shared description's fields, then ``input_size`` (the second positional argument) and
    ``rngs`` (keyword-only, used by ``__post_init__`` to make the parameters, which are held in
    ``params``, and to keep the dropout stream)."""

    input_size: int
    _: dataclasses.KW_ONLY
    rngs: dataclasses.InitVar[nnx.Rngs]

    training_hint = (
        "call model.train() / model.eval(), or pass deterministic=True (inference) or False "
        "(training)"
    )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if issubclass(cls, layers.Layer):
            layers.adopt(cls)
            dataclasses.dataclass(eq=False, repr=False)(cls)

    def __post_init__(self, rngs: nnx.Rngs) -> None:
        fn = type(self).__name__
        if not isinstance(rngs, nnx.Rngs):
            raise TypeError(f"{fn}: rngs must be an nnx.Rngs, got {type(rngs).__name__}")
        self.check(fn)
        self.params = nnx.data(as_params(self.init_params(rngs.params(), self.input_size)))
        self.dropout_stream = nnx.data(None)
        if self.dropout_rate > 0:
            try:
                self.dropout_stream = rngs["dropout"].fork()
            except KeyError:
                pass  # no stream to keep: training then needs a dropout_key per call

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
        if _checks.describe(params) != _checks.describe(current):
            raise ValueError(
                f"{fn}: every leaf must keep its shape and dtype: got {_checks.describe(params)} "
                f"where the module holds {_checks.describe(current)}"
            )
        jax.tree_util.tree_map(
            lambda var, new: var.set_value(jnp.asarray(new)), self.params, params,
            is_leaf=_is_variable,
        )  # fmt: skip

    def set_view(self, deterministic: bool | None = None) -> None:
        """Used by ``nnx.view(model, deterministic=...)``."""
        if deterministic is not None and hasattr(self, "deterministic"):
            self.deterministic = deterministic

    def _params(self, fn: str, input_size: int) -> PyTree:
        if input_size != self.input_size:
            raise ValueError(
                f"{fn}: the inputs' last axis must have the module's input_size="
                f"{self.input_size}, got {input_size}"
            )
        return self.core_params()

    def _dropout_key(self, fn: str, what: str, override: Any) -> Array:
        source = self.dropout_stream if override is None else override
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
            f"{fn}: {what} in training mode (deterministic=False) needs a 'dropout' "
            f"PRNG stream: build the module with rngs=nnx.Rngs(params=..., dropout=...) or pass "
            f"dropout_key= to the call, got {'none' if source is None else type(source).__name__}"
        )


class RNN(_Module, layers.RNN):
    """In NNX: ``RNN(lstm_jax.LSTMCell(64), 16, rngs=nnx.Rngs(0), return_carry=True)(xs)``."""


class Bidirectional(_Module, layers.Bidirectional):
    """In NNX: ``Bidirectional(lstm_jax.GRUCell(64), 16, rngs=nnx.Rngs(0), merge="sum")``."""


class StackedRNN(_Module, layers.StackedRNN):
    """In NNX: ``StackedRNN(lstm_jax.stack(lstm_jax.GRUCell(32), 3), 16, rngs=nnx.Rngs(0))``."""


class LSTM(_Module, layers.LSTM):
    """In NNX: ``LSTM(256, 16, num_layers=2, dropout=0.1, rngs=nnx.Rngs(0, dropout=1))``."""


class GRU(_Module, layers.GRU):
    """In NNX: ``GRU(128, 16, bidirectional=True, merge="sum", rngs=nnx.Rngs(0))``."""


class RNNCell(_Module, layers.RNNCell, nnx.RNNCellBase):
    """In NNX, also for ``nnx.RNN``: ``nnx.RNN(RNNCell(lstm_jax.LSTMCell(64), 16, rngs=rngs))``."""

    def initialize_carry(  # type: ignore[override]
        self, input_shape: tuple[int, ...], rngs: Any = None
    ) -> PyTree:
        """Zeros for inputs of shape ``(*batch, input)``; ``rngs`` is unused."""
        del rngs
        return self.carry_for(input_shape)


__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "Bidirectional",
    "RNNCell",
    "StackedRNN",
    "as_params",
]
