"""Layer-normalised LSTM and GRU (Ba, Kiros & Hinton 2016), in the form of Haste's LayerNormLSTM.

Layer normalisation, per gate block, of the input pre-activations ``x @ w_ih`` and of the
recurrent pre-activations ``h @ w_hh``, each with its own gain; the LSTM also normalises the
cell state before the output. ``LN(a)`` normalises each ``[hidden]`` block of ``a`` to zero mean
and unit variance over its units (``epsilon`` inside the square root); a gain multiplies the
result elementwise. The biases of the two normalisations and the gate bias only add, so one bias
``b`` stands for all three.

LayerNorm LSTM, gate blocks ``i, f, g, o``::

    w_ih: [input, 4*hidden]   w_hh: [hidden, 4*hidden]   b: [4*hidden]
    g_ih, g_hh: [4*hidden]    the gains of the two normalisations (ones at init)
    g_c, b_c: [hidden]        the gain and bias of the cell-state normalisation

    i, f, g, o = split(LN(x @ w_ih) * g_ih + LN(h @ w_hh) * g_hh + b, 4)
    i, f, g, o = sigmoid(i), sigmoid(f), tanh(g), sigmoid(o)
    c = f * c + i * g
    h = o * tanh(LN(c) * g_c + b_c)

The carry keeps the unnormalised ``c``. LayerNorm GRU, gate blocks ``r, z, n``, in the reset
after form (the reset gate multiplies the normalised recurrent candidate and its bias)::

    w_ih: [input, 3*hidden]   w_hh: [hidden, 3*hidden]   b: [3*hidden]   b_hn: [hidden]
    g_ih, g_hh: [3*hidden]

    x_r, x_z, x_n = split(LN(x @ w_ih) * g_ih + b, 3)
    h_r, h_z, h_n = split(LN(h @ w_hh) * g_hh, 3)
    r = sigmoid(x_r + h_r);  z = sigmoid(x_z + h_z)
    n = tanh(x_n + r * (h_n + b_hn))
    h = (1 - z) * n + z * h

The input normalisation depends on ``x`` only, so it is part of ``project_inputs`` (hoistable,
and outside the split derivative's loop); ``recurrent_projection`` is the plain ``h @ w_hh`` and
``recur`` normalises it.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from lstm_jax import _checks, initializers
from lstm_jax.cells.base import Cell, dense, expand_to, register_cell
from lstm_jax.cells.gru import GRUGates
from lstm_jax.cells.lstm import LSTMCarry, LSTMGates
from lstm_jax.typing import Array, Initializer, PyTree


class LayerNormLSTMParams(NamedTuple):
    """``w_ih [input, 4H]``, ``w_hh [H, 4H]``, ``b [4H]``, gains ``g_ih, g_hh [4H]``, and the
    cell-state normalisation's ``g_c, b_c [H]``."""

    w_ih: Array
    w_hh: Array
    b: Array
    g_ih: Array
    g_hh: Array
    g_c: Array
    b_c: Array


class LayerNormGRUParams(NamedTuple):
    """``w_ih [input, 3H]``, ``w_hh [H, 3H]``, ``b [3H]``, ``b_hn [H]``, gains ``g_ih, g_hh
    [3H]``."""

    w_ih: Array
    w_hh: Array
    b: Array
    b_hn: Array
    g_ih: Array
    g_hh: Array


def layer_norm_blocks(a: Array, num_blocks: int, epsilon: float) -> Array:
    """``a: [..., num_blocks * hidden]`` with each ``[hidden]`` block normalised to zero mean and
    unit variance (no gain, no bias), in ``a``'s dtype."""
    blocks = a.reshape(*a.shape[:-1], num_blocks, a.shape[-1] // num_blocks)
    mean = jnp.mean(blocks, axis=-1, keepdims=True)
    centred = blocks - mean
    var = jnp.mean(centred * centred, axis=-1, keepdims=True)
    normed = centred * jax.lax.rsqrt(var + jnp.asarray(epsilon, a.dtype))
    return normed.reshape(a.shape)


def _scaled(a: Array, gain: Array, num_blocks: int, epsilon: float) -> Array:
    return layer_norm_blocks(a, num_blocks, epsilon) * expand_to(gain.astype(a.dtype), a.ndim)


@dataclasses.dataclass(frozen=True)
class _LayerNormBase(Cell):
    kernel_init: Initializer = initializers.glorot_uniform
    recurrent_init: Initializer = initializers.orthogonal
    bias_init: Initializer = initializers.zeros
    epsilon: float = 1e-5

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.epsilon > 0:
            raise ValueError(f"{self.name}: epsilon must be positive, got {self.epsilon!r}")

    def num_gates(self) -> int:  # pragma: no cover - per cell
        raise NotImplementedError

    def _weights(self, key: Array, input_size: int) -> tuple[Array, Array, Array, Array]:
        """``(w_ih, w_hh, g_ih, g_hh)``: the LSTM's weight initialisation and unit gains."""
        _checks.check_input_size(self.name, input_size)
        k_ih, k_hh = jax.random.split(key)
        h, n, dt = self.hidden_size, self.num_gates(), self.param_dtype
        w_ih = initializers.gate_blocks(self.kernel_init, k_ih, input_size, h, n, dt)
        w_hh = initializers.gate_blocks(self.recurrent_init, k_hh, h, h, n, dt)
        ones = jnp.ones((n * h,), dt)
        return w_ih, w_hh, ones, ones

    def project_inputs(self, params: PyTree, x: Array) -> Array:
        """``x: [..., input]`` -> ``LN(x @ w_ih) * g_ih + b``: ``[..., gates]``."""
        xp = dense(x, params.w_ih, self.compute_dtype(params))
        xp = _scaled(xp, params.g_ih, self.num_gates(), self.epsilon)
        return xp + expand_to(params.b.astype(xp.dtype), xp.ndim)


@register_cell
class LayerNormLSTMCell(_LayerNormBase):
    """The layer-normalised LSTM; see the module docstring for equations and layout."""

    forget_bias: float = 1.0
    name = "layer_norm_lstm"

    def num_gates(self) -> int:
        return 4

    def init(self, key: Array, input_size: int) -> LayerNormLSTMParams:
        """``w_ih [input, 4H]``, ``w_hh [H, 4H]``, ``b [4H]`` (``forget_bias`` on the ``f``
        block), gains of ones, ``g_c`` ones and ``b_c`` zeros ``[H]``."""
        k_w, k_b = jax.random.split(key)
        w_ih, w_hh, g_ih, g_hh = self._weights(k_w, input_size)
        h, dt = self.hidden_size, self.param_dtype
        b = self.bias_init(k_b, (4 * h,), dt)
        b = b.at[h : 2 * h].add(jnp.asarray(self.forget_bias, dt))
        return LayerNormLSTMParams(
            w_ih, w_hh, b, g_ih, g_hh, jnp.ones((h,), dt), jnp.zeros((h,), dt)
        )

    def initial_carry(self, batch_shape: tuple[int, ...] | int = ()) -> LSTMCarry:
        """Zeros: ``LSTMCarry(h, c)``, each ``[*batch_shape, hidden]`` in the carry dtype."""
        return LSTMCarry(h=self.zeros_state(batch_shape), c=self.zeros_state(batch_shape))

    def recur(
        self, params: LayerNormLSTMParams, carry: LSTMCarry, xp: Array, hh: Array
    ) -> tuple[LSTMCarry, Array, LSTMGates]:
        gates = xp + _scaled(hh, params.g_hh, 4, self.epsilon)
        i, f, g, o = jnp.split(gates, 4, axis=-1)
        i, f, g, o = jax.nn.sigmoid(i), jax.nn.sigmoid(f), jnp.tanh(g), jax.nn.sigmoid(o)
        c = f * carry.c.astype(f.dtype) + i * g
        c_hat = _scaled(c, params.g_c, 1, self.epsilon)
        c_hat = c_hat + expand_to(params.b_c.astype(c.dtype), c.ndim)
        h = o * jnp.tanh(c_hat)
        cdt = self.resolved_carry_dtype()
        new = LSTMCarry(h=h.astype(cdt), c=c.astype(cdt))
        return new, self.output(h, params), LSTMGates(i, f, g, o)


@register_cell
class LayerNormGRUCell(_LayerNormBase):
    """The layer-normalised GRU (reset after); see the module docstring."""

    name = "layer_norm_gru"

    def num_gates(self) -> int:
        return 3

    def init(self, key: Array, input_size: int) -> LayerNormGRUParams:
        """``w_ih [input, 3H]``, ``w_hh [H, 3H]``, ``b [3H]``, ``b_hn [H]``, gains of ones."""
        k_w, k_b, k_bn = jax.random.split(key, 3)
        w_ih, w_hh, g_ih, g_hh = self._weights(k_w, input_size)
        h, dt = self.hidden_size, self.param_dtype
        b = self.bias_init(k_b, (3 * h,), dt)
        b_hn = self.bias_init(k_bn, (h,), dt)
        return LayerNormGRUParams(w_ih, w_hh, b, b_hn, g_ih, g_hh)

    def recur(
        self, params: LayerNormGRUParams, h: Array, xp: Array, hh: Array
    ) -> tuple[Array, Array, GRUGates]:
        x_r, x_z, x_n = jnp.split(xp, 3, axis=-1)
        h_r, h_z, h_n = jnp.split(_scaled(hh, params.g_hh, 3, self.epsilon), 3, axis=-1)
        h_n = h_n + expand_to(params.b_hn.astype(h_n.dtype), h_n.ndim)
        r = jax.nn.sigmoid(x_r + h_r)
        z = jax.nn.sigmoid(x_z + h_z)
        n = jnp.tanh(x_n + r * h_n)
        h_new = (1.0 - z) * n + z * h.astype(xp.dtype)
        return (
            h_new.astype(self.resolved_carry_dtype()),
            self.output(h_new, params),
            GRUGates(r, z, n),
        )


# Lower-case names for the constructors (their signature is the dataclass's).
layer_norm_lstm = LayerNormLSTMCell
layer_norm_gru = LayerNormGRUCell
