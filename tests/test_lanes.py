"""Batch lanes (lstm_jax.lanes): splitting rows into independent chains changes no number.

Every check compares lanes > 1 with the float64 NumPy loop of tests/reference.py or with
``lanes=1``, outputs, final carries and gradients, for every cell, with ragged lengths, both
directions, uneven lane sizes, several batch dimensions and the checkpointed path.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref
from hypothesis import given
from hypothesis import strategies as st

import lstm_jax
from lstm_jax import lanes

T, IN, H = ref.TIME, ref.INPUT, ref.HIDDEN
ROWS = 7  # odd, so that 2 and 3 lanes are uneven
LENGTHS7 = np.array([T, 2, 0, 4, 1, T, 3], np.int32)


def _setup(name, batch=(ROWS,), dtype=jnp.float32, seed=0):
    cell = ref.make_cell(name, param_dtype=dtype)
    params = ref.random_params(cell, IN, seed=seed)
    xs = ref.random_array((*batch, T, IN), seed=seed + 1, dtype=dtype)
    return cell, params, xs


@given(rows=st.integers(0, 300), num_lanes=st.integers(1, 40))
def test_lane_bounds_cover_the_batch_evenly(rows, num_lanes):
    bounds = lanes.lane_bounds(rows, num_lanes)
    assert len(bounds) == max(1, min(num_lanes, rows))
    assert bounds[0][0] == 0 and bounds[-1][1] == rows
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
    sizes = [e - s for s, e in bounds]
    assert max(sizes) - min(sizes) <= 1
    assert rows == 0 or min(sizes) >= 1


@given(rows=st.integers(1, 12), num_lanes=st.integers(1, 5), width=st.integers(1, 3))
def test_split_then_join_is_the_identity(rows, num_lanes, width):
    a = jnp.arange(rows * width * 2, dtype=jnp.float32).reshape(2, rows, width)
    tree = {"a": a, "none": None}
    bounds = lanes.lane_bounds(rows, num_lanes)
    parts = lanes.split(tree, bounds, axis=1)
    assert len(parts) == len(bounds)
    np.testing.assert_array_equal(lanes.join(parts, axis=1)["a"], a)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("name", ref.CELL_NAMES)
@pytest.mark.parametrize("num_lanes", [2, 3, ROWS, 20])
def test_unroll_in_lanes_matches_reference(name, num_lanes, reverse):
    cell, params, xs = _setup(name)
    c0 = ref.random_carry(cell, (ROWS,), seed=3)
    carry, ys = lstm_jax.unroll(
        cell,
        params,
        xs,
        seq_lengths=jnp.asarray(LENGTHS7),
        initial_carry=c0,
        reverse=reverse,
        lanes=num_lanes,
    )
    ref_carry, ref_ys, _ = ref.ref_unroll(
        ref.kind_of(cell), params, xs, LENGTHS7, ref.np_carry(c0), reverse=reverse
    )
    ref.assert_close(ys, ref_ys)
    ref.assert_carry_close(carry, ref_carry)


@pytest.mark.parametrize("name", ["lstm", "peephole", "gru_reset_after", "gru_reset_before"])
@pytest.mark.parametrize("custom_vjp", [True, False], ids=["custom_vjp", "autodiff"])
def test_gradients_do_not_depend_on_lanes(name, custom_vjp):
    cell, params, xs = _setup(name)
    c0 = ref.random_carry(cell, (ROWS,), seed=4)
    lengths = jnp.asarray(LENGTHS7)

    def loss(p, xs, c0, num_lanes):
        carry, ys = lstm_jax.unroll(
            cell,
            p,
            xs,
            seq_lengths=lengths,
            initial_carry=c0,
            custom_vjp=custom_vjp,
            lanes=num_lanes,
        )
        leaves = jax.tree_util.tree_leaves(carry)
        return jnp.sum(ys * jnp.cos(ys)) + sum(jnp.sum(c**2) for c in leaves)

    grad = jax.jit(jax.grad(loss, argnums=(0, 1, 2)), static_argnums=3)
    one = grad(params, xs, c0, 1)
    for num_lanes in (2, 3):
        ref.assert_trees_close(grad(params, xs, c0, num_lanes), one, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["lstm", "gru_reset_after"])
def test_lanes_check_grads_float64(name, x64):
    ref.check_unroll_grads(name, lanes=2)
    ref.check_unroll_grads(name, reverse=True, lanes=3)


def test_several_batch_dimensions_are_flattened_for_lanes():
    cell, params, xs = _setup("lstm", batch=(2, 3))
    lengths = np.array([[5, 1, 0], [2, 4, 3]], np.int32)
    carry, ys = lstm_jax.unroll(cell, params, xs, seq_lengths=jnp.asarray(lengths), lanes=4)
    ref_carry, ref_ys, _ = ref.ref_unroll("lstm", params, xs, lengths)
    assert ys.shape == (2, 3, T, H) and carry.h.shape == (2, 3, H)
    ref.assert_close(ys, ref_ys)
    ref.assert_carry_close(carry, ref_carry)


def test_lanes_without_a_batch_axis_is_one_chain():
    cell, params, xs = _setup("lstm", batch=())
    carry, ys = lstm_jax.unroll(cell, params, xs, lanes=4)
    ref_carry, ref_ys, _ = ref.ref_unroll("lstm", params, xs)
    ref.assert_close(ys, ref_ys)
    ref.assert_carry_close(carry, ref_carry)


def test_return_gates_and_checkpointing_in_lanes():
    cell, params, xs = _setup("lstm")
    lengths = jnp.asarray(LENGTHS7)
    _, ys1, gates1 = lstm_jax.unroll(
        cell, params, xs, seq_lengths=lengths, return_gates=True, lanes=1
    )
    _, ys3, gates3 = lstm_jax.unroll(
        cell, params, xs, seq_lengths=lengths, return_gates=True, lanes=3
    )
    ref.assert_trees_close(gates3, gates1)
    ref.assert_close(ys3, ys1)

    def loss(p, num_lanes, every):
        _, ys = lstm_jax.unroll(
            cell, p, xs, seq_lengths=lengths, lanes=num_lanes, checkpoint_every=every
        )
        return jnp.sum(ys**2)

    plain = jax.grad(loss)(params, 1, None)
    ref.assert_trees_close(jax.grad(loss)(params, 2, 2), plain, atol=1e-5, rtol=1e-5)


def test_bidirectional_and_stack_pass_lanes():
    cell, _, xs = _setup("lstm")
    lengths = jnp.asarray(LENGTHS7)
    pair = (cell.init(jax.random.key(1), IN), cell.init(jax.random.key(2), IN))
    _, ys1 = lstm_jax.bidirectional(cell, pair, xs, seq_lengths=lengths, lanes=1)
    _, ys2 = lstm_jax.bidirectional(cell, pair, xs, seq_lengths=lengths, lanes=2)
    ref.assert_close(ys2, ys1, atol=1e-6, rtol=1e-6)
    model = lstm_jax.stack(cell, 2, bidirectional=True)
    params = model.init(jax.random.key(3), IN)
    _, out1 = model.apply(params, xs, seq_lengths=lengths, lanes=1)
    _, out3 = model.apply(params, xs, seq_lengths=lengths, lanes=3)
    ref.assert_close(out3, out1, atol=1e-6, rtol=1e-6)


def test_lanes_under_vmap_and_jit():
    cell, params, xs = _setup("gru_reset_after", batch=(3, ROWS))

    def run(xs_row, num_lanes):
        return lstm_jax.unroll(cell, params, xs_row, lanes=num_lanes)[1]

    batched = jax.jit(jax.vmap(lambda x: run(x, 3)))(xs)
    ref.assert_close(batched, run(xs, 1), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "2"])
def test_bad_lanes_is_named(bad):
    cell, params, xs = _setup("lstm")
    with pytest.raises(ValueError, match=r"unroll: lanes must be a positive int"):
        lstm_jax.unroll(cell, params, xs, lanes=bad)
    pair = (params, params)
    with pytest.raises(ValueError, match=r"bidirectional: lanes must be"):
        lstm_jax.bidirectional(cell, pair, xs, lanes=bad)


@pytest.mark.parametrize(("rows", "num_lanes"), [(-1, 2), (3.0, 2), (True, 2), (4, 0)])
def test_lane_bounds_rejects_bad_sizes(rows, num_lanes):
    with pytest.raises(ValueError, match=r"lane_bounds: (batch_size|lanes) must be"):
        lanes.lane_bounds(rows, num_lanes)
