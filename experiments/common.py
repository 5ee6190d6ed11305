"""What every experiment shares: the command line, the cells, a readout layer, the training
run, and the results (``metrics.json``, ``log.jsonl``, PNG learning curves).

Each experiment script stays readable top to bottom: configuration, data, model, loop, results.
This module only holds the parts that would otherwise be copied into every script.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

import lstm_jax
from lstm_jax import training
from lstm_jax.typing import Array, PyTree

CELLS = ("simple_rnn", "lstm", "peephole_lstm", "cifg_lstm", "gru")


# ---- command line -------------------------------------------------------------------------


def base_parser(description: str, **defaults: Any) -> argparse.ArgumentParser:
    """The options every experiment has; ``defaults`` overrides their default values."""
    p = argparse.ArgumentParser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--cell", choices=CELLS, default="lstm", help="recurrent cell")
    p.add_argument("--steps", type=int, default=2000, help="optimiser steps")
    p.add_argument("--seed", type=int, default=0, help="seed of the initialisation and the data")
    p.add_argument("--out", default="runs/experiment", help="output directory")
    p.add_argument("--hidden", type=int, default=64, help="hidden size")
    p.add_argument("--batch-size", type=int, default=64, help="sequences per step")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (Adam)")
    p.add_argument(
        "--schedule",
        choices=training.SCHEDULES,
        default="constant",
        help="learning-rate schedule",
    )
    p.add_argument("--clip-norm", type=float, default=1.0, help="global gradient-norm clip")
    p.add_argument("--eval-size", type=int, default=1000, help="test sequences")
    p.add_argument("--log-every", type=int, default=50, help="steps per logged train record")
    p.add_argument("--eval-every", type=int, default=250, help="steps between test evaluations")
    p.add_argument(
        "--checkpoint-every", type=int, default=0, help="steps between checkpoints (0: at the end)"
    )
    p.add_argument("--keep", type=int, default=2, help="checkpoints to keep")
    p.add_argument(
        "--devices", type=int, default=None, help="devices to shard the batch over (all)"
    )
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: only on a terminal)",
    )
    p.add_argument("--tensorboard", action="store_true", help="also write TensorBoard events")
    p.add_argument(
        "--distributed",
        action="store_true",
        help="multi-host: call jax.distributed.initialize() (auto-detected on SLURM, Open MPI "
        "and Cloud TPU; elsewhere give --coordinator, --num-processes, --process-id)",
    )
    p.add_argument("--coordinator", default=None, help="multi-host coordinator HOST:PORT")
    p.add_argument("--num-processes", type=int, default=None, help="multi-host process count")
    p.add_argument("--process-id", type=int, default=None, help="this process's index")
    p.set_defaults(**defaults)
    return p


def config_from_args(cls: type, args: argparse.Namespace) -> Any:
    """Fills the frozen dataclass ``cls`` from parsed arguments (``--batch-size`` ->
    ``batch_size``); arguments the dataclass does not name are ignored.

    With ``--distributed`` this also joins the multi-host run, which JAX requires before any
    other JAX call; every script calls this first.
    """
    if getattr(args, "distributed", False):
        jax.distributed.initialize(
            coordinator_address=args.coordinator,
            num_processes=args.num_processes,
            process_id=args.process_id,
        )
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in vars(args).items() if k in names})


def check_config(config: Any) -> None:
    """The checks every experiment's numbers must pass before anything is built."""
    for name in ("steps", "hidden", "batch_size", "eval_size", "log_every"):
        value = getattr(config, name)
        if value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if not config.lr > 0:
        raise ValueError(f"--lr must be > 0, got {config.lr}")


def local_data_key(seed_key: Array) -> Array:
    """The key of this process's share of the training data (each host draws its own rows)."""
    if jax.process_count() == 1:
        return seed_key
    return jax.random.fold_in(seed_key, jax.process_index())


def local_batch_size(batch_size: int) -> int:
    """Rows this process draws per step: ``--batch-size`` is the global batch."""
    n = jax.process_count()
    if batch_size % n:
        raise ValueError(f"--batch-size must be a multiple of the {n} processes, got {batch_size}")
    return batch_size // n


# ---- model pieces -------------------------------------------------------------------------


def make_cell(name: str, hidden: int) -> lstm_jax.Cell:
    """One of ``CELLS`` with hidden size ``hidden`` and the library's default initialisers."""
    if name not in CELLS:
        raise ValueError(f"make_cell: name must be one of {CELLS}, got {name!r}")
    return getattr(lstm_jax, name)(hidden)


def dense_init(key: Array, n_in: int, n_out: int) -> dict[str, Array]:
    """A linear readout ``[n_in] -> [n_out]`` (LeCun-normal weights, zero bias)."""
    w = jax.random.normal(key, (n_in, n_out), jnp.float32) / math.sqrt(n_in)
    return {"w": w, "b": jnp.zeros((n_out,), jnp.float32)}


def dense(params: dict[str, Array], x: Array) -> Array:
    """``x: [*batch, n_in] -> [*batch, n_out]``."""
    b = params["b"].reshape((1,) * (x.ndim - 1) + params["b"].shape)
    return x @ params["w"] + b


def count_params(params: PyTree) -> int:
    return sum(int(x.size) for x in jax.tree_util.tree_leaves(params))


# ---- the run ------------------------------------------------------------------------------


def fit(
    config: Any,
    params: PyTree,
    loss_fn: Callable[[PyTree, PyTree, Array], Any],
    batch_fn: Callable[[int], PyTree],
    eval_fn: Callable[[PyTree], dict[str, float]],
    *,
    optimizer: Any = None,
) -> tuple[PyTree, list[dict[str, Any]]]:
    """Trains ``params`` on ``batch_fn`` with the options of ``base_parser``.

    Writes ``<out>/log.jsonl`` and checkpoints under ``<out>/checkpoints`` (resuming from them
    when present). Returns the final parameters and the logged history.
    """
    schedule = training.learning_rate_schedule(
        config.lr, schedule=config.schedule, total_steps=config.steps
    )
    if optimizer is None:
        optimizer = training.make_optimizer(schedule, clip_norm=config.clip_norm)
    mesh = training.make_mesh(config.devices)
    state = training.create_train_state(params, optimizer, jax.random.PRNGKey(config.seed))
    shardings = training.state_shardings(state, mesh, optimizer)
    state = training.place_state(state, shardings)
    step = training.make_train_step(
        loss_fn, optimizer, learning_rate=schedule, state_sharding=shardings
    )
    os.makedirs(config.out, exist_ok=True)
    with (
        training.Checkpointer(
            os.path.join(config.out, "checkpoints"),
            save_every=config.checkpoint_every,
            keep=config.keep,
        ) as ckpt,
        training.MetricLogger(config.out, tensorboard=config.tensorboard) as logger,
    ):
        state, history = training.train(
            state,
            step,
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
    return state.params, history


# ---- results ------------------------------------------------------------------------------


def write_metrics(config: Any, metrics: dict[str, Any], extra: dict[str, Any] | None = None) -> str:
    """Writes ``<out>/metrics.json``: the final metrics and the full configuration."""
    path = os.path.join(config.out, "metrics.json")
    payload = {
        "metrics": metrics,
        "config": dataclasses.asdict(config),
        "devices": jax.device_count(),
        "backend": jax.default_backend(),
        **(extra or {}),
    }
    with open(path, "w") as f:
        json.dump(payload, f, indent=2, sort_keys=True)
    return path


def plot_curves(
    history: Sequence[dict[str, Any]],
    path: str,
    *,
    panels: Sequence[tuple[str, Sequence[tuple[str, str]]]],
    title: str,
    baselines: dict[str, float] | None = None,
    log_y: Sequence[str] = (),
) -> str:
    """Draws learning curves to a PNG.

    Args:
      history: the records ``training.train`` returned.
      path: the PNG to write.
      panels: one ``(y label, [(split, metric), ...])`` per panel.
      title: the figure's title.
      baselines: ``{y label: value}``, drawn as a dashed line in that panel.
      log_y: the y labels whose panel uses a log scale.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for ax, (ylabel, curves) in zip(axes[0], panels, strict=True):
        for split, metric in curves:
            pts = [
                (r["step"], r[metric])
                for r in history
                if r["split"] == split and isinstance(r.get(metric), int | float)
            ]
            if pts:
                xs, ys = zip(*pts, strict=True)
                ax.plot(xs, ys, marker="." if len(pts) < 30 else None, label=f"{split} {metric}")
        if baselines and ylabel in baselines:
            ax.axhline(baselines[ylabel], color="gray", linestyle="--", label="baseline")
        if ylabel in log_y:
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def last_eval(history: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The final eval record, without its bookkeeping keys."""
    evals = [r for r in history if r["split"] == "eval"]
    return {k: v for k, v in evals[-1].items() if k not in ("split",)} if evals else {}
