"""Flax modules over the pure core: ``lstm_jax.flax.linen`` and ``lstm_jax.flax.nnx``.

The modules hold no maths of their own: their parameters are the core's parameter pytrees and
every number comes from ``lstm_jax.unroll``, ``bidirectional`` and ``stack(...).apply``.
Import the flavour you use::

    from lstm_jax.flax import linen as rnn       # rnn.LSTM(hidden_size=256, num_layers=2)
    from lstm_jax.flax import nnx as rnn         # rnn.LSTM(16, 256, num_layers=2, rngs=...)
"""

from lstm_jax.flax import linen, nnx

__all__ = ["linen", "nnx"]
