"""The minimal gated unit (lstm_jax/cells/mgu.py) against a float64 NumPy reference written here.

The reference runs each row over its own valid prefix (reversed for the backward direction), so
it shares nothing with the masking of ``lstm_jax.unroll``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref
from hypothesis import given
from hypothesis import strategies as st
from jax.test_util import check_grads

import lstm_jax
from lstm_jax import checkpoint
from lstm_jax.cells.mgu import MGUCell, MGUGates, MGUParams

B, T, IN, H = 3, 5, 2, 4
LENGTHS = np.array([5, 2, 0], np.int32)
CELL = MGUCell(H)
PARAMS = ref.random_params(CELL, IN, seed=0)
XS = ref.random_array((B, T, IN), seed=1)
CARRY0 = ref.random_carry(CELL, (B,), seed=2)
IMPLS = ("scan", "split", lstm_jax.Chunked(every=2))


# ---- the reference --------------------------------------------------------------------------
def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def numpy_step(p, h, x):
    """One MGU step in float64, from the paper's equations (``h``, ``x``: ``[hidden]``,
    ``[input]``)."""
    w_xf, w_xn = p["w_ih"][:, :H], p["w_ih"][:, H:]
    w_hf, w_hn = p["w_hh"][:, :H], p["w_hh"][:, H:]
    b = np.zeros(2 * H) if p["b"] is None else p["b"]
    f = _sigmoid(x @ w_xf + h @ w_hf + b[:H])
    n = np.tanh(x @ w_xn + (f * h) @ w_hn + b[H:])
    return (1.0 - f) * h + f * n


def numpy_unroll(params, xs, lengths, h0, reverse=False):
    """``(final [B, H], ys [B, T, H])``: each row run over its valid prefix only."""
    p = ref.np_params(params)
    xs, h0 = np.asarray(xs, np.float64), np.asarray(h0, np.float64)
    ys = np.zeros((xs.shape[0], xs.shape[1], H))
    final = np.zeros((xs.shape[0], H))
    for r, n in enumerate(lengths):
        h = h0[r]
        for t in range(n - 1, -1, -1) if reverse else range(n):
            h = numpy_step(p, h, xs[r, t])
            ys[r, t] = h
        final[r] = h
    return final, ys


# ---- shared jitted runs (one compile each) --------------------------------------------------
@functools.partial(jax.jit, static_argnames=("cell", "reverse", "impl"))
def run(cell, params, xs, lengths, carry, reverse=False, impl="auto"):
    return lstm_jax.unroll(
        cell, params, xs, seq_lengths=lengths, initial_carry=carry, reverse=reverse, impl=impl
    )


def _loss(params, xs, carry, lengths, reverse, impl):
    final, ys = lstm_jax.unroll(
        CELL, params, xs, seq_lengths=lengths, initial_carry=carry, reverse=reverse, impl=impl
    )
    return jnp.sum(jnp.sin(3.0 * ys)) + jnp.sum(final * final)


@jax.jit
def every_impl(params, xs, carry, lengths):
    """``{(impl, reverse): (outputs, gradients in params, xs and carry)}``, one compile."""
    out = {}
    for i, impl in enumerate(IMPLS):
        for reverse in (False, True):
            run_ = lstm_jax.unroll(
                CELL, params, xs, seq_lengths=lengths, initial_carry=carry, reverse=reverse,
                impl=impl,
            )  # fmt: skip
            grad = jax.grad(_loss, argnums=(0, 1, 2))(params, xs, carry, lengths, reverse, impl)
            out[i, reverse] = (run_, grad)
    return out


# ---- numbers --------------------------------------------------------------------------------
def test_init_layout():
    params = CELL.init(jax.random.key(0), IN)
    assert isinstance(params, MGUParams)
    assert (params.w_ih.shape, params.w_hh.shape, params.b.shape) == ((IN, 2 * H), (H, 2 * H), (8,))
    assert MGUCell(H, use_bias=False).init(jax.random.key(0), IN).b is None


@pytest.mark.parametrize("use_bias", [True, False])
def test_step_matches_numpy(use_bias):
    cell = MGUCell(H, use_bias=use_bias)
    params = ref.random_params(cell, IN, seed=3)
    h, y = cell.step(params, CARRY0, XS[:, 0])
    p = ref.np_params(params)
    want = np.stack([numpy_step(p, np.asarray(CARRY0[r], np.float64), XS[r, 0]) for r in range(B)])
    ref.assert_close(h, want)
    ref.assert_close(y, want)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_unroll_on_a_padded_batch_matches_numpy(reverse):
    dirty = ref.with_garbage(XS, LENGTHS, np.nan)
    final, ys = run(CELL, PARAMS, dirty, jnp.asarray(LENGTHS), CARRY0, reverse=reverse)
    want_final, want_ys = numpy_unroll(PARAMS, XS, LENGTHS, CARRY0, reverse)
    ref.assert_close(ys, want_ys)
    ref.assert_close(final, want_final)
    # a row of length 0 keeps its initial carry exactly, and its outputs are exactly zero
    np.testing.assert_array_equal(np.asarray(final[2]), np.asarray(CARRY0[2]))
    np.testing.assert_array_equal(np.asarray(ys[2]), 0.0)


def test_bidirectional_matches_numpy():
    params_b = ref.random_params(CELL, IN, seed=4)
    _, ys = lstm_jax.bidirectional(CELL, (PARAMS, params_b), XS, seq_lengths=jnp.asarray(LENGTHS))
    zeros = np.zeros((B, H))
    _, fwd = numpy_unroll(PARAMS, XS, LENGTHS, zeros)
    _, bwd = numpy_unroll(params_b, XS, LENGTHS, zeros, reverse=True)
    ref.assert_close(ys, np.concatenate([fwd, bwd], -1))


def test_gates_are_f_and_n():
    gates = lstm_jax.gates(CELL, PARAMS, XS, seq_lengths=jnp.asarray(LENGTHS))
    assert isinstance(gates, MGUGates)
    p = ref.np_params(PARAMS)
    h = np.zeros(H)
    x0 = np.asarray(XS[0, 0], np.float64)
    ref.assert_close(gates.f[0, 0], _sigmoid(x0 @ p["w_ih"][:, :H] + p["b"][:H] + h))
    np.testing.assert_array_equal(np.asarray(gates.n[1, 2:]), 0.0)


def test_every_impl_gives_the_same_numbers_and_gradients():
    results = every_impl(PARAMS, XS, CARRY0, jnp.asarray(LENGTHS))
    for (i, reverse), got in results.items():
        want = results[0, reverse]  # the plain scan
        ref.assert_trees_close(got[0], want[0], atol=1e-6, rtol=1e-6)
        ref.assert_trees_close(got[1], want[1], atol=1e-5, rtol=1e-5)
        # every field and the carry have a gradient (none is silently cut off)
        for leaf in jax.tree.leaves(got[1]):
            assert float(jnp.max(jnp.abs(leaf))) > 0, (IMPLS[i], reverse)


def test_gradients_match_finite_differences(x64):
    cell = MGUCell(3, param_dtype=jnp.float64)
    params = ref.random_params(cell, IN, seed=5)
    xs = ref.random_array((2, 3, IN), seed=6, dtype=jnp.float64)
    lengths = jnp.asarray([3, 1])

    @jax.jit
    def f(params, xs):  # the default impl (the split derivative on CPU)
        return lstm_jax.unroll(cell, params, xs, seq_lengths=lengths)

    # Reverse mode is the transpose of the split derivative's custom JVP, so checking it
    # against finite differences checks the JVP too (forward mode is in test_conformance).
    check_grads(f, (params, xs), order=1, modes=("rev",))


# ---- variable-length properties -------------------------------------------------------------
@given(
    lengths=st.lists(st.integers(0, T), min_size=B, max_size=B),
    garbage=st.sampled_from([np.nan, np.inf, -1e30, 7.0]),
)
def test_garbage_past_a_length_changes_nothing(lengths, garbage):
    lengths = np.asarray(lengths, np.int32)
    clean = run(CELL, PARAMS, XS, jnp.asarray(lengths), CARRY0)
    dirty = run(CELL, PARAMS, ref.with_garbage(XS, lengths, garbage), jnp.asarray(lengths), CARRY0)
    ref.assert_trees_equal(clean, dirty)
    results = every_impl(PARAMS, ref.with_garbage(XS, lengths, garbage), CARRY0, lengths)
    for _, (d_params, d_xs, d_carry) in results.values():
        ref.assert_all_finite((d_params, d_xs, d_carry))
        np.testing.assert_array_equal(np.asarray(ref.with_garbage(d_xs, lengths, 0.0)), d_xs)


@given(lengths=st.lists(st.integers(0, T), min_size=B, max_size=B))
def test_reverse_reads_each_row_backwards_from_its_own_end(lengths):
    lengths = np.asarray(lengths, np.int32)
    flipped = np.array(XS)
    for r, n in enumerate(lengths):
        flipped[r, :n] = flipped[r, :n][::-1]
    final_r, ys_r = run(CELL, PARAMS, XS, jnp.asarray(lengths), CARRY0, reverse=True)
    final_f, ys_f = run(CELL, PARAMS, jnp.asarray(flipped), jnp.asarray(lengths), CARRY0)
    ref.assert_trees_close(final_r, final_f)
    ys_f = np.array(ys_f)
    for r, n in enumerate(lengths):
        ys_f[r, :n] = ys_f[r, :n][::-1]
    ref.assert_trees_close(ys_r, ys_f)


# ---- layers, checkpoints, errors ------------------------------------------------------------
def test_both_flax_layers_run_the_cell():
    from flax import nnx

    from lstm_jax.flax import linen as rnn_linen
    from lstm_jax.flax import nnx as rnn_nnx

    lengths = jnp.asarray(LENGTHS)
    _, want = numpy_unroll(PARAMS, XS, LENGTHS, np.zeros((B, H)))
    layer = rnn_linen.RNN(CELL)
    got = layer.apply(rnn_linen.module_variables(layer, PARAMS), XS, seq_lengths=lengths)
    ref.assert_close(got, want)
    nnx_layer = rnn_nnx.RNN(CELL, IN, rngs=nnx.Rngs(0))
    nnx_layer.load_core_params(PARAMS)
    ref.assert_close(nnx_layer(XS, seq_lengths=lengths), want)


def test_checkpoint_round_trip(tmp_path):
    net = lstm_jax.stack(MGUCell(H, use_bias=False), 2)
    params = net.init(jax.random.key(7), IN)
    checkpoint.save(tmp_path / "ckpt", net, params)
    model, restored, _ = checkpoint.restore(tmp_path / "ckpt")
    assert model == net
    ref.assert_trees_equal(restored, params)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="mgu: hidden_size must be a positive int"):
        MGUCell(0)
    with pytest.raises(TypeError, match="mgu: use_bias must be a bool"):
        MGUCell(H, use_bias="no")
    with pytest.raises(ValueError, match=r"mgu\.init: input_size must be a positive int"):
        CELL.init(jax.random.key(0), 0)
    with pytest.raises(
        ValueError, match=r"step: x must have shape \[\*batch, input\] with input=2"
    ):
        CELL.step(PARAMS, CARRY0, XS[:, 0, :1])
    with pytest.raises(
        ValueError, match=r"unroll: initial_carry must have leaves of shape \(3, 4\)"
    ):
        lstm_jax.unroll(CELL, PARAMS, XS, initial_carry=CARRY0[:, :2])
    gru_params = lstm_jax.gru(H).init(jax.random.key(0), IN)
    with pytest.raises(TypeError, match=r"unroll: params has the wrong structure for mgu"):
        lstm_jax.unroll(CELL, gru_params, XS)
