"""Handwritten digits read row by row: an 8-step sequence of 8 pixel intensities.

Data: scikit-learn's ``load_digits`` (1797 8x8 images, offline) as the TFDS data set
``sklearn_digits``, read through grain. The split is scikit-learn's "Recognizing hand-written
digits" example (first half train, second half test), whose support-vector classifier reports
about 0.97 test accuracy on the same split; that is the number to compare with. A recurrent
network sees one image row per step, intensities scaled to [0, 1], and classifies from its
final state (bidirectional: both directions' final ``h`` concatenated; forward: the last
``h``). The forward model has ``2 * --hidden`` units so both heads read the same width.

    python -m experiments.digits

trains both in well under a minute and writes runs/digits/{metrics.json, log.jsonl,
curves.png}. Options: --cell --steps --seed --out --hidden --batch-size --lr ...
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import lstm_jax
from lstm_jax import data

CELLS = ("lstm", "peephole_lstm", "cifg_lstm", "gru", "simple_rnn")
MODELS = ("bidirectional", "forward")
PUBLISHED = {"sklearn example, SVC(gamma=0.001), same split": 0.97}

# ---- configuration ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Config:
    cell: str = "lstm"
    steps: int = 600
    seed: int = 0
    out: str = "runs/digits"
    hidden: int = 64
    batch_size: int = 64
    lr: float = 3e-3
    log_every: int = 50
    eval_every: int = 100
    data_dir: str | None = None


def parse_args(argv: Sequence[str] | None) -> Config:
    d = Config()
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--cell", choices=CELLS, default=d.cell, help="recurrent cell")
    p.add_argument("--steps", type=int, default=d.steps, help="optimiser steps per model")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of initialisation and batches")
    p.add_argument("--out", default=d.out, help="output directory")
    p.add_argument("--hidden", type=int, default=d.hidden, help="units per direction")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="images per step")
    p.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate")
    p.add_argument("--log-every", type=int, default=d.log_every, help="steps per train record")
    p.add_argument("--eval-every", type=int, default=d.eval_every, help="steps per evaluation")
    p.add_argument(
        "--data-dir",
        default=d.data_dir,
        help="TFDS data dir; None: $LSTM_JAX_DATA_DIR, else ~/.cache/lstm_jax/tensorflow_datasets",
    )
    a = p.parse_args(argv)
    for name in ("steps", "hidden", "batch_size", "log_every", "eval_every"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(a, name)}")
    if not (math.isfinite(a.lr) and a.lr > 0):
        p.error(f"argument --lr: must be a finite number > 0, got {a.lr}")
    if os.path.exists(a.out) and not os.path.isdir(a.out):
        p.error(f"argument --out: {a.out!r} is an existing file, not a directory")
    return Config(**vars(a))


# ---- data ---------------------------------------------------------------------------------


def to_rows(example: dict[str, Any]) -> dict[str, np.ndarray]:
    """An image ``uint8 [8, 8]`` in 0..16 -> ``float32 [8 rows, 8 pixels]`` in [0, 1]."""
    return {
        "x": example["image"].astype(np.float32) / 16.0,
        "label": np.int32(example["label"]),
    }


def whole_split(source) -> dict[str, np.ndarray]:
    examples = [to_rows(source[i]) for i in range(len(source))]
    return {k: np.stack([e[k] for e in examples]) for k in ("x", "label")}


# ---- model --------------------------------------------------------------------------------


def make_network(config: Config, model: str) -> lstm_jax.Stack:
    width = config.hidden if model == "bidirectional" else 2 * config.hidden
    return lstm_jax.stack(
        getattr(lstm_jax, config.cell)(width), 1, bidirectional=model == "bidirectional"
    )


def init_params(key, network: lstm_jax.Stack) -> dict:
    k_rnn, k_out = jax.random.split(key)
    width = network.output_size
    return {
        "rnn": network.init(k_rnn, 8),
        "w": jax.random.normal(k_out, (width, 10), jnp.float32) / math.sqrt(width),
        "b": jnp.zeros((10,), jnp.float32),
    }


def final_h(carry) -> jax.Array:
    """``h`` of a cell's final carry (LSTM-family carries hold ``(h, c)``)."""
    return carry.h if hasattr(carry, "h") else carry


def logits_fn(network, params, x):
    """``x: [batch, 8, 8] -> [batch, 10]``."""
    (carry,), _ = network.apply(params["rnn"], x)
    if network.bidirectional:
        h = jnp.concatenate([final_h(carry[0]), final_h(carry[1])], axis=-1)
    else:
        h = final_h(carry)
    return h @ params["w"] + params["b"][None, :]


def loss_fn(params, batch, network):
    logits = logits_fn(network, params, batch["x"])
    return optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()


# ---- the run ------------------------------------------------------------------------------


def run_model(model, config, train_source, test, log) -> dict[str, Any]:
    network = make_network(config, model)
    params = init_params(jax.random.PRNGKey(config.seed), network)
    optimizer = optax.adam(config.lr)
    opt_state = optimizer.init(params)

    @jax.jit
    def train_step(params, opt_state, batch):
        loss, grads = jax.value_and_grad(loss_fn)(params, batch, network)
        # Optax's Adam mixes Python floats with its int32 step count, which strict dtype
        # promotion (on in the tests) rejects; the scope covers Optax's code only.
        with jax.numpy_dtype_promotion("standard"):
            updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    @jax.jit
    def accuracy(params, x, label):
        return jnp.mean(jnp.argmax(logits_fn(network, params, x), -1) == label)

    stream = data.batches(
        train_source,
        config.batch_size,
        seed=config.seed,
        num_epochs=None,
        transform=to_rows,
        drop_remainder=True,
    ).to_iter_dataset()
    stream = iter(stream)
    start, losses = time.perf_counter(), []
    for step in range(1, config.steps + 1):
        batch = next(stream)
        params, opt_state, loss = train_step(
            params, opt_state, {"x": jnp.asarray(batch["x"]), "label": jnp.asarray(batch["label"])}
        )
        losses.append(loss)
        if step % config.log_every == 0 or step == config.steps:
            log({"model": model, "step": step, "split": "train",
                 "loss": float(np.mean(jax.device_get(losses)))})  # fmt: skip
            losses = []
        if step % config.eval_every == 0 or step == config.steps:
            acc = float(accuracy(params, jnp.asarray(test["x"]), jnp.asarray(test["label"])))
            log({"model": model, "step": step, "split": "test", "accuracy": acc})
    n_params = sum(int(x.size) for x in jax.tree_util.tree_leaves(params))
    return {
        "test_accuracy": acc,
        "parameters": n_params,
        "seconds": time.perf_counter() - start,
    }


def plot(history: list[dict], out: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for model in MODELS:
        for ax, (split, key) in zip(axes, [("train", "loss"), ("test", "accuracy")], strict=True):
            pts = [
                (r["step"], r[key]) for r in history if r["model"] == model and r["split"] == split
            ]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker=".", label=model)
            ax.set_title(f"{split} {key}")
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
    for name, value in PUBLISHED.items():
        axes[1].axhline(value, color="gray", linestyle="--", label=name)
    for ax in axes:
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = os.path.join(out, "curves.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    config = parse_args(argv)
    os.makedirs(config.out, exist_ok=True)
    train_source = data.data_source("sklearn_digits", "train", data_dir=config.data_dir)
    test = whole_split(data.data_source("sklearn_digits", "test", data_dir=config.data_dir))
    print(f"sklearn_digits: {len(train_source)} train / {len(test['label'])} test images")

    history: list[dict] = []
    with open(os.path.join(config.out, "log.jsonl"), "w") as log_file:

        def log(record: dict) -> None:
            history.append(record)
            log_file.write(json.dumps(record) + "\n")

        results = {m: run_model(m, config, train_source, test, log) for m in MODELS}

    for model, r in results.items():
        print(
            f"{model:>14} {config.cell}: test accuracy {r['test_accuracy']:.4f} "
            f"({r['parameters']} parameters, {r['seconds']:.1f} s)"
        )
    for name, value in PUBLISHED.items():
        print(f"{'published':>14}: {value:.2f} ({name})")
    metrics = {
        "results": results,
        "published": PUBLISHED,
        "config": dataclasses.asdict(config),
        "backend": jax.default_backend(),
    }
    with open(os.path.join(config.out, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    metrics["plot"] = plot(history, config.out)
    return metrics


if __name__ == "__main__":
    main(sys.argv[1:])
