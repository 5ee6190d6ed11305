"""The Elman RNN (lstm_jax/cells/simple.py), tanh and relu, against NumPy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref

import lstm_jax

NAMES = ("simple_tanh", "simple_relu")


@pytest.mark.parametrize("batch_shape", ref.BATCH_SHAPES, ids=str)
@pytest.mark.parametrize("name", NAMES)
def test_step_matches_reference(name, batch_shape):
    ref.check_step_matches_reference(name, batch_shape)


@pytest.mark.parametrize("name", NAMES)
def test_step_without_bias_matches_reference(name):
    ref.check_step_matches_reference(name, (2,), use_bias=False)


@pytest.mark.parametrize("name", NAMES)
def test_unroll_matches_reference(name):
    ref.check_unroll_matches_reference(name)


@pytest.mark.parametrize("name", NAMES)
def test_step_gradients(name, x64):
    ref.check_step_grads(name)


@pytest.mark.parametrize("name", NAMES)
def test_unroll_gradients_with_seq_lengths(name, x64):
    ref.check_unroll_grads(name)


@pytest.mark.parametrize("name", NAMES)
def test_bf16_compute_stays_close_to_f32(name):
    ref.check_bf16_close_to_f32(name)


def test_init_layout():
    params = lstm_jax.simple_rnn(2).init(jax.random.key(0), 3)
    assert isinstance(params, lstm_jax.SimpleRNNParams)
    assert params.w_ih.shape == (3, 2)
    assert params.w_hh.shape == (2, 2)
    assert params.b.shape == (2,)
    np.testing.assert_array_equal(np.asarray(params.b), 0.0)


def test_relu_outputs_are_non_negative_and_tanh_bounded():
    xs = ref.random_array((2, ref.TIME, ref.INPUT), seed=1, scale=3.0)
    for activation in ("relu", "tanh"):
        cell = lstm_jax.simple_rnn(ref.HIDDEN, activation=activation)
        _, ys = lstm_jax.unroll(cell, ref.random_params(cell, ref.INPUT, seed=2), xs)
        ys = np.asarray(ys)
        assert ys.min() >= 0 if activation == "relu" else np.abs(ys).max() <= 1
        assert np.any(ys != 0)


def test_gate_is_the_pre_activation():
    cell = lstm_jax.simple_rnn(ref.HIDDEN, activation="relu")
    params = ref.random_params(cell, ref.INPUT, seed=3)
    xs = ref.random_array((2, ref.TIME, ref.INPUT), seed=4)
    _, ys = lstm_jax.unroll(cell, params, xs)
    gates = lstm_jax.gates(cell, params, xs)
    assert isinstance(gates, lstm_jax.SimpleRNNGates)
    np.testing.assert_allclose(np.asarray(ys), np.maximum(np.asarray(gates.a), 0.0))
    _, _, ref_gates = ref.ref_unroll("simple_relu", params, xs)
    ref.assert_gates_close(gates, ref_gates)


@pytest.mark.parametrize("name", NAMES)
def test_initial_carry_is_a_zero_array(name):
    carry = ref.make_cell(name).initial_carry(2)
    assert carry.shape == (2, ref.HIDDEN) and carry.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(carry), 0.0)
