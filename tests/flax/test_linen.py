"""lstm_jax.flax.linen: modules whose parameters are the core's pytrees and whose numbers are the
core's, checked against the pure functions and the NumPy reference."""

from __future__ import annotations

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


@pytest.mark.parametrize("name", ref.CELL_NAMES)
def test_rnn_params_are_the_core_pytree_and_outputs_match_unroll(name):
    cell = ref.make_cell(name)
    module = L.RNN(cell)
    variables = module.init(KEY, XS)
    params = L.core_params(variables)
    want = ref.kind_of(cell)
    assert jax.tree_util.tree_structure(params) == jax.tree_util.tree_structure(
        cell.init(KEY, ref.INPUT)
    ), want
    ys = module.apply(variables, XS)
    ref.assert_trees_equal(ys, lstm_jax.unroll(cell, params, XS)[1])
    # and the numbers are the reference's, not only the core's
    ref.assert_close(ys, ref.ref_unroll(want, params, XS)[1])


@pytest.mark.parametrize("name", ["lstm", "gru_reset_after"])
def test_params_from_pure_init_run_in_the_module(name):
    cell = ref.make_cell(name)
    params = ref.random_params(cell, ref.INPUT, seed=3)
    module = L.RNN(cell)
    ys = module.apply(L.module_variables(module, params), XS)
    ref.assert_trees_equal(ys, lstm_jax.unroll(cell, params, XS)[1])


@pytest.mark.parametrize("reverse", [False, True])
def test_rnn_routes_lengths_reverse_carry(reverse):
    cell = lstm_jax.lstm(ref.HIDDEN)
    params = ref.random_params(cell, ref.INPUT)
    carry0 = ref.random_carry(cell, (ref.BATCH,))
    module = L.RNN(cell, return_carry=True, reverse=reverse)
    carry, ys = module.apply(
        L.module_variables(module, params), XS, seq_lengths=LENGTHS, initial_carry=carry0
    )
    ref_carry, ref_ys, _ = ref.ref_unroll(
        "lstm", params, XS, LENGTHS, ref.np_carry(carry0), reverse=reverse
    )
    ref.assert_close(ys, ref_ys)
    ref.assert_carry_close(carry, ref_carry)
    # the call arguments override the attributes
    ys2 = module.apply(
        L.module_variables(module, params),
        XS,
        seq_lengths=LENGTHS,
        initial_carry=carry0,
        return_carry=False,
        reverse=not reverse,
    )
    ref.assert_close(
        ys2,
        ref.ref_unroll("lstm", params, XS, LENGTHS, ref.np_carry(carry0), reverse=not reverse)[1],
    )


@pytest.mark.parametrize("merge", ["concat", "sum", "mean", "mul"])
def test_bidirectional_matches_reference(merge):
    cell = lstm_jax.gru(ref.HIDDEN)
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
    module = L.LSTM(hidden_size=ref.HIDDEN, num_layers=2, bidirectional=True)
    variables = module.init(KEY, XS)
    params = L.core_params(variables)
    ys = module.apply(variables, XS, seq_lengths=LENGTHS)
    assert ys.shape == (ref.BATCH, ref.TIME, 2 * ref.HIDDEN)
    net = lstm_jax.stack(lstm_jax.lstm(ref.HIDDEN), 2, bidirectional=True)
    assert module.core == net
    ref.assert_trees_equal(ys, net.apply(params, XS, seq_lengths=LENGTHS)[1])
    _, ref_ys = ref.ref_stack(("lstm", "lstm"), params, XS, LENGTHS, bidirectional=True)
    ref.assert_close(ys, ref_ys)


def test_gru_stack_returns_per_layer_carries():
    module = L.GRU(hidden_size=ref.HIDDEN, num_layers=3, return_carry=True)
    variables = module.init(KEY, XS)
    carries, ys = module.apply(variables, XS)
    assert len(carries) == 3 and all(c.shape == (ref.BATCH, ref.HIDDEN) for c in carries)
    ref.assert_trees_equal(ys, module.core.apply(L.core_params(variables), XS)[1])


def test_stacked_rnn_takes_any_core_stack():
    net = lstm_jax.stack([lstm_jax.lstm(ref.HIDDEN), lstm_jax.simple_rnn(2)], 2)
    module = L.StackedRNN(net)
    variables = module.init(KEY, XS)
    ys = module.apply(variables, XS)
    assert ys.shape == (ref.BATCH, ref.TIME, 2)
    ref.assert_trees_equal(ys, net.apply(L.core_params(variables), XS)[1])


def test_dropout_needs_a_dropout_rng_in_training():
    module = L.LSTM(hidden_size=ref.HIDDEN, num_layers=2, dropout=0.5)
    variables = module.init(KEY, XS, deterministic=True)
    with pytest.raises(ValueError, match=r"LSTM: dropout=0.5 in training mode .*'dropout'"):
        module.apply(variables, XS, deterministic=False)
    with pytest.raises(ValueError, match=r"LSTM: dropout=0.5 needs to know .*deterministic"):
        module.apply(variables, XS)


def test_dropout_is_applied_only_in_training():
    module = L.LSTM(hidden_size=ref.HIDDEN, num_layers=2, dropout=0.5)
    variables = module.init(KEY, XS, deterministic=True)
    params = L.core_params(variables)
    eval_ys = module.apply(variables, XS, deterministic=True)
    ref.assert_trees_equal(eval_ys, module.core.apply(params, XS)[1])
    rngs = {"dropout": jax.random.key(7)}
    train_ys = module.apply(variables, XS, deterministic=False, rngs=rngs)
    assert not np.allclose(train_ys, eval_ys)
    # the same dropout rng gives the same mask
    ref.assert_trees_equal(train_ys, module.apply(variables, XS, deterministic=False, rngs=rngs))
    # the attribute works as well as the argument
    ref.assert_trees_equal(eval_ys, module.clone(deterministic=True).apply(variables, XS))


def test_wrong_input_rank_is_named():
    with pytest.raises(ValueError, match=r"RNN: xs must have shape \[\*batch, time, input\]"):
        L.RNN(lstm_jax.lstm(ref.HIDDEN)).init(KEY, jnp.ones((ref.INPUT,)))
    with pytest.raises(ValueError, match=r"LSTM: xs must have shape"):
        L.LSTM(hidden_size=2).init(KEY, jnp.ones((ref.INPUT,)))
    with pytest.raises(ValueError, match=r"Bidirectional: xs must have shape"):
        L.Bidirectional(lstm_jax.gru(2)).init(KEY, jnp.ones((ref.INPUT,)))


def test_flax_cell_in_place_of_a_core_cell_is_a_type_error():
    with pytest.raises(TypeError, match=r"RNN: cell must be a core cell .*got the flax module"):
        L.RNN(nn.LSTMCell(4)).init(KEY, XS)
    with pytest.raises(TypeError, match=r"RNN: cell must be an lstm_jax cell"):
        L.RNN("lstm").init(KEY, XS)


def test_rnn_cell_runs_in_flax_rnn_and_matches_ours():
    cell = lstm_jax.lstm(ref.HIDDEN)
    theirs = nn.RNN(L.RNNCell(cell), return_carry=True)
    variables = theirs.init(KEY, XS)
    params = L.core_params(variables["params"]["cell"])
    carry, ys = theirs.apply(variables, XS)
    ref_carry, ref_ys, _ = ref.ref_unroll("lstm", params, XS)
    ref.assert_close(ys, ref_ys)
    ref.assert_carry_close(carry, ref_carry)


@pytest.mark.parametrize("factory", ["LSTMCell", "PeepholeLSTMCell", "CIFGLSTMCell", "GRUCell",
                                     "SimpleRNNCell"])  # fmt: skip
def test_cell_modules_step_like_the_core(factory):
    module = getattr(L, factory)(ref.HIDDEN)
    x = XS[:, 0]
    carry = module.initialize_carry(KEY, x.shape)
    variables = module.init(KEY, carry, x)
    params = L.core_params(variables)
    new, y = module.apply(variables, carry, x)
    ref_new, ref_y = module.cell.step(params, carry, x)
    ref.assert_trees_equal((new, y), (ref_new, ref_y))


class _Tagger(nn.Module):
    """A user model: embedding, a two-layer LSTM from this package with dropout, a dense head."""

    @nn.compact
    def __call__(self, tokens, lengths, *, train: bool):
        x = nn.Embed(10, ref.INPUT)(tokens)
        h = L.LSTM(hidden_size=ref.HIDDEN, num_layers=2, dropout=0.1,
                   name="encoder")(x, seq_lengths=lengths, deterministic=not train)  # fmt: skip
        return nn.Dense(2)(h)


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
    cell = lstm_jax.gru(ref.HIDDEN)
    variables = L.RNN(cell).init(KEY, XS)
    want = L.RNN(cell).apply(variables, XS)
    jitted = nn.jit(L.RNN)(cell)
    ref.assert_trees_close(jitted.apply(variables, XS), want)
    # vmap over a leading axis of independent batches, parameters shared
    vmapped = nn.vmap(
        L.RNN, in_axes=0, out_axes=0, variable_axes={"params": None}, split_rngs={"params": False}
    )(cell)
    xs2 = jnp.stack([XS, 2 * XS])
    ys2 = vmapped.apply(variables, xs2)
    ref.assert_trees_close(ys2[0], want)
    ref.assert_trees_close(ys2[1], L.RNN(cell).apply(variables, 2 * XS))


def test_parameters_carry_logical_axis_names():
    module = L.GRU(hidden_size=ref.HIDDEN, bidirectional=True)
    variables = module.init(KEY, XS)
    specs = nn.get_partition_spec(variables)["params"]["layers"][0][1]
    assert specs == lstm_jax.GRUParams(
        w_ih=PartitionSpec("rnn_input", "rnn_gates"),
        w_hh=PartitionSpec("rnn_hidden", "rnn_gates"),
        b=PartitionSpec("rnn_gates"),
        b_hn=PartitionSpec("rnn_hidden"),
    )


def test_logical_names_shard_with_jax_sharding():
    module = L.LSTM(hidden_size=ref.HIDDEN)
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
