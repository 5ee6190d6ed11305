"""lstm_jax.cells.min_rnn: minGRU and minLSTM against a float64 NumPy loop written from the
paper's linear-space equations; their log-space ``linear_recurrence`` against their own step;
gradients, lengths, both directions, the Flax layers, checkpoints and bad inputs. The parallel
implementation itself is tested in tests/test_parallel.py."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref
from jax.test_util import check_grads

import lstm_jax
from lstm_jax.cells.min_rnn import MinGRUCell, MinGRUParams, MinLSTMCell, log_positive, positive

B, T, IN, H = 3, 5, 3, 4
LENGTHS = np.array([5, 2, 0])
CELLS = {"min_gru": MinGRUCell, "min_lstm": MinLSTMCell}
XS = ref.random_array((B, T, IN), seed=1)


def np_sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def np_g(a):
    return np.where(a >= 0, a + 0.5, np_sigmoid(a))


def np_coefficients(name, p, x):
    """``(a, b)`` of ``h = a * h + b`` for one input row, float64."""
    pre = x @ p["w_ih"] + p["b"]
    if name == "min_gru":
        k_z, k_n = np.split(pre, 2)
        z = np_sigmoid(k_z)
        return 1.0 - z, z * np_g(k_n)
    k_f, k_i, k_g = np.split(pre, 3)
    f, i = np_sigmoid(k_f), np_sigmoid(k_i)
    return f / (f + i), i / (f + i) * np_g(k_g)


def numpy_unroll(name, params, xs, lengths, h0=None, reverse=False):
    """Row by row over each row's valid prefix; returns ``(final h, ys)``."""
    p = {k: np.asarray(v, np.float64) for k, v in params._asdict().items()}
    xs = np.asarray(xs, np.float64)
    ys = np.zeros((*xs.shape[:2], H))
    final = np.zeros((xs.shape[0], H)) if h0 is None else np.array(h0, np.float64)
    for r, n in enumerate(lengths):
        h = final[r].copy()
        for t in range(n - 1, -1, -1) if reverse else range(n):
            a, b = np_coefficients(name, p, xs[r, t])
            h = a * h + b
            ys[r, t] = h
        final[r] = h
    return final, ys


def make(name, **config):
    cell = CELLS[name](H, **config)
    return cell, ref.random_params(cell, IN, seed=3)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("name", list(CELLS))
def test_unroll_on_a_padded_batch_matches_numpy(name, reverse):
    cell, params = make(name)
    h0 = ref.random_array((B, H), seed=2)
    dirty = ref.with_garbage(XS, LENGTHS, np.nan)
    carry, ys = lstm_jax.unroll(
        cell, params, dirty, initial_carry=h0, seq_lengths=jnp.asarray(LENGTHS), reverse=reverse
    )
    want_h, want_ys = numpy_unroll(name, params, XS, LENGTHS, h0, reverse)
    ref.assert_close(ys, want_ys, atol=2e-5)
    ref.assert_close(carry, want_h, atol=2e-5)
    ref.assert_close(carry[2], h0[2])  # length 0: the initial carry


@pytest.mark.parametrize("name", list(CELLS))
def test_linear_recurrence_is_the_step_in_log_space(name):
    cell, params = make(name)
    x = ref.random_array((B, IN), seed=4, scale=3.0)
    h = ref.random_array((B, H), seed=5)
    log_a, log_b = cell.linear_recurrence(params, cell.project_inputs(params, x))
    new_h, y = cell.step(params, h, x)
    ref.assert_close(jnp.exp(log_a) * h + jnp.exp(log_b), new_h, atol=1e-5)
    ref.assert_close(y, new_h)


def test_positive_activation_and_its_log():
    x = np.array([-200.0, -30.0, -1.0, 0.0, 1e-3, 2.0, 1e4])
    want = np_g(x)
    with jax.enable_x64(True):
        ref.assert_close(positive(jnp.asarray(x)), want, rtol=1e-12)
        # log g stays exact where g itself underflows float32 (sigmoid(-200) ~ 1e-87)
        ref.assert_close(log_positive(jnp.asarray(x)), np.log(want), rtol=1e-12)
    got32 = log_positive(jnp.asarray(x, jnp.float32))
    assert np.isfinite(np.asarray(got32)).all()


@pytest.mark.parametrize("name", list(CELLS))
def test_gradients_match_finite_differences(name, x64):
    cell = CELLS[name](H, param_dtype=jnp.float64)
    params = ref.random_params(cell, IN, seed=6)
    xs = ref.random_array((B, T, IN), seed=7, dtype=jnp.float64)
    h0 = ref.random_array((B, H), seed=8, dtype=jnp.float64)

    def run(params, xs, h0):
        return lstm_jax.unroll(
            cell, params, xs, initial_carry=h0, seq_lengths=jnp.asarray(LENGTHS), impl="scan"
        )

    check_grads(jax.jit(run), (params, xs, h0), order=1, modes=("rev",))


def test_bidirectional_matches_both_directions():
    cell, params = make("min_lstm")
    lengths = jnp.asarray(LENGTHS)
    _, ys = lstm_jax.bidirectional(cell, (params, params), XS, seq_lengths=lengths)
    _, fwd = numpy_unroll("min_lstm", params, XS, LENGTHS)
    _, bwd = numpy_unroll("min_lstm", params, XS, LENGTHS, reverse=True)
    ref.assert_close(ys, np.concatenate([fwd, bwd], -1), atol=2e-5)


def test_no_bias_and_no_recurrent_weights():
    cell = MinGRUCell(H, use_bias=False)
    params = cell.init(jax.random.key(0), IN)
    assert params == MinGRUParams(params.w_ih, None)
    assert params.w_ih.shape == (IN, 2 * H)
    assert MinLSTMCell(H).init(jax.random.key(0), IN).w_ih.shape == (IN, 3 * H)
    assert cell.recurrent_projection(params, jnp.zeros((B, H))).shape == (B, 0)


def test_gates_are_reported():
    cell, params = make("min_lstm")
    gates = lstm_jax.gates(cell, params, XS)
    ref.assert_close(gates.f + gates.i, np.ones((B, T, H)), atol=1e-6)
    assert float(jnp.min(gates.g)) > 0


def test_bad_parameters_and_inputs_are_named():
    cell, params = make("min_gru")
    with pytest.raises(ValueError, match=r"unroll: params does not fit min_gru"):
        lstm_jax.unroll(cell, MinGRUCell(H + 1).init(jax.random.key(0), IN), XS)
    with pytest.raises(TypeError, match=r"unroll: params has the wrong structure for min_gru"):
        lstm_jax.unroll(cell, MinLSTMCell(H).init(jax.random.key(0), IN), XS)
    with pytest.raises(ValueError, match=r"unroll: xs must have shape .*input=3"):
        lstm_jax.unroll(cell, params, XS[..., :2])
    with pytest.raises(ValueError, match=r"min_gru: hidden_size must be a positive int"):
        MinGRUCell(0)


def test_both_flax_layers_run_the_cells():
    from flax import nnx

    from lstm_jax.flax import linen as rnn_linen
    from lstm_jax.flax import nnx as rnn_nnx

    lengths = jnp.asarray(LENGTHS)
    for name in CELLS:
        cell, params = make(name)
        _, want = numpy_unroll(name, params, XS, LENGTHS)
        layer = rnn_linen.RNN(cell)
        got = layer.apply(rnn_linen.module_variables(layer, params), XS, seq_lengths=lengths)
        ref.assert_close(got, want, atol=2e-5)
        module = rnn_nnx.RNN(cell, IN, rngs=nnx.Rngs(0))
        module.load_core_params(params)
        ref.assert_close(module(XS, seq_lengths=lengths), want, atol=2e-5)


def test_checkpoint_round_trip(tmp_path):
    from lstm_jax import checkpoint

    net = lstm_jax.stack(MinLSTMCell(H), 2)
    params = net.init(jax.random.key(5), IN)
    checkpoint.save(tmp_path / "ckpt", net, params)
    model, restored, _ = checkpoint.restore(tmp_path / "ckpt")
    assert model == net
    ref.assert_trees_equal(restored, params)
