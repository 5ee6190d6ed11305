"""impl="cudnn" (lstm_jax/_cudnn.py) on a CPU machine: the weight packing, checked by running
``jax.experimental.rnn.lstm_ref`` (a plain-JAX oracle that runs on CPU) on the packed vector
unpacked by ``jax.experimental.rnn.unpack_lstm_weights``, and the error on CPU."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref
from jax.experimental import rnn

import lstm_jax
from lstm_jax._cudnn import Cudnn, cudnn_lstm, pack_lstm_weights

B, T, IN, H = 3, 5, 2, 4
LENGTHS = np.array([5, 2, 1], np.int32)


def lstm_ref_fn(x, h_0, c_0, weights, seq_lengths, *, input_size, hidden_size, num_layers,
                dropout, bidirectional):  # fmt: skip
    """``jax.experimental.rnn.lstm``'s signature over ``lstm_ref``."""
    unpacked = rnn.unpack_lstm_weights(weights, input_size, hidden_size, num_layers, bidirectional)
    options = (input_size, hidden_size, num_layers, dropout, bidirectional)
    return rnn.lstm_ref(x, h_0, c_0, *unpacked, seq_lengths, *options)


def test_packing_equals_lstm_ref_for_two_bidirectional_layers():
    cell = lstm_jax.lstm(H)
    layer0 = (ref.random_params(cell, IN, seed=0), ref.random_params(cell, IN, seed=1))
    layer1 = (ref.random_params(cell, 2 * H, seed=2), ref.random_params(cell, 2 * H, seed=3))
    xs = ref.random_array((B, T, IN), seed=4)
    full = jnp.full((B,), T, jnp.int32)
    got, (h_n, c_n) = cudnn_lstm([layer0, layer1], xs, full, lstm_fn=lstm_ref_fn)
    # The float64 NumPy oracle: forward and backward layers, outputs concatenated.
    inputs = np.asarray(xs, np.float64)
    finals = []
    for fwd, bwd in (layer0, layer1):
        c_f, y_f, _ = ref.ref_unroll("lstm", fwd, inputs)
        c_b, y_b, _ = ref.ref_unroll("lstm", bwd, inputs, reverse=True)
        finals += [c_f, c_b]
        inputs = np.concatenate([y_f, y_b], axis=-1)
    ref.assert_close(got, inputs)
    ref.assert_close(h_n, np.stack([c[0] for c in finals]))
    ref.assert_close(c_n, np.stack([c[1] for c in finals]))


def test_cudnn_impl_with_lstm_ref_equals_scan_on_padded_batch_both_directions():
    # The per-layer impl (lengths from the mask, per-row reversal, carries in and out) with
    # lstm_ref in cuDNN's place.
    cell = lstm_jax.lstm(H)
    params = ref.random_params(cell, IN, seed=5)
    xs = ref.random_array((B, T, IN), seed=6)
    carry = ref.random_carry(cell, (B,), seed=7)
    lengths = jnp.asarray(LENGTHS)
    for reverse in (False, True):
        options = dict(initial_carry=carry, seq_lengths=lengths, reverse=reverse)
        got = lstm_jax.unroll(cell, params, xs, impl=Cudnn(lstm_fn=lstm_ref_fn), **options)
        want = lstm_jax.unroll(cell, params, xs, impl="scan", **options)
        jax.tree_util.tree_map(
            lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5), got, want
        )


@pytest.mark.skipif(jax.default_backend() == "gpu", reason="checks the error off GPU")
def test_cudnn_on_cpu_says_it_needs_a_gpu():
    cell = lstm_jax.lstm(H)
    params = ref.random_params(cell, IN)
    xs = ref.random_array((B, T, IN))
    with pytest.raises(RuntimeError, match=r"impl='cudnn' runs cuDNN .* needs a GPU"):
        lstm_jax.unroll(cell, params, xs, impl="cudnn")


def test_cudnn_names_an_unsupported_cell():
    cell = lstm_jax.gru(H)
    params = ref.random_params(cell, IN)
    xs = ref.random_array((B, T, IN))
    with pytest.raises(TypeError, match=r"impl='cudnn' runs only LSTMCell, got GRUCell\("):
        lstm_jax.unroll(cell, params, xs, impl="cudnn")


def test_packed_vector_has_cudnn_size():
    cell = lstm_jax.lstm(H)
    layers = [ref.random_params(cell, IN), ref.random_params(cell, H, seed=1)]
    size = rnn.get_num_params_in_lstm(IN, H, 2, False)
    assert pack_lstm_weights(layers).shape == (size,)
