"""The copy task (in the form of Arjovsky, Shah & Bengio 2016): remember ten symbols across a
delay of T steps, then write them back.

Symbols: 0 is blank, 1..8 are data, 9 is the delimiter. The input is 10 random data symbols,
T - 1 blanks, the delimiter, then 10 blanks (T + 20 steps in all); the target is T + 10 blanks
followed by the 10 data symbols. The output has 9 classes (blank and the 8 data symbols).
A network that outputs blanks and then guesses uniformly scores the baseline cross-entropy
10 log(8) / (T + 20) per step; per-symbol accuracy is measured on the 10 recalled symbols
(chance 1/8).

    python -m experiments.copy_task --cell lstm --seq-len 50 --steps 3000 --seed 0 \\
        --out runs/copy/lstm_T50

writes runs/copy/lstm_T50/{metrics.json, log.jsonl, curves.png}.

Batch ``s`` is a function of ``--seed`` and ``s`` alone (row ``r`` is drawn from its own key),
so a multi-process run (``--distributed``, docs/guide/distributed.md) trains on the batches of
a one-process run, each process drawing only its rows.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

import lstm_jax
from experiments import common
from lstm_jax import training
from lstm_jax.training import distributed

COPY_LEN = 10
NUM_DATA = 8  # data symbols 1..8
NUM_INPUTS = NUM_DATA + 2  # blank, data, delimiter
NUM_CLASSES = NUM_DATA + 1  # blank, data
DELIMITER = NUM_DATA + 1
TEST_SET_SEED = 20_000  # the test set depends on T only, not on --seed
SUMMARY_METRICS = ("test_ce", "recall_accuracy")


# ---- configuration ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Config(common.RunConfig):
    out: str = "runs/copy"
    seq_len: int = common.option(50, "the delay T")


def parse_args(argv: Sequence[str] | None) -> Config:
    config = common.parse_config(Config, argv, __doc__.split("\n\n")[0])
    if config.seq_len < 1:
        raise ValueError(f"--seq-len must be >= 1, got {config.seq_len}")
    return config


def baseline_ce(seq_len: int) -> float:
    """Blanks with certainty, then a uniform guess over the data symbols."""
    return COPY_LEN * math.log(NUM_DATA) / (seq_len + 2 * COPY_LEN)


# ---- data ---------------------------------------------------------------------------------


def _make_row(key: jax.Array, seq_len: int) -> tuple[jax.Array, jax.Array]:
    """One sequence: ``inputs: [T + 20]`` symbols, ``targets: [T + 20]`` classes."""
    data = jax.random.randint(key, (COPY_LEN,), 1, NUM_DATA + 1)
    blank_gap = jnp.zeros((seq_len - 1,), jnp.int32)
    delimiter = jnp.full((1,), DELIMITER, jnp.int32)
    blank_tail = jnp.zeros((COPY_LEN,), jnp.int32)
    inputs = jnp.concatenate([data, blank_gap, delimiter, blank_tail])
    targets = jnp.concatenate([jnp.zeros((seq_len + COPY_LEN,), jnp.int32), data])
    return inputs, targets


@functools.partial(jax.jit, static_argnums=2)
def make_rows(key: jax.Array, rows: jax.Array, seq_len: int) -> dict[str, jax.Array]:
    """Rows ``rows: [n]`` of the batch of ``key``: ``x: [n, T + 20, 10]`` one-hot inputs,
    ``y: [n, T + 20]`` target classes. Row ``r`` is drawn from ``fold_in(key, r)``, so a
    process can draw its rows of a batch alone."""
    keys = jax.vmap(lambda r: jax.random.fold_in(key, r))(rows)
    inputs, targets = jax.vmap(_make_row, in_axes=(0, None))(keys, seq_len)
    return {"x": jax.nn.one_hot(inputs, NUM_INPUTS, dtype=jnp.float32), "y": targets}


def make_batch(key: jax.Array, batch_size: int, seq_len: int) -> dict[str, jax.Array]:
    """The whole batch of ``key``: ``x: [batch, T + 20, 10]`` one-hot inputs,
    ``y: [batch, T + 20]`` target classes."""
    return make_rows(key, jnp.arange(batch_size, dtype=jnp.int32), seq_len)


# ---- model --------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnums=0)
def init_params(cell: lstm_jax.Cell, key: jax.Array) -> dict[str, Any]:
    k_rnn, k_out = jax.random.split(key)
    return {
        "rnn": cell.init(k_rnn, NUM_INPUTS),
        "out": common.dense_init(k_out, cell.output_size, NUM_CLASSES),
    }


def logits(cell: lstm_jax.Cell, params: dict[str, Any], x: jax.Array) -> jax.Array:
    """``x: [batch, time, 10] -> [batch, time, 9]``."""
    _, ys = lstm_jax.unroll(cell, params["rnn"], x)
    return common.dense(params["out"], ys)


def cross_entropy(z: jax.Array, y: jax.Array) -> jax.Array:
    """Mean over all positions of ``-log softmax(z)[y]``; ``z: [batch, time, classes]``."""
    log_p = jax.nn.log_softmax(z, axis=-1)
    return -jnp.mean(jnp.take_along_axis(log_p, y[..., None], axis=-1))


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
        del key
        return cross_entropy(logits(cell, params, batch["x"]), batch["y"])

    @jax.jit
    def test_metrics(params):
        z = logits(cell, params, test["x"])
        recalled = jnp.argmax(z[:, -COPY_LEN:], axis=-1) == test["y"][:, -COPY_LEN:]
        return {
            "test_ce": cross_entropy(z, test["y"]),
            "recall_accuracy": jnp.mean(recalled.astype(jnp.float32)),
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
        distributed.sync("copy_task:history")
        history = training.read_history(config.out)
    params = state.params

    baseline = baseline_ce(config.seq_len)
    metrics = {
        **common.last_eval(history),
        "baseline_ce": baseline,
        "chance_accuracy": 1.0 / NUM_DATA,
        "final_train_loss": next(r["loss"] for r in reversed(history) if r["split"] == "train"),
        "first_train_loss": next(r["loss"] for r in history if r["split"] == "train"),
        "num_params": common.count_params(params),
    }
    common.write_metrics(config, metrics, history=history)
    common.plot_curves(
        history,
        f"{config.out}/curves.png",
        panels=[
            ("cross-entropy", [("train", "loss"), ("eval", "test_ce")]),
            ("recall accuracy", [("eval", "recall_accuracy")]),
        ],
        baselines={"cross-entropy": baseline, "recall accuracy": 1.0 / NUM_DATA},
        log_y=["cross-entropy"],
        title=f"copy task, T={config.seq_len}, {config.cell}",
    )
    if distributed.is_writer():
        print(
            f"copy T={config.seq_len} {config.cell} seed={config.seed}: "
            f"test CE {metrics.get('test_ce', float('nan')):.4f} (baseline {baseline:.4f}), "
            f"recall accuracy {metrics.get('recall_accuracy', float('nan')):.1%}"
        )
    return metrics


if __name__ == "__main__":
    common.cli(main)
