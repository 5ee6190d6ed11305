"""The sLSTM cell (Beck et al. 2024, "xLSTM"): exponential gating with a normaliser, in log space.

Weight layout (gate order ``i, f, g, o`` like the LSTM's; ``g`` is the paper's cell input
``z``), stored for ``x @ W``::

    w_ih: [input, 4*hidden]              columns (W_i | W_f | W_g | W_o)
    w_hh: [heads, head, 4*head]          one block per head, columns (R_i | R_f | R_g | R_o)
    b:    [4*hidden]

with ``head = hidden / heads``. The recurrent matrix is block-diagonal across heads: head ``k``
reads only its own ``h[k*head:(k+1)*head]`` and writes only those units of each gate, so
``recurrent_projection`` is one batched matmul over heads. The step, from pre-activations
``i~, f~, g~, o~ = split(x W_ih + b + h R, 4)``::

    log i = i~                      (exponential input gate)
    log f = log_sigmoid(f~)         (forget_gate="sigmoid")  or  f~  (forget_gate="exp")
    m = max(log f + m_prev, log i)  (the stabiliser)
    i = exp(log i - m);  f = exp(log f + m_prev - m)
    c = f * c_prev + i * tanh(g~)
    n = f * n_prev + i
    h = sigmoid(o~) * c / n

``c`` and ``n`` are the paper's cell and normaliser states scaled by ``exp(-m)``, so neither
overflows while ``h`` (a ratio) is unchanged. The carry is ``SLSTMCarry(h, c, n, m)``, each
``[*batch, hidden]``, zeros at the start. A state with ``n_prev = 0`` holds nothing (the zero
start), so there the step ignores the previous state: ``m = log i``, ``i = 1``, ``f = 0``
(the paper's ``max`` would let ``i`` underflow to 0 and ``h`` be ``0 / 0``). Afterwards
``n >= 1`` at every step (either ``i = 1`` or ``f = 1``), so the division is safe.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lstm_jax import _checks, initializers
from lstm_jax.cells.base import Cell, accumulation_dtype, register_cell
from lstm_jax.typing import Array, Initializer

FORGET_GATES = ("sigmoid", "exp")

# log f + m_prev where the previous state is empty: exp() of it is exactly 0 with a zero
# gradient (-inf would give NaN gradients through the max).
_LOG_ZERO = -1e30


class SLSTMCarry(NamedTuple):
    """``h`` (the output), ``c`` (cell), ``n`` (normaliser), ``m`` (stabiliser), each
    ``[*batch, hidden]``."""

    h: Array
    c: Array
    n: Array
    m: Array


class SLSTMParams(NamedTuple):
    """``w_ih [input, 4H]``, ``w_hh [heads, H/heads, 4H/heads]``, ``b [4H]`` or None."""

    w_ih: Array
    w_hh: Array
    b: Array | None


class SLSTMGates(NamedTuple):
    """One step's stabilised gates ``i, f``, candidate ``g``, output gate ``o``, each
    ``[*batch, hidden]``."""

    i: Array
    f: Array
    g: Array
    o: Array


@register_cell
class SLSTMCell(Cell):
    """sLSTM with ``num_heads`` block-diagonal recurrent heads; see the module docstring."""

    num_heads: int = 1
    forget_gate: str = "sigmoid"
    kernel_init: Initializer = initializers.glorot_uniform
    recurrent_init: Initializer = initializers.orthogonal
    bias_init: Initializer = initializers.zeros
    forget_bias: float = 1.0
    use_bias: bool = True
    name = "slstm"

    def __post_init__(self) -> None:
        super().__post_init__()
        heads = self.num_heads
        if isinstance(heads, bool) or not isinstance(heads, int | np.integer) or heads < 1:
            raise ValueError(f"slstm: num_heads must be a positive int, got {heads!r}")
        if self.hidden_size % heads:
            raise ValueError(
                f"slstm: hidden_size ({self.hidden_size}) must be a multiple of num_heads ({heads})"
            )
        if self.forget_gate not in FORGET_GATES:
            raise ValueError(
                f"slstm: forget_gate must be one of {FORGET_GATES}, got {self.forget_gate!r}"
            )

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_heads

    def init(self, key: Array, input_size: int) -> SLSTMParams:
        """Returns ``SLSTMParams(w_ih [input, 4H], w_hh [heads, H/heads, 4H/heads], b [4H])``;
        the forget block of ``b`` starts at ``forget_bias``."""
        _checks.check_input_size(self.name, input_size)
        k_ih, k_hh, k_b = jax.random.split(key, 3)
        h, d, dt = self.hidden_size, self.head_size, self.param_dtype
        w_ih = initializers.gate_blocks(self.kernel_init, k_ih, input_size, h, 4, dt)
        w_hh = jnp.stack(
            [
                initializers.gate_blocks(self.recurrent_init, k, d, d, 4, dt)
                for k in jax.random.split(k_hh, self.num_heads)
            ]
        )
        b = None
        if self.use_bias:
            b = self.bias_init(k_b, (4 * h,), dt)
            b = b.at[h : 2 * h].add(jnp.asarray(self.forget_bias, dt))
        return SLSTMParams(w_ih, w_hh, b)

    def initial_carry(self, batch_shape: tuple[int, ...] | int = ()) -> SLSTMCarry:
        """Zeros: ``SLSTMCarry(h, c, n, m)``, each ``[*batch_shape, hidden]``."""
        zeros = lambda: self.zeros_state(batch_shape)
        return SLSTMCarry(zeros(), zeros(), zeros(), zeros())

    def recurrent_projection(self, params: SLSTMParams, carry: SLSTMCarry) -> Array:
        """``h R`` with ``R`` block-diagonal over heads: ``[*batch, 4*hidden]`` in the gate
        layout ``(i | f | g | o)``."""
        compute = self.compute_dtype(params)
        batch, heads, d = carry.h.shape[:-1], self.num_heads, self.head_size
        h = carry.h.reshape(*batch, heads, d).astype(compute)
        hh = jnp.einsum(
            "...kd,kde->...ke",
            h,
            params.w_hh.astype(compute),
            preferred_element_type=accumulation_dtype(compute),
        )
        # [*batch, heads, (gate, head unit)] -> [*batch, (gate, heads, head unit)]
        hh = jnp.swapaxes(hh.reshape(*batch, heads, 4, d), -3, -2)
        return hh.reshape(*batch, 4 * self.hidden_size)

    def recur(
        self, params: SLSTMParams, carry: SLSTMCarry, xp: Array, hh: Array
    ) -> tuple[SLSTMCarry, Array, SLSTMGates]:
        i, f, g, o = jnp.split(xp + hh, 4, axis=-1)
        c_prev, n_prev, m_prev = (s.astype(xp.dtype) for s in carry[1:])
        log_i = i
        log_f = jax.nn.log_sigmoid(f) if self.forget_gate == "sigmoid" else f
        log_f_m = jnp.where(n_prev == 0, jnp.full_like(log_f, _LOG_ZERO), log_f + m_prev)
        m = jnp.maximum(log_f_m, log_i)
        i, f = jnp.exp(log_i - m), jnp.exp(log_f_m - m)
        g, o = jnp.tanh(g), jax.nn.sigmoid(o)
        c = f * c_prev + i * g
        n = f * n_prev + i
        h = o * c / n
        cdt = self.resolved_carry_dtype()
        new = SLSTMCarry(h.astype(cdt), c.astype(cdt), n.astype(cdt), m.astype(cdt))
        return new, self.output(h, params), SLSTMGates(i, f, g, o)


# The lower-case name for the constructor (its signature is the dataclass's).
slstm = SLSTMCell
