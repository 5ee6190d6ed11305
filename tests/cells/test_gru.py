"""The GRU (lstm_jax/cells/gru.py), both forms, against NumPy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref

import lstm_jax

NAMES = ("gru_reset_after", "gru_reset_before")


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


def test_reset_after_init_layout():
    params = lstm_jax.gru(2).init(jax.random.key(0), 3)
    assert isinstance(params, lstm_jax.GRUParams)
    assert params.w_ih.shape == (3, 6)
    assert params.w_hh.shape == (2, 6)
    assert params.b.shape == (6,)
    assert params.b_hn.shape == (2,)


def test_reset_before_has_no_recurrent_candidate_bias():
    params = lstm_jax.gru(2, reset_after=False).init(jax.random.key(0), 3)
    assert params.b.shape == (6,)
    assert params.b_hn is None


def test_without_bias_has_none():
    for reset_after in (True, False):
        params = lstm_jax.gru(2, reset_after=reset_after, use_bias=False).init(jax.random.key(0), 3)
        assert params.b is None and params.b_hn is None


def test_the_two_forms_differ():
    """The reset gate is applied before vs after the recurrent matmul: different numbers for the
    same weights (so the two reference checks are not testing the same thing twice)."""
    after = lstm_jax.gru(ref.HIDDEN)
    before = lstm_jax.gru(ref.HIDDEN, reset_after=False)
    params = ref.random_params(after, ref.INPUT, seed=1)
    carry = ref.random_carry(after, (2,), seed=2)
    x = ref.random_array((2, ref.INPUT), seed=3)
    _, y_after = after.step(params, carry, x)
    _, y_before = before.step(params._replace(b_hn=None), carry, x)
    assert not np.allclose(np.asarray(y_after), np.asarray(y_before), atol=1e-3)
    # With b_hn = 0 and h = 0 the forms coincide (r multiplies zero either way).
    zero_h = after.initial_carry((2,))
    _, y_after0 = after.step(params._replace(b_hn=jnp.zeros((ref.HIDDEN,))), zero_h, x)
    _, y_before0 = before.step(params._replace(b_hn=None), zero_h, x)
    ref.assert_trees_close(y_after0, y_before0)


def test_gates_are_r_z_n_and_match_reference():
    cell = lstm_jax.gru(ref.HIDDEN)
    params = ref.random_params(cell, ref.INPUT, seed=4)
    xs = ref.random_array((2, ref.TIME, ref.INPUT), seed=5)
    gates = lstm_jax.gates(cell, params, xs)
    assert isinstance(gates, lstm_jax.GRUGates)
    _, _, ref_gates = ref.ref_unroll("gru_reset_after", params, xs)
    ref.assert_gates_close(gates, ref_gates)


@pytest.mark.parametrize("name", NAMES)
def test_initial_carry_is_a_zero_array(name):
    cell = ref.make_cell(name)
    carry = cell.initial_carry((2, 3))
    assert isinstance(carry, jax.Array)
    assert carry.shape == (2, 3, ref.HIDDEN) and carry.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(carry), 0.0)


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
