"""The layer-normalised LSTM and GRU (lstm_jax/cells/layer_norm.py) against float64 NumPy
references written here.

The references run each row over its own valid prefix (reversed for the backward direction),
so they share nothing with the masking of ``lstm_jax.unroll``. These cells read ``xp`` and ``hh``
separately (the recurrent part is normalised before it meets the input part), so the split
derivative takes its general path, saving both; the impl test checks it against the plain scan.
"""

from __future__ import annotations

import dataclasses
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
from lstm_jax._split import step_structure
from lstm_jax.cells.gru import GRUGates
from lstm_jax.cells.layer_norm import (
    LayerNormGRUCell,
    LayerNormGRUParams,
    LayerNormLSTMCell,
    LayerNormLSTMParams,
)
from lstm_jax.cells.lstm import LSTMCarry, LSTMGates

B, T, IN, H = 3, 4, 2, 4  # T = 2 chunks of Chunked(every=2): one chunk body to compile
EPS = 1e-5
LENGTHS = np.array([4, 2, 0], np.int32)
CELLS = {"lstm": LayerNormLSTMCell(H), "gru": LayerNormGRUCell(H)}
PARAMS = {k: ref.random_params(c, IN, seed=i) for i, (k, c) in enumerate(CELLS.items())}
CARRY0 = {k: ref.random_carry(c, (B,), seed=2) for k, c in CELLS.items()}
XS = ref.random_array((B, T, IN), seed=1)
IMPLS = ("scan", "split", lstm_jax.Chunked(every=2))
KINDS = tuple(CELLS)


# ---- the references -------------------------------------------------------------------------
def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def _ln(a, n, eps=EPS):
    """Each of the ``n`` blocks of ``a`` to zero mean and unit variance (population variance)."""
    blocks = a.reshape(n, -1)
    mean = blocks.mean(axis=1, keepdims=True)
    var = ((blocks - mean) ** 2).mean(axis=1, keepdims=True)
    return ((blocks - mean) / np.sqrt(var + eps)).reshape(-1)


def lstm_step(p, carry, x):
    h, c = carry
    a = _ln(x @ p["w_ih"], 4) * p["g_ih"] + _ln(h @ p["w_hh"], 4) * p["g_hh"] + p["b"]
    i, f, g, o = (a[k * H : (k + 1) * H] for k in range(4))
    c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
    h = _sigmoid(o) * np.tanh(_ln(c, 1) * p["g_c"] + p["b_c"])
    return (h, c), h


def gru_step(p, carry, x):
    (h,) = carry
    xa = _ln(x @ p["w_ih"], 3) * p["g_ih"] + p["b"]
    ha = _ln(h @ p["w_hh"], 3) * p["g_hh"]
    r = _sigmoid(xa[:H] + ha[:H])
    z = _sigmoid(xa[H : 2 * H] + ha[H : 2 * H])
    n = np.tanh(xa[2 * H :] + r * (ha[2 * H :] + p["b_hn"]))
    h = (1.0 - z) * n + z * h
    return (h,), h


STEPS = {"lstm": lstm_step, "gru": gru_step}


def _np_carry(carry, r=None):
    leaves = (carry.h, carry.c) if isinstance(carry, LSTMCarry) else (carry,)
    return tuple(np.asarray(a if r is None else a[r], np.float64) for a in leaves)


def numpy_unroll(kind, params, xs, lengths, carry0, reverse=False):
    """``(final carry as a tuple, ys [B, T, H])``: each row run over its valid prefix only."""
    p = ref.np_params(params)
    xs = np.asarray(xs, np.float64)
    ys = np.zeros((xs.shape[0], xs.shape[1], H))
    finals = []
    for r, n in enumerate(lengths):
        carry = _np_carry(carry0, r)
        for t in range(n - 1, -1, -1) if reverse else range(n):
            carry, ys[r, t] = STEPS[kind](p, carry, xs[r, t])
        finals.append(carry)
    return tuple(np.stack(leaf) for leaf in zip(*finals, strict=True)), ys


def zeros(kind):
    return CELLS[kind].initial_carry((B,))


# ---- shared jitted runs ---------------------------------------------------------------------
@functools.partial(jax.jit, static_argnames=("cell", "reverse"))
def run(cell, params, xs, lengths, carry, reverse=False):
    return lstm_jax.unroll(
        cell, params, xs, seq_lengths=lengths, initial_carry=carry, reverse=reverse
    )


@jax.jit
def every_impl(params, xs, carries, lengths):
    """``{(kind, impl, reverse): (outputs, gradients in params, xs and carry)}`` for both cells,
    one compile; the gradients are those of a fixed random linear function of the outputs."""
    out = {}
    for kind, cell in CELLS.items():
        for i, impl in enumerate(IMPLS):
            # Every impl forward; the scan and the split also reversed for the LSTM (each pair
            # costs ~2 s of compilation; the direction is generic code, tested in test_unroll).
            for reverse in (False, True) if kind == "lstm" and i < 2 else (False,):

                def f(p, xs, c, cell=cell, impl=impl, reverse=reverse):
                    return lstm_jax.unroll(
                        cell, p, xs, seq_lengths=lengths, initial_carry=c, reverse=reverse,
                        impl=impl,
                    )  # fmt: skip

                result, vjp = jax.vjp(f, params[kind], xs, carries[kind])
                out[kind, i, reverse] = (result, vjp(ref.random_params_like(result, seed=8)))
    return out


# ---- numbers --------------------------------------------------------------------------------
def test_init_layout():
    p = CELLS["lstm"].init(jax.random.key(0), IN)
    assert isinstance(p, LayerNormLSTMParams)
    assert tuple(a.shape for a in p) == ((IN, 16), (H, 16), (16,), (16,), (16,), (H,), (H,))
    np.testing.assert_array_equal(np.asarray(p.b[H : 2 * H]), 1.0)  # forget_bias
    for gain in (p.g_ih, p.g_hh, p.g_c):
        np.testing.assert_array_equal(np.asarray(gain), 1.0)
    q = CELLS["gru"].init(jax.random.key(0), IN)
    assert isinstance(q, LayerNormGRUParams)
    assert tuple(a.shape for a in q) == ((IN, 12), (H, 12), (12,), (H,), (12,), (12,))
    assert isinstance(CELLS["lstm"].initial_carry((2,)), LSTMCarry)


@pytest.mark.parametrize("kind", KINDS)
def test_step_matches_numpy(kind):
    cell, params, carry = CELLS[kind], PARAMS[kind], CARRY0[kind]
    new, y = cell.step(params, carry, XS[:, 0])
    p = ref.np_params(params)
    want = [STEPS[kind](p, _np_carry(carry, r), np.asarray(XS[r, 0], np.float64)) for r in range(B)]
    ref.assert_close(y, np.stack([w[1] for w in want]))
    for got, leaf in zip(_np_carry(new), zip(*(w[0] for w in want), strict=True), strict=True):
        ref.assert_close(got, np.stack(leaf))


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("kind", KINDS)
def test_unroll_on_a_padded_batch_matches_numpy(kind, reverse):
    dirty = ref.with_garbage(XS, LENGTHS, np.nan)
    carry0 = CARRY0[kind]
    final, ys = run(CELLS[kind], PARAMS[kind], dirty, jnp.asarray(LENGTHS), carry0, reverse)
    want_final, want_ys = numpy_unroll(kind, PARAMS[kind], XS, LENGTHS, carry0, reverse)
    ref.assert_close(ys, want_ys)
    for got, want in zip(_np_carry(final), want_final, strict=True):
        ref.assert_close(got, want)
    # a row of length 0 keeps its initial carry exactly, and its outputs are exactly zero
    ref.assert_trees_equal(
        jax.tree.map(lambda a: a[2], final), jax.tree.map(lambda a: a[2], carry0)
    )
    np.testing.assert_array_equal(np.asarray(ys[2]), 0.0)


@pytest.mark.parametrize("kind", KINDS)
def test_bidirectional_matches_numpy(kind):
    cell = CELLS[kind]
    params_b = ref.random_params(cell, IN, seed=4)
    _, ys = lstm_jax.bidirectional(
        cell, (PARAMS[kind], params_b), XS, seq_lengths=jnp.asarray(LENGTHS)
    )
    _, fwd = numpy_unroll(kind, PARAMS[kind], XS, LENGTHS, zeros(kind))
    _, bwd = numpy_unroll(kind, params_b, XS, LENGTHS, zeros(kind), reverse=True)
    ref.assert_close(ys, np.concatenate([fwd, bwd], -1))


@pytest.mark.parametrize("kind", KINDS)
def test_normalisation_makes_the_cell_blind_to_the_scale_of_its_weights(kind):
    """LN(k * a) = LN(a) for k > 0 (exactly, as epsilon goes to 0), so scaling both matmuls'
    weights leaves the outputs as they are: both pre-activations really are normalised."""
    cell = dataclasses.replace(CELLS[kind], epsilon=1e-12)
    params = PARAMS[kind]
    scaled = params._replace(w_ih=3.0 * params.w_ih, w_hh=5.0 * params.w_hh)
    lengths = jnp.asarray(LENGTHS)
    _, ys = run(cell, params, XS, lengths, zeros(kind))
    _, ys_scaled = run(cell, scaled, XS, lengths, zeros(kind))
    ref.assert_close(ys_scaled, ys, atol=1e-5, rtol=1e-5)
    assert not np.allclose(ys, 0.0)


def test_gates():
    lengths = jnp.asarray(LENGTHS)
    gates = lstm_jax.gates(CELLS["lstm"], PARAMS["lstm"], XS, seq_lengths=lengths)
    assert isinstance(gates, LSTMGates) and gates.i.shape == (B, T, H)
    gru_gates = lstm_jax.gates(CELLS["gru"], PARAMS["gru"], XS, seq_lengths=lengths)
    assert isinstance(gru_gates, GRUGates)
    p = ref.np_params(PARAMS["gru"])
    xa = _ln(np.asarray(XS[0, 0], np.float64) @ p["w_ih"], 3) * p["g_ih"] + p["b"]
    ref.assert_close(gru_gates.z[0, 0], _sigmoid(xa[H : 2 * H]))  # h = 0: LN(0) = 0
    np.testing.assert_array_equal(np.asarray(gates.f[1, 2:]), 0.0)


def test_every_impl_gives_the_same_numbers_and_gradients():
    for kind, cell in CELLS.items():  # the general path of the split derivative
        reads_sum, _ = step_structure(cell, PARAMS[kind], CARRY0[kind], jnp.moveaxis(XS, 1, 0))
        assert not reads_sum
    results = every_impl(PARAMS, XS, CARRY0, jnp.asarray(LENGTHS))
    for (kind, i, reverse), got in results.items():
        want = results[kind, 0, reverse]  # the plain scan
        ref.assert_trees_close(got[0], want[0], atol=1e-6, rtol=1e-6)
        ref.assert_trees_close(got[1], want[1], atol=1e-5, rtol=1e-5)
        # every field (gains included) and the carry have a gradient
        for leaf in jax.tree.leaves(got[1]):
            assert float(jnp.max(jnp.abs(leaf))) > 0, (kind, IMPLS[i], reverse)


def test_gradients_match_finite_differences(x64):
    cells = (
        LayerNormLSTMCell(3, param_dtype=jnp.float64),
        LayerNormGRUCell(3, param_dtype=jnp.float64),
    )
    params = tuple(ref.random_params(c, IN, seed=5) for c in cells)
    xs = ref.random_array((2, 3, IN), seed=6, dtype=jnp.float64)
    lengths = jnp.asarray([3, 1])

    @jax.jit
    def f(params, xs):  # the default impl (the split derivative on CPU), both cells at once
        return [
            lstm_jax.unroll(c, p, xs, seq_lengths=lengths)
            for c, p in zip(cells, params, strict=True)
        ]

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
    dirty_xs = ref.with_garbage(XS, lengths, garbage)
    for kind, cell in CELLS.items():
        clean = run(cell, PARAMS[kind], XS, jnp.asarray(lengths), CARRY0[kind])
        dirty = run(cell, PARAMS[kind], dirty_xs, jnp.asarray(lengths), CARRY0[kind])
        ref.assert_trees_equal(clean, dirty)
    results = every_impl(PARAMS, dirty_xs, CARRY0, lengths)
    for _, (d_params, d_xs, d_carry) in results.values():
        ref.assert_all_finite((d_params, d_xs, d_carry))
        np.testing.assert_array_equal(np.asarray(ref.with_garbage(d_xs, lengths, 0.0)), d_xs)


@given(lengths=st.lists(st.integers(0, T), min_size=B, max_size=B))
def test_reverse_reads_each_row_backwards_from_its_own_end(lengths):
    lengths = np.asarray(lengths, np.int32)
    flipped = np.array(XS)
    for r, n in enumerate(lengths):
        flipped[r, :n] = flipped[r, :n][::-1]
    for kind, cell in CELLS.items():
        args = (jnp.asarray(lengths), CARRY0[kind])
        final_r, ys_r = run(cell, PARAMS[kind], XS, *args, reverse=True)
        final_f, ys_f = run(cell, PARAMS[kind], jnp.asarray(flipped), *args)
        ref.assert_trees_close(final_r, final_f)
        ys_f = np.array(ys_f)
        for r, n in enumerate(lengths):
            ys_f[r, :n] = ys_f[r, :n][::-1]
        ref.assert_trees_close(ys_r, ys_f)


# ---- layers, checkpoints, errors ------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_both_flax_layers_run_the_cell(kind):
    from flax import nnx

    from lstm_jax.flax import linen as rnn_linen
    from lstm_jax.flax import nnx as rnn_nnx

    cell, params = CELLS[kind], PARAMS[kind]
    lengths = jnp.asarray(LENGTHS)
    _, want = numpy_unroll(kind, params, XS, LENGTHS, zeros(kind))
    layer = rnn_linen.RNN(cell)
    got = layer.apply(rnn_linen.module_variables(layer, params), XS, seq_lengths=lengths)
    ref.assert_close(got, want)
    nnx_layer = rnn_nnx.RNN(cell, IN, rngs=nnx.Rngs(0))
    nnx_layer.load_core_params(params)
    ref.assert_close(nnx_layer(XS, seq_lengths=lengths), want)


def test_checkpoint_round_trip(tmp_path):
    net = lstm_jax.stack([LayerNormLSTMCell(H, epsilon=1e-3), LayerNormGRUCell(H)], 2)
    params = net.init(jax.random.key(7), IN)
    checkpoint.save(tmp_path / "ckpt", net, params)
    model, restored, _ = checkpoint.restore(tmp_path / "ckpt")
    assert model == net and model.cells[0].epsilon == 1e-3
    ref.assert_trees_equal(restored, params)


@pytest.mark.parametrize("cls", [LayerNormLSTMCell, LayerNormGRUCell])
def test_bad_inputs_are_named(cls):
    name = cls.name
    with pytest.raises(ValueError, match=f"{name}: hidden_size must be a positive int"):
        cls(0)
    with pytest.raises(ValueError, match=f"{name}: epsilon must be positive, got 0"):
        cls(H, epsilon=0.0)
    with pytest.raises(TypeError, match=f"{name}: epsilon must be a real number"):
        cls(H, epsilon="small")
    cell = cls(H)
    params = cell.init(jax.random.key(0), IN)
    carry = cell.initial_carry((B,))
    with pytest.raises(
        ValueError, match=r"step: x must have shape \[\*batch, input\] with input=2"
    ):
        cell.step(params, carry, XS[:, 0, :1])
    other = CELLS["gru" if cls is LayerNormLSTMCell else "lstm"]
    with pytest.raises(TypeError, match=f"unroll: params has the wrong structure for {name}"):
        lstm_jax.unroll(cell, PARAMS["gru" if cls is LayerNormLSTMCell else "lstm"], XS)
    with pytest.raises(TypeError, match="unroll: initial_carry has the wrong structure"):
        lstm_jax.unroll(cell, params, XS, initial_carry=other.initial_carry((B,)))
