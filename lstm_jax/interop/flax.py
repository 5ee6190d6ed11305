"""Flax interop: run the parameters of Flax's own recurrent cells on lstm_jax.

``from_flax(cell, variables)`` converts ``flax.linen`` ``LSTMCell``, ``OptimizedLSTMCell``,
``GRUCell`` and ``SimpleCell`` (or an ``nn.RNN`` around one, with its variables), and the
``flax.nnx`` cells of the same names (or an ``nnx.RNN`` around one, no variables needed), into
an lstm_jax cell (``LSTMCell``, ``GRUCell`` or ``SimpleRNNCell``) and its parameters.

Weight layout. Flax keeps one ``Dense``/``Linear`` per gate (linen, nnx ``LSTMCell``) or one
for all gates (nnx ``OptimizedLSTMCell``, ``GRUCell``, ``SimpleCell``), with kernels stored for
``x @ W`` like ours, in the same gate order (LSTM ``i, f, g, o``; GRU ``r, z, n``). So::

    LSTM:  w_ih = ii | if | ig | io      w_hh = hi | hf | hg | ho      b = b_hi | b_hf | b_hg | b_ho
    GRU:   w_ih = ir | iz | in           w_hh = hr | hz | hn           b = b_ir | b_iz | b_in
           b_hn = b_hn (linen; nnx's GRUCell has no recurrent bias, so zeros)
    RNN:   w_ih = i,  w_hh = h,  b = b_i

(``|`` concatenates along the last axis). Flax's LSTM carry is ``(c, h)``, ours
``LSTMCarry(h, c)``: ``carry_from_flax`` / ``carry_to_flax`` swap them.

Outputs agree on unpadded batches. With ``seq_lengths`` Flax's ``RNN`` (as of flax 0.12) does
not zero the outputs at padded steps and returns, for a row of length 0, the carry after the
last time step rather than the initial carry; lstm_jax zeroes the padding and keeps the initial
carry (see tests/interop/test_flax.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import nnx

from lstm_jax.cells.base import Cell
from lstm_jax.cells.gru import GRUCell, GRUParams
from lstm_jax.cells.lstm import LSTMCarry, LSTMCell, LSTMParams
from lstm_jax.cells.simple import SimpleRNNCell, SimpleRNNParams
from lstm_jax.typing import Array, PyTree

_FN = "from_flax"

_LINEN_CELLS = (nn.LSTMCell, nn.OptimizedLSTMCell, nn.GRUCell, nn.SimpleCell)
_NNX_CELLS = (nnx.LSTMCell, nnx.OptimizedLSTMCell, nnx.GRUCell, nnx.SimpleCell)
_ACTIVATIONS = {id(jnp.tanh): "tanh", id(jax.nn.relu): "relu"}


def _cat(*arrays: Array) -> Array:
    return jnp.concatenate(arrays, axis=-1)


def _check_functions(cell: Any, *, gate: bool, activations: tuple[str, ...]) -> str:
    """Flax cells take any gate/activation function; ours are fixed, so only the defaults (and
    relu for the simple cell) convert."""
    name = type(cell).__name__
    if gate and cell.gate_fn is not jax.nn.sigmoid:
        raise ValueError(f"{_FN}: {name}.gate_fn must be sigmoid to convert, got {cell.gate_fn!r}")
    act = _ACTIVATIONS.get(id(cell.activation_fn))
    if act not in activations:
        raise ValueError(
            f"{_FN}: {name}.activation_fn must be one of {list(activations)} to convert, got "
            f"{cell.activation_fn!r}"
        )
    return act


def _linen_params(variables: Any, name: str) -> Mapping[str, Any]:
    if not isinstance(variables, Mapping):
        raise TypeError(
            f"{_FN}: variables of the linen {name} must be a mapping (from its init), got "
            f"{type(variables).__name__}"
        )
    params = variables.get("params", variables)
    return nn.unbox(params)


def _kernel(params: Mapping[str, Any], dense: str, name: str) -> Array:
    try:
        return params[dense]["kernel"]
    except (KeyError, TypeError):
        raise ValueError(
            f"{_FN}: variables do not hold the parameters of a {name}: no {dense}/kernel in "
            f"{sorted(params) if isinstance(params, Mapping) else type(params).__name__}"
        ) from None


def _bias(params: Mapping[str, Any], dense: str, name: str) -> Array:
    try:
        return params[dense]["bias"]
    except (KeyError, TypeError):
        raise ValueError(
            f"{_FN}: variables do not hold the parameters of a {name}: no {dense}/bias"
        ) from None


def _from_linen(cell: nn.Module, variables: Any) -> tuple[Cell, PyTree]:
    name = type(cell).__name__
    p = _linen_params(variables, name)
    if isinstance(cell, nn.LSTMCell | nn.OptimizedLSTMCell):
        _check_functions(cell, gate=True, activations=("tanh",))
        params = LSTMParams(
            w_ih=_cat(*(_kernel(p, f"i{g}", name) for g in "ifgo")),
            w_hh=_cat(*(_kernel(p, f"h{g}", name) for g in "ifgo")),
            b=_cat(*(_bias(p, f"h{g}", name) for g in "ifgo")),
        )
        core = LSTMCell(cell.features, dtype=cell.dtype, param_dtype=params.w_hh.dtype)
    elif isinstance(cell, nn.GRUCell):
        _check_functions(cell, gate=True, activations=("tanh",))
        params = GRUParams(
            w_ih=_cat(*(_kernel(p, f"i{g}", name) for g in "rzn")),
            w_hh=_cat(*(_kernel(p, f"h{g}", name) for g in "rzn")),
            b=_cat(*(_bias(p, f"i{g}", name) for g in "rzn")),
            b_hn=_bias(p, "hn", name),
        )
        core = GRUCell(cell.features, dtype=cell.dtype, param_dtype=params.w_hh.dtype)
    else:
        act = _check_simple(cell)
        params = SimpleRNNParams(
            w_ih=_kernel(p, "i", name), w_hh=_kernel(p, "h", name), b=_bias(p, "i", name)
        )
        core = SimpleRNNCell(
            cell.features, activation=act, dtype=cell.dtype, param_dtype=params.w_hh.dtype
        )
    return core, params


def _check_simple(cell: Any) -> str:
    if cell.residual:
        raise ValueError(
            f"{_FN}: {type(cell).__name__}(residual=True) has no lstm_jax counterpart (its "
            f"pre-activation adds h); only residual=False converts"
        )
    return _check_functions(cell, gate=False, activations=("tanh", "relu"))


def _from_nnx(cell: nnx.Module) -> tuple[Cell, PyTree]:
    hidden = cell.hidden_features
    if isinstance(cell, nnx.LSTMCell):
        _check_functions(cell, gate=True, activations=("tanh",))
        ins = (cell.ii, cell.if_, cell.ig, cell.io)
        recs = (cell.hi, cell.hf, cell.hg, cell.ho)
        params = LSTMParams(
            w_ih=_cat(*(d.kernel[...] for d in ins)),
            w_hh=_cat(*(d.kernel[...] for d in recs)),
            b=_cat(*(d.bias[...] for d in recs)),
        )
        core = LSTMCell(hidden, dtype=cell.dtype, param_dtype=params.w_hh.dtype)
    elif isinstance(cell, nnx.OptimizedLSTMCell):
        _check_functions(cell, gate=True, activations=("tanh",))
        params = LSTMParams(
            w_ih=cell.dense_i.kernel[...],
            w_hh=cell.dense_h.kernel[...],
            b=cell.dense_h.bias[...],
        )
        core = LSTMCell(hidden, dtype=cell.dtype, param_dtype=params.w_hh.dtype)
    elif isinstance(cell, nnx.GRUCell):
        _check_functions(cell, gate=True, activations=("tanh",))
        w_hh = cell.dense_h.kernel[...]
        params = GRUParams(
            w_ih=cell.dense_i.kernel[...],
            w_hh=w_hh,
            b=cell.dense_i.bias[...],
            # nnx's GRUCell has no recurrent bias: r * (h W_hn) is r * (h W_hn + 0).
            b_hn=jnp.zeros((hidden,), w_hh.dtype),
        )
        core = GRUCell(hidden, dtype=cell.dtype, param_dtype=w_hh.dtype)
    else:
        act = _check_simple(cell)
        params = SimpleRNNParams(
            w_ih=cell.dense_i.kernel[...],
            w_hh=cell.dense_h.kernel[...],
            b=cell.dense_i.bias[...],
        )
        core = SimpleRNNCell(
            hidden, activation=act, dtype=cell.dtype, param_dtype=params.w_hh.dtype
        )
    return core, params


def from_flax(cell: Any, variables: Any = None) -> tuple[Cell, PyTree]:
    """Converts a Flax recurrent cell and its parameters to an lstm_jax cell and parameters.

    Args:
      cell: a ``flax.linen`` ``LSTMCell``, ``OptimizedLSTMCell``, ``GRUCell`` or
        ``SimpleCell``, or an ``nn.RNN`` around one; or a ``flax.nnx`` cell of those names or an
        ``nnx.RNN`` around one.
      variables: for a linen module, its variables (``module.init(...)``) or their
        ``"params"`` mapping; must be None for an nnx module, which holds its own.

    Returns:
      ``(core_cell, params)`` such that ``lstm_jax.unroll(core_cell, params, xs)`` computes
      what ``nn.RNN(cell)`` computes on unpadded inputs (the carry in our order, see
      ``carry_from_flax``).

    Raises:
      TypeError: an unsupported module, or variables missing (linen) or given (nnx).
      ValueError: a gate or activation function other than Flax's defaults (relu is also
        accepted for the simple cell), ``SimpleCell(residual=True)``, or variables that do not
        hold the cell's parameters.
    """
    if isinstance(cell, nn.RNN):
        if variables is not None:
            params = _linen_params(variables, "RNN")
            if "cell" not in params:
                raise ValueError(
                    f"{_FN}: variables of an nn.RNN must hold its cell's parameters under "
                    f"'cell', got {sorted(params)}"
                )
            variables = params["cell"]
        cell = cell.cell
    elif isinstance(cell, nnx.RNN):
        cell = cell.cell
    if isinstance(cell, _LINEN_CELLS):
        if variables is None:
            raise TypeError(
                f"{_FN}: a linen {type(cell).__name__} holds no parameters: pass its variables "
                f"(from init) as variables, got None"
            )
        return _from_linen(cell, variables)
    if isinstance(cell, _NNX_CELLS):
        if variables is not None:
            raise TypeError(
                f"{_FN}: an nnx {type(cell).__name__} holds its own parameters: variables must "
                f"be None, got {type(variables).__name__}"
            )
        return _from_nnx(cell)
    supported = [c.__name__ for c in _LINEN_CELLS]
    raise TypeError(
        f"{_FN}: cell must be a flax.linen or flax.nnx cell among {supported} (or an RNN "
        f"around one), got {type(cell).__name__}"
    )


def _has_lstm_carry(cell: Cell) -> bool:
    return isinstance(jax.eval_shape(cell.initial_carry), LSTMCarry)


def carry_from_flax(cell: Cell, carry: Any) -> PyTree:
    """Flax's carry to ours: the LSTM family's ``(c, h)`` becomes ``LSTMCarry(h, c)``; the
    GRU's and simple cell's ``h`` is unchanged."""
    if _has_lstm_carry(cell):
        if not isinstance(carry, tuple | list) or len(carry) != 2:
            raise TypeError(
                f"carry_from_flax: an LSTM carry from Flax must be a pair (c, h), got "
                f"{type(carry).__name__}"
            )
        c, h = carry
        return LSTMCarry(h=h, c=c)
    return carry


def carry_to_flax(cell: Cell, carry: PyTree) -> Any:
    """Our carry to Flax's: ``LSTMCarry(h, c)`` becomes ``(c, h)``; others are unchanged."""
    if _has_lstm_carry(cell):
        if not isinstance(carry, LSTMCarry):
            raise TypeError(
                f"carry_to_flax: the carry of {cell.name} must be an LSTMCarry(h, c), got "
                f"{type(carry).__name__}"
            )
        return (carry.c, carry.h)
    return carry


__all__ = ["carry_from_flax", "carry_to_flax", "from_flax"]
