"""lstm_jax.stack: layers chained, against a reference built by chaining NumPy layers."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref

import lstm_jax

B, T, IN, H = ref.BATCH, ref.TIME, ref.INPUT, ref.HIDDEN
LENGTHS = ref.LENGTHS  # [T, 2, 0]


def _kinds(net):
    return [ref.kind_of(c) for c in net.cells]


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
def test_matches_chained_reference(num_layers, bidirectional):
    net = lstm_jax.stack(lstm_jax.lstm(H), num_layers, bidirectional=bidirectional)
    params = ref.random_params(net, IN, seed=num_layers)
    xs = ref.random_array((B, T, IN), seed=1)
    carries, ys = net.apply(params, xs, seq_lengths=jnp.asarray(LENGTHS))
    ref_carries, ref_ys = ref.ref_stack(
        _kinds(net), params, xs, LENGTHS, bidirectional=bidirectional
    )
    assert ys.shape == (B, T, net.output_size)
    assert net.output_size == (2 * H if bidirectional else H)
    ref.assert_close(ys, ref_ys)
    assert len(carries) == num_layers
    for carry, ref_carry in zip(carries, ref_carries, strict=True):
        if bidirectional:
            ref.assert_carry_close(carry[0], ref_carry[0])
            ref.assert_carry_close(carry[1], ref_carry[1])
        else:
            ref.assert_carry_close(carry, ref_carry)


def test_params_and_carries_layout():
    net = lstm_jax.stack(lstm_jax.gru(H), 2, bidirectional=True, merge="sum")
    params = net.init(jax.random.key(0), IN)
    assert len(params) == 2
    for layer, n_in in enumerate((IN, H)):  # "sum" keeps the width at H
        forward, backward = params[layer]
        assert forward.w_ih.shape == backward.w_ih.shape == (n_in, 3 * H)
    carries = net.initial_carry((B,))
    assert len(carries) == 2 and all(len(c) == 2 for c in carries)
    assert carries[0][0].shape == (B, H)


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_a_different_cell_per_layer(bidirectional):
    cells = [lstm_jax.peephole_lstm(H), lstm_jax.gru(2, reset_after=False), lstm_jax.simple_rnn(3)]
    net = lstm_jax.stack(cells, 3, bidirectional=bidirectional)
    params = ref.random_params(net, IN, seed=5)
    xs = ref.random_array((B, T, IN), seed=6)
    _, ys = net.apply(params, xs, seq_lengths=jnp.asarray(LENGTHS))
    _, ref_ys = ref.ref_stack(_kinds(net), params, xs, LENGTHS, bidirectional=bidirectional)
    assert ys.shape == (B, T, 6 if bidirectional else 3)
    ref.assert_close(ys, ref_ys)


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_residual_matches_reference(bidirectional):
    """Residuals wherever widths agree: not on the first layer (input 3, output H or 2H), on
    every later one."""
    net = lstm_jax.stack(lstm_jax.cifg_lstm(H), 3, bidirectional=bidirectional, residual=True)
    params = ref.random_params(net, IN, seed=7)
    xs = ref.random_array((B, T, IN), seed=8)
    _, ys = net.apply(params, xs, seq_lengths=jnp.asarray(LENGTHS))
    _, ref_ys = ref.ref_stack(
        _kinds(net), params, xs, LENGTHS, bidirectional=bidirectional, residual=True
    )
    ref.assert_close(ys, ref_ys)
    _, ref_plain = ref.ref_stack(_kinds(net), params, xs, LENGTHS, bidirectional=bidirectional)
    assert not np.allclose(ref_ys, ref_plain)  # the residuals did something


def test_residual_on_first_layer_of_equal_width():
    net = lstm_jax.stack(lstm_jax.lstm(IN), 2, residual=True)
    params = ref.random_params(net, IN, seed=9)
    xs = ref.random_array((B, T, IN), seed=10)
    _, ys = net.apply(params, xs)
    _, ref_ys = ref.ref_stack(_kinds(net), params, xs, residual=True)
    ref.assert_close(ys, ref_ys)


def test_residual_keeps_padding_zero_and_ignores_garbage():
    """With a residual on the first layer (input width == hidden), the layer input is added to
    its output: what lies past each length must still not reach the outputs (they stay exactly
    zero there, as unroll's seq_lengths contract says for every layer)."""
    net = lstm_jax.stack(lstm_jax.lstm(IN), 2, residual=True)
    params = ref.random_params(net, IN, seed=11)
    xs = ref.random_array((B, T, IN), seed=12)
    lengths = jnp.asarray(LENGTHS)
    _, ys = net.apply(params, ref.with_garbage(xs, LENGTHS, np.nan), seq_lengths=lengths)
    _, ref_ys = ref.ref_stack(_kinds(net), params, xs, LENGTHS, residual=True)
    ref.assert_close(ys, ref_ys)
    assert np.all(np.asarray(ys)[~ref.valid_mask((B,), T, LENGTHS)] == 0.0)


def test_dropout_without_key_is_deterministic_and_equals_no_dropout():
    cell = lstm_jax.lstm(H)
    with_dropout = lstm_jax.stack(cell, 2, dropout=0.5)
    without = lstm_jax.stack(cell, 2)
    params = ref.random_params(without, IN, seed=13)
    xs = ref.random_array((B, T, IN), seed=14)
    lengths = jnp.asarray(LENGTHS)
    a = with_dropout.apply(params, xs, seq_lengths=lengths)
    b = with_dropout.apply(params, xs, seq_lengths=lengths)
    ref.assert_trees_equal(a, b)
    ref.assert_trees_equal(a, without.apply(params, xs, seq_lengths=lengths))


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_dropout_masks_depend_on_the_key(bidirectional):
    net = lstm_jax.stack(lstm_jax.gru(H), 2, dropout=0.5, bidirectional=bidirectional)
    params = ref.random_params(net, IN, seed=15)
    xs = ref.random_array((B, T, IN), seed=16)
    lengths = jnp.asarray(LENGTHS)
    run = lambda key: net.apply(params, xs, seq_lengths=lengths, dropout_key=key)[1]
    k1, k2 = jax.random.key(1), jax.random.key(2)
    y1, y1_again, y2 = run(k1), run(k1), run(k2)
    ref.assert_trees_equal(y1, y1_again)
    assert not np.allclose(np.asarray(y1), np.asarray(y2))
    no_drop = net.apply(params, xs, seq_lengths=lengths)[1]
    assert not np.allclose(np.asarray(y1), np.asarray(no_drop))
    pad = ~ref.valid_mask((B,), T, LENGTHS)
    for y in (y1, y2):
        assert np.all(np.asarray(y)[pad] == 0.0)


def test_dropout_is_not_applied_after_the_last_layer():
    net = lstm_jax.stack(lstm_jax.lstm(H), 1, dropout=0.5)
    params = ref.random_params(net, IN, seed=17)
    xs = ref.random_array((B, T, IN), seed=18)
    ref.assert_trees_equal(
        net.apply(params, xs, dropout_key=jax.random.key(0)), net.apply(params, xs)
    )


def test_dropout_on_a_one_layer_output_matches_inverted_dropout():
    """Two layers of an Elman RNN whose second layer is the identity on its input (w_ih = I,
    w_hh = 0, no bias, relu, inputs made positive): the output shows the dropout mask directly:
    every element is either 0 or the first layer's output / (1 - rate)."""
    rate = 0.5
    first = lstm_jax.simple_rnn(H, activation="relu")
    second = lstm_jax.simple_rnn(H, activation="relu", use_bias=False)
    net = lstm_jax.stack([first, second], 2, dropout=rate)
    p1 = ref.random_params(first, IN, seed=19)
    p1 = p1._replace(b=jnp.abs(p1.b) + 1.0)  # positive first-layer outputs
    p2 = lstm_jax.SimpleRNNParams(jnp.eye(H), jnp.zeros((H, H)), None)
    xs = jnp.abs(ref.random_array((B, T, IN), seed=20))
    p1 = p1._replace(w_ih=jnp.abs(p1.w_ih), w_hh=jnp.abs(p1.w_hh))
    _, ys = net.apply((p1, p2), xs, dropout_key=jax.random.key(3))
    _, h1 = lstm_jax.unroll(first, p1, xs)
    ys, h1 = np.asarray(ys), np.asarray(h1)
    kept = ys != 0
    assert 0 < kept.mean() < 1
    np.testing.assert_allclose(ys[kept], h1[kept] / (1 - rate), rtol=1e-6)


def test_initial_carries_are_used_per_layer():
    net = lstm_jax.stack(lstm_jax.lstm(H), 2, bidirectional=True)
    params = ref.random_params(net, IN, seed=21)
    xs = ref.random_array((B, T, IN), seed=22)
    cell = net.cells[0]
    c0 = tuple(
        (
            ref.random_carry(cell, (B,), seed=30 + 2 * k),
            ref.random_carry(cell, (B,), seed=31 + 2 * k),
        )
        for k in range(2)
    )
    carries, ys = net.apply(params, xs, seq_lengths=jnp.asarray(LENGTHS), initial_carry=c0)
    ref_c0 = tuple((ref.np_carry(f), ref.np_carry(b)) for f, b in c0)
    ref_carries, ref_ys = ref.ref_stack(
        _kinds(net), params, xs, LENGTHS, ref_c0, bidirectional=True
    )
    ref.assert_close(ys, ref_ys)
    for (cf, cb), (rf, rb) in zip(carries, ref_carries, strict=True):
        ref.assert_carry_close(cf, rf)
        ref.assert_carry_close(cb, rb)


def test_time_major():
    net = lstm_jax.stack(lstm_jax.gru(H), 2, bidirectional=True, residual=True)
    params = ref.random_params(net, IN, seed=23)
    xs = ref.random_array((B, T, IN), seed=24)
    lengths = jnp.asarray(LENGTHS)
    carries, ys = net.apply(params, xs, seq_lengths=lengths)
    carries_t, ys_t = net.apply(
        params, jnp.swapaxes(xs, 0, 1), seq_lengths=lengths, time_major=True
    )
    ref.assert_trees_close(jnp.swapaxes(ys_t, 0, 1), ys)
    ref.assert_trees_close(carries_t, carries)


def test_gradients(x64):
    from jax.test_util import check_grads

    net = lstm_jax.stack(lstm_jax.lstm(H, param_dtype=jnp.float64), 2, residual=True)
    params = ref.random_params(net, IN, seed=25)
    xs = ref.random_array((B, T, IN), seed=26, dtype=jnp.float64)
    lengths = jnp.asarray(LENGTHS)
    check_grads(
        lambda p, xs: net.apply(p, xs, seq_lengths=lengths), (params, xs), order=1, modes=("rev",)
    )
