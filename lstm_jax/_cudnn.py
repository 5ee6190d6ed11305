"""``impl="cudnn"``: the LSTM through cuDNN, by ``jax.experimental.rnn`` (GPU only).

cuDNN reads all weights of a (possibly bidirectional, several-layer) LSTM from one flat
vector: for each pseudo-layer ``layer * directions + direction`` first ``W_ih [4H, input]``
then ``W_hh [4H, H]`` (PyTorch's layout, gates ``i, f, g, o``), and after all matrices, for
each pseudo-layer, ``b_ih [4H]`` then ``b_hh [4H]``. Our ``LSTMParams`` store ``w_ih =
W_ih^T`` and one bias ``b = b_ih + b_hh``, so packing transposes and puts ``b`` in ``b_ih``
with ``b_hh = 0`` (``pack_lstm_weights``).

``cudnn_lstm`` runs a whole stack in one cuDNN call. ``Cudnn`` (``impl="cudnn"``) runs one
layer and one direction for ``unroll``/``bidirectional``/``Stack``: cuDNN's unidirectional
call reads each row forward from its start, so ``reverse=True`` reverses each row's valid
prefix before and after (a gather). Only the plain ``LSTMCell`` in float32 is supported; on
any backend but GPU, and for other cells, it raises and names what it got.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from lstm_jax.cells.lstm import LSTMCarry, LSTMCell, LSTMParams
from lstm_jax.impl import register_impl
from lstm_jax.typing import Array

Layer = LSTMParams | tuple[LSTMParams, LSTMParams]


def _directions(layer: Layer) -> tuple[LSTMParams, ...]:
    return (
        tuple(layer) if isinstance(layer, tuple) and not isinstance(layer, LSTMParams) else (layer,)
    )


def pack_lstm_weights(layers: Sequence[Layer]) -> Array:
    """cuDNN's flat weight vector from one ``LSTMParams`` per layer, or a ``(forward,
    backward)`` pair per layer for a bidirectional stack (see the module docstring)."""
    mats, biases = [], []
    for layer in layers:
        for p in _directions(layer):
            mats += [p.w_ih.T.reshape(-1), p.w_hh.T.reshape(-1)]
            b = jnp.zeros((p.w_hh.shape[1],), p.w_hh.dtype) if p.b is None else p.b
            biases += [b.astype(p.w_hh.dtype), jnp.zeros_like(b, dtype=p.w_hh.dtype)]
    return jnp.concatenate(mats + biases)


def require_gpu(fn: str) -> None:
    backend = jax.default_backend()
    if backend != "gpu":
        raise RuntimeError(
            f"{fn}: impl='cudnn' runs cuDNN through jax.experimental.rnn and needs a GPU; the "
            f"default backend is {backend!r}. Use impl='split' (or 'pallas') here."
        )


def cudnn_lstm(layers: Sequence[Layer], xs: Array, seq_lengths: Array,
               initial_carry: tuple[Array, Array] | None = None, *,
               lstm_fn: Callable | None = None) -> tuple[Array, tuple[Array, Array]]:  # fmt: skip
    """A stack of LSTM layers (bidirectional when each layer is a pair) in one cuDNN call.

    Args:
      layers: per layer an ``LSTMParams`` or a ``(forward, backward)`` pair.
      xs: ``[batch, time, input]``.
      seq_lengths: ``[batch]`` int32.
      initial_carry: ``(h_0, c_0)``, each ``[layers * directions, batch, hidden]``; zeros when
        None.
      lstm_fn: the call with ``jax.experimental.rnn.lstm``'s signature (default: that
        function, GPU only); the tests pass one built on ``lstm_ref``.

    Returns:
      ``(ys [batch, time, directions * hidden], (h_n, c_n))``.
    """
    if lstm_fn is None:
        require_gpu("cudnn_lstm")
        from jax.experimental import rnn

        lstm_fn = rnn.lstm
    first = _directions(layers[0])
    bidirectional = len(first) == 2
    hidden = first[0].w_hh.shape[0]
    batch, input_size = xs.shape[0], xs.shape[-1]
    if initial_carry is None:
        zeros = jnp.zeros((len(layers) * len(first), batch, hidden), xs.dtype)
        initial_carry = (zeros, zeros)
    weights = pack_lstm_weights(layers)
    ys, h_n, c_n = lstm_fn(
        xs,
        *initial_carry,
        weights,
        seq_lengths.astype(jnp.int32),
        input_size=input_size,
        hidden_size=hidden,
        num_layers=len(layers),
        dropout=0.0,
        bidirectional=bidirectional,
    )
    return ys, (h_n, c_n)


def reverse_valid(xs: Array, lengths: Array) -> Array:
    """Each row's first ``lengths[b]`` steps reversed, the padding left in place.

    ``xs: [time, batch, features]``, ``lengths: [batch]``."""
    t = jnp.arange(xs.shape[0], dtype=jnp.int32)[:, None]
    src = jnp.where(t < lengths[None], lengths[None] - 1 - t, t)  # [time, batch]
    return jnp.take_along_axis(xs, src[..., None], axis=0)


@register_impl
class Cudnn:
    """One LSTM layer and direction through cuDNN (``jax.experimental.rnn.lstm``), GPU only.
    ``lstm_fn`` replaces that call (tests on CPU pass one built on ``lstm_ref``)."""

    lstm_fn: Any = None
    name = "cudnn"

    def run(self, cell, params, xs, carry, mask, *, reverse, resets=None, reset_carry=None):
        if type(cell) is not LSTMCell:
            raise TypeError(f"impl='cudnn' runs only LSTMCell, got {cell!r}")
        if resets is not None:
            raise NotImplementedError("impl='cudnn' does not take resets; use impl='split'")
        dtypes = {jnp.dtype(cell.compute_dtype(params)), cell.resolved_carry_dtype()}
        if dtypes != {jnp.dtype(jnp.float32)}:
            raise TypeError(f"impl='cudnn' runs float32 only, got {cell!r}")
        if self.lstm_fn is None:
            require_gpu("unroll")
        num_steps, batch_shape = xs.shape[0], xs.shape[1:-1]
        hidden = cell.hidden_size
        rows = 1
        for d in batch_shape:
            rows *= d
        x = xs.reshape(num_steps, rows, xs.shape[-1]).astype(jnp.float32)
        if mask is None:
            lengths = jnp.full((rows,), num_steps, jnp.int32)
        else:
            lengths = mask.reshape(num_steps, rows).sum(axis=0, dtype=jnp.int32)
        if reverse:
            x = reverse_valid(x, lengths)
        h0 = carry.h.reshape(1, rows, hidden)
        c0 = carry.c.reshape(1, rows, hidden)
        ys, (h_n, c_n) = cudnn_lstm(
            [params], jnp.swapaxes(x, 0, 1), lengths, (h0, c0), lstm_fn=self.lstm_fn
        )
        ys = jnp.swapaxes(ys, 0, 1)  # [time, rows, hidden]
        if reverse:
            ys = reverse_valid(ys, lengths)
        valid = jnp.arange(num_steps, dtype=jnp.int32)[:, None] < lengths[None]
        ys = jnp.where(valid[..., None], ys, jnp.zeros_like(ys))
        final = LSTMCarry(
            h=h_n[0].reshape(*batch_shape, hidden), c=c_n[0].reshape(*batch_shape, hidden)
        )
        return final, ys.reshape(num_steps, *batch_shape, hidden).astype(cell.compute_dtype(params))
