"""The adding problem (Hochreiter & Schmidhuber 1997, experiment 4): can a network carry two
numbers across a long gap?

Each input step is a pair (value, marker): values are uniform in [0, 1], and exactly two steps
are marked, one in the first half of the sequence and one in the second. After the last step
the network must output the sum of the two marked values. Predicting the mean sum (1.0)
scores MSE = Var(u1 + u2) = 2/12 = 0.167, the baseline; a sequence counts as solved when the
absolute error is below 0.04 (the paper's criterion).

    python -m experiments.adding_problem --cell lstm --seq-len 100 --steps 3000 --seed 0 \\
        --out runs/adding/lstm_T100

writes runs/adding/lstm_T100/{metrics.json, log.jsonl, curves.png}.

Batch ``s`` is a function of ``--seed`` and ``s`` alone (row ``r`` is drawn from its own key),
so a multi-process run (``--distributed``, docs/guide/distributed.md) trains on the batches of
a one-process run, each process drawing only its rows:

    JAX_CPU_COLLECTIVES_IMPLEMENTATION=gloo XLA_FLAGS=--xla_force_host_platform_device_count=2 \
    python -m experiments.adding_problem --distributed --coordinator 127.0.0.1:12345 \
        --num-processes 2 --process-id 0 --out runs/adding_2proc   # and --process-id 1
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

import lstm_jax
from experiments import common
from lstm_jax import training
from lstm_jax.training import distributed

SEQ_LENS = (50, 100, 200, 400)
SOLVED_TOLERANCE = 0.04
BASELINE_MSE = 2.0 / 12.0
# The test set depends on T only, not on --seed, so every seed and cell is scored on the same
# sequences.
TEST_SET_SEED = 10_000
SUMMARY_METRICS = ("test_mse", "solved_fraction")


# ---- configuration ------------------------------------------------------------------------


# A cosine schedule from 2e-3: at a constant 1e-3 the LSTM reached only MSE 0.008 at T=50 in
# 3000 steps, with the cosine schedule 0.0004 (experiments/README.md).
@dataclasses.dataclass(frozen=True)
class Config(common.RunConfig):
    out: str = "runs/adding"
    steps: int = 3000
    lr: float = 2e-3
    schedule: str = "cosine"
    seq_len: int = common.option(100, f"sequence length T (the paper: {SEQ_LENS})")


def parse_args(argv: Sequence[str] | None) -> Config:
    config = common.parse_config(Config, argv, __doc__.split("\n\n")[0])
    if config.seq_len < 2:
        raise ValueError(f"--seq-len must be >= 2 (one marker per half), got {config.seq_len}")
    return config


# ---- data ---------------------------------------------------------------------------------


def _make_row(key: jax.Array, seq_len: int) -> tuple[jax.Array, jax.Array]:
    """One sequence: ``x: [time, 2]`` (value, marker), ``y: [1]``."""
    k_val, k_first, k_second = jax.random.split(key, 3)
    values = jax.random.uniform(k_val, (seq_len,), jnp.float32)
    half = seq_len // 2
    first = jax.random.randint(k_first, (), 0, half)
    second = jax.random.randint(k_second, (), half, seq_len)
    positions = jnp.arange(seq_len)
    markers = (positions == first) | (positions == second)
    x = jnp.stack([values, markers.astype(jnp.float32)], axis=-1)
    y = jnp.sum(jnp.where(markers, values, jnp.zeros_like(values)), keepdims=True)
    return x, y


@functools.partial(jax.jit, static_argnums=2)
def make_rows(key: jax.Array, rows: jax.Array, seq_len: int) -> dict[str, jax.Array]:
    """Rows ``rows: [n]`` of the batch of ``key``: ``x: [n, time, 2]``, ``y: [n, 1]``. Row ``r``
    is drawn from ``fold_in(key, r)``, so a process can draw its rows of a batch alone."""
    keys = jax.vmap(lambda r: jax.random.fold_in(key, r))(rows)
    x, y = jax.vmap(_make_row, in_axes=(0, None))(keys, seq_len)
    return {"x": x, "y": y}


def make_batch(key: jax.Array, batch_size: int, seq_len: int) -> dict[str, jax.Array]:
    """The whole batch of ``key``: ``x: [batch, time, 2]`` (value, marker), ``y: [batch, 1]``
    the sum of the marked values."""
    return make_rows(key, jnp.arange(batch_size, dtype=jnp.int32), seq_len)


# ---- model --------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnums=0)
def init_params(cell: lstm_jax.Cell, key: jax.Array) -> dict[str, Any]:
    k_rnn, k_out = jax.random.split(key)
    return {"rnn": cell.init(k_rnn, 2), "out": common.dense_init(k_out, cell.output_size, 1)}


def predict(cell: lstm_jax.Cell, params: dict[str, Any], x: jax.Array) -> jax.Array:
    """``x: [batch, time, 2] -> [batch, 1]``, read out from the last hidden state."""
    _, ys = lstm_jax.unroll(cell, params["rnn"], x)
    return common.dense(params["out"], ys[:, -1])


# ---- loop and results ---------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    config = parse_args(argv)
    cell = common.make_cell(config.cell, config.hidden)
    seed_key = jax.random.PRNGKey(config.seed)
    params = init_params(cell, jax.random.fold_in(seed_key, 0))
    data_key = jax.random.fold_in(seed_key, 1)
    test = make_batch(
        jax.random.PRNGKey(TEST_SET_SEED + config.seq_len), config.eval_size, config.seq_len
    )

    def loss_fn(params, batch, key):
        del key  # no dropout here
        return jnp.mean((predict(cell, params, batch["x"]) - batch["y"]) ** 2)

    @jax.jit
    def test_metrics(params):
        err = predict(cell, params, test["x"]) - test["y"]
        return {
            "test_mse": jnp.mean(err**2),
            "solved_fraction": jnp.mean((jnp.abs(err) < SOLVED_TOLERANCE).astype(jnp.float32)),
        }

    def eval_fn(params):
        return {k: float(v) for k, v in test_metrics(params).items()}

    # ---- training: the optimiser, the devices, the train step, the loop in --out
    schedule = training.learning_rate_schedule(
        config.lr, schedule=config.schedule, total_steps=config.steps
    )
    optimizer = training.make_optimizer(schedule, clip_norm=config.clip_norm)
    mesh = training.make_mesh(config.devices)
    # This process's rows of every global batch (all of them with one process).
    rows = jnp.asarray(distributed.process_rows(mesh, config.batch_size), jnp.int32)

    def batch_fn(step: int) -> dict[str, jax.Array]:
        return make_rows(jax.random.fold_in(data_key, step), rows, config.seq_len)

    state = training.create_train_state(params, optimizer, jax.random.PRNGKey(config.seed))
    shardings = training.state_shardings(state, mesh, optimizer)
    state = training.place_state(state, shardings)
    train_step = training.make_train_step(
        loss_fn, optimizer, learning_rate=schedule, state_sharding=shardings
    )
    # --out is resumed when it holds checkpoints of this configuration (--overwrite: afresh).
    with training.RunLock(config.out):
        if config.overwrite:
            training.clear_run(config.out)
        with training.Checkpointer(
            os.path.join(config.out, "checkpoints"),
            save_every=config.checkpoint_every,
            keep=config.keep,
            metadata={"config": dataclasses.asdict(config)},
        ) as ckpt:
            training.check_resume(ckpt, config, may_change=common.RESUMABLE)
            with training.MetricLogger(config.out, tensorboard=config.tensorboard) as logger:
                state, _ = training.train(
                    state,
                    train_step,
                    batch_fn,
                    num_steps=config.steps,
                    checkpointer=ckpt,
                    logger=logger,
                    log_every=min(config.log_every, config.steps),
                    eval_fn=eval_fn,
                    eval_every=config.eval_every,
                    mesh=mesh,
                    progress=config.progress,
                )
        # The whole run's records: those of the interrupted runs this one resumed, too (written
        # by process 0; the others read them once it has closed the log).
        distributed.sync("adding_problem:history")
        history = training.read_history(config.out)
    params = state.params

    baseline = float(jnp.mean((test["y"] - 1.0) ** 2))
    metrics = {
        **common.last_eval(history),
        "baseline_mse": baseline,
        "final_train_loss": next(r["loss"] for r in reversed(history) if r["split"] == "train"),
        "first_train_loss": next(r["loss"] for r in history if r["split"] == "train"),
        "num_params": common.count_params(params),
    }
    common.write_metrics(config, metrics, history=history)
    common.plot_curves(
        history,
        f"{config.out}/curves.png",
        panels=[
            ("MSE", [("train", "loss"), ("eval", "test_mse")]),
            ("solved fraction", [("eval", "solved_fraction")]),
        ],
        baselines={"MSE": baseline},
        log_y=["MSE"],
        title=f"adding problem, T={config.seq_len}, {config.cell}",
    )
    if distributed.is_writer():
        print(
            f"adding T={config.seq_len} {config.cell} seed={config.seed}: "
            f"test MSE {metrics.get('test_mse', float('nan')):.4f} (baseline {baseline:.4f}), "
            f"solved {metrics.get('solved_fraction', float('nan')):.1%}"
        )
    return metrics


if __name__ == "__main__":
    common.cli(main)
