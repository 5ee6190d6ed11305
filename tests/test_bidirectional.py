"""lstm_jax.bidirectional against the NumPy reference (which physically reverses each row's valid
prefix), merge modes, a different backward cell, every impl, carries."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref

import lstm_jax

B, T, IN, H = ref.BATCH, ref.TIME, ref.INPUT, ref.HIDDEN
LENGTHS = ref.LENGTHS  # [T, 2, 0]
IMPLS = ["scan", "split"]


def _setup(name="lstm", seed=0, batch=(B,), backward_name=None):
    cell = ref.make_cell(name)
    bcell = ref.make_cell(backward_name) if backward_name else cell
    params = (ref.random_params(cell, IN, seed=seed), ref.random_params(bcell, IN, seed=seed + 1))
    xs = ref.random_array((*batch, T, IN), seed=seed + 2)
    return cell, bcell, params, xs


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name", ref.CELL_NAMES)
def test_matches_reference_with_lengths(name, impl):
    cell, _, params, xs = _setup(name)
    (carry_f, carry_b), ys = lstm_jax.bidirectional(
        cell, params, xs, seq_lengths=jnp.asarray(LENGTHS), impl=impl
    )
    kind = ref.kind_of(cell)
    (ref_f, ref_b), ref_ys = ref.ref_bidirectional((kind, kind), params, xs, LENGTHS)
    assert ys.shape == (B, T, 2 * H)
    ref.assert_close(ys, ref_ys)
    ref.assert_carry_close(carry_f, ref_f)
    ref.assert_carry_close(carry_b, ref_b)


@pytest.mark.parametrize("merge", ["concat", "sum", "mean", "mul"])
@pytest.mark.parametrize("impl", IMPLS)
def test_merge_modes(merge, impl):
    cell, _, params, xs = _setup("gru_reset_after", seed=3)
    _, ys = lstm_jax.bidirectional(
        cell, params, xs, seq_lengths=jnp.asarray(LENGTHS), merge=merge, impl=impl
    )
    kind = ref.kind_of(cell)
    _, ref_ys = ref.ref_bidirectional((kind, kind), params, xs, LENGTHS, merge=merge)
    assert ys.shape == (B, T, 2 * H if merge == "concat" else H)
    ref.assert_close(ys, ref_ys)
    assert np.all(np.asarray(ys)[~ref.valid_mask((B,), T, LENGTHS)] == 0.0)


@pytest.mark.parametrize("impl", IMPLS)
def test_callable_merge_keeps_padding_zero(impl):
    """A merge that maps (0, 0) to non-zero (f + b + 1) still yields zeros past each length."""

    def merge(f, b):
        return f + 2.0 * b + 1.0

    cell, _, params, xs = _setup("lstm", seed=4)
    _, ys = lstm_jax.bidirectional(
        cell, params, xs, seq_lengths=jnp.asarray(LENGTHS), merge=merge, impl=impl
    )
    _, ref_ys = ref.ref_bidirectional(("lstm", "lstm"), params, xs, LENGTHS, merge=merge)
    ref.assert_close(ys, ref_ys)
    ys = np.asarray(ys)
    mask = ref.valid_mask((B,), T, LENGTHS)
    assert np.all(ys[~mask] == 0.0)
    assert np.all(ys[mask] != 0.0)


def test_callable_merge_without_lengths_is_applied_everywhere():
    cell, _, params, xs = _setup("simple_tanh", seed=5)
    _, ys = lstm_jax.bidirectional(cell, params, xs, merge=lambda f, b: f - b + 1.0)
    _, ref_ys = ref.ref_bidirectional(
        ("simple_tanh",) * 2, params, xs, merge=lambda f, b: f - b + 1.0
    )
    ref.assert_close(ys, ref_ys)


@pytest.mark.parametrize("names", [("lstm", "gru_reset_before"), ("simple_relu", "peephole")])
def test_different_backward_cell(names):
    forward, backward = names
    cell, bcell, params, xs = _setup(forward, seed=6, backward_name=backward)
    (carry_f, carry_b), ys = lstm_jax.bidirectional(
        cell, params, xs, seq_lengths=jnp.asarray(LENGTHS), backward_cell=bcell
    )
    (ref_f, ref_b), ref_ys = ref.ref_bidirectional(names, params, xs, LENGTHS)
    ref.assert_close(ys, ref_ys)
    ref.assert_carry_close(carry_f, ref_f)
    ref.assert_carry_close(carry_b, ref_b)


def test_backward_cell_of_another_width_concatenates():
    cell = lstm_jax.lstm(H)
    bcell = lstm_jax.gru(2)
    params = (ref.random_params(cell, IN, seed=7), ref.random_params(bcell, IN, seed=8))
    xs = ref.random_array((B, T, IN), seed=9)
    _, ys = lstm_jax.bidirectional(
        cell, params, xs, seq_lengths=jnp.asarray(LENGTHS), backward_cell=bcell
    )
    assert ys.shape == (B, T, H + 2)
    _, ref_ys = ref.ref_bidirectional(("lstm", "gru_reset_after"), params, xs, LENGTHS)
    ref.assert_close(ys, ref_ys)


@pytest.mark.parametrize("with_lengths", [True, False], ids=["lengths", "no_lengths"])
@pytest.mark.parametrize("name", ["lstm", "gru_reset_before", "simple_relu"])
def test_every_impl_agrees_with_the_scan(name, with_lengths):
    cell, _, params, xs = _setup(name, seed=11)
    c0 = (ref.random_carry(cell, (B,), seed=12), ref.random_carry(cell, (B,), seed=13))
    lengths = jnp.asarray(LENGTHS) if with_lengths else None
    options = dict(seq_lengths=lengths, initial_carry=c0)

    def loss(params, xs, impl):
        (cf, cb), ys = lstm_jax.bidirectional(cell, params, xs, impl=impl, **options)
        leaves = jax.tree_util.tree_leaves((cf, cb))
        return jnp.sum(ys * ys[..., ::-1]) + sum(jnp.sum(jnp.sin(c)) for c in leaves)

    grads = jax.value_and_grad(loss, argnums=(0, 1))
    want = grads(params, xs, "scan")
    for impl in ("split", lstm_jax.Split(hoist=True), lstm_jax.Chunked(every=2)):
        ref.assert_trees_close(grads(params, xs, impl), want, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("impl", IMPLS)
def test_carries_and_initial_carries(impl):
    """The forward carry is the state after each row's last valid step; the backward carry is
    the state after reading each row back to its first element; both start from the given
    initial carries (a row of length 0 returns them)."""
    cell, _, params, xs = _setup("peephole", seed=14)
    c0 = (ref.random_carry(cell, (B,), seed=15), ref.random_carry(cell, (B,), seed=16))
    (carry_f, carry_b), ys = lstm_jax.bidirectional(
        cell, params, xs, seq_lengths=jnp.asarray(LENGTHS), initial_carry=c0, impl=impl
    )
    (ref_f, ref_b), ref_ys = ref.ref_bidirectional(
        ("peephole",) * 2, params, xs, LENGTHS, (ref.np_carry(c0[0]), ref.np_carry(c0[1]))
    )
    ref.assert_close(ys, ref_ys)
    ref.assert_carry_close(carry_f, ref_f)
    ref.assert_carry_close(carry_b, ref_b)
    row = 2  # length 0
    for got, want in ((carry_f, c0[0]), (carry_b, c0[1])):
        ref.assert_trees_equal(
            jax.tree_util.tree_map(lambda a: a[row], got),
            jax.tree_util.tree_map(lambda a: a[row], want),
        )


@pytest.mark.parametrize("impl", IMPLS)
def test_backward_direction_is_unroll_reverse(impl):
    cell, _, params, xs = _setup("gru_reset_after", seed=17)
    lengths = jnp.asarray(LENGTHS)
    (carry_f, carry_b), ys = lstm_jax.bidirectional(
        cell, params, xs, seq_lengths=lengths, impl=impl
    )
    uf = lstm_jax.unroll(cell, params[0], xs, seq_lengths=lengths)
    ub = lstm_jax.unroll(cell, params[1], xs, seq_lengths=lengths, reverse=True)
    ref.assert_trees_close((carry_f, carry_b), (uf[0], ub[0]))
    ref.assert_trees_close(ys, jnp.concatenate([uf[1], ub[1]], axis=-1))


@pytest.mark.parametrize("impl", IMPLS)
def test_time_major_and_batch_dims(impl):
    cell, _, params, xs = _setup("lstm", seed=18, batch=(2, B))
    lengths = np.array([[5, 1, 0], [2, 4, 3]], np.int32)
    (cf, cb), ys = lstm_jax.bidirectional(
        cell,
        params,
        jnp.moveaxis(xs, -2, 0),
        seq_lengths=jnp.asarray(lengths),
        time_major=True,
        impl=impl,
    )
    (ref_f, ref_b), ref_ys = ref.ref_bidirectional(("lstm", "lstm"), params, xs, lengths)
    assert ys.shape == (T, 2, B, 2 * H)
    ref.assert_close(jnp.moveaxis(ys, 0, -2), ref_ys)
    ref.assert_carry_close(cf, ref_f)
    ref.assert_carry_close(cb, ref_b)


@pytest.mark.parametrize("impl", IMPLS)
def test_no_batch_dims(impl):
    cell, _, params, xs = _setup("cifg", seed=19, batch=())
    (cf, cb), ys = lstm_jax.bidirectional(
        cell, params, xs, seq_lengths=jnp.asarray(3, jnp.int32), impl=impl
    )
    (ref_f, ref_b), ref_ys = ref.ref_bidirectional(("cifg", "cifg"), params, xs, np.array(3))
    assert ys.shape == (T, 2 * H)
    ref.assert_close(ys, ref_ys)
    ref.assert_carry_close(cf, ref_f)
    ref.assert_carry_close(cb, ref_b)


@pytest.mark.parametrize("impl", IMPLS)
def test_garbage_past_length_changes_nothing(impl):
    cell, _, params, xs = _setup("lstm", seed=20)
    lengths = jnp.asarray(LENGTHS)
    dirty = ref.with_garbage(xs, LENGTHS, np.nan)

    def loss(params, xs):
        (cf, cb), ys = lstm_jax.bidirectional(
            cell, params, xs, seq_lengths=lengths, impl=impl, merge="mul"
        )
        return jnp.sum(ys**2) + jnp.sum(cf.c) + jnp.sum(cb.h)

    run = lambda xs: lstm_jax.bidirectional(
        cell, params, xs, seq_lengths=lengths, impl=impl, merge="mul"
    )
    ref.assert_trees_equal(run(dirty), run(xs))
    grad = jax.grad(loss, argnums=(0, 1))
    g_dirty = grad(params, dirty)
    ref.assert_all_finite(g_dirty)
    ref.assert_trees_equal(g_dirty, grad(params, xs))


@pytest.mark.parametrize("impl", IMPLS)
def test_gradients(impl, x64):
    from jax.test_util import check_grads

    cell = lstm_jax.gru(H, param_dtype=jnp.float64)
    params = (ref.random_params(cell, IN, seed=21), ref.random_params(cell, IN, seed=22))
    xs = ref.random_array((B, T, IN), seed=23, dtype=jnp.float64)
    lengths = jnp.asarray(LENGTHS)

    def run(params, xs):
        return lstm_jax.bidirectional(cell, params, xs, seq_lengths=lengths, impl=impl)

    check_grads(run, (params, xs), order=1, modes=("rev",))


def test_checkpointed_two_scans_match(x64):
    """Chunked checkpointing leaves outputs and gradients unchanged."""
    cell = lstm_jax.lstm(H, param_dtype=jnp.float64)
    params = (ref.random_params(cell, IN, seed=24), ref.random_params(cell, IN, seed=25))
    xs = ref.random_array((B, T, IN), seed=26, dtype=jnp.float64)
    lengths = jnp.asarray(LENGTHS)

    def loss(params, impl):
        _, ys = lstm_jax.bidirectional(cell, params, xs, seq_lengths=lengths, impl=impl)
        return jnp.sum(jnp.sin(ys))

    value_and_grad = jax.value_and_grad(loss)
    chunked = value_and_grad(params, lstm_jax.Chunked(every=2))
    ref.assert_trees_close(chunked, value_and_grad(params, "scan"), atol=1e-12)
