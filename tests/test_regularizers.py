"""lstm_jax.regularizers: off without a key, locked masks per sequence, unbiased in expectation,
differentiable under every impl, bad rates named."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref

import lstm_jax
from lstm_jax import regularizers as R

B, T, IN, H = 2, 5, ref.INPUT, ref.HIDDEN
XS = ref.random_array((B, T, IN), seed=1)
LENGTHS = jnp.array([5, 3], jnp.int32)


@pytest.mark.parametrize("name", ["lstm", "gru_reset_after"])
def test_without_a_key_everything_is_the_plain_cell_exactly(name):
    cell = ref.make_cell(name)
    params = ref.random_params(cell, IN)
    plain = lstm_jax.unroll(cell, params, XS, seq_lengths=LENGTHS)
    assert R.locked_dropout(None, 0.5, XS) is XS
    assert R.drop_weights(None, 0.5, params) is params
    wrapped = R.regularized(cell, state_dropout=0.5)
    carry, ys = lstm_jax.unroll(wrapped, params, XS, seq_lengths=LENGTHS)
    ref.assert_trees_equal(ys, plain[1])
    ref.assert_trees_equal(carry.inner, plain[0])
    # A training carry with no rate set is the plain cell too.
    off = R.regularized(cell)
    c0 = R.regularized_carry(off, (B,), jax.random.key(1))
    got = lstm_jax.unroll(off, params, XS, initial_carry=c0, seq_lengths=LENGTHS)[1]
    ref.assert_trees_equal(got, plain[1])


def test_locked_masks_are_the_same_at_every_step():
    ones = jnp.ones((B, T, 6))
    dropped = np.asarray(R.locked_dropout(jax.random.key(0), 0.5, ones))
    assert np.all(dropped == dropped[:, :1])
    assert set(np.unique(dropped)) == {0.0, 2.0}
    dropped_t = np.asarray(R.locked_dropout(jax.random.key(0), 0.5, ones, time_major=True))
    assert np.all(dropped_t == dropped_t[:1])
    cell = R.regularized(ref.make_cell("lstm"), state_dropout=0.5)
    c0 = R.regularized_carry(cell, (B,), jax.random.key(2))
    assert set(np.unique(np.asarray(c0.h_mask))) <= {0.0, 2.0}
    params = ref.random_params(cell.inner, IN)
    final, _ = lstm_jax.unroll(cell, params, XS, initial_carry=c0)
    ref.assert_trees_equal(final.h_mask, c0.h_mask)  # one mask for the whole sequence


def test_state_dropout_masks_h_in_the_recurrent_projection():
    """One step from a non-zero carry: the result is the plain step from ``h * mask``."""
    inner = ref.make_cell("simple_tanh")
    cell = R.regularized(inner, state_dropout=0.5)
    params = ref.random_params(inner, IN)
    h0 = ref.random_carry(inner, (B,), seed=3)
    c0 = R.regularized_carry(cell, (B,), jax.random.key(4), initial_carry=h0)
    _, ys = lstm_jax.unroll(cell, params, XS[:, :1], initial_carry=c0)
    p = ref.np_params(params)
    h = np.asarray(h0, np.float64) * np.asarray(c0.h_mask, np.float64)
    want = np.tanh(np.asarray(XS[:, 0], np.float64) @ p["w_ih"] + p["b"] + h @ p["w_hh"])
    ref.assert_close(ys[:, 0], want)


def test_expectations_match_the_plain_values():
    rate = 0.3
    big = jnp.ones((400, 2, 16))
    mean = float(jnp.mean(R.locked_dropout(jax.random.key(5), rate, big)))
    # 6400 masks of 1/(1-p) with probability 1-p: standard error sqrt(p/(1-p)/6400) ~ 0.008
    assert abs(mean - 1.0) < 0.04
    params = lstm_jax.LSTMParams(jnp.ones((3, 64)), jnp.ones((64, 256)), jnp.zeros(64))
    w = R.drop_weights(jax.random.key(6), rate, params).w_hh
    assert abs(float(jnp.mean(w)) - 1.0) < 0.04
    assert 0.25 < float(jnp.mean(w == 0)) < 0.35


def test_zoneout_keeps_old_units_with_its_rate_and_its_expectation_at_evaluation():
    inner = ref.make_cell("simple_tanh")
    p = 0.4
    cell = R.regularized(inner, zoneout_h=p)
    params = ref.random_params(inner, IN)
    xs = ref.random_array((300, 2, IN), seed=7)
    h0 = ref.random_carry(inner, (300,), seed=8)
    c0 = R.regularized_carry(cell, (300,), jax.random.key(9), initial_carry=h0)
    _, ys = lstm_jax.unroll(cell, params, xs, initial_carry=c0)
    _, plain = lstm_jax.unroll(inner, params, xs[:, :1], initial_carry=h0)
    y1 = np.asarray(ys[:, 0])
    kept_old = y1 == np.asarray(h0)
    took_new = y1 == np.asarray(plain[:, 0])
    assert np.all(kept_old | took_new)
    assert abs(float(kept_old.mean()) - p) < 0.04  # 1200 draws, standard error 0.014
    # Evaluation: p * old + (1 - p) * new, in float64 here.
    _, ys_eval = lstm_jax.unroll(cell, params, xs[:, :1], initial_carry=cell.initial_carry(300)
                                 ._replace(inner=h0))  # fmt: skip
    want = p * np.asarray(h0, np.float64) + (1 - p) * np.asarray(plain[:, 0], np.float64)
    ref.assert_close(ys_eval[:, 0], want)


@pytest.mark.parametrize("impl", ["scan", "split", pytest.param("chunked", marks=pytest.mark.slow)])
def test_gradients_equal_across_impls_and_with_lengths(impl):
    inner = ref.make_cell("lstm")
    cell = R.regularized(inner, state_dropout=0.3, zoneout_h=0.2, zoneout_c=0.2)
    params = ref.random_params(inner, IN)
    c0 = R.regularized_carry(cell, (B,), jax.random.key(10))

    def loss(params, xs, impl):
        xs = R.locked_dropout(jax.random.key(11), 0.2, xs)
        p = R.drop_weights(jax.random.key(12), 0.2, params)
        (cf, cb), ys = lstm_jax.bidirectional(
            cell, (p, p), xs, initial_carry=(c0, c0), seq_lengths=LENGTHS, impl=impl
        )
        return jnp.sum(jnp.sin(ys)) + jnp.sum(cf.inner.c * cb.inner.h)

    got = jax.grad(loss, argnums=(0, 1))(params, XS, impl)
    if impl == "scan":
        assert all(np.all(np.isfinite(g)) for g in jax.tree_util.tree_leaves(got))
        assert np.any(np.asarray(got[0].w_hh) != 0)
        return
    want = jax.grad(loss, argnums=(0, 1))(params, XS, "scan")
    ref.assert_trees_close(got, want, atol=1e-5, rtol=1e-5)


def test_gradients_match_finite_differences(x64):
    from jax.test_util import check_grads

    inner = ref.make_cell("gru_reset_after", param_dtype=jnp.float64)
    cell = R.regularized(inner, state_dropout=0.3, zoneout_h=0.3)
    params = ref.random_params(inner, IN)
    c0 = R.regularized_carry(cell, (B,), jax.random.key(13))
    xs = XS[:, :3].astype(jnp.float64)
    lengths = jnp.array([3, 2], jnp.int32)

    def run(params, xs):
        return lstm_jax.unroll(cell, params, xs, initial_carry=c0, seq_lengths=lengths)[1]

    check_grads(run, (params, xs), order=1, modes=("rev",))


def test_works_in_a_stack():
    cell = R.regularized(ref.make_cell("lstm"), state_dropout=0.3, zoneout_c=0.2)
    net = lstm_jax.stack(cell, 2)
    params = net.init(jax.random.key(0), IN)
    keys = jax.random.split(jax.random.key(14), 2)
    c0 = tuple(R.regularized_carry(cell, (B,), k) for k in keys)
    _, ys = net.apply(params, XS, initial_carry=c0, seq_lengths=LENGTHS)
    assert ys.shape == (B, T, H) and np.all(np.isfinite(ys))
    assert np.all(np.asarray(ys[1, 3:]) == 0.0)
    # Evaluation without zoneout is the plain stack exactly.
    evaluation = lstm_jax.stack(R.regularized(cell.inner, state_dropout=0.3), 2)
    plain = lstm_jax.stack(cell.inner, 2)
    ref.assert_trees_equal(evaluation.apply(params, XS)[1], plain.apply(params, XS)[1])


def test_a_stack_draws_the_masks_of_regularized_cells_from_its_dropout_key():
    """With no initial_carry, ``apply(dropout_key=k)`` starts layer ``l`` from
    ``regularized_carry(cell, batch, net.cell_key(k, l))`` (bidirectional: split per
    direction), and without a key from the evaluation carry."""
    cell = R.regularized(ref.make_cell("lstm"), state_dropout=0.4, zoneout_h=0.3)
    key = jax.random.key(21)
    net = lstm_jax.stack(cell, 2)
    params = net.init(jax.random.key(0), IN)
    c0 = tuple(R.regularized_carry(cell, (B,), net.cell_key(key, i)) for i in range(2))
    want = net.apply(params, XS, initial_carry=c0, seq_lengths=LENGTHS)
    got = net.apply(params, XS, dropout_key=key, seq_lengths=LENGTHS)
    ref.assert_trees_equal(got, want)
    evaluation = net.apply(params, XS, initial_carry=net.initial_carry((B,)), seq_lengths=LENGTHS)
    ref.assert_trees_equal(net.apply(params, XS, seq_lengths=LENGTHS), evaluation)
    assert not np.allclose(got[1], evaluation[1])

    bi = lstm_jax.stack(cell, 1, bidirectional=True)
    params = bi.init(jax.random.key(1), IN)
    k_f, k_b = jax.random.split(bi.cell_key(key, 0))
    c0 = ((R.regularized_carry(cell, (B,), k_f), R.regularized_carry(cell, (B,), k_b)),)
    want = bi.apply(params, XS, initial_carry=c0, seq_lengths=LENGTHS)
    ref.assert_trees_equal(bi.apply(params, XS, dropout_key=key, seq_lengths=LENGTHS), want)


def test_cell_keys_never_repeat_the_between_layer_keys():
    # split(k, n)[i] is fold_in(k, i) under JAX's partitionable threefry: the cells' keys must
    # not reuse a between-layer mask's key.
    key = jax.random.key(8)
    for layers in (1, 2, 3):
        cell = R.regularized(ref.make_cell("lstm"), state_dropout=0.2)
        net = lstm_jax.stack(cell, layers, dropout=0.5)
        between = list(jax.random.split(key, max(layers - 1, 1)))
        cells = [net.cell_key(key, i) for i in range(layers)]
        data = {tuple(np.asarray(jax.random.key_data(k)).tolist()) for k in between + cells}
        assert len(data) == len(between) + layers
    # and the stack is the composition of those pieces
    net = lstm_jax.stack(cell, 2, dropout=0.5)
    params = net.init(jax.random.key(0), IN)
    (k_between,) = jax.random.split(key, 1)
    c0 = [R.regularized_carry(cell, (B,), net.cell_key(key, i)) for i in range(2)]
    _, h = lstm_jax.unroll(cell, params[0], XS, initial_carry=c0[0], seq_lengths=LENGTHS)
    keep = jax.random.bernoulli(k_between, 0.5, h.shape)
    h = jnp.where(keep, h / 0.5, 0.0)
    _, want = lstm_jax.unroll(cell, params[1], h, initial_carry=c0[1], seq_lengths=LENGTHS)
    got = net.apply(params, XS, dropout_key=key, seq_lengths=LENGTHS)[1]
    ref.assert_trees_close(got, want)


def test_learned_carries_of_regularized_cells_never_learn_the_masks():
    cell = R.regularized(ref.make_cell("gru_reset_after"), state_dropout=0.5)
    net = lstm_jax.stack(cell, 1, learn_initial_carry=True)
    params = net.init(jax.random.key(0), IN)
    learned = params.initial_carry[0]
    # A learned inner carry is used; the mask fields of the parameter are not.
    inner = jnp.full_like(learned.inner, 0.25)
    nudged = params._replace(
        initial_carry=(learned._replace(inner=inner, h_mask=learned.h_mask * 0.0),)
    )
    plain = lstm_jax.stack(cell.inner, 1)
    want = plain.apply(params.params, XS, initial_carry=(jnp.broadcast_to(inner, (B, H)),))
    ref.assert_trees_close(net.apply(nudged, XS)[1], want[1])

    def loss(p):
        return jnp.sum(net.apply(p, XS, dropout_key=jax.random.key(3))[1] ** 2)

    grads = jax.grad(loss)(params).initial_carry[0]
    assert np.all(np.asarray(grads.h_mask) == 0.0) and np.any(np.asarray(grads.inner) != 0.0)
    # also for a regularized cell with every rate 0, in training and evaluation
    off = lstm_jax.stack(R.regularized(cell.inner), 1, learn_initial_carry=True)
    for key in (None, jax.random.key(4)):
        ys = off.apply(nudged, XS, dropout_key=key)[1]
        ref.assert_trees_close(ys, want[1])


def test_locked_dropout_between_layers_is_one_mask_per_sequence():
    cell = ref.make_cell("lstm")
    key = jax.random.key(5)
    net = lstm_jax.stack(cell, 2, dropout=0.5, locked_dropout=True)
    params = net.init(jax.random.key(0), IN)
    _, hidden = lstm_jax.unroll(cell, params[0], XS, seq_lengths=LENGTHS)
    (k_drop,) = jax.random.split(key, 1)
    dropped = R.locked_dropout(k_drop, 0.5, hidden)
    _, want = lstm_jax.unroll(cell, params[1], dropped, seq_lengths=LENGTHS)
    got = net.apply(params, XS, dropout_key=key, seq_lengths=LENGTHS)[1]
    ref.assert_trees_close(got, want)
    # the per-step form differs, and neither runs without a key
    per_step = lstm_jax.stack(cell, 2, dropout=0.5)
    assert not np.allclose(per_step.apply(params, XS, dropout_key=key)[1], got)
    ref.assert_trees_equal(net.apply(params, XS)[1], per_step.apply(params, XS)[1])
    with pytest.raises(TypeError, match=r"stack: locked_dropout must be a bool"):
        lstm_jax.stack(cell, 2, dropout=0.5, locked_dropout=1)


def test_bad_rates_and_arguments_are_named():
    cell = ref.make_cell("lstm")
    with pytest.raises(ValueError, match=r"regularized: zoneout_h must be a rate in \[0, 1\)"):
        R.regularized(cell, zoneout_h=1.0)
    with pytest.raises(ValueError, match=r"regularized: state_dropout must be a rate"):
        R.regularized(cell, state_dropout=-0.1)
    with pytest.raises(TypeError, match=r"regularized: zoneout_c must be a real number"):
        R.regularized(cell, zoneout_c="0.1")
    with pytest.raises(ValueError, match=r"locked_dropout: rate must be a rate in \[0, 1\)"):
        R.locked_dropout(jax.random.key(0), 1.5, XS)
    with pytest.raises(TypeError, match=r"drop_weights: params must have an array field 'w_hh'"):
        R.drop_weights(jax.random.key(0), 0.1, {"w": XS})
    with pytest.raises(TypeError, match=r"key_rate: cell must be"):
        R.key_rate("lstm")
    with pytest.raises(TypeError, match=r"start_carry: key must be a PRNG key"):
        R.start_carry(R.regularized(cell), (B,), key=3)
    with pytest.raises(ValueError, match=r"stack.cell_key: layer must be an int in \[0, 2\)"):
        lstm_jax.stack(cell, 2).cell_key(jax.random.key(0), 2)
    with pytest.raises(TypeError, match=r"regularized_carry: cell must be"):
        R.regularized_carry(cell, (B,), jax.random.key(0))
