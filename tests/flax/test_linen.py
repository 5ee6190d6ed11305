"""lstm_jax.flax.linen: modules whose parameters are the core's pytrees and whose numbers are the
core's, checked against the pure functions, the NumPy reference and flax.linen.RNN."""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref
from jax.sharding import Mesh, NamedSharding, PartitionSpec

import lstm_jax
from lstm_jax.flax import linen as L

KEY = jax.random.key(0)
XS = ref.random_array((ref.BATCH, ref.TIME, ref.INPUT), seed=1)
LENGTHS = jnp.array([5, 2, 0], jnp.int32)


# A cell that exists only in this file: a leaky RNN with a parameter field of its own. The
# modules must run it without any edit in lstm_jax/flax.
class LeakyParams(NamedTuple):
    w_ih: jax.Array
    w_hh: jax.Array
    b: jax.Array
    leak: jax.Array  # [hidden], the share of the old state kept at each step


@lstm_jax.register_cell
class LeakyRNNCell(lstm_jax.Cell):
    """``h = leak * h + (1 - leak) * tanh(x @ w_ih + b + h @ w_hh)``."""

    name = "test_linen_leaky_rnn"

    def init(self, key, input_size):
        k_ih, k_hh, k_leak = jax.random.split(key, 3)
        h, dt = self.hidden_size, self.param_dtype
        return LeakyParams(
            w_ih=jax.random.normal(k_ih, (input_size, h), dt) / np.sqrt(input_size),
            w_hh=jax.random.normal(k_hh, (h, h), dt) / np.sqrt(h),
            b=jnp.zeros((h,), dt),
            leak=jax.random.uniform(k_leak, (h,), dt),
        )

    def recur(self, params, h, xp, hh):
        leak = params.leak.astype(xp.dtype).reshape((1,) * (xp.ndim - 1) + (-1,))
        h_new = leak * h.astype(xp.dtype) + (1.0 - leak) * jnp.tanh(xp + hh)
        return h_new.astype(self.resolved_carry_dtype()), self.output(h_new, params), None


def _leaky_step(p, carry, x):
    (h,) = carry
    h = p["leak"] * h + (1.0 - p["leak"]) * np.tanh(x @ p["w_ih"] + p["b"] + h @ p["w_hh"])
    return (h,), h, {}


@pytest.fixture
def leaky(monkeypatch):
    """The toy cell, with its NumPy step known to the reference as kind ``"leaky"``."""
    monkeypatch.setitem(ref.STEPS, "leaky", _leaky_step)
    return LeakyRNNCell(ref.HIDDEN)


@pytest.mark.parametrize("name", ref.CELL_NAMES)
def test_rnn_params_are_the_core_pytree_and_outputs_match_unroll(name):
    cell = ref.make_cell(name)
    module = L.RNN(cell)
    variables = module.init(KEY, XS)
    params = L.core_params(variables)
    assert jax.tree_util.tree_structure(params) == jax.tree_util.tree_structure(
        cell.init(KEY, ref.INPUT)
    )
    ys = module.apply(variables, XS)
    ref.assert_trees_equal(ys, lstm_jax.unroll(cell, params, XS)[1])
    # and the numbers are the reference's, not only the core's
    ref.assert_close(ys, ref.ref_unroll(name, params, XS)[1])


@pytest.mark.parametrize("name", ["lstm", "gru_reset_after"])
def test_params_from_pure_init_run_in_the_module(name):
    cell = ref.make_cell(name)
    params = ref.random_params(cell, ref.INPUT, seed=3)
    module = L.RNN(cell)
    ys = module.apply(L.module_variables(module, params), XS)
    ref.assert_trees_equal(ys, lstm_jax.unroll(cell, params, XS)[1])


@pytest.mark.parametrize("reverse", [False, True])
def test_rnn_routes_lengths_reverse_carry(reverse):
    cell = lstm_jax.LSTMCell(ref.HIDDEN)
    params = ref.random_params(cell, ref.INPUT)
    carry0 = ref.random_carry(cell, (ref.BATCH,))
    module = L.RNN(cell, return_carry=True, reverse=reverse)
    variables = L.module_variables(module, params)
    carry, ys = module.apply(variables, XS, seq_lengths=LENGTHS, initial_carry=carry0)
    ref_carry, ref_ys, _ = ref.ref_unroll(
        "lstm", params, XS, LENGTHS, ref.np_carry(carry0), reverse=reverse
    )
    ref.assert_close(ys, ref_ys)
    ref.assert_carry_close(carry, ref_carry)
    # the call arguments override the attributes
    ys2 = module.apply(
        variables, XS, seq_lengths=LENGTHS, initial_carry=carry0, return_carry=False,
        reverse=not reverse,
    )  # fmt: skip
    want = ref.ref_unroll("lstm", params, XS, LENGTHS, ref.np_carry(carry0), reverse=not reverse)
    ref.assert_close(ys2, want[1])


def test_time_major_and_impl_are_passed_on():
    cell = lstm_jax.GRUCell(ref.HIDDEN)
    params = ref.random_params(cell, ref.INPUT)
    module = L.RNN(cell, time_major=True, impl=lstm_jax.Chunked(every=2))
    xs_t = jnp.swapaxes(XS, 0, 1)
    ys = module.apply(L.module_variables(module, params), xs_t)
    ref.assert_close(ys, ref.ref_unroll("gru_reset_after", params, xs_t, time_major=True)[1])
    assert module.impl == lstm_jax.Chunked(every=2)


@pytest.mark.parametrize("merge", ["concat", "mean"])
def test_bidirectional_matches_reference(merge):
    cell = lstm_jax.GRUCell(ref.HIDDEN)
    module = L.Bidirectional(cell, merge=merge, return_carry=True)
    variables = module.init(KEY, XS)
    params = L.core_params(variables)
    (carry_f, carry_b), ys = module.apply(variables, XS, seq_lengths=LENGTHS)
    (ref_f, ref_b), ref_ys = ref.ref_bidirectional(
        ("gru_reset_after",) * 2, params, XS, LENGTHS, merge=merge
    )
    ref.assert_close(ys, ref_ys)
    ref.assert_carry_close(carry_f, ref_f)
    ref.assert_carry_close(carry_b, ref_b)


def test_lstm_is_one_line_and_matches_stack():
    module = L.LSTM(ref.HIDDEN, num_layers=2, bidirectional=True)
    variables = module.init(KEY, XS)
    params = L.core_params(variables)
    ys = module.apply(variables, XS, seq_lengths=LENGTHS)
    assert ys.shape == (ref.BATCH, ref.TIME, 2 * ref.HIDDEN)
    net = lstm_jax.stack(lstm_jax.LSTMCell(ref.HIDDEN), 2, bidirectional=True)
    assert module.core == net
    ref.assert_trees_equal(ys, net.apply(params, XS, seq_lengths=LENGTHS)[1])
    _, ref_ys = ref.ref_stack(("lstm", "lstm"), params, XS, LENGTHS, bidirectional=True)
    ref.assert_close(ys, ref_ys)


def test_lstm_and_gru_pass_their_options_to_the_cell():
    lstm = L.LSTM(ref.HIDDEN, forget_bias=0.5, use_bias=False, carry_dtype=jnp.float32)
    assert lstm.core.cells[0] == lstm_jax.LSTMCell(
        ref.HIDDEN, forget_bias=0.5, use_bias=False, carry_dtype=jnp.float32
    )
    gru = L.GRU(ref.HIDDEN, num_layers=2, reset_after=False, residual=True)
    assert gru.core == lstm_jax.stack(
        lstm_jax.GRUCell(ref.HIDDEN, reset_after=False), 2, residual=True
    )


def test_gru_stack_returns_per_layer_carries():
    module = L.GRU(ref.HIDDEN, num_layers=3, return_carry=True)
    variables = module.init(KEY, XS)
    carries, ys = module.apply(variables, XS)
    assert len(carries) == 3 and all(c.shape == (ref.BATCH, ref.HIDDEN) for c in carries)
    ref.assert_trees_equal(ys, module.core.apply(L.core_params(variables), XS)[1])


def test_stacked_rnn_takes_any_core_stack():
    net = lstm_jax.stack([lstm_jax.LSTMCell(ref.HIDDEN), lstm_jax.SimpleRNNCell(2)], 2)
    module = L.StackedRNN(net)
    variables = module.init(KEY, XS)
    ys = module.apply(variables, XS)
    assert ys.shape == (ref.BATCH, ref.TIME, 2)
    ref.assert_trees_equal(ys, net.apply(L.core_params(variables), XS)[1])


def test_a_cell_defined_here_runs_in_every_layer(leaky):
    params = ref.random_params(leaky, ref.INPUT, seed=5)
    rnn = L.RNN(leaky, return_carry=True)
    carry, ys = rnn.apply(L.module_variables(rnn, params), XS, seq_lengths=LENGTHS)
    ref_carry, ref_ys, _ = ref.ref_unroll("leaky", params, XS, LENGTHS)
    ref.assert_close(ys, ref_ys)
    ref.assert_carry_close(carry, ref_carry)

    bi = L.Bidirectional(leaky, backward_cell=lstm_jax.LSTMCell(ref.HIDDEN), merge="sum")
    variables = bi.init(KEY, XS)
    bi_params = L.core_params(variables)
    assert isinstance(bi_params[0], LeakyParams)
    _, want = ref.ref_bidirectional(("leaky", "lstm"), bi_params, XS, LENGTHS, merge="sum")
    ref.assert_close(bi.apply(variables, XS, seq_lengths=LENGTHS), want)

    stacked = L.StackedRNN(lstm_jax.stack(leaky, 2, dropout=0.5), deterministic=True)
    variables = stacked.init(KEY, XS)
    _, want = ref.ref_stack(("leaky", "leaky"), L.core_params(variables), XS, LENGTHS)
    ref.assert_close(stacked.apply(variables, XS, seq_lengths=LENGTHS), want)
    # its own field has no logical names: it is left unsharded
    spec = nn.get_partition_spec(variables)["params"]["layers"][1]
    assert spec.leak == PartitionSpec(None) and spec.w_ih == PartitionSpec("rnn_input", "rnn_gates")


def test_dropout_needs_a_dropout_rng_in_training():
    module = L.LSTM(ref.HIDDEN, num_layers=2, dropout=0.5)
    variables = module.init(KEY, XS, deterministic=True)
    with pytest.raises(ValueError, match=r"LSTM: dropout=0.5 in training mode .*'dropout'"):
        module.apply(variables, XS, deterministic=False)
    with pytest.raises(ValueError, match=r"LSTM: dropout=0.5 needs to know .*deterministic"):
        module.apply(variables, XS)


def test_dropout_is_applied_only_in_training():
    module = L.LSTM(ref.HIDDEN, num_layers=2, dropout=0.5)
    variables = module.init(KEY, XS, deterministic=True)
    params = L.core_params(variables)
    eval_ys = module.apply(variables, XS, deterministic=True)
    ref.assert_trees_equal(eval_ys, module.core.apply(params, XS)[1])
    rngs = {"dropout": jax.random.key(7)}
    train_ys = module.apply(variables, XS, deterministic=False, rngs=rngs)
    assert not np.allclose(train_ys, eval_ys)
    # the same dropout rng gives the same mask, and so does the same dropout_key
    ref.assert_trees_equal(train_ys, module.apply(variables, XS, deterministic=False, rngs=rngs))
    by_key = module.apply(variables, XS, deterministic=False, dropout_key=jax.random.key(8))
    ref.assert_trees_equal(by_key, module.core.apply(params, XS, dropout_key=jax.random.key(8))[1])
    # the attribute works as well as the argument
    ref.assert_trees_equal(eval_ys, module.clone(deterministic=True).apply(variables, XS))


def test_regularized_cells_take_their_masks_from_the_dropout_rng():
    cell = lstm_jax.regularizers.regularized(
        lstm_jax.LSTMCell(ref.HIDDEN), state_dropout=0.5, zoneout_c=0.2
    )
    rnn = L.RNN(cell)
    variables = rnn.init(KEY, XS, deterministic=True)
    params = L.core_params(variables)
    key = jax.random.key(9)
    c0 = lstm_jax.regularizers.regularized_carry(cell, (ref.BATCH,), key)
    want = lstm_jax.unroll(cell, params, XS, initial_carry=c0, seq_lengths=LENGTHS)[1]
    got = rnn.apply(variables, XS, seq_lengths=LENGTHS, deterministic=False, dropout_key=key)
    ref.assert_trees_equal(got, want)
    by_rng = rnn.apply(
        variables, XS, seq_lengths=LENGTHS, deterministic=False, rngs={"dropout": key}
    )
    evaluation = rnn.apply(variables, XS, seq_lengths=LENGTHS, deterministic=True)
    assert by_rng.shape == want.shape and not np.allclose(by_rng, evaluation)
    ref.assert_trees_equal(evaluation, lstm_jax.unroll(cell, params, XS, seq_lengths=LENGTHS)[1])
    with pytest.raises(ValueError, match=r"RNN: a regularized cell's rate 0.5 needs to know .*"):
        rnn.apply(variables, XS)
    with pytest.raises(ValueError, match=r"RNN: a regularized cell's rate 0.5 in training mode"):
        rnn.apply(variables, XS, deterministic=False)
    with pytest.raises(TypeError, match=r"RNN: dropout_key must be a PRNG key"):
        rnn.apply(variables, XS, deterministic=False, dropout_key=7)

    bi = L.Bidirectional(cell, deterministic=False)
    variables = bi.init({"params": KEY, "dropout": key}, XS)
    k_f, k_b = jax.random.split(key)
    pair = tuple(lstm_jax.regularizers.regularized_carry(cell, (ref.BATCH,), k) for k in (k_f, k_b))
    want = lstm_jax.bidirectional(cell, L.core_params(variables), XS, initial_carry=pair)[1]
    ref.assert_trees_equal(bi.apply(variables, XS, dropout_key=key), want)
    with pytest.raises(TypeError, match=r"Bidirectional: dropout_key must be a PRNG key"):
        bi.apply(variables, XS, dropout_key=jnp.zeros(3))
    # in a stack layer, the stack's own rule (lstm_jax.stack's apply with the key)
    stacked = L.StackedRNN(lstm_jax.stack(cell, 2), deterministic=False)
    variables = stacked.init({"params": KEY, "dropout": key}, XS)
    want = stacked.stack.apply(L.core_params(variables), XS, dropout_key=key)[1]
    ref.assert_trees_equal(stacked.apply(variables, XS, dropout_key=key), want)


def test_locked_dropout_is_an_option_of_the_lstm_layer():
    module = L.LSTM(ref.HIDDEN, num_layers=2, dropout=0.5, locked_dropout=True)
    assert module.core.locked_dropout
    variables = module.init(KEY, XS, deterministic=True)
    key = jax.random.key(4)
    want = module.core.apply(L.core_params(variables), XS, dropout_key=key)[1]
    ref.assert_trees_equal(module.apply(variables, XS, deterministic=False, dropout_key=key), want)


def test_wrong_input_rank_is_named():
    with pytest.raises(ValueError, match=r"RNN: xs must have shape \[\*batch, time, input\]"):
        L.RNN(lstm_jax.LSTMCell(ref.HIDDEN)).init(KEY, jnp.ones((ref.INPUT,)))
    with pytest.raises(ValueError, match=r"LSTM: xs must have shape"):
        L.LSTM(2).init(KEY, jnp.ones((ref.INPUT,)))
    with pytest.raises(ValueError, match=r"Bidirectional: xs must have shape"):
        L.Bidirectional(lstm_jax.GRUCell(2)).init(KEY, jnp.ones((ref.INPUT,)))


def test_a_flax_module_in_place_of_a_core_cell_is_a_type_error():
    with pytest.raises(TypeError, match=r"RNN: cell must be a core cell .*got the flax module"):
        L.RNN(nn.LSTMCell(4)).init(KEY, XS)
    with pytest.raises(TypeError, match=r"RNN: cell must be a core cell .*its \.cell"):
        L.RNN(L.RNNCell(lstm_jax.LSTMCell(4))).init(KEY, XS)
    with pytest.raises(TypeError, match=r"RNN: cell must be an lstm_jax cell"):
        L.RNN("lstm").init(KEY, XS)


def test_rnn_cell_runs_in_flax_rnn_and_matches_ours():
    cell = lstm_jax.LSTMCell(ref.HIDDEN)
    theirs = nn.RNN(L.RNNCell(cell), return_carry=True)
    variables = theirs.init(KEY, XS)
    params = L.core_params(variables["params"]["cell"])
    carry, ys = theirs.apply(variables, XS)
    ref_carry, ref_ys, _ = ref.ref_unroll("lstm", params, XS)
    ref.assert_close(ys, ref_ys)
    ref.assert_carry_close(carry, ref_carry)
    ours = L.RNN(cell)
    ref.assert_trees_close(ours.apply(L.module_variables(ours, params), XS), ys)


@pytest.mark.parametrize("name", ["peephole", "gru_reset_before", "simple_relu"])
def test_rnn_cell_steps_like_the_core(name):
    module = L.RNNCell(ref.make_cell(name))
    x = XS[:, 0]
    carry = module.initialize_carry(KEY, x.shape)
    variables = module.init(KEY, carry, x)
    new, y = module.apply(variables, carry, x)
    ref.assert_trees_equal((new, y), module.cell.step(L.core_params(variables), carry, x))


class _Tagger(nn.Module):
    """A user model: embedding, a two-layer LSTM from this package with dropout, a dense head."""

    @nn.compact
    def __call__(self, tokens, lengths, *, train: bool):
        x = nn.Embed(10, ref.INPUT)(tokens)
        encoder = L.LSTM(ref.HIDDEN, num_layers=2, dropout=0.1, name="encoder")
        return nn.Dense(2)(encoder(x, seq_lengths=lengths, deterministic=not train))


def test_works_inside_a_linen_model_under_jit_and_grad():
    model = _Tagger()
    tokens = jnp.array([[1, 2, 3, 4, 5], [6, 7, 0, 0, 0], [0, 0, 0, 0, 0]])
    variables = model.init(KEY, tokens, LENGTHS, train=False)
    encoder = L.core_params(variables["params"]["encoder"])
    assert isinstance(encoder[0], lstm_jax.LSTMParams)

    @jax.jit
    def loss(variables, key):
        logits = model.apply(variables, tokens, LENGTHS, train=True, rngs={"dropout": key})
        return jnp.sum(logits**2)

    grads = jax.grad(loss)(variables, jax.random.key(1))
    assert jax.tree_util.tree_structure(grads) == jax.tree_util.tree_structure(variables)
    assert all(np.isfinite(g).all() for g in jax.tree_util.tree_leaves(grads))


def test_nn_jit_and_nn_vmap():
    cell = lstm_jax.GRUCell(ref.HIDDEN)
    variables = L.RNN(cell).init(KEY, XS)
    want = L.RNN(cell).apply(variables, XS)
    jitted = nn.jit(L.RNN)(cell)
    ref.assert_trees_close(jitted.apply(variables, XS), want)
    # vmap over a leading axis of independent batches, parameters shared
    vmapped = nn.vmap(
        L.RNN, in_axes=0, out_axes=0, variable_axes={"params": None}, split_rngs={"params": False}
    )(cell)
    ys2 = vmapped.apply(variables, jnp.stack([XS, 2 * XS]))
    ref.assert_trees_close(ys2[0], want)
    ref.assert_trees_close(ys2[1], L.RNN(cell).apply(variables, 2 * XS))


def test_parameters_carry_logical_axis_names():
    module = L.GRU(ref.HIDDEN, bidirectional=True)
    variables = module.init(KEY, XS)
    specs = nn.get_partition_spec(variables)["params"]["layers"][0][1]
    assert specs == lstm_jax.GRUParams(
        w_ih=PartitionSpec("rnn_input", "rnn_gates"),
        w_hh=PartitionSpec("rnn_hidden", "rnn_gates"),
        b=PartitionSpec("rnn_gates"),
        b_hn=PartitionSpec("rnn_hidden"),
    )


def test_slstm_heads_carry_their_own_axis_names():
    module = L.RNN(lstm_jax.SLSTMCell(4, num_heads=2))
    specs = nn.get_partition_spec(module.init(KEY, XS))["params"]["cell"]
    assert specs.w_hh == PartitionSpec("rnn_heads", "rnn_head", "rnn_head_gates")
    assert specs.w_ih == PartitionSpec("rnn_input", "rnn_gates")


def test_logical_names_shard_with_jax_sharding():
    module = L.LSTM(ref.HIDDEN)
    variables = module.init(KEY, XS)
    mesh = Mesh(np.asarray(jax.devices()[:1]), ("model",))
    rules = (("rnn_gates", "model"), ("rnn_input", None), ("rnn_hidden", None))
    shardings = nn.logical_to_mesh_sharding(nn.get_partition_spec(variables), mesh, rules)
    w_ih_sharding = shardings["params"]["layers"][0].w_ih
    assert w_ih_sharding == NamedSharding(mesh, PartitionSpec(None, "model"))
    placed = jax.device_put(nn.unbox(variables), nn.unbox(shardings))
    ref.assert_trees_equal(module.apply(placed, XS), module.apply(variables, XS))


def test_core_params_rejects_foreign_variables():
    with pytest.raises(ValueError, match=r"core_params: variables must hold exactly one"):
        L.core_params({"params": {"Dense_0": {}}})
    with pytest.raises(TypeError, match=r"module_variables: module must be a module of"):
        L.module_variables(nn.Dense(3), ())


def test_options_are_keyword_only():
    with pytest.raises(TypeError, match=r"takes from 2 to 4 positional arguments"):
        L.LSTM(ref.HIDDEN, None, None, 2)
