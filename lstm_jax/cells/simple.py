"""The Elman RNN cell: ``h = act(x @ w_ih + b + h @ w_hh)``, with ``act`` tanh or relu.

Layout: ``w_ih: [input, hidden]``, ``w_hh: [hidden, hidden]``, ``b: [hidden]`` (PyTorch's
``b_ih + b_hh``), so ``torch_rnn.weight_ih_l0 == w_ih.T``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from lstm_jax import _checks, initializers
from lstm_jax.cells.base import Cell, register_cell
from lstm_jax.typing import Array, Initializer

ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu}


class SimpleRNNParams(NamedTuple):
    """``w_ih [input, H]``, ``w_hh [H, H]``, ``b [H]`` or None."""

    w_ih: Array
    w_hh: Array
    b: Array | None


class SimpleRNNGates(NamedTuple):
    """The pre-activation of one step, ``[*batch, hidden]``."""

    a: Array


@register_cell
class SimpleRNNCell(Cell):
    """Elman RNN; ``activation`` is ``"tanh"`` or ``"relu"``."""

    activation: str = "tanh"
    kernel_init: Initializer = initializers.glorot_uniform
    recurrent_init: Initializer = initializers.orthogonal
    bias_init: Initializer = initializers.zeros
    use_bias: bool = True
    name = "simple_rnn"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"simple_rnn: activation must be one of {sorted(ACTIVATIONS)}, "
                f"got {self.activation!r}"
            )

    def init(self, key: Array, input_size: int) -> SimpleRNNParams:
        _checks.check_input_size(self.name, input_size)
        k_ih, k_hh, k_b = jax.random.split(key, 3)
        h, dt = self.hidden_size, self.param_dtype
        w_ih = initializers.gate_blocks(self.kernel_init, k_ih, input_size, h, 1, dt)
        w_hh = initializers.gate_blocks(self.recurrent_init, k_hh, h, h, 1, dt)
        b = self.bias_init(k_b, (h,), dt) if self.use_bias else None
        return SimpleRNNParams(w_ih, w_hh, b)

    def recur(
        self, params: SimpleRNNParams, h: Array, xp: Array, hh: Array
    ) -> tuple[Array, Array, SimpleRNNGates]:
        a = xp + hh
        h_new = ACTIVATIONS[self.activation](a)
        return (
            h_new.astype(self.resolved_carry_dtype()),
            self.output(h_new, params),
            SimpleRNNGates(a),
        )


# The lower-case name for the constructor (its signature is the dataclass's).
simple_rnn = SimpleRNNCell
