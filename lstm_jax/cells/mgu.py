"""The minimal gated unit, MGU (Zhou, Wu, Zhang & Zhou 2016): one forget gate.

Weight layout (blocks ``f`` then ``n``, the candidate, stored for ``x @ W``)::

    w_ih: [input, 2*hidden]   columns (W_xf | W_xn)
    w_hh: [hidden, 2*hidden]  columns (W_hf | W_hn)
    b:    [2*hidden]          (b_f | b_n)

The step::

    f = sigmoid(x W_xf + h W_hf + b_f)
    n = tanh(x W_xn + (f * h) W_hn + b_n)
    h = (1 - f) * h + f * n

The candidate's recurrent matmul reads ``f * h``, which needs this step's gate, so
``recurrent_projection`` computes only ``h W_hf`` and ``recur`` does the second matmul (like the
original form of the GRU).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from lstm_jax import _checks, initializers
from lstm_jax.cells.base import Cell, dense, register_cell
from lstm_jax.typing import Array, Initializer


class MGUParams(NamedTuple):
    """``w_ih [input, 2H]``, ``w_hh [H, 2H]``, ``b [2H]`` or None."""

    w_ih: Array
    w_hh: Array
    b: Array | None


class MGUGates(NamedTuple):
    """Gate activations of one step, each ``[*batch, hidden]``: the forget gate and the
    candidate."""

    f: Array
    n: Array


@register_cell
class MGUCell(Cell):
    """The minimal gated unit; see the module docstring for equations and layout."""

    kernel_init: Initializer = initializers.glorot_uniform
    recurrent_init: Initializer = initializers.orthogonal
    bias_init: Initializer = initializers.zeros
    use_bias: bool = True
    name = "mgu"

    def init(self, key: Array, input_size: int) -> MGUParams:
        """Returns ``MGUParams(w_ih [input, 2H], w_hh [H, 2H], b [2H] or None)``."""
        _checks.check_input_size(self.name, input_size)
        k_ih, k_hh, k_b = jax.random.split(key, 3)
        h, dt = self.hidden_size, self.param_dtype
        w_ih = initializers.gate_blocks(self.kernel_init, k_ih, input_size, h, 2, dt)
        w_hh = initializers.gate_blocks(self.recurrent_init, k_hh, h, h, 2, dt)
        b = self.bias_init(k_b, (2 * h,), dt) if self.use_bias else None
        return MGUParams(w_ih, w_hh, b)

    def recurrent_projection(self, params: MGUParams, h: Array) -> Array:
        """``h @ W_hf``: ``[*batch, hidden]``, the forget gate's part only."""
        return dense(h, params.w_hh[:, : self.hidden_size], self.compute_dtype(params))

    def recur(
        self, params: MGUParams, h: Array, xp: Array, hh: Array
    ) -> tuple[Array, Array, MGUGates]:
        x_f, x_n = jnp.split(xp, 2, axis=-1)
        h_prev = h.astype(xp.dtype)
        f = jax.nn.sigmoid(x_f + hh)
        w_hn = params.w_hh[:, self.hidden_size :]
        n = jnp.tanh(x_n + dense(f * h_prev, w_hn, self.compute_dtype(params)))
        h_new = (1.0 - f) * h_prev + f * n
        return (
            h_new.astype(self.resolved_carry_dtype()),
            self.output(h_new, params),
            MGUGates(f, n),
        )


# The lower-case name for the constructor (its signature is the dataclass's).
mgu = MGUCell
