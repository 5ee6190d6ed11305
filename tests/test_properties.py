"""Invariants of the sequence code under hypothesis-drawn lengths, values and options.

Shapes are fixed (``[B, T, input]`` with tiny sizes) and the functions under test are jitted
with the cell static, so an example costs a compiled call, not a compilation; the drawn
quantities are what matters here: lengths (out-of-range ones included), data seeds, garbage
values, directions and cells. conftest.py sets the hypothesis profile.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import reference as ref
from hypothesis import given
from hypothesis import strategies as st

import lstm_jax

B, T, IN, H = ref.BATCH, ref.TIME, ref.INPUT, ref.HIDDEN
CELL_NAMES = ("lstm", "gru_reset_before", "simple_relu")  # custom-VJP, plain-autodiff, unbounded
CELLS = {name: ref.make_cell(name) for name in CELL_NAMES}
PARAMS = {name: ref.random_params(cell, IN, seed=3) for name, cell in CELLS.items()}

cell_names = st.sampled_from(CELL_NAMES)
lengths_in_range = st.lists(st.integers(0, T), min_size=B, max_size=B)
any_lengths = st.lists(st.integers(-2, T + 3), min_size=B, max_size=B)  # documented: clipped
seeds = st.integers(0, 2**16)
garbage = st.sampled_from([np.nan, np.inf, -np.inf, 1e30, -7.0])


@functools.partial(jax.jit, static_argnames=("cell", "reverse"))
def _unroll(cell, params, xs, lengths, *, reverse=False):
    return lstm_jax.unroll(cell, params, xs, seq_lengths=lengths, reverse=reverse)


@functools.partial(jax.jit, static_argnames=("cell", "reverse"))
def _unroll_grads(cell, params, xs, lengths, *, reverse=False):
    def loss(params, xs):
        carry, ys = lstm_jax.unroll(cell, params, xs, seq_lengths=lengths, reverse=reverse)
        leaves = jax.tree_util.tree_leaves(carry)
        return jnp.sum(jnp.sin(ys)) + sum(jnp.sum(c**2) for c in leaves)

    return jax.grad(loss, argnums=(0, 1))(params, xs)


@functools.partial(jax.jit, static_argnames=("cell", "impl"))
def _bidirectional(cell, params, xs, lengths, *, impl):
    return lstm_jax.bidirectional(cell, params, xs, seq_lengths=lengths, impl=impl)


@functools.partial(jax.jit, static_argnames=("cell", "impl"))
def _bidirectional_alone(cell, params, xs, *, impl):
    return lstm_jax.bidirectional(cell, params, xs, impl=impl)


IMPLS = ["scan", "split", "chunked"]


def _xs(seed):
    return ref.random_array((B, T, IN), seed=seed)


@given(name=cell_names, lengths=any_lengths, seed=seeds, value=garbage, reverse=st.booleans())
def test_garbage_past_length_changes_nothing(name, lengths, seed, value, reverse):
    cell, params, xs = CELLS[name], PARAMS[name], _xs(seed)
    lengths = np.asarray(lengths, np.int32)
    dirty = ref.with_garbage(xs, np.clip(lengths, 0, T), value)
    n = jnp.asarray(lengths)
    ref.assert_trees_equal(
        _unroll(cell, params, dirty, n, reverse=reverse),
        _unroll(cell, params, xs, n, reverse=reverse),
    )
    g_dirty = _unroll_grads(cell, params, dirty, n, reverse=reverse)
    ref.assert_all_finite(g_dirty)
    ref.assert_trees_equal(g_dirty, _unroll_grads(cell, params, xs, n, reverse=reverse))


@given(name=cell_names, lengths=lengths_in_range, seed=seeds, impl=st.sampled_from(IMPLS))
def test_bidirectional_padded_batch_equals_each_sequence_alone(name, lengths, seed, impl):
    cell, xs = CELLS[name], _xs(seed)
    params = (PARAMS[name], ref.random_params(cell, IN, seed=4))
    (carry_f, carry_b), ys = _bidirectional(cell, params, xs, jnp.asarray(lengths), impl=impl)
    for b, length in enumerate(lengths):
        row = lambda tree, b=b: jax.tree_util.tree_map(lambda a: a[b], tree)
        if length == 0:
            ref.assert_trees_equal(row(carry_f), cell.initial_carry())
            ref.assert_trees_equal(row(carry_b), cell.initial_carry())
            np.testing.assert_array_equal(np.asarray(ys[b]), 0.0)
            continue
        (alone_f, alone_b), alone_ys = _bidirectional_alone(cell, params, xs[b, :length], impl=impl)
        ref.assert_trees_close(ys[b, :length], alone_ys, atol=1e-5, rtol=1e-5)
        np.testing.assert_array_equal(np.asarray(ys[b, length:]), 0.0)
        ref.assert_trees_close(row(carry_f), alone_f, atol=1e-5, rtol=1e-5)
        ref.assert_trees_close(row(carry_b), alone_b, atol=1e-5, rtol=1e-5)


@given(name=cell_names, lengths=any_lengths, seed=seeds)
def test_scan_and_split_bidirectional_agree(name, lengths, seed):
    cell, xs = CELLS[name], _xs(seed)
    params = (PARAMS[name], ref.random_params(cell, IN, seed=5))
    n = jnp.asarray(lengths, jnp.int32)
    ref.assert_trees_close(
        _bidirectional(cell, params, xs, n, impl="scan"),
        _bidirectional(cell, params, xs, n, impl="split"),
        atol=1e-5,
        rtol=1e-5,
    )


@given(name=cell_names, lengths=any_lengths, seed=seeds, reverse=st.booleans())
def test_vmap_equals_batch(name, lengths, seed, reverse):
    cell, params, xs = CELLS[name], PARAMS[name], _xs(seed)
    n = jnp.asarray(lengths, jnp.int32)
    mapped = jax.vmap(lambda x, m: _unroll(cell, params, x, m, reverse=reverse))(xs, n)
    ref.assert_trees_close(mapped, _unroll(cell, params, xs, n, reverse=reverse), atol=1e-6)


def _flip_valid_prefix(a, lengths):
    """Reverses ``a[b, :lengths[b]]`` in place of each row ``b`` (the classic way)."""
    a = np.array(a)
    for b, length in enumerate(np.clip(lengths, 0, a.shape[1])):
        a[b, :length] = a[b, :length][::-1]
    return a


@given(name=cell_names, lengths=any_lengths, seed=seeds)
def test_reverse_is_flip_forward_flip(name, lengths, seed):
    """unroll(reverse=True) == flip each row's valid prefix, unroll forward, flip back."""
    cell, params, xs = CELLS[name], PARAMS[name], _xs(seed)
    n = jnp.asarray(lengths, jnp.int32)
    carry_r, ys_r = _unroll(cell, params, xs, n, reverse=True)
    flipped = jnp.asarray(_flip_valid_prefix(xs, np.asarray(lengths)))
    carry_f, ys_f = _unroll(cell, params, flipped, n)
    ref.assert_trees_close(ys_r, _flip_valid_prefix(ys_f, np.asarray(lengths)), atol=1e-6)
    ref.assert_trees_close(carry_r, carry_f, atol=1e-6)


@given(name=cell_names, lengths=any_lengths, seed=seeds, reverse=st.booleans())
def test_unroll_matches_the_numpy_loop(name, lengths, seed, reverse):
    cell, params, xs = CELLS[name], PARAMS[name], _xs(seed)
    carry, ys = _unroll(cell, params, xs, jnp.asarray(lengths, jnp.int32), reverse=reverse)
    ref_carry, ref_ys, _ = ref.ref_unroll(
        ref.kind_of(cell), params, xs, np.asarray(lengths), reverse=reverse
    )
    ref.assert_close(ys, ref_ys)
    ref.assert_carry_close(carry, ref_carry)
