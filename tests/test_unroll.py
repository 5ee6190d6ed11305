"""lstm_jax.unroll: every cell against the NumPy loop, and the seq_lengths contract."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref

import lstm_jax

B, T, IN, H = ref.BATCH, ref.TIME, ref.INPUT, ref.HIDDEN
LENGTHS = ref.LENGTHS  # [T, 2, 0]


def _setup(name="lstm", seed=0, batch=(B,)):
    cell = ref.make_cell(name)
    params = ref.random_params(cell, IN, seed=seed)
    xs = ref.random_array((*batch, T, IN), seed=seed + 1)
    return cell, params, xs


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("name", ref.CELL_NAMES)
def test_matches_reference_with_lengths(name, reverse):
    ref.check_unroll_matches_reference(name, reverse=reverse)


@pytest.mark.parametrize("batch", [(), (2, B)], ids=["no_batch", "two_batch_dims"])
@pytest.mark.parametrize("name", ["lstm", "gru_reset_after"])
def test_matches_reference_any_batch_dims(name, batch):
    cell, params, xs = _setup(name, batch=batch)
    lengths = np.array(3, np.int32) if batch == () else np.array([[5, 1, 0], [2, 4, 3]], np.int32)
    for reverse in (False, True):
        carry, ys = lstm_jax.unroll(
            cell, params, xs, seq_lengths=jnp.asarray(lengths), reverse=reverse
        )
        ref_carry, ref_ys, _ = ref.ref_unroll(
            ref.kind_of(cell), params, xs, lengths, reverse=reverse
        )
        assert ys.shape == (*batch, T, H)
        ref.assert_close(ys, ref_ys)
        ref.assert_carry_close(carry, ref_carry)


def test_without_lengths_runs_every_step():
    cell, params, xs = _setup("peephole")
    carry, ys = lstm_jax.unroll(cell, params, xs)
    ref_carry, ref_ys, _ = ref.ref_unroll("peephole", params, xs)
    ref.assert_close(ys, ref_ys)
    ref.assert_carry_close(carry, ref_carry)


def test_empty_batch():
    cell, params, _ = _setup()
    xs = jnp.zeros((0, T, IN))
    carry, ys = lstm_jax.unroll(cell, params, xs, seq_lengths=jnp.zeros((0,), jnp.int32))
    assert ys.shape == (0, T, H)
    assert carry.h.shape == carry.c.shape == (0, H)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_outputs_past_length_are_exactly_zero(reverse):
    cell, params, xs = _setup("gru_reset_before")
    _, ys = lstm_jax.unroll(cell, params, xs, seq_lengths=jnp.asarray(LENGTHS), reverse=reverse)
    ys = np.asarray(ys)
    mask = ref.valid_mask((B,), T, LENGTHS)
    assert np.all(ys[~mask] == 0.0)
    assert np.all(np.any(ys[mask] != 0.0, axis=-1))


@pytest.mark.parametrize("name", ["lstm", "simple_tanh"])
def test_final_carry_is_after_each_rows_last_valid_step(name):
    cell, params, xs = _setup(name)
    c0 = ref.random_carry(cell, (B,), seed=3)
    carry, _ = lstm_jax.unroll(cell, params, xs, seq_lengths=jnp.asarray(LENGTHS), initial_carry=c0)
    for b, length in enumerate(LENGTHS):
        row_c0 = jax.tree_util.tree_map(lambda c, b=b: c[b], c0)
        row_carry = jax.tree_util.tree_map(lambda c, b=b: c[b], carry)
        expected = row_c0
        for t in range(length):  # stepping the cell by hand over the valid prefix
            expected, _ = cell.step(params, expected, xs[b, t])
        ref.assert_trees_close(row_carry, expected, atol=1e-6)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_length_zero_returns_initial_carry(reverse):
    cell, params, xs = _setup("cifg")
    c0 = ref.random_carry(cell, (B,), seed=4)
    carry, ys = lstm_jax.unroll(
        cell,
        params,
        xs,
        seq_lengths=jnp.zeros((B,), jnp.int32),
        initial_carry=c0,
        reverse=reverse,
    )
    ref.assert_trees_equal(carry, c0)
    np.testing.assert_array_equal(np.asarray(ys), 0.0)


def test_reverse_reads_each_row_from_its_own_last_element():
    """The first reverse step of a row of length L consumes x[L-1], from the initial carry, and
    its output lands at position L-1."""
    cell, params, xs = _setup("lstm")
    _, ys = lstm_jax.unroll(cell, params, xs, seq_lengths=jnp.asarray(LENGTHS), reverse=True)
    for b, length in enumerate(LENGTHS):
        if length == 0:
            continue
        _, y_first = cell.step(params, cell.initial_carry(), xs[b, length - 1])
        ref.assert_trees_close(ys[b, length - 1], y_first, atol=1e-6)


def test_reverse_without_lengths_is_flip_unroll_flip():
    cell, params, xs = _setup("gru_reset_after")
    carry_r, ys_r = lstm_jax.unroll(cell, params, xs, reverse=True)
    carry_f, ys_f = lstm_jax.unroll(cell, params, jnp.flip(xs, -2))
    ref.assert_trees_close(ys_r, jnp.flip(ys_f, -2))
    ref.assert_trees_close(carry_r, carry_f)


@pytest.mark.parametrize("garbage", [np.nan, -np.inf], ids=str)  # more in test_properties
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_garbage_past_length_changes_nothing(reverse, garbage):
    """Neither outputs, carries nor gradients (wrt params and valid inputs) see the padding."""
    cell, params, xs = _setup("lstm")
    lengths = jnp.asarray(LENGTHS)
    dirty = ref.with_garbage(xs, LENGTHS, garbage)

    def loss(p, xs):
        carry, ys = lstm_jax.unroll(cell, p, xs, seq_lengths=lengths, reverse=reverse)
        return jnp.sum(ys**2) + jnp.sum(carry.h) + jnp.sum(carry.c**2)

    clean_out = lstm_jax.unroll(cell, params, xs, seq_lengths=lengths, reverse=reverse)
    dirty_out = lstm_jax.unroll(cell, params, dirty, seq_lengths=lengths, reverse=reverse)
    ref.assert_trees_equal(dirty_out, clean_out)

    grad = jax.grad(loss, argnums=(0, 1))
    g_clean, g_dirty = grad(params, xs), grad(params, dirty)
    ref.assert_all_finite(g_dirty)
    ref.assert_trees_equal(g_dirty, g_clean)
    # The gradient wrt the padding itself is exactly zero.
    pad = ~ref.valid_mask((B,), T, LENGTHS)
    assert np.all(np.asarray(g_dirty[1])[pad] == 0.0)


@pytest.mark.parametrize("name", ["lstm", "gru_reset_before"])
def test_time_major_is_the_same_computation(name):
    cell, params, xs = _setup(name)
    c0 = ref.random_carry(cell, (B,), seed=5)
    lengths = jnp.asarray(LENGTHS)
    for reverse in (False, True):
        carry, ys = lstm_jax.unroll(
            cell, params, xs, seq_lengths=lengths, initial_carry=c0, reverse=reverse
        )
        carry_t, ys_t = lstm_jax.unroll(
            cell,
            params,
            jnp.swapaxes(xs, 0, 1),
            seq_lengths=lengths,
            initial_carry=c0,
            reverse=reverse,
            time_major=True,
        )
        assert ys_t.shape == (T, B, H)
        ref.assert_trees_close(jnp.swapaxes(ys_t, 0, 1), ys)
        ref.assert_trees_close(carry_t, carry)
        _, ref_ys, _ = ref.ref_unroll(
            ref.kind_of(cell),
            params,
            jnp.swapaxes(xs, 0, 1),
            LENGTHS,
            ref.np_carry(c0),
            reverse=reverse,
            time_major=True,
        )
        ref.assert_close(ys_t, ref_ys)


def test_lengths_above_time_act_as_time_and_negative_as_zero():
    """Documented: lengths are not checked against time; > time acts as time, < 0 as 0."""
    cell, params, xs = _setup("lstm")
    c0 = ref.random_carry(cell, (B,), seed=6)
    odd = jnp.asarray([T + 7, -3, 2], jnp.int32)
    clipped = jnp.asarray([T, 0, 2], jnp.int32)
    for reverse in (False, True):
        got = lstm_jax.unroll(cell, params, xs, seq_lengths=odd, initial_carry=c0, reverse=reverse)
        want = lstm_jax.unroll(
            cell, params, xs, seq_lengths=clipped, initial_carry=c0, reverse=reverse
        )
        ref.assert_trees_equal(got, want)
        _, ref_ys, _ = ref.ref_unroll(
            "lstm", params, xs, np.asarray(odd), ref.np_carry(c0), reverse=reverse
        )
        ref.assert_close(got[1], ref_ys)


@pytest.mark.parametrize("name", ["peephole", "gru_reset_after", "simple_relu"])
def test_initial_carry_is_used(name):
    cell, params, xs = _setup(name)
    c0 = ref.random_carry(cell, (B,), seed=7)
    carry, ys = lstm_jax.unroll(cell, params, xs, initial_carry=c0)
    _, ys_zero = lstm_jax.unroll(cell, params, xs)
    assert not np.allclose(np.asarray(ys), np.asarray(ys_zero), atol=1e-4)
    ref_carry, ref_ys, _ = ref.ref_unroll(ref.kind_of(cell), params, xs, None, ref.np_carry(c0))
    ref.assert_close(ys, ref_ys)
    ref.assert_carry_close(carry, ref_carry)


IMPLS = {
    "scan": "scan",
    "split": "split",
    "scan_hoisted_unroll2": lstm_jax.Scan(unroll=2, hoist=True),
    "split_hoisted_unroll2": lstm_jax.Split(unroll=2, hoist=True),
    "chunked2": lstm_jax.Chunked(every=2),
    "chunked2_scan": lstm_jax.Chunked(every=2, inner="scan"),
}


@pytest.mark.parametrize("impl", list(IMPLS.values()), ids=list(IMPLS))
@pytest.mark.parametrize("name", ["lstm", "gru_reset_before"])
def test_every_impl_gives_the_reference_numbers(name, impl):
    cell, params, xs = _setup(name)
    c0 = ref.random_carry(cell, (B,), seed=8)
    for reverse in (False, True):
        carry, ys = lstm_jax.unroll(
            cell,
            params,
            xs,
            seq_lengths=jnp.asarray(LENGTHS),
            initial_carry=c0,
            reverse=reverse,
            impl=impl,
        )
        ref_carry, ref_ys, _ = ref.ref_unroll(
            ref.kind_of(cell), params, xs, LENGTHS, ref.np_carry(c0), reverse=reverse
        )
        ref.assert_close(ys, ref_ys)
        ref.assert_carry_close(carry, ref_carry)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("name", ref.CELL_NAMES)
def test_gates_match_reference(name, reverse):
    cell, params, xs = _setup(name)
    gates = lstm_jax.gates(cell, params, xs, seq_lengths=jnp.asarray(LENGTHS), reverse=reverse)
    _ref_carry, _ref_ys, ref_gates = ref.ref_unroll(
        ref.kind_of(cell), params, xs, LENGTHS, reverse=reverse
    )
    ref.assert_gates_close(gates, ref_gates)  # the reference gates are zero past each length
    for g in gates:
        assert g.shape == (B, T, H)


def test_gates_time_major():
    cell, params, xs = _setup("lstm")
    gates = lstm_jax.gates(
        cell, params, jnp.swapaxes(xs, 0, 1), seq_lengths=jnp.asarray(LENGTHS), time_major=True
    )
    _, _, ref_gates = ref.ref_unroll("lstm", params, xs, LENGTHS)
    ref_gates = {k: np.swapaxes(v, 0, 1) for k, v in ref_gates.items()}
    ref.assert_gates_close(gates, ref_gates)


@pytest.mark.parametrize(
    "reverse", [pytest.param(False, marks=pytest.mark.slow), True], ids=["forward", "reverse"]
)
def test_scan_gradients_both_modes(reverse, x64):
    """impl="scan": forward-mode (jvp) and reverse-mode through the masked scan."""
    ref.check_unroll_grads("peephole", reverse=reverse, modes=("fwd", "rev"), impl="scan")


@pytest.mark.parametrize("name", ["peephole", "gru_reset_after", "gru_reset_before"])
def test_default_gradients_both_modes(name, x64):
    """The default (the split derivative on CPU): forward and reverse mode against finite
    differences, for cells whose step reads parameters of its own (peepholes, b_hn, W_hn)."""
    ref.check_unroll_grads(name, reverse=True, modes=("fwd", "rev"))


@pytest.mark.parametrize(
    "reverse", [pytest.param(False, marks=pytest.mark.slow), True], ids=["forward", "reverse"]
)
def test_split_gradients_hoisted_projection(reverse, x64):
    ref.check_unroll_grads(
        "lstm", reverse=reverse, modes=("fwd", "rev"), impl=lstm_jax.Split(unroll=2, hoist=True)
    )


@pytest.mark.parametrize(
    "reverse", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["forward", "reverse"]
)
def test_chunked_gradients(reverse, x64):
    """Chunks of 2 over TIME=5 steps: chunks that do not divide the time axis."""
    ref.check_unroll_grads("gru_reset_after", reverse=reverse, impl=lstm_jax.Chunked(every=2))


def _loss_and_grads(cell, params, xs, c0, lengths, **options):
    def loss(p, xs, c0):
        carry, ys = lstm_jax.unroll(cell, p, xs, seq_lengths=lengths, initial_carry=c0, **options)
        leaves = jax.tree_util.tree_leaves(carry)
        return jnp.sum(ys * ys[..., ::-1]) + sum(jnp.sum(jnp.sin(c)) for c in leaves)

    return jax.value_and_grad(loss, argnums=(0, 1, 2))(params, xs, c0)


# float32 gradients of two different (exact) algorithms: summation order differs.
GRAD_ATOL, GRAD_RTOL = 2e-5, 1e-4


@pytest.mark.parametrize("name", ref.CELL_NAMES)
def test_split_matches_plain_autodiff(name):
    """The split (cuDNN-style) derivative gives the gradients of plain autodiff of the scan,
    wrt params, xs and the initial carry, both directions, with the projection hoisted (the
    in-loop form is checked against finite differences in tests/cells)."""
    cell, params, xs = _setup(name, seed=20)
    c0 = ref.random_carry(cell, (B,), seed=21)
    lengths = jnp.asarray(LENGTHS)
    for reverse in (False, True):
        plain = _loss_and_grads(cell, params, xs, c0, lengths, impl="scan", reverse=reverse)
        got = _loss_and_grads(
            cell, params, xs, c0, lengths, impl=lstm_jax.Split(hoist=True), reverse=reverse
        )
        ref.assert_trees_close(got, plain, atol=GRAD_ATOL, rtol=GRAD_RTOL)


@pytest.mark.parametrize("name", ["lstm", pytest.param("gru_reset_before", marks=pytest.mark.slow)])
def test_chunked_matches_plain_autodiff(name):
    cell, params, xs = _setup(name, seed=26)
    c0 = ref.random_carry(cell, (B,), seed=27)
    lengths = jnp.asarray(LENGTHS)
    for reverse in (False, True):
        plain = _loss_and_grads(cell, params, xs, c0, lengths, impl="scan", reverse=reverse)
        for chunk in (2, 5):
            got = _loss_and_grads(
                cell, params, xs, c0, lengths, impl=lstm_jax.Chunked(every=chunk), reverse=reverse
            )
            ref.assert_trees_close(got, plain, atol=GRAD_ATOL, rtol=GRAD_RTOL)


@pytest.mark.parametrize("batch", [(), (2, B)], ids=["no_batch", "two_batch_dims"])
def test_split_with_any_batch_dims_and_time_major(batch):
    cell, params, xs = _setup("peephole", seed=22, batch=batch)
    c0 = ref.random_carry(cell, batch, seed=23)
    lengths = jnp.asarray(np.full(batch, 3, np.int32))
    for time_major in (False, True):
        x_in = jnp.moveaxis(xs, -2, 0) if time_major else xs
        plain = _loss_and_grads(cell, params, x_in, c0, lengths, impl="scan", time_major=time_major)
        got = _loss_and_grads(cell, params, x_in, c0, lengths, impl="split", time_major=time_major)
        ref.assert_trees_close(got, plain, atol=GRAD_ATOL, rtol=GRAD_RTOL)


@pytest.mark.parametrize("chunk", [1, 2, 4, 5, 9, None])
def test_chunked_gives_the_same_outputs(chunk):
    cell, params, xs = _setup("cifg", seed=24)
    c0 = ref.random_carry(cell, (B,), seed=25)
    for reverse in (False, True):
        got = lstm_jax.unroll(
            cell,
            params,
            xs,
            seq_lengths=jnp.asarray(LENGTHS),
            initial_carry=c0,
            reverse=reverse,
            impl=lstm_jax.Chunked(every=chunk),
        )
        ref_carry, ref_ys, _ = ref.ref_unroll(
            "cifg", params, xs, LENGTHS, ref.np_carry(c0), reverse=reverse
        )
        ref.assert_close(got[1], ref_ys)
        ref.assert_carry_close(got[0], ref_carry)


def test_gradients_match_finite_differences_of_the_reference(x64):
    """jax.grad of unroll against central differences of the NumPy loop itself (wrt one weight
    entry per matrix and a valid input), so the reference also vouches for the gradients."""
    cell = lstm_jax.gru(H, reset_after=False, param_dtype=jnp.float64)
    params = ref.random_params(cell, IN, seed=9)
    xs = ref.random_array((B, T, IN), seed=10, dtype=jnp.float64)
    lengths = jnp.asarray(LENGTHS)

    def loss(p, xs):
        _, ys = lstm_jax.unroll(cell, p, xs, seq_lengths=lengths, reverse=True)
        return jnp.sum(ys**2)

    def ref_loss(p_np, xs_np):
        _, ys, _ = ref.ref_unroll("gru_reset_before", p_np, xs_np, LENGTHS, reverse=True)
        return np.sum(ys**2)

    g_params, g_xs = jax.grad(loss, argnums=(0, 1))(params, xs)
    p_np, xs_np = ref.np_params(params), np.asarray(xs)
    eps = 1e-6
    for field, index in [("w_ih", (1, 5)), ("w_hh", (2, 9)), ("b", (7,))]:
        plus = {**p_np, field: p_np[field].copy()}
        minus = {**p_np, field: p_np[field].copy()}
        plus[field][index] += eps
        minus[field][index] -= eps
        fd = (ref_loss(plus, xs_np) - ref_loss(minus, xs_np)) / (2 * eps)
        np.testing.assert_allclose(np.asarray(getattr(g_params, field))[index], fd, rtol=1e-5)
    index = (1, 1, 2)  # row 1 has length 2: a valid input
    plus, minus = xs_np.copy(), xs_np.copy()
    plus[index] += eps
    minus[index] -= eps
    fd = (ref_loss(p_np, plus) - ref_loss(p_np, minus)) / (2 * eps)
    np.testing.assert_allclose(np.asarray(g_xs)[index], fd, rtol=1e-5)
