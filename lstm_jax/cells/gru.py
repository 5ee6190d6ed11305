"""The GRU cell (Cho et al. 2014), in both of its forms.

Weight layout (PyTorch/cuDNN gate order ``r, z, n``, stored for ``x @ W``)::

    w_ih: [input, 3*hidden]   columns (W_ir | W_iz | W_in)
    w_hh: [hidden, 3*hidden]  columns (W_hr | W_hz | W_hn)
    b:    [3*hidden]          (b_ir + b_hr | b_iz + b_hz | b_in)
    b_hn: [hidden]            the recurrent bias of the candidate (reset_after only)

``reset_after=True`` (cuDNN, PyTorch, Keras' default) applies the reset gate to the recurrent
matmul and its bias::

    r = sigmoid(x W_ir + h W_hr + b_r);  z = sigmoid(x W_iz + h W_hz + b_z)
    n = tanh(x W_in + b_in + r * (h W_hn + b_hn))
    h = (1 - z) * n + z * h

``reset_after=False`` is the original form, the reset gate applied to ``h`` before the matmul:
``n = tanh(x W_in + b_in + (r * h) W_hn)``; it has no ``b_hn`` (a bias there would merge into
``b_in``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from lstm_jax import _checks, initializers
from lstm_jax.cells.base import Cell, dense, expand_to, register_cell
from lstm_jax.typing import Array, Initializer


class GRUParams(NamedTuple):
    """``w_ih [input, 3H]``, ``w_hh [H, 3H]``, ``b [3H]`` and ``b_hn [H]`` (None where absent)."""

    w_ih: Array
    w_hh: Array
    b: Array | None
    b_hn: Array | None


class GRUGates(NamedTuple):
    """Gate activations of one step, each ``[*batch, hidden]``."""

    r: Array
    z: Array
    n: Array


@register_cell
class GRUCell(Cell):
    """Gated recurrent unit; see the module docstring for both forms and the layout."""

    kernel_init: Initializer = initializers.glorot_uniform
    recurrent_init: Initializer = initializers.orthogonal
    bias_init: Initializer = initializers.zeros
    reset_after: bool = True
    use_bias: bool = True
    name = "gru"

    def init(self, key: Array, input_size: int) -> GRUParams:
        """Returns ``GRUParams(w_ih [input, 3H], w_hh [H, 3H], b [3H], b_hn [H])``."""
        _checks.check_input_size(self.name, input_size)
        k_ih, k_hh, k_b, k_bn = jax.random.split(key, 4)
        h, dt = self.hidden_size, self.param_dtype
        w_ih = initializers.gate_blocks(self.kernel_init, k_ih, input_size, h, 3, dt)
        w_hh = initializers.gate_blocks(self.recurrent_init, k_hh, h, h, 3, dt)
        b = self.bias_init(k_b, (3 * h,), dt) if self.use_bias else None
        b_hn = self.bias_init(k_bn, (h,), dt) if self.use_bias and self.reset_after else None
        return GRUParams(w_ih, w_hh, b, b_hn)

    def recurrent_projection(self, params: GRUParams, h: Array) -> Array:
        """``h @ w_hh``: all three blocks for reset_after; only ``r`` and ``z`` for the original
        form, whose candidate matmul ``(r * h) @ W_hn`` depends on ``r`` (done in ``recur``)."""
        w_hh = params.w_hh if self.reset_after else params.w_hh[:, : 2 * self.hidden_size]
        return dense(h, w_hh, self.compute_dtype(params))

    def recur(
        self, params: GRUParams, h: Array, xp: Array, hh: Array
    ) -> tuple[Array, Array, GRUGates]:
        x_r, x_z, x_n = jnp.split(xp, 3, axis=-1)
        h_prev = h.astype(xp.dtype)
        if self.reset_after:
            h_r, h_z, h_n = jnp.split(hh, 3, axis=-1)
            if params.b_hn is not None:
                h_n = h_n + expand_to(params.b_hn.astype(h_n.dtype), h_n.ndim)
            r = jax.nn.sigmoid(x_r + h_r)
            n_rec = r * h_n
        else:
            h_r, h_z = jnp.split(hh, 2, axis=-1)
            r = jax.nn.sigmoid(x_r + h_r)
            w_hn = params.w_hh[:, 2 * self.hidden_size :]
            n_rec = dense(r * h_prev, w_hn, self.compute_dtype(params))
        z = jax.nn.sigmoid(x_z + h_z)
        n = jnp.tanh(x_n + n_rec)
        h_new = (1.0 - z) * n + z * h_prev
        return (
            h_new.astype(self.resolved_carry_dtype()),
            self.output(h_new, params),
            GRUGates(r, z, n),
        )


# The lower-case name for the constructor (its signature is the dataclass's).
gru = GRUCell
