"""Packed rows (``resets``): several sequences back to back in one row run as if one by one.

The reference cuts every row into its sequences and runs each one alone through the NumPy loop
of ``reference.py`` (forward, or physically reversed), so it shares nothing with the in-scan
reset of the implementations.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref
from hypothesis import given, settings
from hypothesis import strategies as st

import lstm_jax

B, T, IN, H = 2, 6, ref.INPUT, ref.HIDDEN
IMPLS = {"scan": "scan", "split": "split", "chunked": lstm_jax.Chunked(every=4)}
# Row 0: sequences [0, 2) [2, 3) [3, 6); row 1: [0, 4) and [4, 5), then one padded step.
STARTS = np.zeros((B, T), bool)
STARTS[0, [0, 2, 3]] = True
STARTS[1, [4]] = True
LENGTHS = np.array([6, 5], np.int32)


def segments(starts_row, length):
    """``[(start, end), ...]``: the row's sequences within its valid prefix."""
    cuts = [0] + [t for t in range(1, length) if starts_row[t]] + [length]
    return [(s, e) for s, e in itertools.pairwise(cuts) if e > s]


def ref_packed(kind, params, xs, starts, lengths, c0, *, reverse=False):
    """Every sequence run alone from the row's initial carry; the final carry is the last
    sequence's (the first's in reverse), ``c0`` for an empty row."""
    xs = np.asarray(xs, np.float64)
    c0 = tuple(np.asarray(c, np.float64) for c in c0)
    ys = np.zeros((*xs.shape[:-1], H))
    final = [c.copy() for c in c0]
    for b in range(xs.shape[0]):
        row_c0 = tuple(c[b : b + 1] for c in c0)
        finals = []
        for s, e in segments(starts[b], int(lengths[b])):
            carry, out, _ = ref.ref_unroll(
                kind, params, xs[b : b + 1, s:e], initial_carry=row_c0, reverse=reverse
            )
            ys[b, s:e] = out[0]
            finals.append(carry)
        if finals:
            for k, c in enumerate(finals[0] if reverse else finals[-1]):
                final[k][b] = c[0]
    return tuple(final), ys


def _setup(name="lstm", seed=0, dtype=jnp.float32):
    cell = ref.make_cell(name, param_dtype=dtype)
    params = ref.random_params(cell, IN, seed=seed)
    xs = ref.random_array((B, T, IN), seed=seed + 1, dtype=dtype)
    c0 = ref.random_carry(cell, (B,), seed=seed + 2)
    return cell, params, xs, c0


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("impl", list(IMPLS))
def test_equals_sequences_one_by_one(impl, reverse):
    cell, params, xs, c0 = _setup()
    carry, ys = lstm_jax.unroll(
        cell,
        params,
        xs,
        initial_carry=c0,
        seq_lengths=jnp.asarray(LENGTHS),
        resets=jnp.asarray(STARTS),
        reverse=reverse,
        impl=IMPLS[impl],
    )
    ref_carry, ref_ys = ref_packed("lstm", params, xs, STARTS, LENGTHS, ref.np_carry(c0),
                                   reverse=reverse)  # fmt: skip
    ref.assert_close(ys, ref_ys)
    ref.assert_carry_close(carry, ref_carry)


@pytest.mark.parametrize("name", ["gru_reset_after", "simple_tanh", "peephole"])
def test_other_cells_equal_sequences_one_by_one(name):
    cell, params, xs, c0 = _setup(name)
    for reverse in (False, True):
        carry, ys = lstm_jax.unroll(
            cell, params, xs, initial_carry=c0, resets=jnp.asarray(STARTS), reverse=reverse
        )
        full = np.full((B,), T)
        ref_carry, ref_ys = ref_packed(
            ref.kind_of(cell), params, xs, STARTS, full, ref.np_carry(c0), reverse=reverse
        )
        ref.assert_close(ys, ref_ys)
        ref.assert_carry_close(carry, ref_carry)


def test_time_major_and_no_resets_at_all():
    cell, params, xs, c0 = _setup()
    xs_t = jnp.moveaxis(xs, 1, 0)
    carry, ys = lstm_jax.unroll(
        cell, params, xs_t, initial_carry=c0, resets=jnp.asarray(STARTS.T), time_major=True
    )
    ref_carry, ref_ys = ref_packed("lstm", params, xs, STARTS, np.full((B,), T), ref.np_carry(c0))
    ref.assert_close(jnp.moveaxis(ys, 0, 1), ref_ys)
    ref.assert_carry_close(carry, ref_carry)
    none = jnp.zeros((B, T), bool)
    plain = lstm_jax.unroll(cell, params, xs, initial_carry=c0)
    ref.assert_trees_equal(lstm_jax.unroll(cell, params, xs, initial_carry=c0, resets=none), plain)


@pytest.mark.parametrize("impl", list(IMPLS))
def test_bidirectional_equals_sequences_one_by_one(impl):
    cell, params_f, xs, c0 = _setup(seed=0)
    params_b = ref.random_params(cell, IN, seed=5)
    c0_b = ref.random_carry(cell, (B,), seed=6)
    (carry_f, carry_b), ys = lstm_jax.bidirectional(
        cell,
        (params_f, params_b),
        xs,
        seq_lengths=jnp.asarray(LENGTHS),
        resets=jnp.asarray(STARTS),
        initial_carry=(c0, c0_b),
        impl=IMPLS[impl],
    )
    ref_f, ys_f = ref_packed("lstm", params_f, xs, STARTS, LENGTHS, ref.np_carry(c0))
    ref_b, ys_b = ref_packed(
        "lstm", params_b, xs, STARTS, LENGTHS, ref.np_carry(c0_b), reverse=True
    )
    ref.assert_close(ys, np.concatenate([ys_f, ys_b], axis=-1))
    ref.assert_carry_close(carry_f, ref_f)
    ref.assert_carry_close(carry_b, ref_b)


@pytest.mark.parametrize(
    "bidirectional", [pytest.param(False, marks=pytest.mark.slow), True], ids=["uni", "bi"]
)
def test_stack_equals_each_sequence_through_the_stack(bidirectional):
    net = lstm_jax.stack(ref.make_cell("lstm"), 2, bidirectional=bidirectional, residual=True)
    params = net.init(jax.random.key(0), IN)
    xs = ref.random_array((B, T, IN), seed=1)
    carries, ys = net.apply(
        params, xs, seq_lengths=jnp.asarray(LENGTHS), resets=jnp.asarray(STARTS), impl="split"
    )
    assert ys.shape == (B, T, net.output_size)
    for b in range(B):
        segs = segments(STARTS[b], int(LENGTHS[b]))
        for s, e in segs:
            seg_carries, seg_ys = net.apply(params, xs[b : b + 1, s:e], impl="scan")
            ref.assert_close(ys[b, s:e], seg_ys[0])
            if bidirectional:  # forward: the last sequence's carry; backward: the first's
                for layer in range(2):
                    if e == segs[-1][1]:
                        ref.assert_close(carries[layer][0].h[b], seg_carries[layer][0].h[0])
                    if s == 0:
                        ref.assert_close(carries[layer][1].h[b], seg_carries[layer][1].h[0])
            elif e == segs[-1][1]:
                ref.assert_close(carries[-1].h[b], seg_carries[-1].h[0])
        assert np.all(np.asarray(ys[b, LENGTHS[b] :]) == 0.0)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("impl", list(IMPLS))
def test_no_gradient_crosses_a_reset(impl, reverse):
    """Outputs of row 0's last sequence [3, 6) depend on no input before it, and in reverse the
    first sequence [0, 2) on none after it; the initial carry reaches every sequence."""
    cell, params, xs, c0 = _setup()
    later = slice(3, 6) if not reverse else slice(0, 2)

    def loss(xs, c0):
        _, ys = lstm_jax.unroll(
            cell, params, xs, initial_carry=c0, resets=jnp.asarray(STARTS), reverse=reverse,
            impl=IMPLS[impl],
        )  # fmt: skip
        return jnp.sum(ys[0, later] ** 2)

    d_xs, d_c0 = jax.grad(loss, argnums=(0, 1))(xs, c0)
    d_xs = np.asarray(d_xs)
    outside = np.ones(T, bool)
    outside[later] = False
    assert np.all(d_xs[0, outside] == 0.0)
    assert np.all(d_xs[1] == 0.0)
    assert np.all(np.abs(d_xs[0, later]).sum(-1) > 0)
    assert np.any(np.asarray(d_c0.h[0]) != 0.0)


# The split derivative is the one written by hand; scan and chunked are JAX's own (slow: ~30 s).
SLOW_IMPLS = [pytest.param(k, marks=pytest.mark.slow) if k != "split" else k for k in IMPLS]


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("impl", SLOW_IMPLS)
def test_gradients_match_finite_differences(impl, reverse, x64):
    from jax.test_util import check_grads

    cell, params, xs, c0 = _setup(dtype=jnp.float64, seed=3)
    starts, lengths = jnp.asarray(STARTS), jnp.asarray(LENGTHS)

    def run(p, xs, c0):
        return lstm_jax.unroll(
            cell, p, xs, initial_carry=c0, seq_lengths=lengths, resets=starts, reverse=reverse,
            impl=IMPLS[impl],
        )  # fmt: skip

    check_grads(run, (params, xs, c0), order=1, modes=("rev", "fwd"))


@pytest.mark.slow
def test_gradients_equal_across_impls():
    cell, params, xs, c0 = _setup()

    def loss(p, xs, c0, impl):
        (cf, cb), ys = lstm_jax.bidirectional(
            cell, (p, p), xs, initial_carry=(c0, c0), seq_lengths=jnp.asarray(LENGTHS),
            resets=jnp.asarray(STARTS), impl=impl,
        )  # fmt: skip
        return jnp.sum(jnp.sin(ys)) + jnp.sum(cf.c * cb.h)

    grads = {k: jax.grad(loss, argnums=(0, 1, 2))(params, xs, c0, v) for k, v in IMPLS.items()}
    for k in ("split", "chunked"):
        ref.assert_trees_close(grads[k], grads["scan"], atol=1e-5, rtol=1e-5)


@settings(max_examples=6, deadline=None)
@given(
    starts=st.lists(st.lists(st.booleans(), min_size=T, max_size=T), min_size=B, max_size=B),
    lengths=st.lists(st.integers(0, T), min_size=B, max_size=B),
    reverse=st.booleans(),
    impl=st.sampled_from(list(IMPLS)),
)
def test_any_layout_equals_sequences_one_by_one(starts, lengths, reverse, impl):
    cell, params, xs, c0 = _setup()
    starts, lengths = np.array(starts, bool), np.array(lengths, np.int32)
    carry, ys = lstm_jax.unroll(
        cell, params, xs, initial_carry=c0, seq_lengths=jnp.asarray(lengths),
        resets=jnp.asarray(starts), reverse=reverse, impl=IMPLS[impl],
    )  # fmt: skip
    ref_carry, ref_ys = ref_packed("lstm", params, xs, starts, lengths, ref.np_carry(c0),
                                   reverse=reverse)  # fmt: skip
    ref.assert_close(ys, ref_ys)
    ref.assert_carry_close(carry, ref_carry)


def test_rejects_bad_resets():
    cell, params, xs, _ = _setup()
    with pytest.raises(TypeError, match=r"unroll: resets must be booleans \[\*batch, time\]"):
        lstm_jax.unroll(cell, params, xs, resets=jnp.zeros((B, T), jnp.int32))
    with pytest.raises(ValueError, match=r"unroll: resets must have shape \[\*batch, time\] = "
                                         r"\(2, 6\).*got shape \(6, 2\)"):  # fmt: skip
        lstm_jax.unroll(cell, params, xs, resets=jnp.zeros((T, B), bool))
    with pytest.raises(ValueError, match=r"resets must have shape \[time, \*batch\] = \(6, 2\)"):
        lstm_jax.unroll(
            cell, params, jnp.moveaxis(xs, 1, 0), resets=jnp.zeros((B, T), bool), time_major=True
        )
    with pytest.raises(TypeError, match="bidirectional: resets must be an array"):
        lstm_jax.bidirectional(cell, (params, params), xs, resets=[[True] * T] * B)


def test_flax_layers_pass_resets_on():
    from flax import nnx

    from lstm_jax.flax import linen as L
    from lstm_jax.flax import nnx as N

    cell = ref.make_cell("lstm")
    xs, starts, lengths = ref.random_array((B, T, IN), seed=1), jnp.asarray(STARTS), LENGTHS
    options = dict(seq_lengths=jnp.asarray(lengths), resets=starts)
    for module in (L.RNN(cell, reverse=True), L.Bidirectional(cell), L.LSTM(H, num_layers=2)):
        variables = module.init(jax.random.key(0), xs)
        params = L.core_params(variables)
        ys = module.apply(variables, xs, **options)
        if isinstance(module, L.RNN):
            want = lstm_jax.unroll(cell, params, xs, reverse=True, **options)[1]
        elif isinstance(module, L.Bidirectional):
            want = lstm_jax.bidirectional(cell, params, xs, **options)[1]
        else:
            want = module.core.apply(params, xs, **options)[1]
        ref.assert_trees_equal(ys, want)
    rnn = N.RNN(cell, IN, rngs=nnx.Rngs(0))
    bi = N.Bidirectional(cell, IN, rngs=nnx.Rngs(1))
    net = N.StackedRNN(lstm_jax.stack(cell, 2), IN, rngs=nnx.Rngs(2))
    ref_ys = ref_packed(
        "lstm", rnn.core_params(), xs, STARTS, lengths, ref.zero_carry("lstm", (B,), H)
    )[1]
    ref.assert_close(rnn(xs, **options), ref_ys)
    want = lstm_jax.bidirectional(cell, bi.core_params(), xs, **options)[1]
    ref.assert_trees_equal(bi(xs, **options), want)
    ref.assert_trees_equal(net(xs, **options), net.core.apply(net.core_params(), xs, **options)[1])
