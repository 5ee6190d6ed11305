"""A task that needs the future: tag every position with the symbol that comes D steps later.

Sequences of random symbols 0..K-1 have random lengths; position t is tagged with the symbol
at t + D, or with an extra "end" tag when t + D is past the sequence's end. A forward network
at position t has not yet read what it must name, so it can do no better than chance (1/K)
on most positions; a bidirectional network's backward half has read it D steps ago.

Both models are trained in this one run on the same batches, with the same cell type: a
bidirectional layer with ``--hidden`` units per direction (outputs concatenated) and a forward
layer with ``2 * --hidden`` units, the same output width and more parameters, so a gap cannot
be put down to size. Each model has its own optimiser (clipping included).

    python -m experiments.lookahead_tagging --cell lstm --steps 1500 --seed 0 \\
        --out runs/lookahead/lstm

writes runs/lookahead/lstm/{metrics.json, log.jsonl, curves.png}.

Batch ``s`` is a function of ``--seed`` and ``s`` alone (row ``r`` is drawn from its own key),
so a multi-process run (``--distributed``, docs/guide/distributed.md) trains on the batches of
a one-process run, each process drawing only its rows.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax

import lstm_jax
from experiments import common
from lstm_jax import training
from lstm_jax.training import distributed

MODELS = ("bidirectional", "forward")
TEST_SET_SEED = 30_000
SUMMARY_METRICS = ("accuracy_bidirectional", "accuracy_forward")


# ---- configuration ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Config(common.RunConfig):
    out: str = "runs/lookahead"
    steps: int = 1500
    hidden: int = 32
    lr: float = 3e-3
    seq_len: int = common.option(24, "longest sequence (padded time)")
    min_len: int = common.option(12, "shortest sequence")
    num_symbols: int = common.option(8, "alphabet size K")
    lookahead: int = common.option(3, "how far ahead the tag is (D)")


def parse_args(argv: Sequence[str] | None) -> Config:
    config = common.parse_config(Config, argv, __doc__.split("\n\n")[0])
    if not 1 <= config.min_len <= config.seq_len:
        raise ValueError(
            f"--min-len must be in [1, --seq-len={config.seq_len}], got {config.min_len}"
        )
    if config.num_symbols < 2 or config.lookahead < 1:
        raise ValueError(
            f"--num-symbols must be >= 2 and --lookahead >= 1, got {config.num_symbols} and "
            f"{config.lookahead}"
        )
    return config


# ---- data ---------------------------------------------------------------------------------


def _make_row(key: jax.Array, config: Config) -> dict[str, jax.Array]:
    """One sequence: ``x: [time, K]`` one-hot, ``y: [time]`` tags, ``lengths: []``."""
    k_sym, k_len = jax.random.split(key)
    symbols = jax.random.randint(k_sym, (config.seq_len,), 0, config.num_symbols)
    length = jax.random.randint(k_len, (), config.min_len, config.seq_len + 1)
    t = jnp.arange(config.seq_len)
    d = config.lookahead
    ahead = jnp.concatenate([symbols[d:], jnp.zeros((min(d, config.seq_len),), jnp.int32)])
    end_tag = jnp.full_like(symbols, config.num_symbols)
    tags = jnp.where(t + d < length, ahead[: config.seq_len], end_tag)
    x = jax.nn.one_hot(jnp.where(t < length, symbols, 0), config.num_symbols, dtype=jnp.float32)
    return {"x": x, "y": tags, "lengths": length}


@functools.partial(jax.jit, static_argnums=2)
def make_rows(key: jax.Array, rows: jax.Array, config: Config) -> dict[str, jax.Array]:
    """Rows ``rows: [n]`` of the batch of ``key``: ``x: [n, time, K]`` one-hot,
    ``y: [n, time]`` tags in 0..K (K = end), ``lengths: [n]``; positions at and past a row's
    length are padding. Row ``r`` is drawn from ``fold_in(key, r)``, so a process can draw
    its rows of a batch alone."""
    keys = jax.vmap(lambda r: jax.random.fold_in(key, r))(rows)
    return jax.vmap(_make_row, in_axes=(0, None))(keys, config)


def make_batch(key: jax.Array, config: Config, batch_size: int) -> dict[str, jax.Array]:
    """The whole batch of ``key``: ``x: [batch, time, K]``, ``y: [batch, time]``,
    ``lengths: [batch]`` (``make_rows`` of every row)."""
    return make_rows(key, jnp.arange(batch_size, dtype=jnp.int32), config)


# ---- models -------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnums=0)
def init_params(config: Config, key: jax.Array) -> dict[str, Any]:
    k_f, k_b, k_fwd, k_out_bi, k_out_fwd = jax.random.split(key, 5)
    bi_cell = common.make_cell(config.cell, config.hidden)
    fwd_cell = common.make_cell(config.cell, 2 * config.hidden)
    n_tags = config.num_symbols + 1
    return {
        "bidirectional": {
            "rnn": (bi_cell.init(k_f, config.num_symbols), bi_cell.init(k_b, config.num_symbols)),
            "out": common.dense_init(k_out_bi, 2 * config.hidden, n_tags),
        },
        "forward": {
            "rnn": fwd_cell.init(k_fwd, config.num_symbols),
            "out": common.dense_init(k_out_fwd, 2 * config.hidden, n_tags),
        },
    }


def logits(config: Config, model: str, params: dict[str, Any], batch: dict[str, Any]):
    """``[batch, time, K + 1]`` tag logits of ``model`` ("bidirectional" or "forward")."""
    if model == "bidirectional":
        cell = common.make_cell(config.cell, config.hidden)
        _, ys = lstm_jax.bidirectional(
            cell, params["rnn"], batch["x"], seq_lengths=batch["lengths"]
        )
    else:
        cell = common.make_cell(config.cell, 2 * config.hidden)
        _, ys = lstm_jax.unroll(cell, params["rnn"], batch["x"], seq_lengths=batch["lengths"])
    return common.dense(params["out"], ys)


def masked_scores(z: jax.Array, batch: dict[str, Any]) -> tuple[jax.Array, jax.Array]:
    """Mean cross-entropy and accuracy over the valid positions only."""
    valid = (jnp.arange(z.shape[1])[None, :] < batch["lengths"][:, None]).astype(jnp.float32)
    log_p = jax.nn.log_softmax(z, axis=-1)
    nll = -jnp.take_along_axis(log_p, batch["y"][..., None], axis=-1)[..., 0]
    correct = (jnp.argmax(z, axis=-1) == batch["y"]).astype(jnp.float32)
    n = jnp.sum(valid)
    return jnp.sum(nll * valid) / n, jnp.sum(correct * valid) / n


# ---- loop and results ---------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    config = parse_args(argv)
    seed_key = jax.random.PRNGKey(config.seed)
    params = init_params(config, jax.random.fold_in(seed_key, 0))
    data_key = jax.random.fold_in(seed_key, 1)
    test = make_batch(jax.random.PRNGKey(TEST_SET_SEED), config, config.eval_size)

    def loss_fn(params, batch, key):
        del key
        losses, metrics = {}, {}
        for model in MODELS:
            ce, acc = masked_scores(logits(config, model, params[model], batch), batch)
            losses[model] = ce
            metrics[f"loss_{model}"], metrics[f"accuracy_{model}"] = ce, acc
        # The two models share no parameters, so the gradient of the sum is each model's own.
        return losses["bidirectional"] + losses["forward"], metrics

    @jax.jit
    def test_metrics(params):
        out = {}
        for model in MODELS:
            ce, acc = masked_scores(logits(config, model, params[model], test), test)
            out[f"test_ce_{model}"], out[f"accuracy_{model}"] = ce, acc
        return out

    def eval_fn(params):
        return {k: float(v) for k, v in test_metrics(params).items()}

    # ---- training: the optimiser, the devices, the train step, the loop in --out
    schedule = training.learning_rate_schedule(
        config.lr, schedule=config.schedule, total_steps=config.steps
    )
    # One optimiser per model, so clipping one model's gradient never rescales the other's.
    per_model = training.make_optimizer(schedule, clip_norm=config.clip_norm)
    optimizer = optax.multi_transform({m: per_model for m in MODELS}, {m: m for m in MODELS})
    mesh = training.make_mesh(config.devices)
    # This process's rows of every global batch (all of them with one process).
    rows = jnp.asarray(distributed.process_rows(mesh, config.batch_size), jnp.int32)

    def batch_fn(step: int) -> dict[str, jax.Array]:
        return make_rows(jax.random.fold_in(data_key, step), rows, config)

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
        distributed.sync("lookahead_tagging:history")
        history = training.read_history(config.out)
    params = state.params

    metrics = {
        **common.last_eval(history),
        "chance_accuracy": 1.0 / config.num_symbols,
        "first_train_loss": next(r["loss"] for r in history if r["split"] == "train"),
        "final_train_loss": next(r["loss"] for r in reversed(history) if r["split"] == "train"),
        "num_params_bidirectional": common.count_params(params["bidirectional"]),
        "num_params_forward": common.count_params(params["forward"]),
    }
    common.write_metrics(config, metrics, history=history)
    common.plot_curves(
        history,
        f"{config.out}/curves.png",
        panels=[
            ("cross-entropy", [("train", f"loss_{m}") for m in MODELS]),
            ("test accuracy", [("eval", f"accuracy_{m}") for m in MODELS]),
        ],
        baselines={"test accuracy": 1.0 / config.num_symbols},
        title=f"lookahead tagging, D={config.lookahead}, {config.cell}",
    )
    if distributed.is_writer():
        print(
            f"lookahead D={config.lookahead} {config.cell} seed={config.seed}: test accuracy "
            f"bidirectional {metrics.get('accuracy_bidirectional', float('nan')):.1%}, "
            f"forward {metrics.get('accuracy_forward', float('nan')):.1%} "
            f"(chance {1.0 / config.num_symbols:.1%})"
        )
    return metrics


if __name__ == "__main__":
    common.cli(main)
