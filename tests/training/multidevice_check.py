"""Run by test_sharding.py in a subprocess with 8 host devices (XLA_FLAGS set before jax is
imported). Trains the same tiny problem on a 1-device mesh and on an 8-device mesh and prints
both loss curves and final parameters as JSON."""

from __future__ import annotations

import json
import sys

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec

import lstm_jax
from lstm_jax import training

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")

CELL = lstm_jax.lstm(8)
STEPS = 6


def init():
    k_rnn, k_out = jax.random.split(jax.random.PRNGKey(0))
    return {"rnn": CELL.init(k_rnn, 2), "out": jax.random.normal(k_out, (8, 1)) * 0.3}


def batch_fn(step):
    x = jax.random.normal(jax.random.fold_in(jax.random.PRNGKey(1), step), (16, 5, 2))
    return {"x": x, "y": jnp.sum(x[..., 0], axis=1, keepdims=True)}


def loss_fn(params, batch, key):
    del key
    _, ys = lstm_jax.unroll(CELL, params["rnn"], batch["x"])
    return jnp.mean((ys[:, -1] @ params["out"] - batch["y"]) ** 2)


def run(num_devices, param_specs=None):
    mesh = training.make_mesh(num_devices)
    opt = training.make_optimizer(1e-2)
    state = training.create_train_state(init(), opt, 0)
    shardings = training.state_shardings(state, mesh, opt, param_specs)
    state = training.place_state(state, shardings)
    step = training.make_train_step(loss_fn, opt, state_sharding=shardings)
    state, history = training.train(
        state, step, batch_fn, num_steps=STEPS, mesh=mesh, log_every=1, progress=False
    )
    out_spec = state.params["out"].sharding.spec
    mu_spec = state.opt_state[1][0].mu["out"].sharding.spec
    return {
        "losses": [r["loss"] for r in history if r["split"] == "train"],
        "params": [np.asarray(x).tolist() for x in jax.tree_util.tree_leaves(state.params)],
        "out_spec": str(out_spec),
        "mu_spec": str(mu_spec),
    }


def slstm_by_heads():
    """sLSTM with its 4 heads' recurrent blocks on 4 devices (the logical axis ``rnn_heads``):
    outputs and gradients against the unsharded run."""
    from flax import linen as nn
    from jax.sharding import Mesh

    from lstm_jax.flax import linen as L

    module = L.RNN(lstm_jax.SLSTMCell(8, num_heads=4))
    xs = jax.random.normal(jax.random.PRNGKey(2), (4, 5, 3))
    variables = module.init(jax.random.PRNGKey(3), xs)
    mesh = Mesh(np.asarray(jax.devices()[:4]), ("model",))
    rules = (("rnn_heads", "model"),)
    shardings = nn.logical_to_mesh_sharding(nn.get_partition_spec(variables), mesh, rules)
    variables = nn.unbox(variables)
    placed = jax.device_put(variables, nn.unbox(shardings))
    loss = jax.jit(jax.value_and_grad(lambda v: jnp.sum(module.apply(v, xs) ** 2)))
    (want, want_grad), (got, got_grad) = loss(variables), loss(placed)
    w_hh = placed["params"]["cell"].w_hh
    return {
        "w_hh_spec": str(w_hh.sharding.spec),
        "w_hh_shard_shape": list(w_hh.addressable_shards[0].data.shape),
        "equal": bool(np.allclose(got, want, rtol=1e-5)),
        "grads_equal": all(
            np.allclose(a, b, rtol=1e-4, atol=1e-6)
            for a, b in zip(
                jax.tree_util.tree_leaves(got_grad),
                jax.tree_util.tree_leaves(want_grad),
                strict=True,
            )
        ),
    }


def main():
    assert jax.device_count() == 8, jax.devices()
    rnn_specs = jax.tree_util.tree_map(lambda _: PartitionSpec(), init()["rnn"])
    specs = {"rnn": rnn_specs, "out": PartitionSpec("data", None)}
    try:
        training.shard_batch({"x": jnp.ones((12, 2))}, training.make_mesh(8))
        bad_batch_error = None
    except ValueError as e:
        bad_batch_error = str(e)
    result = {
        "one": run(1),
        "eight": run(8),
        "eight_sharded_params": run(8, specs),
        "bad_batch_error": bad_batch_error,
        "slstm_by_heads": slstm_by_heads(),
    }
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
