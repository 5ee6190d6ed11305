"""``impl=Chunked(every=k)`` keeps training memory sub-linear in the sequence length.

XLA's own buffer assignment (``memory_analysis``) is deterministic for a given program, so this
is a test of the compiled program, not a timing.
"""

import jax
import jax.numpy as jnp

import lstm_jax


def _impl(every: int | None):
    return "auto" if every is None else lstm_jax.Chunked(every=every)


def _temp_bytes(num_steps: int, checkpoint_every: int | None) -> int:
    cell = lstm_jax.lstm(16)
    params = jax.eval_shape(lambda k: cell.init(k, 4), jax.random.key(0))
    xs = jax.ShapeDtypeStruct((1, num_steps, 4), jnp.float32)

    def loss(params, xs):
        return jnp.sum(lstm_jax.unroll(cell, params, xs, impl=_impl(checkpoint_every))[1])

    compiled = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(params, xs).compile()
    return compiled.memory_analysis().temp_size_in_bytes


def test_checkpointing_grows_like_sqrt_time_not_time():
    plain = [_temp_bytes(t, None) for t in (1_000, 16_000)]
    chunked = [_temp_bytes(t, round(t**0.5)) for t in (1_000, 16_000)]
    # Beyond copies of the inputs and their gradient (2 * time * input floats, the size of the
    # data itself), what checkpointing keeps is the carries between chunks and one chunk's
    # activations: 16x the steps should cost about 4x (sqrt), while plain memory grows 16x.
    beyond_inputs = [c - 2 * 4 * t * 4 for c, t in zip(chunked, (1_000, 16_000), strict=True)]
    assert plain[1] > 12 * plain[0]
    assert beyond_inputs[1] < 6 * beyond_inputs[0]
    assert chunked[1] < plain[1] / 10


def test_a_chunk_that_does_not_divide_time_costs_no_padding_copies():
    divides, does_not = _temp_bytes(16_000, 125), _temp_bytes(16_001, 125)
    assert does_not < 2 * divides
