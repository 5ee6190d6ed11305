"""lstm_jax._parallel (``impl="parallel"``): the associative scan over time equals a float64
NumPy step loop and the sequential implementation (outputs, final carry, gradients), with
lengths in both directions, resets, chunks, long and saturated sequences; cells without a
linear recurrence are refused by name."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref
from hypothesis import given
from hypothesis import strategies as st
from jax.test_util import check_grads

import lstm_jax
from lstm_jax.cells.min_rnn import MinGRUCell, MinLSTMCell
from lstm_jax.impl import IMPLS

B, T, IN, H = 3, 6, 3, 4
LENGTHS = np.array([6, 2, 0])
CELLS = {"min_gru": MinGRUCell(H), "min_lstm": MinLSTMCell(H)}
PARAMS = {name: ref.random_params(cell, IN, seed=3) for name, cell in CELLS.items()}
XS = ref.random_array((B, T, IN), seed=1)
H0 = ref.random_array((B, H), seed=2)


def np_sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def np_coefficients(name, p, x):
    """``(a, b)`` of ``h = a * h + b`` from the paper's equations, float64."""
    pre = x @ p["w_ih"] + p["b"]
    g = lambda k: np.where(k >= 0, k + 0.5, np_sigmoid(k))
    if name == "min_gru":
        k_z, k_n = np.split(pre, 2)
        return 1.0 - np_sigmoid(k_z), np_sigmoid(k_z) * g(k_n)
    k_f, k_i, k_g = np.split(pre, 3)
    f, i = np_sigmoid(k_f), np_sigmoid(k_i)
    return f / (f + i), i / (f + i) * g(k_g)


def numpy_run(name, params, xs, h0, lengths, reverse=False, resets=None, reset_h=None):
    """A step loop over ``xs [batch, time, input]`` in scan order; padded steps are skipped and
    ``resets [time, batch]`` (scan order) put ``reset_h`` back before a valid step."""
    p = {k: np.asarray(v, np.float64) for k, v in params._asdict().items()}
    xs = np.asarray(xs, np.float64)
    reset_h = np.asarray(h0 if reset_h is None else reset_h, np.float64)
    ys = np.zeros((*xs.shape[:2], H))
    final = np.array(h0, np.float64)
    for r in range(xs.shape[0]):
        h = final[r]
        for t in range(xs.shape[1] - 1, -1, -1) if reverse else range(xs.shape[1]):
            if t >= lengths[r]:
                continue
            if resets is not None and resets[t, r]:
                h = reset_h[r]
            a, b = np_coefficients(name, p, xs[r, t])
            h = a * h + b
            ys[r, t] = h
        final[r] = h
    return final, ys


def unroll(name, params, xs, h0, lengths, reverse, impl):
    return lstm_jax.unroll(
        CELLS[name], params, xs, initial_carry=h0, seq_lengths=lengths, reverse=reverse, impl=impl
    )


def loss(params, xs, h0, name, reverse, impl):
    carry, ys = unroll(name, params, xs, h0, jnp.asarray(LENGTHS), reverse, impl)
    return jnp.sum(jnp.sin(ys) * ys[..., ::-1]) + jnp.sum(carry**2)


grads = jax.jit(jax.grad(loss, argnums=(0, 1, 2)), static_argnums=(3, 4, 5))


@pytest.mark.parametrize(
    ("name", "reverse"), [("min_gru", False), ("min_lstm", True)], ids=["gru-fwd", "lstm-rev"]
)
def test_parallel_equals_numpy_and_sequential_gradients(name, reverse):
    params, lengths = PARAMS[name], jnp.asarray(LENGTHS)
    dirty = ref.with_garbage(XS, LENGTHS, np.nan)
    carry, ys = unroll(name, params, dirty, H0, lengths, reverse, "parallel")
    want_h, want_ys = numpy_run(name, params, XS, H0, LENGTHS, reverse)
    ref.assert_close(ys, want_ys, atol=2e-5)
    ref.assert_close(carry, want_h, atol=2e-5)
    np.testing.assert_array_equal(np.asarray(carry[2]), np.asarray(H0[2]))
    got = grads(params, dirty, H0, name, reverse, "parallel")
    want = grads(params, dirty, H0, name, reverse, "scan")
    ref.assert_all_finite(got)
    ref.assert_trees_close(got, want, atol=2e-5, rtol=1e-4)


_parallel_jit = jax.jit(unroll, static_argnums=(0, 5, 6))


@given(st.lists(st.integers(-1, T + 2), min_size=B, max_size=B), st.booleans())
def test_any_lengths_either_direction(lengths, reverse):
    name, lengths = "min_lstm", np.array(lengths, np.int32)
    carry, ys = _parallel_jit(name, PARAMS[name], XS, H0, jnp.asarray(lengths), reverse, "parallel")
    want_h, want_ys = numpy_run(name, PARAMS[name], XS, H0, np.clip(lengths, 0, T), reverse)
    ref.assert_close(ys, want_ys, atol=2e-5)
    ref.assert_close(carry, want_h, atol=2e-5)


def test_gradients_match_finite_differences_both_modes(x64):
    cell = MinGRUCell(H, param_dtype=jnp.float64)
    params = ref.random_params(cell, IN, seed=6)
    xs = ref.random_array((B, T, IN), seed=7, dtype=jnp.float64)
    h0 = ref.random_array((B, H), seed=8, dtype=jnp.float64)

    def run(params, xs, h0):
        lengths = jnp.asarray(LENGTHS)
        return lstm_jax.unroll(
            cell, params, xs, initial_carry=h0, seq_lengths=lengths, impl="parallel"
        )

    check_grads(jax.jit(run), (params, xs, h0), order=1, modes=("rev", "fwd"))


def _resets_and_reset_carry():
    resets = np.random.default_rng(9).random((T, B)) < 0.35
    return resets, ref.random_array((B, H), seed=10)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_resets_start_again_from_the_reset_carry(reverse):
    name = "min_gru"
    resets, reset_h = _resets_and_reset_carry()
    mask = np.arange(T)[:, None] < LENGTHS[None]
    xs_t = jnp.moveaxis(XS, 1, 0) * jnp.asarray(mask[..., None], jnp.float32)
    carry, ys = IMPLS["parallel"].run(
        CELLS[name], PARAMS[name], xs_t, H0, jnp.asarray(mask),
        reverse=reverse, resets=jnp.asarray(resets), reset_carry=reset_h,
    )  # fmt: skip
    want_h, want_ys = numpy_run(name, PARAMS[name], XS, H0, LENGTHS, reverse, resets, reset_h)
    ref.assert_close(jnp.moveaxis(ys, 0, 1), want_ys, atol=2e-5)
    ref.assert_close(carry, want_h, atol=2e-5)


@pytest.mark.slow
def test_reset_gradients_match_finite_differences(x64):
    cell = MinLSTMCell(H, param_dtype=jnp.float64)
    params = ref.random_params(cell, IN, seed=11)
    resets, _ = _resets_and_reset_carry()
    xs_t = ref.random_array((T, B, IN), seed=12, dtype=jnp.float64)
    h0 = ref.random_array((B, H), seed=13, dtype=jnp.float64)
    h_reset = ref.random_array((B, H), seed=14, dtype=jnp.float64)

    def run(params, xs_t, h0, h_reset):
        options = dict(reverse=True, resets=jnp.asarray(resets), reset_carry=h_reset)
        return IMPLS["parallel"].run(cell, params, xs_t, h0, None, **options)

    check_grads(jax.jit(run), (params, xs_t, h0, h_reset), order=1, modes=("rev",))


def test_bidirectional_and_chunks_run_the_parallel_scan():
    name, lengths = "min_lstm", jnp.asarray(LENGTHS)
    params = PARAMS[name]
    _, ys = lstm_jax.bidirectional(
        CELLS[name], (params, params), XS, seq_lengths=lengths, impl="parallel"
    )
    _, fwd = numpy_run(name, params, XS, np.zeros((B, H)), LENGTHS)
    _, bwd = numpy_run(name, params, XS, np.zeros((B, H)), LENGTHS, reverse=True)
    ref.assert_close(ys, np.concatenate([fwd, bwd], -1), atol=2e-5)
    chunked = lstm_jax.Chunked(every=4, inner="parallel")
    carry, ys = unroll(name, params, XS, H0, lengths, True, chunked)
    want_h, want_ys = numpy_run(name, params, XS, H0, LENGTHS, reverse=True)
    ref.assert_close(ys, want_ys, atol=2e-5)
    ref.assert_close(carry, want_h, atol=2e-5)


@pytest.mark.slow
def test_a_long_saturated_sequence_stays_accurate_in_float32():
    """3,000 steps with pre-activations up to ~30: the log-space scan keeps float32 error at the
    level of one step's (no product of thousands of gates is formed)."""
    name, steps = "min_gru", 3000
    xs = ref.random_array((1, steps, IN), seed=15, scale=10.0)
    h0 = ref.random_array((1, H), seed=16)
    lengths = jnp.asarray([steps - 7])
    carry, ys = unroll(name, PARAMS[name], xs, h0, lengths, False, "parallel")
    want_h, want_ys = numpy_run(name, PARAMS[name], xs, h0, [steps - 7])
    ref.assert_close(ys, want_ys, atol=1e-4, rtol=1e-4)
    ref.assert_close(carry, want_h, atol=1e-4, rtol=1e-4)


def test_cells_without_a_linear_recurrence_are_refused_by_name():
    cell = lstm_jax.LSTMCell(H)
    params = cell.init(jax.random.key(0), IN)
    with pytest.raises(TypeError, match=r"impl='parallel' needs a cell with a linear .*lstm"):
        lstm_jax.unroll(cell, params, XS, impl="parallel")
