"""A tiny recurrent regression problem shared by the training tests."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import pytest

import lstm_jax
from lstm_jax import training


@dataclasses.dataclass(frozen=True)
class TinyProblem:
    """An LSTM(4) over ``[8, 5, 2]`` sequences, regressing the sum of the first inputs."""

    cell: lstm_jax.Cell = dataclasses.field(default_factory=lambda: lstm_jax.lstm(4))
    batch_size: int = 8
    time: int = 5

    def init(self, seed: int = 0):
        k_rnn, k_out = jax.random.split(jax.random.PRNGKey(seed))
        return {
            "rnn": self.cell.init(k_rnn, 2),
            "out": jax.random.normal(k_out, (4, 1), jnp.float32) * 0.5,
        }

    def batch(self, step: int, seed: int = 1):
        key = jax.random.fold_in(jax.random.PRNGKey(seed), step)
        x = jax.random.normal(key, (self.batch_size, self.time, 2), jnp.float32)
        return {"x": x, "y": jnp.sum(x[..., 0], axis=1, keepdims=True)}

    def loss(self, params, batch, key):
        del key
        _, ys = lstm_jax.unroll(self.cell, params["rnn"], batch["x"])
        pred = ys[:, -1] @ params["out"]
        return jnp.mean((pred - batch["y"]) ** 2), {"mae": jnp.mean(jnp.abs(pred - batch["y"]))}

    def run(self, num_steps, *, seed=0, checkpointer=None, logger=None, mesh=None, **kw):
        opt = training.make_optimizer(1e-2, clip_norm=1.0)
        state = training.create_train_state(self.init(seed), opt, jax.random.PRNGKey(seed))
        step = training.make_train_step(self.loss, opt)
        return training.train(
            state,
            step,
            self.batch,
            num_steps=num_steps,
            checkpointer=checkpointer,
            logger=logger,
            mesh=mesh,
            progress=False,
            **kw,
        )


@pytest.fixture
def tiny():
    return TinyProblem()
