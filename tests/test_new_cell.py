"""A brand-new cell, written here in this file and nowhere in the package, works everywhere.

The cell below is what a user writes: a frozen dataclass with ``init`` and ``recur`` (the base
class gives the zero ``initial_carry`` and the two projections), decorated with
``register_cell``. Nothing in lstm_jax learns its name, yet it runs through ``unroll`` (both
directions, padded batch), ``bidirectional``, ``stack``, the default ``impl`` with its split
derivative (gradients equal to plain autodiff for every parameter field, its own ``leak``
included), forward mode, and a checkpoint's save and restore.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref
from jax.test_util import check_grads

import lstm_jax

B, T, IN, H = 3, 5, 2, 4
LENGTHS = np.array([5, 2, 0])


class LeakyParams(NamedTuple):
    w_ih: jax.Array
    w_hh: jax.Array
    b: jax.Array
    leak: jax.Array  # [hidden]: a parameter read by the step itself


@lstm_jax.register_cell
class LeakyTanhCell(lstm_jax.Cell):
    """``h' = (1 - s) * h + s * tanh(x W_ih + b + h W_hh)`` with ``s = sigmoid(leak)``."""

    name = "test_leaky_tanh"

    def init(self, key, input_size):
        k1, k2, k3 = jax.random.split(key, 3)
        shape = lambda *s: jax.random.normal(k1, s, self.param_dtype)
        return LeakyParams(
            w_ih=shape(input_size, self.hidden_size) * 0.5,
            w_hh=jax.random.normal(k2, (self.hidden_size, self.hidden_size), self.param_dtype)
            * 0.5,
            b=jnp.zeros((self.hidden_size,), self.param_dtype),
            leak=jax.random.normal(k3, (self.hidden_size,), self.param_dtype),
        )

    def recur(self, params, h, xp, hh):
        s = jax.nn.sigmoid(params.leak.astype(xp.dtype)).reshape((1,) * (h.ndim - 1) + (-1,))
        h_new = (1.0 - s) * h.astype(xp.dtype) + s * jnp.tanh(xp + hh)
        return h_new.astype(self.resolved_carry_dtype()), self.output(h_new, params), None


def numpy_unroll(p, xs, lengths, reverse=False):
    """The same maths, row by row over each row's valid prefix, in float64."""
    p = {k: np.asarray(v, np.float64) for k, v in p._asdict().items()}
    s = 1.0 / (1.0 + np.exp(-p["leak"]))
    ys = np.zeros((xs.shape[0], xs.shape[1], H))
    final = np.zeros((xs.shape[0], H))
    for r, n in enumerate(lengths):
        h = np.zeros(H)
        steps = range(n - 1, -1, -1) if reverse else range(n)
        for t in steps:
            h = (1 - s) * h + s * np.tanh(
                np.asarray(xs[r, t], np.float64) @ p["w_ih"] + p["b"] + h @ p["w_hh"]
            )
            ys[r, t] = h
        final[r] = h
    return final, ys


CELL = LeakyTanhCell(H)
PARAMS = CELL.init(jax.random.key(0), IN)
XS = ref.random_array((B, T, IN), seed=1)


def test_the_new_cell_is_registered_by_name():
    from lstm_jax.cells import CELL_TYPES

    assert CELL_TYPES["test_leaky_tanh"] is LeakyTanhCell


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_unroll_on_a_padded_batch_matches_numpy(reverse):
    dirty = ref.with_garbage(XS, LENGTHS, np.nan)
    carry, ys = lstm_jax.unroll(
        CELL, PARAMS, dirty, seq_lengths=jnp.asarray(LENGTHS), reverse=reverse
    )
    want_carry, want_ys = numpy_unroll(PARAMS, np.asarray(XS), LENGTHS, reverse)
    np.testing.assert_allclose(np.asarray(ys), want_ys, atol=2e-5)
    np.testing.assert_allclose(np.asarray(carry), want_carry, atol=2e-5)


def test_bidirectional_and_stack():
    lengths = jnp.asarray(LENGTHS)
    (_, _), ys = lstm_jax.bidirectional(CELL, (PARAMS, PARAMS), XS, seq_lengths=lengths)
    _, fwd = numpy_unroll(PARAMS, np.asarray(XS), LENGTHS)
    _, bwd = numpy_unroll(PARAMS, np.asarray(XS), LENGTHS, reverse=True)
    np.testing.assert_allclose(np.asarray(ys), np.concatenate([fwd, bwd], -1), atol=2e-5)
    net = lstm_jax.stack(CELL, 2, bidirectional=True)
    params = net.init(jax.random.key(2), IN)
    _, out = net.apply(params, XS, seq_lengths=lengths)
    assert out.shape == (B, T, 2 * H)
    np.testing.assert_array_equal(np.asarray(out)[1, 2:], 0.0)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_split_gradients_equal_plain_autodiff_for_every_field(reverse):
    lengths = jnp.asarray(LENGTHS)

    def loss(params, xs, impl):
        _, ys = lstm_jax.unroll(CELL, params, xs, seq_lengths=lengths, reverse=reverse, impl=impl)
        return jnp.sum(jnp.sin(ys) * ys[..., ::-1])

    split = jax.grad(loss, argnums=(0, 1))(PARAMS, XS, "split")
    plain = jax.grad(loss, argnums=(0, 1))(PARAMS, XS, "scan")
    for field in LeakyParams._fields:
        got, want = getattr(split[0], field), getattr(plain[0], field)
        assert float(jnp.max(jnp.abs(want))) > 0, field
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(split[1]), np.asarray(plain[1]), atol=1e-5)


def test_default_impl_gradients_both_modes(x64):
    cell = LeakyTanhCell(H, param_dtype=jnp.float64)
    params = cell.init(jax.random.key(3), IN)
    xs = ref.random_array((B, T, IN), seed=4, dtype=jnp.float64)

    def run(params, xs):
        return lstm_jax.unroll(cell, params, xs, seq_lengths=jnp.asarray(LENGTHS))

    check_grads(run, (params, xs), order=1, modes=("fwd", "rev"))


def test_gates_says_the_cell_has_none():
    with pytest.raises(TypeError, match=r"gates: test_leaky_tanh returns no gates"):
        lstm_jax.gates(CELL, PARAMS, XS)


def test_checkpoint_round_trip(tmp_path):
    from lstm_jax import checkpoint

    net = lstm_jax.stack(LeakyTanhCell(H, carry_dtype=jnp.float32), 2)
    params = net.init(jax.random.key(5), IN)
    checkpoint.save(tmp_path / "ckpt", net, params)
    model, restored, _ = checkpoint.restore(tmp_path / "ckpt")
    assert model == net
    ref.assert_trees_equal(restored, params)


def test_both_flax_layers_run_the_new_cell():
    from flax import nnx

    from lstm_jax.flax import linen as rnn_linen
    from lstm_jax.flax import nnx as rnn_nnx

    lengths = jnp.asarray(LENGTHS)
    _, want = numpy_unroll(PARAMS, np.asarray(XS), LENGTHS)
    linen_layer = rnn_linen.RNN(CELL)
    variables = rnn_linen.module_variables(linen_layer, PARAMS)
    got = linen_layer.apply(variables, XS, seq_lengths=lengths)
    np.testing.assert_allclose(np.asarray(got), want, atol=2e-5)
    nnx_layer = rnn_nnx.RNN(CELL, IN, rngs=nnx.Rngs(0))
    nnx_layer.load_core_params(PARAMS)
    np.testing.assert_allclose(np.asarray(nnx_layer(XS, seq_lengths=lengths)), want, atol=2e-5)
