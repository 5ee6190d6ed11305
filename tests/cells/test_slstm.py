"""lstm_jax.cells.slstm: the sLSTM against a float64 NumPy loop written from the paper's
*unstabilised* equations (plain exponentials, no ``m``), so the stabiliser is checked, not
copied; block-diagonal heads, gradients, lengths, both directions, the Flax layers, checkpoints
and the bad-configuration messages."""

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
from lstm_jax.cells.slstm import SLSTMCarry, SLSTMCell, SLSTMParams

B, T, IN, H = 3, 5, 3, 4
LENGTHS = np.array([5, 2, 0])
CONFIGS = {"1head_sigmoid": dict(num_heads=1), "2heads_exp": dict(num_heads=2, forget_gate="exp")}


def dense_recurrent(w_hh):
    """The block-diagonal ``[heads, d, 4d]`` as the full ``[H, 4H]`` matrix, gate-major."""
    heads, d, _ = w_hh.shape
    full = np.zeros((heads * d, 4 * heads * d))
    for k in range(heads):
        for q in range(4):
            cols = slice(q * heads * d + k * d, q * heads * d + (k + 1) * d)
            full[k * d : (k + 1) * d, cols] = w_hh[k][:, q * d : (q + 1) * d]
    return full


def numpy_slstm(params, xs, lengths, forget_gate="sigmoid", reverse=False):
    """Per row over its valid prefix: ``C = f C + i z``, ``N = f N + i``, ``h = o C / N`` with
    ``i = exp(i~)`` and ``f = sigmoid(f~)`` or ``exp(f~)``; ``m`` tracked on the side. Returns
    ``(h, C, N, m)`` finals and ``ys``."""
    p = {k: np.asarray(v, np.float64) for k, v in params._asdict().items()}
    w = dense_recurrent(p["w_hh"])
    xs = np.asarray(xs, np.float64)
    ys = np.zeros((*xs.shape[:2], H))
    finals = [np.zeros((xs.shape[0], H)) for _ in range(4)]
    for r, n in enumerate(lengths):
        h, big_c, big_n, m = np.zeros(H), np.zeros(H), np.zeros(H), None
        for t in range(n - 1, -1, -1) if reverse else range(n):
            a = xs[r, t] @ p["w_ih"] + p["b"] + h @ w
            i_, f_, z_, o_ = np.split(a, 4)
            i, f = np.exp(i_), (1 / (1 + np.exp(-f_)) if forget_gate == "sigmoid" else np.exp(f_))
            big_c = f * big_c + i * np.tanh(z_)
            big_n = f * big_n + i
            h = 1 / (1 + np.exp(-o_)) * big_c / big_n
            m = i_ if m is None else np.maximum(np.log(f) + m, i_)
            ys[r, t] = h
        for k, v in enumerate((h, big_c, big_n, np.zeros(H) if m is None else m)):
            finals[k][r] = v
    return finals, ys


def make(name):
    cell = SLSTMCell(H, **CONFIGS[name])
    return cell, ref.random_params(cell, IN, seed=3)


XS = ref.random_array((B, T, IN), seed=1)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_unroll_on_a_padded_batch_matches_the_unstabilised_equations(name, reverse):
    cell, params = make(name)
    dirty = ref.with_garbage(XS, LENGTHS, np.nan)
    carry, ys = lstm_jax.unroll(
        cell, params, dirty, seq_lengths=jnp.asarray(LENGTHS), reverse=reverse
    )
    (h, big_c, big_n, m), want = numpy_slstm(params, XS, LENGTHS, cell.forget_gate, reverse=reverse)
    ref.assert_close(ys, want, atol=2e-5)
    ref.assert_close(carry.h, h, atol=2e-5)
    ref.assert_close(carry.m, m, atol=2e-5)
    # the stored states are the paper's scaled by exp(-m)
    scale = np.exp(np.asarray(carry.m, np.float64))
    ref.assert_close(np.asarray(carry.c) * scale, big_c, atol=2e-5, rtol=1e-4)
    ref.assert_close(np.asarray(carry.n) * scale, big_n, atol=2e-5, rtol=1e-4)


def test_recurrent_matrix_is_block_diagonal_across_heads():
    cell = SLSTMCell(H, num_heads=2)
    params = ref.random_params(cell, IN, seed=4)
    assert params.w_hh.shape == (2, 2, 8)
    h = ref.random_array((B, H), seed=5)
    carry = cell.initial_carry((B,))._replace(h=h)
    got = cell.recurrent_projection(params, carry)
    ref.assert_close(got, np.asarray(h, np.float64) @ dense_recurrent(np.asarray(params.w_hh)))


def test_large_preactivations_stay_finite_and_bounded():
    """``i = exp(50)`` overflows float32 without the stabiliser; ``|h| <= 1`` because ``c / n``
    is a weighted mean of ``tanh`` values."""
    cell, params = make("2heads_exp")
    _, ys = lstm_jax.unroll(cell, params, XS * 60.0)
    assert np.isfinite(np.asarray(ys)).all()
    assert float(jnp.max(jnp.abs(ys))) <= 1.0 + 1e-6


@jax.jit
def _reverse_unroll(params, xs, lengths):
    return lstm_jax.unroll(SLSTMCell(H), params, xs, seq_lengths=lengths, reverse=True)


@given(st.lists(st.integers(0, T), min_size=B, max_size=B))
def test_any_lengths_equal_each_rows_own_prefix(lengths):
    _, params = make("1head_sigmoid")
    lengths = np.array(lengths, np.int32)
    carry, ys = _reverse_unroll(params, XS, jnp.asarray(lengths))
    (h, *_), want = numpy_slstm(params, XS, lengths, reverse=True)
    ref.assert_close(ys, want, atol=2e-5)
    ref.assert_close(carry.h, h, atol=2e-5)
    assert float(jnp.min(jnp.where(jnp.asarray(lengths)[:, None] > 0, carry.n, 1.0))) >= 1.0


def test_length_zero_returns_the_initial_carry():
    cell, params = make("2heads_exp")
    c0 = SLSTMCarry(*(ref.random_array((B, H), seed=s) for s in range(10, 14)))
    c0 = c0._replace(n=jnp.abs(c0.n) + 1.0)
    carry, ys = lstm_jax.unroll(
        cell, params, XS, initial_carry=c0, seq_lengths=jnp.zeros(B, jnp.int32)
    )
    ref.assert_trees_equal(carry, c0)
    np.testing.assert_array_equal(np.asarray(ys), 0.0)


def test_bidirectional_matches_both_directions():
    cell, params = make("1head_sigmoid")
    lengths = jnp.asarray(LENGTHS)
    _, ys = lstm_jax.bidirectional(cell, (params, params), XS, seq_lengths=lengths)
    _, fwd = numpy_slstm(params, XS, LENGTHS)
    _, bwd = numpy_slstm(params, XS, LENGTHS, reverse=True)
    ref.assert_close(ys, np.concatenate([fwd, bwd], -1), atol=2e-5)


def test_gradients_match_finite_differences(x64):
    cell = SLSTMCell(H, num_heads=2, param_dtype=jnp.float64)
    params = ref.random_params(cell, IN, seed=6)
    xs = ref.random_array((B, T, IN), seed=7, dtype=jnp.float64)

    def run(params, xs):
        return lstm_jax.unroll(cell, params, xs, seq_lengths=jnp.asarray(LENGTHS))[1]

    check_grads(jax.jit(run), (params, xs), order=1, modes=("rev",))


@pytest.mark.slow  # the default impl's gradients are checked against finite differences above
def test_split_gradients_equal_plain_autodiff():
    cell, params = make("2heads_exp")

    def loss(params, impl):
        _, ys = lstm_jax.unroll(cell, params, XS, seq_lengths=jnp.asarray(LENGTHS), impl=impl)
        return jnp.sum(jnp.sin(ys))

    grad = jax.jit(jax.grad(loss), static_argnums=1)
    split, plain = grad(params, "split"), grad(params, "scan")
    ref.assert_trees_close(split, plain, atol=1e-5, rtol=1e-4)


def test_gates_are_the_stabilised_activations():
    cell, params = make("1head_sigmoid")
    gates = lstm_jax.gates(cell, params, XS)
    assert set(gates._fields) == {"i", "f", "g", "o"}
    assert float(jnp.max(gates.i)) <= 1.0 and float(jnp.max(gates.f)) <= 1.0


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (dict(num_heads=3), r"hidden_size \(4\) must be a multiple of num_heads \(3\)"),
        (dict(num_heads=0), r"num_heads must be a positive int, got 0"),
        (dict(forget_gate="tanh"), r"forget_gate must be one of \('sigmoid', 'exp'\)"),
    ],
)
def test_bad_configuration_is_named(config, message):
    with pytest.raises(ValueError, match=message):
        SLSTMCell(H, **config)


def test_parameters_of_another_head_count_are_refused():
    params = SLSTMCell(H, num_heads=2).init(jax.random.key(0), IN)
    with pytest.raises(ValueError, match=r"unroll: params does not fit slstm"):
        lstm_jax.unroll(SLSTMCell(H), params, XS)


def test_both_flax_layers_run_the_cell():
    from flax import nnx

    from lstm_jax.flax import linen as rnn_linen
    from lstm_jax.flax import nnx as rnn_nnx

    cell, params = make("2heads_exp")
    lengths = jnp.asarray(LENGTHS)
    _, want = numpy_slstm(params, XS, LENGTHS, "exp")
    layer = rnn_linen.RNN(cell)
    got = layer.apply(rnn_linen.module_variables(layer, params), XS, seq_lengths=lengths)
    ref.assert_close(got, want, atol=2e-5)
    module = rnn_nnx.RNN(cell, IN, rngs=nnx.Rngs(0))
    module.load_core_params(params)
    ref.assert_close(module(XS, seq_lengths=lengths), want, atol=2e-5)


def test_checkpoint_round_trip(tmp_path):
    from lstm_jax import checkpoint

    cell, params = make("2heads_exp")
    checkpoint.save(tmp_path / "ckpt", cell, params)
    model, restored, _ = checkpoint.restore(tmp_path / "ckpt")
    assert model == cell
    assert isinstance(restored, SLSTMParams)
    ref.assert_trees_equal(restored, params)
