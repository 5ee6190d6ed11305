"""Flax linen layers over the pure core: ``RNNCell``, ``RNN``, ``Bidirectional``,
``StackedRNN``, ``LSTM`` and ``GRU``.

Each is the shared description of ``lstm_jax.flax._layers`` (its options, its call, its
docstring) made a linen module; this file adds only where linen keeps parameters and dropout
keys. The input size is inferred at the first call::

    from lstm_jax.flax import linen as rnn
    rnn.RNN(lstm_jax.LSTMCell(64), return_carry=True)      # any registered cell
    rnn.LSTM(256, num_layers=2, bidirectional=True, dropout=0.1)

Parameter layout. Each module has exactly one parameter, and it *is* the core's parameter
pytree (the same NamedTuples, shapes and dtypes)::

    RNNCell, RNN        variables["params"]["cell"]    the cell's params (e.g. LSTMParams)
    Bidirectional       variables["params"]["cells"]   (forward, backward)
    StackedRNN, LSTM,   variables["params"]["layers"]  one entry per layer, a
      GRU                                              (forward, backward) pair if bidirectional

so ``lstm_jax.unroll(module.core, core_params(variables), xs)`` gives the module's outputs, and
``module.apply(module_variables(module, params), xs)`` runs parameters made by ``cell.init`` (or
restored from a checkpoint, or converted from torch) in the module.

Sharding. Every leaf is created as a ``flax.linen.LogicallyPartitioned`` box with the logical
axis names of ``LOGICAL_AXES`` (``w_ih: ("rnn_input", "rnn_gates")`` and so on), so
``nn.get_partition_spec(variables)`` gives a PartitionSpec per leaf and
``nn.logical_to_mesh_sharding(specs, mesh, rules)`` a sharding. Inside a module the boxes are
unwrapped (``self.param`` does it); ``nn.unbox(variables)`` strips them outside.

Dropout between the layers of a stack uses the ``"dropout"`` PRNG stream (or a call's
``dropout_key``) and runs only when the module is not ``deterministic`` (an attribute, or an
argument of ``__call__`` that overrides it).

Variable lengths follow the core: with ``seq_lengths``, outputs at and after a row's length are
exactly zero and the final carry is the carry after the row's last valid step, also for rows of
length 0 (whose carry is the initial one). ``flax.linen.RNN`` (as of flax 0.12) leaves its padded
outputs unzeroed and returns, for a row of length 0, the carry after the *last* time step; the
tests in ``tests/flax/test_linen.py`` show the difference.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn

from lstm_jax.flax import _layers as layers
from lstm_jax.flax._layers import LOGICAL_AXES, annotate, logical_axes
from lstm_jax.typing import Array, PyTree

PARAM_NAMES = ("cell", "cells", "layers")


def box(params: PyTree) -> PyTree:
    """Wraps every leaf of a core parameter pytree in ``nn.LogicallyPartitioned`` with its
    logical axis names (see ``logical_axes``)."""
    return annotate(params, nn.LogicallyPartitioned)


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
    if keys is None or len(keys) != 1 or keys[0] not in PARAM_NAMES:
        raise ValueError(
            f"core_params: variables must hold exactly one of the parameters {list(PARAM_NAMES)} "
            f"(an lstm_jax.flax.linen module's variables), got keys {keys}"
        )
    return nn.unbox(params[keys[0]])


def module_variables(module: nn.Module, params: PyTree) -> dict[str, Any]:
    """The variables that run core parameters ``params`` in ``module``:
    ``module.apply(module_variables(module, params), xs)``. The leaves are boxed with their
    logical axis names, as ``module.init`` makes them."""
    if not isinstance(module, _Module):
        raise TypeError(
            f"module_variables: module must be a module of lstm_jax.flax.linen, got "
            f"{type(module).__name__}"
        )
    return {"params": {module.param_name: box(params)}}


class _Module(nn.Module):
    """The linen side of every layer: the parameter is created by ``self.param`` at the first
    call, dropout keys come from the ``"dropout"`` stream."""

    training_hint = (
        "set deterministic=True (inference) or False (training, needs a 'dropout' rng) as an "
        "attribute or an argument of __call__"
    )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        if issubclass(cls, layers.Layer):
            layers.adopt(cls)  # before linen wraps the class's own methods
        super().__init_subclass__(**kwargs)

    @nn.compact
    def _params(self, fn: str, input_size: int) -> PyTree:
        return self.param(self.param_name, lambda key, n: box(self.init_params(key, n)), input_size)

    def _dropout_key(self, fn: str, what: str, override: Any) -> Array:
        if override is not None:
            return override
        if not self.has_rng("dropout"):
            raise ValueError(
                f"{fn}: {what} in training mode (deterministic=False) needs a 'dropout' "
                f"PRNG stream: apply(..., rngs={{'dropout': key}}), got none"
            )
        return self.make_rng("dropout")


class RNN(_Module, layers.RNN):
    """In linen: ``RNN(lstm_jax.LSTMCell(64), return_carry=True).apply(variables, xs)``."""


class Bidirectional(_Module, layers.Bidirectional):
    """In linen: ``Bidirectional(lstm_jax.GRUCell(64), merge="sum")``."""


class StackedRNN(_Module, layers.StackedRNN):
    """In linen: ``StackedRNN(lstm_jax.stack(lstm_jax.GRUCell(32), 3), deterministic=True)``."""


class LSTM(_Module, layers.LSTM):
    """In linen: ``LSTM(256, num_layers=2, dropout=0.1)(xs, deterministic=not train)``."""


class GRU(_Module, layers.GRU):
    """In linen: ``GRU(128, bidirectional=True, merge="sum")``."""


class RNNCell(_Module, layers.RNNCell, nn.RNNCellBase):
    """In linen, also for ``nn.RNN``: ``nn.RNN(RNNCell(lstm_jax.LSTMCell(64)))``."""

    @nn.nowrap
    def initialize_carry(self, rng: Array, input_shape: tuple[int, ...]) -> PyTree:
        """Zeros for inputs of shape ``(*batch, input)``; ``rng`` is unused (the signature is
        ``nn.RNNCellBase``'s)."""
        del rng
        return self.carry_for(input_shape)


__all__ = [
    "GRU",
    "LOGICAL_AXES",
    "LSTM",
    "PARAM_NAMES",
    "RNN",
    "Bidirectional",
    "RNNCell",
    "StackedRNN",
    "box",
    "core_params",
    "logical_axes",
    "module_variables",
]
