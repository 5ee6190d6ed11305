"""Learned initial carries: ``stack(..., learn_initial_carry=True)`` and the Flax layers' option."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref

import lstm_jax
from lstm_jax._stack import WithInitialCarry, broadcast_carry

B, T, IN, H = 2, 4, ref.INPUT, ref.HIDDEN
XS = ref.random_array((B, T, IN), seed=1)
LENGTHS = jnp.array([4, 2], jnp.int32)


def _learned_net(bidirectional=False):
    net = lstm_jax.stack(
        ref.make_cell("lstm"), 2, bidirectional=bidirectional, learn_initial_carry=True
    )
    params = net.init(jax.random.key(0), IN)
    # Non-zero learned carries, so that using them (or not) shows in the outputs.
    carries = ref.random_params_like(params.initial_carry, seed=3)
    return net, WithInitialCarry(params.params, carries)


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_init_adds_one_zero_carry_per_layer_and_direction(bidirectional):
    net, _ = _learned_net(bidirectional)
    params = net.init(jax.random.key(0), IN)
    plain = lstm_jax.stack(ref.make_cell("lstm"), 2, bidirectional=bidirectional)
    assert isinstance(params, WithInitialCarry)
    ref.assert_trees_equal(params.params, plain.init(jax.random.key(0), IN))
    ref.assert_trees_equal(params.initial_carry, plain.initial_carry(()))
    assert all(leaf.shape == (H,) for leaf in jax.tree_util.tree_leaves(params.initial_carry))


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_equals_passing_the_broadcast_carry_by_hand(bidirectional):
    net, params = _learned_net(bidirectional)
    plain = lstm_jax.stack(ref.make_cell("lstm"), 2, bidirectional=bidirectional)
    by_hand = broadcast_carry(params.initial_carry, (B,))
    assert jax.tree_util.tree_leaves(by_hand)[0].shape == (B, H)
    got = net.apply(params, XS, seq_lengths=LENGTHS)
    want = plain.apply(params.params, XS, seq_lengths=LENGTHS, initial_carry=by_hand)
    ref.assert_trees_equal(got, want)
    # The NumPy reference, layer by layer, from the same carries.
    if not bidirectional:
        _, ys, _ = ref.ref_unroll("lstm", params.params[0], XS, LENGTHS, ref.np_carry(by_hand[0]))
        _, ys, _ = ref.ref_unroll("lstm", params.params[1], ys, LENGTHS, ref.np_carry(by_hand[1]))
        ref.assert_close(got[1], ys)
    # An explicit initial_carry still wins over the learned one.
    zeros = plain.initial_carry((B,))
    ref.assert_trees_equal(
        net.apply(params, XS, initial_carry=zeros), plain.apply(params.params, XS)
    )


def test_gradient_reaches_the_learned_carry():
    net, params = _learned_net(bidirectional=True)

    def loss(params):
        return jnp.sum(net.apply(params, XS, seq_lengths=LENGTHS, impl="split")[1] ** 2)

    grads = jax.grad(loss)(params)
    for leaf in jax.tree_util.tree_leaves(grads.initial_carry):
        assert np.all(np.isfinite(leaf)) and np.any(np.asarray(leaf) != 0.0)
    # The gradient of the broadcast is the sum over the batch of the per-row gradients.
    plain = lstm_jax.stack(ref.make_cell("lstm"), 2, bidirectional=True)

    def loss_by_hand(carries):
        ys = plain.apply(params.params, XS, seq_lengths=LENGTHS, initial_carry=carries)[1]
        return jnp.sum(ys**2)

    per_row = jax.grad(loss_by_hand)(broadcast_carry(params.initial_carry, (B,)))
    summed = jax.tree_util.tree_map(lambda g: g.sum(0), per_row)
    ref.assert_trees_close(grads.initial_carry, summed, atol=1e-5, rtol=1e-5)


def test_gradient_matches_finite_differences(x64):
    from jax.test_util import check_grads

    cell = ref.make_cell("gru_reset_after", param_dtype=jnp.float64)
    net = lstm_jax.stack(cell, 1, learn_initial_carry=True)
    params = net.init(jax.random.key(0), IN)
    carries = ref.random_params_like(params.initial_carry, seed=4)
    xs = XS.astype(jnp.float64)

    def run(carries):
        return net.apply(WithInitialCarry(params.params, carries), xs, seq_lengths=LENGTHS)[1]

    check_grads(run, (carries,), order=1, modes=("rev",))


def test_checkpoint_round_trip(tmp_path):
    import orbax.checkpoint as ocp

    net, params = _learned_net(bidirectional=True)
    with ocp.StandardCheckpointer() as ckpt:
        ckpt.save(tmp_path / "params", params)
        ckpt.wait_until_finished()
        abstract = jax.eval_shape(lambda: net.init(jax.random.key(0), IN))
        restored = ckpt.restore(tmp_path / "params", abstract)
    restored = (
        WithInitialCarry(*restored) if not isinstance(restored, WithInitialCarry) else restored
    )
    ref.assert_trees_equal(restored, params)
    ref.assert_trees_equal(net.apply(restored, XS), net.apply(params, XS))


def test_wrong_params_are_named():
    net, params = _learned_net()
    plain = lstm_jax.stack(ref.make_cell("lstm"), 2)
    with pytest.raises(TypeError, match=r"stack.apply: params must be a WithInitialCarry"):
        net.apply(params.params, XS)
    with pytest.raises(TypeError, match=r"built without learn_initial_carry=True"):
        plain.apply(params, XS)
    with pytest.raises(TypeError, match=r"stack: learn_initial_carry must be a bool"):
        lstm_jax.stack(ref.make_cell("lstm"), 2, learn_initial_carry="yes")


def test_flax_layers_learn_the_initial_carry():
    from flax import nnx

    from lstm_jax.flax import linen as L
    from lstm_jax.flax import nnx as N

    cell = ref.make_cell("lstm")
    rnn = L.RNN(cell, learn_initial_carry=True, return_carry=True)
    variables = rnn.init(jax.random.key(0), XS)
    params = L.core_params(variables)
    assert isinstance(params, WithInitialCarry)
    params = WithInitialCarry(params.params, ref.random_params_like(params.initial_carry, seed=5))
    carry, ys = rnn.apply(L.module_variables(rnn, params), XS, seq_lengths=LENGTHS)
    c0 = broadcast_carry(params.initial_carry, (B,))
    ref_carry, ref_ys, _ = ref.ref_unroll("lstm", params.params, XS, LENGTHS, ref.np_carry(c0))
    ref.assert_close(ys, ref_ys)
    ref.assert_carry_close(carry, ref_carry)

    bi = N.Bidirectional(cell, IN, learn_initial_carry=True, rngs=nnx.Rngs(0))
    p = bi.core_params()
    want = lstm_jax.bidirectional(
        cell, p.params, XS, initial_carry=broadcast_carry(p.initial_carry, (B,))
    )
    ref.assert_trees_equal(bi(XS), want[1])

    lstm = N.LSTM(H, IN, num_layers=2, learn_initial_carry=True, rngs=nnx.Rngs(0))
    assert lstm.core.learn_initial_carry
    p = lstm.core_params()
    ref.assert_trees_equal(lstm(XS), lstm.core.apply(p, XS)[1])

    def loss(model):
        return jnp.sum(model(XS) ** 2)

    grads = nnx.grad(loss)(lstm)
    leaves = jax.tree_util.tree_leaves(grads)
    assert len(leaves) == len(jax.tree_util.tree_leaves(p))
    assert all(np.all(np.isfinite(g)) for g in leaves)
