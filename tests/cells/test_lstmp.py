"""The LSTM with a recurrent projection (lstm_jax/cells/lstmp.py) against a float64 NumPy
reference written here; PyTorch parity is in tests/interop/test_torch.py.

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
from lstm_jax.cells.lstm import LSTMCarry, LSTMGates
from lstm_jax.cells.lstmp import LSTMPCell, LSTMPParams

B, T, IN, H, P = 3, 5, 2, 4, 2
LENGTHS = np.array([5, 2, 0], np.int32)
CELL = LSTMPCell(H, P)
PARAMS = ref.random_params(CELL, IN, seed=0)
XS = ref.random_array((B, T, IN), seed=1)
CARRY0 = ref.random_carry(CELL, (B,), seed=2)
IMPLS = ("scan", "split", lstm_jax.Chunked(every=2))


# ---- the reference --------------------------------------------------------------------------
def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def numpy_step(p, h, c, x):
    """One LSTMP step in float64 (Sak et al. 2014): ``h [proj]``, ``c [hidden]``, ``x [input]``."""
    a = x @ p["w_ih"] + h @ p["w_hh"] + (0.0 if p["b"] is None else p["b"])
    i, f, g, o = (a[k * H : (k + 1) * H] for k in range(4))
    c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
    h = (_sigmoid(o) * np.tanh(c)) @ p["w_hr"]
    return h, c


def numpy_unroll(params, xs, lengths, carry0, reverse=False):
    """``((h [B, P], c [B, H]), ys [B, T, P])``: each row run over its valid prefix only."""
    p = ref.np_params(params)
    xs = np.asarray(xs, np.float64)
    h0, c0 = (np.asarray(a, np.float64) for a in carry0)
    ys = np.zeros((xs.shape[0], xs.shape[1], P))
    final_h, final_c = np.zeros((xs.shape[0], P)), np.zeros((xs.shape[0], H))
    for r, n in enumerate(lengths):
        h, c = h0[r], c0[r]
        for t in range(n - 1, -1, -1) if reverse else range(n):
            h, c = numpy_step(p, h, c, xs[r, t])
            ys[r, t] = h
        final_h[r], final_c[r] = h, c
    return (final_h, final_c), ys


def zero_carry():
    return (np.zeros((B, P)), np.zeros((B, H)))


# ---- shared jitted runs (one compile each) --------------------------------------------------
@functools.partial(jax.jit, static_argnames=("reverse",))
def run(params, xs, lengths, carry, reverse=False):
    return lstm_jax.unroll(
        CELL, params, xs, seq_lengths=lengths, initial_carry=carry, reverse=reverse
    )


def _loss(params, xs, carry, lengths, reverse, impl):
    final, ys = lstm_jax.unroll(
        CELL, params, xs, seq_lengths=lengths, initial_carry=carry, reverse=reverse, impl=impl
    )
    return jnp.sum(jnp.sin(3.0 * ys)) + jnp.sum(final.h * final.h) + jnp.sum(jnp.cos(final.c))


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
def test_init_layout_and_carry():
    params = CELL.init(jax.random.key(0), IN)
    assert isinstance(params, LSTMPParams)
    shapes = tuple(a.shape for a in params)
    assert shapes == ((IN, 4 * H), (P, 4 * H), (4 * H,), (H, P))
    np.testing.assert_array_equal(np.asarray(params.b[H : 2 * H]), 1.0)  # forget_bias
    carry = CELL.initial_carry((2, 3))
    assert isinstance(carry, LSTMCarry)
    assert carry.h.shape == (2, 3, P) and carry.c.shape == (2, 3, H)
    assert CELL.output_size == P and LSTMPCell(H, proj_size=3).output_size == 3
    assert LSTMPCell(H, P, use_bias=False).init(jax.random.key(0), IN).b is None


@pytest.mark.parametrize("use_bias", [True, False])
def test_step_matches_numpy(use_bias):
    cell = LSTMPCell(H, P, use_bias=use_bias)
    params = ref.random_params(cell, IN, seed=3)
    (h, c), y = cell.step(params, CARRY0, XS[:, 0])
    p = ref.np_params(params)
    want = [
        numpy_step(p, *(np.asarray(a[r], np.float64) for a in CARRY0), XS[r, 0]) for r in range(B)
    ]
    ref.assert_close(h, np.stack([w[0] for w in want]))
    ref.assert_close(c, np.stack([w[1] for w in want]))
    ref.assert_close(y, np.stack([w[0] for w in want]))


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_unroll_on_a_padded_batch_matches_numpy(reverse):
    dirty = ref.with_garbage(XS, LENGTHS, np.nan)
    final, ys = run(PARAMS, dirty, jnp.asarray(LENGTHS), CARRY0, reverse=reverse)
    want_final, want_ys = numpy_unroll(PARAMS, XS, LENGTHS, CARRY0, reverse)
    assert ys.shape == (B, T, P)
    ref.assert_close(ys, want_ys)
    ref.assert_carry_close(final, want_final)
    # a row of length 0 keeps its initial carry exactly, and its outputs are exactly zero
    ref.assert_trees_equal(
        jax.tree.map(lambda a: a[2], final), jax.tree.map(lambda a: a[2], CARRY0)
    )
    np.testing.assert_array_equal(np.asarray(ys[2]), 0.0)


def test_bidirectional_and_a_stack_use_the_projected_width():
    params_b = ref.random_params(CELL, IN, seed=4)
    lengths = jnp.asarray(LENGTHS)
    _, ys = lstm_jax.bidirectional(CELL, (PARAMS, params_b), XS, seq_lengths=lengths)
    _, fwd = numpy_unroll(PARAMS, XS, LENGTHS, zero_carry())
    _, bwd = numpy_unroll(params_b, XS, LENGTHS, zero_carry(), reverse=True)
    ref.assert_close(ys, np.concatenate([fwd, bwd], -1))
    # layer 1 reads layer 0's 2 * proj features, not 2 * hidden
    net = lstm_jax.stack(CELL, 2, bidirectional=True)
    assert net.output_size == 2 * P and net.layer_input_sizes(IN) == [IN, 2 * P]
    params = net.init(jax.random.key(1), IN)
    assert params[1][0].w_ih.shape == (2 * P, 4 * H)
    net_params = ((PARAMS, params_b), params[1])
    _, out = net.apply(net_params, XS, seq_lengths=lengths)
    layer0 = np.concatenate([fwd, bwd], -1)
    _, fwd1 = numpy_unroll(params[1][0], layer0, LENGTHS, zero_carry())
    _, bwd1 = numpy_unroll(params[1][1], layer0, LENGTHS, zero_carry(), reverse=True)
    ref.assert_close(out, np.concatenate([fwd1, bwd1], -1))


def test_gates_are_the_lstm_gates_of_hidden_width():
    gates = lstm_jax.gates(CELL, PARAMS, XS, seq_lengths=jnp.asarray(LENGTHS))
    assert isinstance(gates, LSTMGates)
    assert gates.i.shape == (B, T, H)
    p = ref.np_params(PARAMS)
    a = np.asarray(XS[0, 0], np.float64) @ p["w_ih"] + p["b"]
    ref.assert_close(gates.f[0, 0], _sigmoid(a[H : 2 * H]))
    np.testing.assert_array_equal(np.asarray(gates.o[1, 2:]), 0.0)


def test_every_impl_gives_the_same_numbers_and_gradients():
    results = every_impl(PARAMS, XS, CARRY0, jnp.asarray(LENGTHS))
    for (i, reverse), got in results.items():
        want = results[0, reverse]  # the plain scan
        ref.assert_trees_close(got[0], want[0], atol=1e-6, rtol=1e-6)
        ref.assert_trees_close(got[1], want[1], atol=1e-5, rtol=1e-5)
        # every field and both carry leaves have a gradient (none is silently cut off)
        for leaf in jax.tree.leaves(got[1]):
            assert float(jnp.max(jnp.abs(leaf))) > 0, (IMPLS[i], reverse)


def test_gradients_match_finite_differences(x64):
    cell = LSTMPCell(3, 2, param_dtype=jnp.float64)
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
    clean = run(PARAMS, XS, jnp.asarray(lengths), CARRY0)
    dirty = run(PARAMS, ref.with_garbage(XS, lengths, garbage), jnp.asarray(lengths), CARRY0)
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
    final_r, ys_r = run(PARAMS, XS, jnp.asarray(lengths), CARRY0, reverse=True)
    final_f, ys_f = run(PARAMS, jnp.asarray(flipped), jnp.asarray(lengths), CARRY0)
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
    _, want = numpy_unroll(PARAMS, XS, LENGTHS, zero_carry())
    layer = rnn_linen.RNN(CELL)
    got = layer.apply(rnn_linen.module_variables(layer, PARAMS), XS, seq_lengths=lengths)
    ref.assert_close(got, want)
    nnx_layer = rnn_nnx.RNN(CELL, IN, rngs=nnx.Rngs(0))
    nnx_layer.load_core_params(PARAMS)
    ref.assert_close(nnx_layer(XS, seq_lengths=lengths), want)


def test_checkpoint_round_trip(tmp_path):
    net = lstm_jax.stack(LSTMPCell(H, 3, forget_bias=0.5), 2)
    params = net.init(jax.random.key(7), IN)
    checkpoint.save(tmp_path / "ckpt", net, params)
    model, restored, _ = checkpoint.restore(tmp_path / "ckpt")
    assert model == net and model.cells[0].proj_size == 3
    ref.assert_trees_equal(restored, params)


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        (dict(proj_size=0), ValueError, r"lstmp: proj_size must be in \[1, hidden_size=4\)"),
        (dict(proj_size=-1), ValueError, r"lstmp: proj_size must be in \[1, hidden_size=4\)"),
        (dict(proj_size=H), ValueError, r"lstmp: proj_size must be in \[1, hidden_size=4\).*got 4"),
        (dict(proj_size=2.0), TypeError, "lstmp: proj_size must be an int"),
        (dict(proj_size=True), TypeError, "lstmp: proj_size must be an int"),
    ],
)
def test_bad_proj_size_is_named(options, error, match):
    with pytest.raises(error, match=match):
        LSTMPCell(H, **options)


def test_bad_inputs_are_named():
    with pytest.raises(TypeError, match=r"LSTMPCell.__init__\(\) missing .* 'proj_size'"):
        LSTMPCell(H)
    with pytest.raises(ValueError, match="lstmp: hidden_size must be a positive int"):
        LSTMPCell(0, 1)
    with pytest.raises(
        ValueError, match=r"step: x must have shape \[\*batch, input\] with input=2"
    ):
        CELL.step(PARAMS, CARRY0, XS[:, 0, :1])
    # a carry whose h has the hidden width, not the projected one
    wide = LSTMCarry(h=CARRY0.c, c=CARRY0.c)
    with pytest.raises(
        ValueError, match=r"unroll: initial_carry must have leaves of shape \(3, 2\)"
    ):
        lstm_jax.unroll(CELL, PARAMS, XS, initial_carry=wide)
    lstm_params = lstm_jax.lstm(H).init(jax.random.key(0), IN)
    with pytest.raises(TypeError, match=r"unroll: params has the wrong structure for lstmp"):
        lstm_jax.unroll(CELL, lstm_params, XS)
    with pytest.raises(ValueError, match=r"unroll: params does not fit lstmp"):
        lstm_jax.unroll(CELL, PARAMS._replace(w_hh=jnp.zeros((H, 4 * H))), XS)
