"""The LSTM family (lstm_jax/cells/lstm.py): LSTM, peephole LSTM and CIFG against NumPy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref

import lstm_jax

NAMES = ("lstm", "peephole", "cifg")


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


def test_lstm_init_layout():
    cell = lstm_jax.lstm(ref.HIDDEN)
    params = cell.init(jax.random.key(0), ref.INPUT)
    h = ref.HIDDEN
    assert isinstance(params, lstm_jax.LSTMParams)
    assert params.w_ih.shape == (ref.INPUT, 4 * h)
    assert params.w_hh.shape == (h, 4 * h)
    assert params.b.shape == (4 * h,)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree_util.tree_leaves(params))
    # Gate order i, f, g, o: only the forget block starts at forget_bias (1.0).
    b = np.asarray(params.b)
    np.testing.assert_array_equal(b[h : 2 * h], 1.0)
    np.testing.assert_array_equal(np.delete(b, np.s_[h : 2 * h]), 0.0)


def test_lstm_forget_bias_option():
    params = lstm_jax.lstm(2, forget_bias=2.5).init(jax.random.key(0), 3)
    np.testing.assert_array_equal(np.asarray(params.b), [0, 0, 2.5, 2.5, 0, 0, 0, 0])


def test_lstm_without_bias_has_none():
    params = lstm_jax.lstm(2, use_bias=False).init(jax.random.key(0), 3)
    assert params.b is None


def test_recurrent_init_is_orthogonal_per_gate():
    params = lstm_jax.lstm(ref.HIDDEN).init(jax.random.key(1), ref.INPUT)
    h = ref.HIDDEN
    for k in range(4):
        block = np.asarray(params.w_hh[:, k * h : (k + 1) * h], np.float64)
        np.testing.assert_allclose(block.T @ block, np.eye(h), atol=1e-5)


def test_cifg_init_layout():
    """Three blocks (i, g, o); the input gate bias starts at -forget_bias so f = 1 - i starts
    near sigmoid(forget_bias)."""
    params = lstm_jax.cifg_lstm(2).init(jax.random.key(0), 3)
    assert isinstance(params, lstm_jax.LSTMParams)
    assert params.w_ih.shape == (3, 6)
    assert params.w_hh.shape == (2, 6)
    np.testing.assert_array_equal(np.asarray(params.b), [-1, -1, 0, 0, 0, 0])


def test_peephole_init_layout():
    params = lstm_jax.peephole_lstm(2).init(jax.random.key(0), 3)
    assert isinstance(params, lstm_jax.PeepholeLSTMParams)
    for p in (params.p_i, params.p_f, params.p_o):
        assert p.shape == (2,)
        np.testing.assert_array_equal(np.asarray(p), 0.0)


def test_peephole_with_zero_peepholes_equals_lstm():
    peep = lstm_jax.peephole_lstm(ref.HIDDEN)
    params = ref.random_params(peep, ref.INPUT, seed=3)
    zero = jnp.zeros((ref.HIDDEN,))
    params = params._replace(p_i=zero, p_f=zero, p_o=zero)
    plain = lstm_jax.LSTMParams(params.w_ih, params.w_hh, params.b)
    xs = ref.random_array((2, ref.TIME, ref.INPUT), seed=4)
    carry_p, ys_p = lstm_jax.unroll(peep, params, xs)
    carry_l, ys_l = lstm_jax.unroll(lstm_jax.lstm(ref.HIDDEN), plain, xs)
    ref.assert_trees_close(ys_p, ys_l)
    ref.assert_trees_close(carry_p, carry_l)


@pytest.mark.parametrize("field", ["p_i", "p_f", "p_o"])
def test_each_peephole_matters(field):
    """Each peephole changes the step on its own (and the reference agrees on how)."""
    cell = lstm_jax.peephole_lstm(ref.HIDDEN)
    params = ref.random_params(cell, ref.INPUT, seed=5)
    zero = jnp.zeros((ref.HIDDEN,))
    only = params._replace(**{f: zero for f in ("p_i", "p_f", "p_o") if f != field})
    carry = ref.random_carry(cell, (2,), seed=6)
    x = ref.random_array((2, ref.INPUT), seed=7)
    _, y_only = cell.step(only, carry, x)
    _, y_none = cell.step(only._replace(**{field: zero}), carry, x)
    assert not np.allclose(np.asarray(y_only), np.asarray(y_none))
    _, ref_y, _ = ref.ref_step("peephole", only, ref.np_carry(carry), x)
    ref.assert_close(y_only, ref_y)


def test_cifg_forget_gate_is_one_minus_input_gate():
    cell = lstm_jax.cifg_lstm(ref.HIDDEN)
    params = ref.random_params(cell, ref.INPUT, seed=8)
    xs = ref.random_array((2, ref.TIME, ref.INPUT), seed=9)
    gates = lstm_jax.gates(cell, params, xs)
    np.testing.assert_allclose(np.asarray(gates.f), 1.0 - np.asarray(gates.i), atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_initial_carry_is_zero_lstm_carry(name):
    cell = ref.make_cell(name)
    carry = cell.initial_carry((2, 3))
    assert isinstance(carry, lstm_jax.LSTMCarry)
    for leaf in carry:
        assert leaf.shape == (2, 3, ref.HIDDEN)
        assert leaf.dtype == jnp.float32
        np.testing.assert_array_equal(np.asarray(leaf), 0.0)
    assert cell.initial_carry().h.shape == (ref.HIDDEN,)
    assert cell.initial_carry(3).h.shape == (3, ref.HIDDEN)


@pytest.mark.parametrize("name", NAMES)
def test_step_is_recur_of_projected_input(name):
    cell = ref.make_cell(name)
    params = ref.random_params(cell, ref.INPUT, seed=10)
    carry = ref.random_carry(cell, (2,), seed=11)
    x = ref.random_array((2, ref.INPUT), seed=12)
    ref.assert_trees_close(
        cell.step(params, carry, x),
        cell.recur_step(params, carry, cell.project_inputs(params, x))[:2],
    )


def test_carry_dtype_option_keeps_the_state_in_that_dtype():
    cell = lstm_jax.lstm(ref.HIDDEN, carry_dtype=jnp.bfloat16)
    params = ref.random_params(cell, ref.INPUT)
    carry = cell.initial_carry((2,))
    assert carry.h.dtype == carry.c.dtype == jnp.bfloat16
    new, y = cell.step(params, carry, ref.random_array((2, ref.INPUT)))
    assert new.h.dtype == new.c.dtype == jnp.bfloat16
    assert y.dtype == jnp.float32
