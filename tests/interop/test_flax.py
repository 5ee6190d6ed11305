"""lstm_jax.interop.flax: Flax's own cells' parameters run on lstm_jax with Flax's numbers, and
where Flax's variable-length results are wrong (flax 0.12), ours match the NumPy reference."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref
from flax import nnx

import lstm_jax
from lstm_jax.interop.flax import carry_from_flax, carry_to_flax, from_flax

XS = ref.random_array((ref.BATCH, ref.TIME, ref.INPUT), seed=1)
LENGTHS = jnp.array([5, 2, 0], jnp.int32)

LINEN_CELLS = {
    "LSTMCell": lambda: nn.LSTMCell(ref.HIDDEN),
    "OptimizedLSTMCell": lambda: nn.OptimizedLSTMCell(ref.HIDDEN),
    "GRUCell": lambda: nn.GRUCell(ref.HIDDEN),
    "SimpleCell": lambda: nn.SimpleCell(ref.HIDDEN),
    "SimpleCell-relu": lambda: nn.SimpleCell(ref.HIDDEN, activation_fn=nn.relu),
}
NNX_CELLS = {
    "LSTMCell": lambda: nnx.LSTMCell(ref.INPUT, ref.HIDDEN, rngs=nnx.Rngs(0)),
    "OptimizedLSTMCell": lambda: nnx.OptimizedLSTMCell(ref.INPUT, ref.HIDDEN, rngs=nnx.Rngs(0)),
    "GRUCell": lambda: nnx.GRUCell(ref.INPUT, ref.HIDDEN, rngs=nnx.Rngs(0)),
    "SimpleCell": lambda: nnx.SimpleCell(ref.INPUT, ref.HIDDEN, rngs=nnx.Rngs(0)),
}


def _randomise_linen(variables):
    """Flax initialises biases to zero; random ones make every term of the equations count."""
    leaves, treedef = jax.tree_util.tree_flatten(variables)
    rng = np.random.default_rng(5)
    leaves = [jnp.asarray(0.5 * rng.standard_normal(x.shape), x.dtype) for x in leaves]
    return jax.tree_util.tree_unflatten(treedef, leaves)


def _randomise_nnx(module):
    state = nnx.state(module, nnx.Param)
    nnx.update(module, _randomise_linen(state))
    return module


@pytest.mark.parametrize("name", LINEN_CELLS)
def test_linen_cells_match_flax_on_unpadded_batches(name):
    rnn = nn.RNN(LINEN_CELLS[name](), return_carry=True)
    variables = _randomise_linen(rnn.init(jax.random.key(0), XS))
    flax_carry, flax_ys = rnn.apply(variables, XS)
    cell, params = from_flax(rnn, variables)
    carry, ys = lstm_jax.unroll(cell, params, XS)
    ref.assert_close(ys, flax_ys)
    ref.assert_trees_close(carry, carry_from_flax(cell, flax_carry), atol=2e-5, rtol=2e-5)
    ref.assert_trees_equal(carry_to_flax(cell, carry_from_flax(cell, flax_carry)), flax_carry)


@pytest.mark.parametrize("name", NNX_CELLS)
def test_nnx_cells_match_flax_on_unpadded_batches(name):
    flax_cell = _randomise_nnx(NNX_CELLS[name]())
    flax_carry, flax_ys = nnx.RNN(flax_cell, return_carry=True)(XS)
    cell, params = from_flax(flax_cell)
    carry, ys = lstm_jax.unroll(cell, params, XS)
    ref.assert_close(ys, flax_ys)
    ref.assert_trees_close(carry, carry_from_flax(cell, flax_carry), atol=2e-5, rtol=2e-5)


def test_linen_cell_without_the_rnn_wrapper():
    flax_cell = nn.GRUCell(ref.HIDDEN)
    carry0 = flax_cell.initialize_carry(jax.random.key(0), XS[:, 0].shape)
    variables = _randomise_linen(flax_cell.init(jax.random.key(0), carry0, XS[:, 0]))
    flax_h, flax_y = flax_cell.apply(variables, carry0, XS[:, 0])
    cell, params = from_flax(flax_cell, variables["params"])
    h, y = cell.step(params, carry0, XS[:, 0])
    ref.assert_close(y, flax_y)
    ref.assert_close(h, flax_h)


def _flax_linen_lstm_with_lengths():
    rnn = nn.RNN(nn.LSTMCell(ref.HIDDEN), return_carry=True)
    variables = _randomise_linen(rnn.init(jax.random.key(0), XS))
    cell, params = from_flax(rnn, variables)
    flax_carry, flax_ys = rnn.apply(variables, XS, seq_lengths=LENGTHS)
    ref_carry, ref_ys, _ = ref.ref_unroll("lstm", params, XS, LENGTHS)
    return cell, params, carry_from_flax(cell, flax_carry), flax_ys, ref_carry, ref_ys


def test_padded_outputs_are_zero_in_ours_not_in_flax_linen():
    cell, params, _, flax_ys, _, ref_ys = _flax_linen_lstm_with_lengths()
    _, ys = lstm_jax.unroll(cell, params, XS, seq_lengths=LENGTHS)
    ref.assert_close(ys, ref_ys)
    assert np.all(np.asarray(ys)[1, 2:] == 0)
    # flax 0.12 leaves garbage at padded steps (documented in lstm_jax.interop.flax)
    assert np.any(np.asarray(flax_ys)[1, 2:] != 0)
    ref.assert_close(np.asarray(flax_ys)[0], ref_ys[0])  # the unpadded row agrees


def test_length_zero_keeps_the_initial_carry_in_ours_not_in_flax_linen():
    cell, params, flax_carry, _, ref_carry, _ = _flax_linen_lstm_with_lengths()
    carry, _ = lstm_jax.unroll(cell, params, XS, seq_lengths=LENGTHS)
    ref.assert_carry_close(carry, ref_carry)
    assert np.all(np.asarray(carry.h)[2] == 0) and np.all(np.asarray(carry.c)[2] == 0)
    # flax 0.12 returns the carry after the last step for a row of length 0 (index -1)
    assert np.any(np.asarray(flax_carry.h)[2] != 0)
    ref.assert_close(np.asarray(flax_carry.h)[:2], ref_carry[0][:2])  # rows 0, 1 agree


def test_nnx_rnn_has_the_same_variable_length_faults():
    flax_cell = _randomise_nnx(nnx.GRUCell(ref.INPUT, ref.HIDDEN, rngs=nnx.Rngs(0)))
    flax_h, flax_ys = nnx.RNN(flax_cell, return_carry=True)(XS, seq_lengths=LENGTHS)
    cell, params = from_flax(flax_cell)
    h, ys = lstm_jax.unroll(cell, params, XS, seq_lengths=LENGTHS)
    ref_h, ref_ys, _ = ref.ref_unroll("gru_reset_after", params, XS, LENGTHS)
    ref.assert_close(ys, ref_ys)
    ref.assert_carry_close(h, ref_h)
    assert np.any(np.asarray(flax_ys)[1, 2:] != 0) and np.any(np.asarray(flax_h)[2] != 0)


def test_unsupported_configurations_are_named():
    with pytest.raises(ValueError, match=r"from_flax: LSTMCell.gate_fn must be sigmoid"):
        cell = nn.LSTMCell(ref.HIDDEN, gate_fn=jax.nn.hard_sigmoid)
        from_flax(cell, nn.RNN(cell).init(jax.random.key(0), XS)["params"]["cell"])
    with pytest.raises(ValueError, match=r"from_flax: SimpleCell\(residual=True\)"):
        from_flax(nnx.SimpleCell(ref.INPUT, ref.HIDDEN, residual=True, rngs=nnx.Rngs(0)))
    with pytest.raises(TypeError, match=r"from_flax: a linen GRUCell holds no parameters"):
        from_flax(nn.GRUCell(ref.HIDDEN))
    with pytest.raises(TypeError, match=r"from_flax: an nnx GRUCell holds its own parameters"):
        from_flax(nnx.GRUCell(ref.INPUT, ref.HIDDEN, rngs=nnx.Rngs(0)), {})
    with pytest.raises(TypeError, match=r"from_flax: cell must be a flax.linen or flax.nnx cell"):
        from_flax(nn.Dense(3), {})
    with pytest.raises(ValueError, match=r"from_flax: variables do not hold the parameters"):
        from_flax(nn.GRUCell(ref.HIDDEN), {"params": {"Dense_0": {}}})
