"""The LSTM with a recurrent projection layer, LSTMP (Sak, Senior & Beaufays 2014).

The cell state keeps ``hidden`` units, but what recurs and what comes out is the projection
``h = (o * tanh(c)) @ w_hr`` of width ``proj``: the recurrent matmul shrinks from
``[hidden, 4*hidden]`` to ``[proj, 4*hidden]``. This is PyTorch's ``nn.LSTM(proj_size=...)``.

Weight layout (PyTorch/cuDNN gate order ``i, f, g, o``, stored for ``x @ W``)::

    w_ih: [input, 4*hidden]   columns (W_ii | W_if | W_ig | W_io)
    w_hh: [proj, 4*hidden]    columns (W_hi | W_hf | W_hg | W_ho)
    b:    [4*hidden]          b_ih + b_hh of PyTorch
    w_hr: [hidden, proj]      torch's weight_hr.T

The step::

    i, f, g, o = split(x @ w_ih + b + h @ w_hh, 4)
    i, f, g, o = sigmoid(i), sigmoid(f), tanh(g), sigmoid(o)
    c = f * c + i * g
    h = (o * tanh(c)) @ w_hr

The carry is ``LSTMCarry(h [*batch, proj], c [*batch, hidden])``; ``y = h``, so the cell's
``output_size`` is ``proj_size``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lstm_jax.cells.base import check_batch_shape, dense, register_cell
from lstm_jax.cells.lstm import LSTMCarry, LSTMGates, _LSTMBase
from lstm_jax.typing import Array, Initializer


class LSTMPParams(NamedTuple):
    """``w_ih [input, 4H]``, ``w_hh [P, 4H]``, ``b [4H]`` or None, ``w_hr [H, P]``."""

    w_ih: Array
    w_hh: Array
    b: Array | None
    w_hr: Array


@register_cell
class LSTMPCell(_LSTMBase):
    """LSTM with a recurrent projection to ``proj_size`` (``0 < proj_size < hidden_size``).

    Build it as ``LSTMPCell(hidden_size, proj_size, **options)``; see the module docstring for
    the equations and layout.
    """

    proj_size: int = 0
    projection_init: Initializer = jax.nn.initializers.glorot_uniform()
    name = "lstmp"

    def __post_init__(self) -> None:
        super().__post_init__()
        p = self.proj_size
        if isinstance(p, bool) or not isinstance(p, int | np.integer):
            raise TypeError(f"{self.name}: proj_size must be an int in [1, hidden_size), got {p!r}")
        if not 0 < p < self.hidden_size:
            raise ValueError(
                f"{self.name}: proj_size must be in [1, hidden_size={self.hidden_size}) (a "
                f"projection narrower than the cell state), got {p}"
            )

    @property
    def output_size(self) -> int:
        return self.proj_size

    def init(self, key: Array, input_size: int) -> LSTMPParams:
        """Returns ``LSTMPParams(w_ih [input, 4H], w_hh [P, 4H], b [4H] or None, w_hr [H, P])``."""
        k_w, k_hh, k_hr = jax.random.split(key, 3)
        w_ih, _, b = self._init_weights(k_w, input_size)
        h, p, dt = self.hidden_size, self.proj_size, self.param_dtype
        # The square blocks of the LSTM's w_hh do not exist here: each [proj, hidden] block is
        # drawn by the recurrent initialiser at its own shape.
        blocks = [self.recurrent_init(k, (p, h), dt) for k in jax.random.split(k_hh, 4)]
        w_hr = self.projection_init(k_hr, (h, p), dt)
        return LSTMPParams(w_ih, jnp.concatenate(blocks, axis=-1), b, w_hr)

    def initial_carry(self, batch_shape: tuple[int, ...] | int = ()) -> LSTMCarry:
        """Zeros: ``LSTMCarry(h [*batch_shape, proj], c [*batch_shape, hidden])``."""
        shape = check_batch_shape(f"{self.name}.initial_carry", batch_shape)
        dt = self.resolved_carry_dtype()
        return LSTMCarry(
            h=jnp.zeros((*shape, self.proj_size), dt), c=jnp.zeros((*shape, self.hidden_size), dt)
        )

    def recur(
        self, params: LSTMPParams, carry: LSTMCarry, xp: Array, hh: Array
    ) -> tuple[LSTMCarry, Array, LSTMGates]:
        gates = xp + hh
        i, f, g, o = jnp.split(gates, 4, axis=-1)
        i, f, g, o = jax.nn.sigmoid(i), jax.nn.sigmoid(f), jnp.tanh(g), jax.nn.sigmoid(o)
        c = f * carry.c.astype(f.dtype) + i * g
        h = dense(o * jnp.tanh(c), params.w_hr, self.compute_dtype(params))
        cdt = self.resolved_carry_dtype()
        return (
            LSTMCarry(h=h.astype(cdt), c=c.astype(cdt)),
            self.output(h, params),
            LSTMGates(i, f, g, o),
        )


def _positional_proj_size(cls: Any) -> Any:
    """Lets ``proj_size`` be the second positional argument, as in ``nn.LSTM(input, hidden,
    proj_size=...)``'s order of importance: the dataclass alone would put it after the base
    class's defaulted fields."""
    dataclass_init = cls.__init__

    def __init__(self, hidden_size: int, proj_size: int, **options: Any) -> None:
        dataclass_init(self, hidden_size=hidden_size, proj_size=proj_size, **options)

    __init__.__doc__ = dataclass_init.__doc__
    __init__.__qualname__ = f"{cls.__qualname__}.__init__"  # errors name the class
    cls.__init__ = __init__
    return cls


LSTMPCell = _positional_proj_size(LSTMPCell)

# The lower-case name for the constructor.
lstmp = LSTMPCell
