"""lstm_jax.flax.nnx: modules whose parameters are the core's pytrees and whose numbers are the
core's, checked against the pure functions, the NumPy reference and flax.nnx.RNN; and the same
options and conventions as lstm_jax.flax.linen."""

from __future__ import annotations

import dataclasses
import inspect
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import reference as ref
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

import lstm_jax
from lstm_jax.flax import linen as L
from lstm_jax.flax import nnx as N

XS = ref.random_array((ref.BATCH, ref.TIME, ref.INPUT), seed=1)
LENGTHS = jnp.array([5, 2, 0], jnp.int32)
LAYERS = ("RNNCell", "RNN", "Bidirectional", "StackedRNN", "LSTM", "GRU")


# A cell that exists only in this file: an Elman RNN with a learned output gain, a parameter
# field of its own. The modules must run it without any edit in lstm_jax/flax.
class GainParams(NamedTuple):
    w_ih: jax.Array
    w_hh: jax.Array
    b: jax.Array
    gain: jax.Array  # [hidden]


@lstm_jax.register_cell
class GainRNNCell(lstm_jax.Cell):
    """``h = gain * tanh(x @ w_ih + b + h @ w_hh)``."""

    name = "test_nnx_gain_rnn"

    def init(self, key, input_size):
        k_ih, k_hh = jax.random.split(key)
        h, dt = self.hidden_size, self.param_dtype
        return GainParams(
            w_ih=jax.random.normal(k_ih, (input_size, h), dt) / np.sqrt(input_size),
            w_hh=jax.random.normal(k_hh, (h, h), dt) / np.sqrt(h),
            b=jnp.zeros((h,), dt),
            gain=jnp.ones((h,), dt),
        )

    def recur(self, params, h, xp, hh):
        gain = params.gain.astype(xp.dtype).reshape((1,) * (xp.ndim - 1) + (-1,))
        h_new = gain * jnp.tanh(xp + hh)
        return h_new.astype(self.resolved_carry_dtype()), self.output(h_new, params), None


def _gain_step(p, carry, x):
    h = p["gain"] * np.tanh(x @ p["w_ih"] + p["b"] + carry[0] @ p["w_hh"])
    return (h,), h, {}


@pytest.fixture
def gain(monkeypatch):
    """The toy cell, with its NumPy step known to the reference as kind ``"gain"``."""
    monkeypatch.setitem(ref.STEPS, "gain", _gain_step)
    return GainRNNCell(ref.HIDDEN)


@pytest.mark.parametrize("name", ref.CELL_NAMES)
def test_rnn_params_are_the_core_pytree_and_outputs_match_unroll(name):
    cell = ref.make_cell(name)
    module = N.RNN(cell, ref.INPUT, rngs=nnx.Rngs(0))
    params = module.core_params()
    assert jax.tree_util.tree_structure(params) == jax.tree_util.tree_structure(
        cell.init(jax.random.key(0), ref.INPUT)
    )
    ys = module(XS)
    ref.assert_trees_equal(ys, lstm_jax.unroll(cell, params, XS)[1])
    ref.assert_close(ys, ref.ref_unroll(name, params, XS)[1])


def test_load_core_params_runs_pure_params_in_the_module():
    cell = lstm_jax.PeepholeLSTMCell(ref.HIDDEN)
    params = ref.random_params(cell, ref.INPUT, seed=4)
    module = N.RNN(cell, ref.INPUT, rngs=nnx.Rngs(0), return_carry=True)
    module.load_core_params(params)
    carry, ys = module(XS, seq_lengths=LENGTHS, reverse=True)
    ref_carry, ref_ys, _ = ref.ref_unroll("peephole", params, XS, LENGTHS, reverse=True)
    ref.assert_close(ys, ref_ys)
    ref.assert_carry_close(carry, ref_carry)


def test_load_core_params_rejects_other_shapes():
    cell = lstm_jax.LSTMCell(ref.HIDDEN)
    module = N.RNN(cell, ref.INPUT, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"RNN.load_core_params: every leaf must keep its shape"):
        module.load_core_params(cell.init(jax.random.key(0), ref.INPUT + 1))
    with pytest.raises(TypeError, match=r"RNN.load_core_params: params must have the structure"):
        module.load_core_params(lstm_jax.GRUCell(ref.HIDDEN).init(jax.random.key(0), ref.INPUT))


@pytest.mark.parametrize("merge", ["concat", "mul"])
def test_bidirectional_matches_reference(merge):
    module = N.Bidirectional(
        lstm_jax.CIFGLSTMCell(ref.HIDDEN), ref.INPUT, rngs=nnx.Rngs(0), merge=merge,
        return_carry=True,
    )  # fmt: skip
    params = module.core_params()
    (carry_f, carry_b), ys = module(XS, seq_lengths=LENGTHS)
    (ref_f, ref_b), ref_ys = ref.ref_bidirectional(("cifg",) * 2, params, XS, LENGTHS, merge=merge)
    ref.assert_close(ys, ref_ys)
    ref.assert_carry_close(carry_f, ref_f)
    ref.assert_carry_close(carry_b, ref_b)


def test_lstm_is_one_line_and_matches_stack():
    module = N.LSTM(ref.HIDDEN, ref.INPUT, num_layers=2, bidirectional=True, rngs=nnx.Rngs(0))
    ys = module(XS, seq_lengths=LENGTHS)
    assert ys.shape == (ref.BATCH, ref.TIME, 2 * ref.HIDDEN)
    assert module.core == lstm_jax.stack(lstm_jax.LSTMCell(ref.HIDDEN), 2, bidirectional=True)
    params = module.core_params()
    ref.assert_trees_equal(ys, module.core.apply(params, XS, seq_lengths=LENGTHS)[1])
    _, ref_ys = ref.ref_stack(("lstm", "lstm"), params, XS, LENGTHS, bidirectional=True)
    ref.assert_close(ys, ref_ys)


def test_gru_stack_returns_per_layer_carries():
    module = N.GRU(ref.HIDDEN, ref.INPUT, num_layers=2, return_carry=True, rngs=nnx.Rngs(0))
    carries, ys = module(XS)
    assert len(carries) == 2 and all(c.shape == (ref.BATCH, ref.HIDDEN) for c in carries)
    ref.assert_trees_equal(ys, module.core.apply(module.core_params(), XS)[1])


def test_a_cell_defined_here_runs_in_every_layer(gain):
    rnn = N.RNN(gain, ref.INPUT, rngs=nnx.Rngs(0), reverse=True, time_major=True)
    params = ref.random_params(gain, ref.INPUT, seed=6)
    rnn.load_core_params(params)
    xs_t = jnp.swapaxes(XS, 0, 1)
    want = ref.ref_unroll("gain", params, xs_t, LENGTHS, reverse=True, time_major=True)[1]
    ref.assert_close(rnn(xs_t, seq_lengths=LENGTHS), want)

    bi = N.Bidirectional(gain, ref.INPUT, rngs=nnx.Rngs(1), merge="mean")
    assert isinstance(bi.core_params()[1], GainParams)
    _, want = ref.ref_bidirectional(("gain",) * 2, bi.core_params(), XS, LENGTHS, merge="mean")
    ref.assert_close(bi(XS, seq_lengths=LENGTHS), want)

    stacked = N.StackedRNN(lstm_jax.stack(gain, 2, residual=True), ref.INPUT, rngs=nnx.Rngs(2))
    _, want = ref.ref_stack(("gain",) * 2, stacked.core_params(), XS, LENGTHS, residual=True)
    ref.assert_close(stacked(XS, seq_lengths=LENGTHS), want)
    specs = nnx.get_partition_spec(nnx.state(stacked, nnx.Param))["params"][0]
    assert specs["gain"].get_value() == PartitionSpec(None)  # no logical names: unsharded


def test_dropout_follows_train_and_eval():
    module = N.LSTM(ref.HIDDEN, ref.INPUT, num_layers=2, dropout=0.5, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"LSTM: dropout=0.5 needs to know .*model.train"):
        module(XS)
    module.eval()
    eval_ys = module(XS)
    ref.assert_trees_equal(eval_ys, module.core.apply(module.core_params(), XS)[1])
    module.train()
    first, second = module(XS), module(XS)
    assert not np.allclose(first, eval_ys)
    assert not np.allclose(first, second)  # the kept stream advances
    ref.assert_trees_equal(nnx.view(module, deterministic=True)(XS), eval_ys)


def test_dropout_without_a_stream_needs_a_dropout_key():
    module = N.GRU(ref.HIDDEN, ref.INPUT, num_layers=2, dropout=0.2, rngs=nnx.Rngs(params=0))
    with pytest.raises(ValueError, match=r"GRU: dropout=0.2 in training mode .*'dropout'"):
        module(XS, deterministic=False)
    key = jax.random.key(3)
    want = module.core.apply(module.core_params(), XS, dropout_key=key)[1]
    ref.assert_trees_equal(module(XS, deterministic=False, dropout_key=key), want)
    ys = module(XS, deterministic=False, dropout_key=nnx.Rngs(dropout=3))
    assert ys.shape == (ref.BATCH, ref.TIME, ref.HIDDEN)


def test_regularized_cells_follow_train_and_eval():
    cell = lstm_jax.regularizers.regularized(lstm_jax.GRUCell(ref.HIDDEN), zoneout_h=0.3)
    module = N.RNN(cell, ref.INPUT, rngs=nnx.Rngs(0, dropout=1))
    with pytest.raises(
        ValueError, match=r"RNN: a regularized cell's rate 0.3 needs to know .*model.train"
    ):
        module(XS)
    module.eval()
    params = module.core_params()
    ref.assert_trees_equal(module(XS), lstm_jax.unroll(cell, params, XS)[1])
    module.train()
    first, second = module(XS), module(XS)
    assert not np.allclose(first, second)  # the kept stream advances
    key = jax.random.key(6)
    c0 = lstm_jax.regularizers.regularized_carry(cell, (ref.BATCH,), key)
    want = lstm_jax.unroll(cell, params, XS, initial_carry=c0, seq_lengths=LENGTHS)[1]
    ref.assert_trees_equal(module(XS, seq_lengths=LENGTHS, dropout_key=key), want)


def test_wrong_input_is_named():
    module = N.RNN(lstm_jax.LSTMCell(ref.HIDDEN), ref.INPUT, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"RNN: xs must have shape \[\*batch, time, input\]"):
        module(jnp.ones((ref.INPUT,)))
    with pytest.raises(ValueError, match=r"RNN: the inputs' last axis must have .*input_size=3"):
        module(jnp.ones((2, 5, ref.INPUT + 1)))
    with pytest.raises(TypeError, match=r"RNN: cell must be a core cell .*flax module"):
        N.RNN(nnx.GRUCell(3, 4, rngs=nnx.Rngs(0)), ref.INPUT, rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match=r"LSTM: rngs must be an nnx.Rngs"):
        N.LSTM(ref.HIDDEN, ref.INPUT, rngs=0)


def test_rnn_cell_runs_in_nnx_rnn_and_matches_ours():
    module = N.RNNCell(lstm_jax.GRUCell(ref.HIDDEN), ref.INPUT, rngs=nnx.Rngs(0))
    ys = nnx.RNN(module)(XS)
    ref.assert_close(ys, ref.ref_unroll("gru_reset_after", module.core_params(), XS)[1])
    ours = N.RNN(module.cell, ref.INPUT, rngs=nnx.Rngs(1))
    ours.load_core_params(module.core_params())
    ref.assert_trees_close(ours(XS), ys)


@pytest.mark.parametrize("name", ["lstm", "cifg", "simple_tanh"])
def test_rnn_cell_steps_like_the_core(name):
    module = N.RNNCell(ref.make_cell(name), ref.INPUT, rngs=nnx.Rngs(0))
    x = XS[:, 0]
    carry = module.initialize_carry(x.shape)
    ref.assert_trees_equal(module(carry, x), module.cell.step(module.core_params(), carry, x))


class _Tagger(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.embed = nnx.Embed(10, ref.INPUT, rngs=rngs)
        self.encoder = N.LSTM(ref.HIDDEN, ref.INPUT, num_layers=2, dropout=0.1, rngs=rngs)
        self.head = nnx.Linear(ref.HIDDEN, 2, rngs=rngs)

    def __call__(self, tokens, lengths):
        return self.head(self.encoder(self.embed(tokens), seq_lengths=lengths))


def test_trains_inside_an_nnx_model_under_nnx_jit():
    model = _Tagger(nnx.Rngs(params=0, dropout=1))
    model.train()
    tokens = jnp.array([[1, 2, 3, 4, 5], [6, 7, 0, 0, 0], [0, 0, 0, 0, 0]])
    optimizer = nnx.Optimizer(model, optax.sgd(0.1), wrt=nnx.Param)
    before = model.encoder.core_params()

    @nnx.jit
    def step(model, optimizer):
        def loss_fn(model):
            return jnp.mean(model(tokens, LENGTHS) ** 2)

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    losses = [float(step(model, optimizer)) for _ in range(3)]
    assert all(np.isfinite(losses))
    after = model.encoder.core_params()
    assert isinstance(after[0], lstm_jax.LSTMParams)
    assert not np.allclose(after[0].w_hh, before[0].w_hh)


def test_params_carry_sharding_names():
    module = N.GRU(ref.HIDDEN, ref.INPUT, bidirectional=True, rngs=nnx.Rngs(0))
    specs = nnx.get_partition_spec(nnx.state(module, nnx.Param))
    layer = specs["params"][0][1]
    assert layer["w_ih"].get_value() == PartitionSpec("rnn_input", "rnn_gates")
    assert layer["b_hn"].get_value() == PartitionSpec("rnn_hidden")


def test_sharding_names_map_to_a_mesh():
    module = N.LSTM(ref.HIDDEN, ref.INPUT, rngs=nnx.Rngs(0))
    mesh = Mesh(np.asarray(jax.devices()[:1]), ("model",))
    rules = (("rnn_gates", "model"), ("rnn_input", None), ("rnn_hidden", None))
    state = nnx.state(module, nnx.Param)
    with nn.logical_axis_rules(rules):
        specs = nnx.get_partition_spec(state)
    assert specs["params"][0]["w_hh"].get_value() == PartitionSpec(None, "model")
    shardings = jax.tree_util.tree_map(lambda s: NamedSharding(mesh, s), specs)
    want = module(XS)
    nnx.update(module, jax.device_put(state, shardings))
    ref.assert_trees_equal(module(XS), want)


def _options(cls, framework_own):
    return {f.name: f.default for f in dataclasses.fields(cls) if f.name not in framework_own}


@pytest.mark.parametrize("layer", LAYERS)
def test_linen_and_nnx_layers_take_the_same_options(layer):
    linen, ours = getattr(L, layer), getattr(N, layer)
    assert _options(linen, ("parent", "name")) == _options(ours, ("input_size",))
    assert linen.__call__.__doc__ == ours.__call__.__doc__
    assert inspect.signature(linen.__call__) == inspect.signature(ours.__call__)
    # construction: what the layer runs, then (NNX) the input size; the rest keyword-only
    positional = [
        p.name
        for p in inspect.signature(ours.__init__).parameters.values()
        if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    ]
    assert (
        positional[2:] == ["input_size"] and "rngs" in inspect.signature(ours.__init__).parameters
    )
