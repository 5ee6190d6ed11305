"""LSTM cells: the forget-gate LSTM, the peephole LSTM and the coupled-gate (CIFG) LSTM.

Weight layout (PyTorch/cuDNN gate order, stored for ``x @ W``)::

    w_ih: [input, 4*hidden]   columns (W_ii | W_if | W_ig | W_io)
    w_hh: [hidden, 4*hidden]  columns (W_hi | W_hf | W_hg | W_ho)
    b:    [4*hidden]          b_ih + b_hh of PyTorch (one bias is enough: they only add)

so ``torch_lstm.weight_ih_l0 == w_ih.T``. The step is::

    i, f, g, o = split(x @ w_ih + b + h @ w_hh, 4)
    i, f, g, o = sigmoid(i), sigmoid(f), tanh(g), sigmoid(o)
    c = f * c + i * g
    h = o * tanh(c)

Peephole LSTM (Gers & Schmidhuber 2000) adds diagonal weights ``p_i, p_f, p_o: [hidden]``:
``c(t-1)`` feeds the input and forget gates, the new ``c(t)`` feeds the output gate.

CIFG (coupled input and forget gates) has three gate blocks, ``(i | g | o)``, and uses
``f = 1 - i``. Its input-gate bias starts at ``-forget_bias`` so that ``f`` starts near
``sigmoid(forget_bias)``, like the LSTM's.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from lstm_jax import _checks, initializers
from lstm_jax.cells.base import Cell, expand_to, register_cell
from lstm_jax.typing import Array, Initializer, PyTree


class LSTMCarry(NamedTuple):
    """The LSTM state: ``h`` (the output) and ``c`` (the cell state), ``[*batch, hidden]``."""

    h: Array
    c: Array


class LSTMParams(NamedTuple):
    """``w_ih: [input, 4*hidden]``, ``w_hh: [hidden, 4*hidden]``, ``b: [4*hidden]`` or None."""

    w_ih: Array
    w_hh: Array
    b: Array | None


class PeepholeLSTMParams(NamedTuple):
    """LSTM weights plus the diagonal peepholes ``p_i, p_f, p_o: [hidden]``."""

    w_ih: Array
    w_hh: Array
    b: Array | None
    p_i: Array
    p_f: Array
    p_o: Array


class LSTMGates(NamedTuple):
    """Gate activations of one step, each ``[*batch, hidden]``, for introspection."""

    i: Array
    f: Array
    g: Array
    o: Array


@dataclasses.dataclass(frozen=True)
class _LSTMBase(Cell):
    kernel_init: Initializer = initializers.glorot_uniform
    recurrent_init: Initializer = initializers.orthogonal
    bias_init: Initializer = initializers.zeros
    forget_bias: float = 1.0
    use_bias: bool = True

    def initial_carry(self, batch_shape: tuple[int, ...] | int = ()) -> LSTMCarry:
        """Zeros: ``LSTMCarry(h, c)``, each ``[*batch_shape, hidden]`` in the carry dtype."""
        return LSTMCarry(h=self.zeros_state(batch_shape), c=self.zeros_state(batch_shape))

    def _init_weights(self, key: Array, input_size: int) -> tuple[Array, Array, Array | None]:
        _checks.check_input_size(self.name, input_size)
        k_ih, k_hh, k_b = jax.random.split(key, 3)
        h, n, dt = self.hidden_size, self.num_gates(), self.param_dtype
        w_ih = initializers.gate_blocks(self.kernel_init, k_ih, input_size, h, n, dt)
        w_hh = initializers.gate_blocks(self.recurrent_init, k_hh, h, h, n, dt)
        b = None
        if self.use_bias:
            b = self.bias_init(k_b, (n * h,), dt)
            b = b.at[self._forget_slice()].add(jnp.asarray(self._forget_offset(), dt))
        return w_ih, w_hh, b

    def num_gates(self) -> int:
        return 4

    def _emit(
        self, params: PyTree, c: Array, gates: LSTMGates
    ) -> tuple[LSTMCarry, Array, LSTMGates]:
        """The step's end, shared by the family: ``h = o * tanh(c)``, the carry in its dtype."""
        h = gates.o * jnp.tanh(c)
        cdt = self.resolved_carry_dtype()
        return LSTMCarry(h=h.astype(cdt), c=c.astype(cdt)), self.output(h, params), gates

    def _forget_slice(self) -> slice:
        h = self.hidden_size
        return slice(h, 2 * h)

    def _forget_offset(self) -> float:
        return self.forget_bias


@register_cell
class LSTMCell(_LSTMBase):
    """The LSTM with a forget gate; see the module docstring for equations and layout."""

    name = "lstm"

    def init(self, key: Array, input_size: int) -> LSTMParams:
        """Returns ``LSTMParams(w_ih [input, 4H], w_hh [H, 4H], b [4H] or None)``."""
        return LSTMParams(*self._init_weights(key, input_size))

    def recur(
        self, params: LSTMParams, carry: LSTMCarry, xp: Array, hh: Array
    ) -> tuple[LSTMCarry, Array, LSTMGates]:
        gates = xp + hh
        i, f, g, o = jnp.split(gates, 4, axis=-1)
        i, f, g, o = jax.nn.sigmoid(i), jax.nn.sigmoid(f), jnp.tanh(g), jax.nn.sigmoid(o)
        c = f * carry.c.astype(f.dtype) + i * g
        return self._emit(params, c, LSTMGates(i, f, g, o))


@register_cell
class PeepholeLSTMCell(_LSTMBase):
    """LSTM with diagonal peephole connections (Gers & Schmidhuber 2000)."""

    peephole_init: Initializer = initializers.zeros
    name = "peephole_lstm"

    def init(self, key: Array, input_size: int) -> PeepholeLSTMParams:
        """LSTM weights plus ``p_i, p_f, p_o: [hidden]`` (zeros by default: a plain LSTM)."""
        k_w, k_p = jax.random.split(key)
        w_ih, w_hh, b = self._init_weights(k_w, input_size)
        k_i, k_f, k_o = jax.random.split(k_p, 3)
        shape, dt = (self.hidden_size,), self.param_dtype
        return PeepholeLSTMParams(
            w_ih,
            w_hh,
            b,
            p_i=self.peephole_init(k_i, shape, dt),
            p_f=self.peephole_init(k_f, shape, dt),
            p_o=self.peephole_init(k_o, shape, dt),
        )

    def recur(
        self, params: PeepholeLSTMParams, carry: LSTMCarry, xp: Array, hh: Array
    ) -> tuple[LSTMCarry, Array, LSTMGates]:
        gates = xp + hh
        i, f, g, o = jnp.split(gates, 4, axis=-1)
        acc = gates.dtype
        c_prev = carry.c.astype(acc)
        p_i, p_f, p_o = (expand_to(p.astype(acc), c_prev.ndim) for p in params[3:])
        i = jax.nn.sigmoid(i + p_i * c_prev)
        f = jax.nn.sigmoid(f + p_f * c_prev)
        g = jnp.tanh(g)
        c = f * c_prev + i * g
        o = jax.nn.sigmoid(o + p_o * c)
        return self._emit(params, c, LSTMGates(i, f, g, o))


@register_cell
class CIFGLSTMCell(_LSTMBase):
    """LSTM with coupled input and forget gates: three blocks ``(i | g | o)``, ``f = 1 - i``."""

    name = "cifg_lstm"

    def init(self, key: Array, input_size: int) -> LSTMParams:
        """Returns ``LSTMParams(w_ih [input, 3H], w_hh [H, 3H], b [3H] or None)``."""
        return LSTMParams(*self._init_weights(key, input_size))

    def num_gates(self) -> int:
        return 3

    def _forget_slice(self) -> slice:
        return slice(0, self.hidden_size)  # the input gate: f = 1 - i

    def _forget_offset(self) -> float:
        return -self.forget_bias

    def recur(
        self, params: LSTMParams, carry: LSTMCarry, xp: Array, hh: Array
    ) -> tuple[LSTMCarry, Array, LSTMGates]:
        gates = xp + hh
        i, g, o = jnp.split(gates, 3, axis=-1)
        i, g, o = jax.nn.sigmoid(i), jnp.tanh(g), jax.nn.sigmoid(o)
        f = 1.0 - i
        c = f * carry.c.astype(f.dtype) + i * g
        return self._emit(params, c, LSTMGates(i, f, g, o))


# Lower-case names for the constructors (their signature is the dataclass's).
lstm = LSTMCell
peephole_lstm = PeepholeLSTMCell
cifg_lstm = CIFGLSTMCell
