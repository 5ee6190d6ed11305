"""lstm_jax.checkpoint: a model's configuration and parameters round-trip through Orbax and run
in the pure API, and in the Flax modules, with the saved numbers."""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import pytest
import reference as ref
from flax import nnx

import lstm_jax
from lstm_jax import checkpoint
from lstm_jax.flax import linen as L
from lstm_jax.flax import nnx as N

XS = ref.random_array((ref.BATCH, ref.TIME, ref.INPUT), seed=1)


@pytest.mark.parametrize(
    "cell",
    [
        lstm_jax.lstm(ref.HIDDEN, forget_bias=0.5, carry_dtype=jnp.float32),
        lstm_jax.peephole_lstm(ref.HIDDEN),
        lstm_jax.cifg_lstm(ref.HIDDEN, use_bias=False),
        lstm_jax.gru(ref.HIDDEN, reset_after=False),
        lstm_jax.simple_rnn(ref.HIDDEN, activation="relu", param_dtype=jnp.bfloat16),
    ],
    ids=lambda c: c.name,
)
def test_cell_round_trip(tmp_path, cell):
    # initialised in float32 and cast: the orthogonal initialiser has no bfloat16 QR on CPU
    f32 = dataclasses.replace(cell, param_dtype=jnp.float32)
    params = jax.tree_util.tree_map(
        lambda x: x.astype(cell.param_dtype), f32.init(jax.random.key(0), ref.INPUT)
    )
    checkpoint.save(tmp_path / "ckpt", cell, params, metadata={"vocab": 7})
    model, restored, metadata = checkpoint.restore(tmp_path / "ckpt")
    assert model == cell
    assert metadata == {"vocab": 7}
    ref.assert_trees_equal(restored, params)


def test_stack_trained_in_linen_restores_into_the_pure_api(tmp_path):
    module = L.LSTM(hidden_size=ref.HIDDEN, num_layers=2, bidirectional=True, dropout=0.25)
    variables = module.init(jax.random.key(0), XS, deterministic=True)
    want = module.apply(variables, XS, deterministic=True)
    checkpoint.save(tmp_path / "ckpt", module, L.core_params(variables))
    net, params, _ = checkpoint.restore(tmp_path / "ckpt")
    assert net == module.core
    ref.assert_trees_equal(net.apply(params, XS)[1], want)
    # and back into a linen module built from the restored network
    restored = L.StackedRNN(net, deterministic=True)
    ref.assert_trees_equal(restored.apply(L.module_variables(restored, params), XS), want)


def test_nnx_module_round_trip(tmp_path):
    module = N.Bidirectional(lstm_jax.gru(ref.HIDDEN), ref.INPUT, rngs=nnx.Rngs(0), merge="sum")
    checkpoint.save(tmp_path / "ckpt", module, metadata={"merge": module.merge})
    cells, params, metadata = checkpoint.restore(tmp_path / "ckpt")
    assert cells == module.core
    _, ys = lstm_jax.bidirectional(cells[0], params, XS, merge=metadata["merge"])
    ref.assert_trees_equal(ys, module(XS))
    fresh = N.Bidirectional(cells[0], ref.INPUT, rngs=nnx.Rngs(1), merge=metadata["merge"])
    fresh.load_core_params(params)
    ref.assert_trees_equal(fresh(XS), module(XS))


def test_params_that_do_not_fit_are_rejected(tmp_path):
    cell = lstm_jax.lstm(ref.HIDDEN)
    other = lstm_jax.lstm(ref.HIDDEN + 1).init(jax.random.key(0), ref.INPUT)
    with pytest.raises(ValueError, match=r"checkpoint.save: params do not fit the model"):
        checkpoint.save(tmp_path / "a", cell, other)
    with pytest.raises(ValueError, match=r"checkpoint.save: params must be the parameters"):
        checkpoint.save(tmp_path / "b", cell, {"w": 1})
    with pytest.raises(TypeError, match=r"checkpoint.save: model must be an lstm_jax cell"):
        checkpoint.save(tmp_path / "c", "lstm", other)


def test_existing_directory_needs_overwrite(tmp_path):
    cell = lstm_jax.gru(ref.HIDDEN)
    first = cell.init(jax.random.key(0), ref.INPUT)
    second = cell.init(jax.random.key(1), ref.INPUT)
    checkpoint.save(tmp_path / "ckpt", cell, first)
    with pytest.raises(FileExistsError, match=r"checkpoint.save: .* exists"):
        checkpoint.save(tmp_path / "ckpt", cell, second)
    checkpoint.save(tmp_path / "ckpt", cell, second, overwrite=True)
    ref.assert_trees_equal(checkpoint.restore(tmp_path / "ckpt").params, second)


def test_missing_checkpoint_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"checkpoint.restore: no lstm_jax checkpoint"):
        checkpoint.restore(tmp_path / "nothing")


def test_config_is_plain_json():

    net = lstm_jax.stack(lstm_jax.gru(ref.HIDDEN, dtype=jnp.bfloat16), 2, residual=True)
    config = checkpoint.model_config(net)
    assert checkpoint.model_from_config(json.loads(json.dumps(config))) == net


def test_flipped_bytes_are_an_error_not_wrong_numbers(tmp_path):
    import os

    cell = lstm_jax.lstm(64)  # w_hh [64, 256]: its bytes fill the biggest data file
    checkpoint.save(tmp_path / "ckpt", cell, cell.init(jax.random.key(0), ref.INPUT))
    files = [os.path.join(d, f) for d, _, fs in os.walk(tmp_path / "ckpt" / "params") for f in fs]
    biggest = max(files, key=os.path.getsize)
    with open(biggest, "r+b") as f:
        data = bytearray(f.read())
        data[len(data) // 2] ^= 0xFF
        f.seek(0)
        f.write(data)
    with pytest.raises(ValueError, match=r"checkpoint.restore: .* is corrupted: params"):
        checkpoint.restore(tmp_path / "ckpt")


def test_metadata_json_cannot_hold_is_rejected_before_anything_is_written(tmp_path):
    cell = lstm_jax.gru(ref.HIDDEN)
    params = cell.init(jax.random.key(0), ref.INPUT)
    with pytest.raises(TypeError, match=r"checkpoint.save: metadata must be JSON-serialisable"):
        checkpoint.save(tmp_path / "ckpt", cell, params, metadata={"vocab": {"a", "b"}})
    assert list(tmp_path.iterdir()) == []


def test_stack_with_learned_initial_carry_round_trips(tmp_path):
    net = lstm_jax.stack(lstm_jax.lstm(4), 2, bidirectional=True, learn_initial_carry=True)
    params = net.init(jax.random.key(0), 3)
    params = jax.tree_util.tree_map(lambda v: v + 0.25, params)  # learned carries non-zero
    checkpoint.save(tmp_path / "ckpt", net, params)
    net2, restored, _ = checkpoint.restore(tmp_path / "ckpt")
    assert net2 == net
    assert isinstance(restored, lstm_jax.WithInitialCarry)
    ref.assert_trees_equal(restored, params)


def test_every_stack_option_round_trips():
    # Every field of Stack set away from its default: a new option that model_config forgets
    # would restore a different network silently.
    defaults = lstm_jax.stack(lstm_jax.lstm(4), 2)
    net = lstm_jax.stack(
        [lstm_jax.lstm(4), lstm_jax.gru(4)],
        2,
        bidirectional=True,
        dropout=0.25,
        residual=True,
        merge="sum",
        learn_initial_carry=True,
        locked_dropout=True,
    )
    for field in dataclasses.fields(lstm_jax.Stack):
        assert getattr(net, field.name) != getattr(defaults, field.name), field.name
    assert checkpoint.model_from_config(checkpoint.model_config(net)) == net
