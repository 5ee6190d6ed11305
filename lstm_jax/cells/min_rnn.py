"""minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?"): gates from the input only.

Neither cell has a recurrent matmul, so a step is the linear recurrence ``h_t = a_t * h_{t-1} +
b_t`` with ``a_t`` and ``b_t`` computed from ``x_t`` alone. The step-by-step form (``recur``)
serves inference and the ``"scan"``/``"split"`` implementations; ``impl="parallel"``
(``lstm_jax._parallel``) runs the same recurrence as an associative scan over time, in log space,
from the cell's ``linear_recurrence``.

The candidate goes through the paper's positive activation ``g(x) = x + 1/2`` for ``x >= 0``,
``sigmoid(x)`` below (its log-space form), so ``b_t > 0`` and ``log b_t`` always exists.

minGRU, layout ``w_ih: [input, 2*hidden]`` columns ``(W_z | W_n)``, ``b: [2*hidden]``::

    z = sigmoid(x W_z + b_z);  n = g(x W_n + b_n)
    h = (1 - z) * h + z * n                    a = 1 - z,  b = z * n

minLSTM, layout ``w_ih: [input, 3*hidden]`` columns ``(W_f | W_i | W_g)``, ``b: [3*hidden]``::

    f = sigmoid(x W_f + b_f);  i = sigmoid(x W_i + b_i);  g = g(x W_g + b_g)
    f, i = f / (f + i), i / (f + i)            (the paper's length-independent scaling)
    h = f * h + i * g                          a = f,  b = i * g

The carry is ``h: [*batch, hidden]`` and the output is ``h``. Neither cell has ``w_hh``; their
``recurrent_projection`` is an empty ``[*batch, 0]`` array.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from lstm_jax import _checks, initializers
from lstm_jax.cells.base import Cell, accumulation_dtype, register_cell
from lstm_jax.typing import Array, DType, Initializer


class MinGRUParams(NamedTuple):
    """``w_ih: [input, 2*hidden]`` (``W_z | W_n``), ``b: [2*hidden]`` or None."""

    w_ih: Array
    b: Array | None


class MinLSTMParams(NamedTuple):
    """``w_ih: [input, 3*hidden]`` (``W_f | W_i | W_g``), ``b: [3*hidden]`` or None."""

    w_ih: Array
    b: Array | None


class MinGRUGates(NamedTuple):
    """One step's update gate ``z`` and candidate ``n``, each ``[*batch, hidden]``."""

    z: Array
    n: Array


class MinLSTMGates(NamedTuple):
    """One step's normalised forget and input gates and candidate, each ``[*batch, hidden]``."""

    f: Array
    i: Array
    g: Array


def positive(x: Array) -> Array:
    """The paper's ``g``: ``x + 1/2`` for ``x >= 0``, ``sigmoid(x)`` below (continuous, > 0)."""
    return jnp.where(x >= 0, x + 0.5, jax.nn.sigmoid(x))


def log_positive(x: Array) -> Array:
    """``log(positive(x))`` without forming a small ``positive(x)`` first."""
    return jnp.where(x >= 0, jnp.log(jax.nn.relu(x) + 0.5), -jax.nn.softplus(-x))


@dataclasses.dataclass(frozen=True)
class _MinCell(Cell):
    """What both cells share: input-only gates, no ``w_hh``, one-array carry."""

    kernel_init: Initializer = initializers.glorot_uniform
    bias_init: Initializer = initializers.zeros
    use_bias: bool = True

    def init(self, key: Array, input_size: int) -> MinGRUParams | MinLSTMParams:
        """Returns ``(w_ih [input, k*hidden], b [k*hidden] or None)``."""
        _checks.check_input_size(self.name, input_size)
        k_ih, k_b = jax.random.split(key)
        h, k, dt = self.hidden_size, self.num_gates, self.param_dtype
        w_ih = initializers.gate_blocks(self.kernel_init, k_ih, input_size, h, k, dt)
        b = self.bias_init(k_b, (k * h,), dt) if self.use_bias else None
        return self.params_type(w_ih, b)

    def compute_dtype(self, params) -> DType:
        return jnp.dtype(self.dtype) if self.dtype is not None else params.w_ih.dtype

    def recurrent_projection(self, params, carry: Array) -> Array:
        """No recurrent matmul: an empty ``[*batch, 0]`` array."""
        dtype = accumulation_dtype(self.compute_dtype(params))
        return jnp.zeros((*carry.shape[:-1], 0), dtype)

    def linear_recurrence(self, params, xp: Array) -> tuple[Array, Array]:
        """``xp = project_inputs(params, x)``, ``[..., gates]`` -> ``(log_a, log_b)``, each
        ``[..., hidden]`` in the accumulation dtype, with ``h_t = exp(log_a) * h_{t-1} +
        exp(log_b)``: the protocol of ``impl="parallel"``."""
        raise NotImplementedError  # pragma: no cover - abstract

    def _step(self, h: Array, a: Array, b: Array, params, gates: NamedTuple):
        h_new = a * h.astype(a.dtype) + b
        return h_new.astype(self.resolved_carry_dtype()), self.output(h_new, params), gates


@register_cell
class MinGRUCell(_MinCell):
    """minGRU: ``h = (1 - z) * h + z * g(x W_n + b_n)``, ``z = sigmoid(x W_z + b_z)``."""

    name = "min_gru"
    params_type = MinGRUParams
    num_gates = 2

    def recur(self, params, h, xp, hh):
        x_z, x_n = jnp.split(xp, 2, axis=-1)
        z = jax.nn.sigmoid(x_z)
        n = positive(x_n)
        return self._step(h, 1.0 - z, z * n, params, MinGRUGates(z, n))

    def linear_recurrence(self, params, xp):
        x_z, x_n = jnp.split(xp, 2, axis=-1)
        # log(1 - sigmoid(k)) = -softplus(k); log(sigmoid(k)) = -softplus(-k)
        return -jax.nn.softplus(x_z), -jax.nn.softplus(-x_z) + log_positive(x_n)


@register_cell
class MinLSTMCell(_MinCell):
    """minLSTM: ``h = f' * h + i' * g(x W_g + b_g)`` with ``f', i'`` the normalised gates."""

    name = "min_lstm"
    params_type = MinLSTMParams
    num_gates = 3

    def recur(self, params, h, xp, hh):
        x_f, x_i, x_g = jnp.split(xp, 3, axis=-1)
        f, i = jax.nn.sigmoid(x_f), jax.nn.sigmoid(x_i)
        f, i = f / (f + i), i / (f + i)
        g = positive(x_g)
        return self._step(h, f, i * g, params, MinLSTMGates(f, i, g))

    def linear_recurrence(self, params, xp):
        x_f, x_i, x_g = jnp.split(xp, 3, axis=-1)
        # log f' = log f - log(f + i) = -softplus(d), log i' = -softplus(-d), with
        # d = log i - log f = softplus(-x_f) - softplus(-x_i)
        d = jax.nn.softplus(-x_f) - jax.nn.softplus(-x_i)
        return -jax.nn.softplus(d), -jax.nn.softplus(-d) + log_positive(x_g)


# The lower-case names for the constructors (their signatures are the dataclasses').
min_gru = MinGRUCell
min_lstm = MinLSTMCell
