"""Flax layers over the pure core: ``lstm_jax.flax.linen`` and ``lstm_jax.flax.nnx``.

Both are made from one description (``lstm_jax.flax._layers``): the same layers (``RNNCell``,
``RNN``, ``Bidirectional``, ``StackedRNN``, ``LSTM``, ``GRU``), the same options, the same
parameter layout (the core's parameter pytrees) and logical axis names (``LOGICAL_AXES``), for
any registered cell. Every number comes from ``lstm_jax.unroll``, ``bidirectional`` and
``stack(...).apply``. Import the flavour you use::

    from lstm_jax.flax import linen as rnn       # rnn.LSTM(256, num_layers=2)
    from lstm_jax.flax import nnx as rnn         # rnn.LSTM(256, 16, num_layers=2, rngs=...)

NNX differs only where it must: it makes parameters at construction, so it takes the input size
as the second positional argument and ``rngs`` as a keyword.
"""

from lstm_jax.flax import linen, nnx
from lstm_jax.flax._layers import LOGICAL_AXES, LOGICAL_AXES_BY_RANK, logical_axes

__all__ = ["LOGICAL_AXES", "LOGICAL_AXES_BY_RANK", "linen", "logical_axes", "nnx"]
