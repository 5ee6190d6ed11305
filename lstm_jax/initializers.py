"""Initialisers for recurrent weights.

Defaults follow common practice: input kernels Glorot-uniform, recurrent kernels orthogonal,
biases zero except the LSTM forget gate, which starts at 1.0 (Jozefowicz et al. 2015) so that
the cell state is carried by default at the start of training.

Every gate block is initialised on its own ``[fan_in, hidden]`` slice, as if each gate had its
own dense layer (this is what PyTorch and Flax do); an orthogonal recurrent kernel is therefore
orthogonal per gate rather than across the concatenated ``[hidden, gates]`` matrix.

Initialisers are module-level constants so that two cells built with the defaults compare equal
(and hash equal), which keeps ``jax.jit`` from recompiling for an identical configuration.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lstm_jax.typing import Array, DType, Initializer, Key

glorot_uniform: Initializer = jax.nn.initializers.glorot_uniform()
lecun_normal: Initializer = jax.nn.initializers.lecun_normal()
orthogonal: Initializer = jax.nn.initializers.orthogonal()
zeros: Initializer = jax.nn.initializers.zeros


def gate_blocks(
    init: Initializer, key: Key, fan_in: int, hidden_size: int, num_gates: int, dtype: DType
) -> Array:
    """Initialises ``num_gates`` independent ``[fan_in, hidden]`` blocks side by side.

    Returns:
      ``[fan_in, num_gates * hidden]``, block ``k`` in columns ``k*hidden:(k+1)*hidden``.
    """
    keys = jax.random.split(key, num_gates)
    # Draw in at least float32: the orthogonal initialiser's QR has no bfloat16 kernel on CPU,
    # and a low-precision draw would be rounded anyway.
    draw_dtype = jnp.float32 if jnp.dtype(dtype).itemsize < 4 else dtype
    blocks = [init(k, (fan_in, hidden_size), draw_dtype) for k in keys]
    return jnp.concatenate(blocks, axis=-1).astype(dtype)
