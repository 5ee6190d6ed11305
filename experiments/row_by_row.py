"""MNIST and Fashion-MNIST read row by row: 28 steps of 28 pixel intensities, one class.

Data: the standard TFDS sets ``mnist`` / ``fashion_mnist`` read through grain, when they are
prepared in the TFDS data directory (``$LSTM_JAX_DATA_DIR``, see ``lstm_jax.data``); nothing is
downloaded. For ``fashion_mnist`` Debian's package works too: ``apt-get install
dataset-fashion-mnist`` (30 MB) puts Zalando's files under /usr/share/datasets/fashion-mnist,
read by the in-package builder ``fashion_mnist_idx`` (same layout and split). Without data the
script stops with the data layer's message saying how to get them.

A recurrent layer reads one image row per step (intensities scaled to [0, 1]) and a linear
layer classifies from the last hidden state. Test accuracy is on the standard 10000 test
images (``--eval-size`` fewer for a quick look).

Published recurrent numbers to compare with, from the benchmark table of the Fashion-MNIST
README (github.com/zalandoresearch/fashion-mnist, also shipped by Debian's package as
/usr/share/doc/dataset-fashion-mnist/README.md.gz); they are submitted, not re-checked, results:
GRU+SVM 0.888 on Fashion-MNIST and 0.965 on MNIST; GRU+SVM with dropout 0.897 and 0.988.

    python -m experiments.row_by_row --dataset fashion_mnist --cell lstm --steps 3000 \\
        --out runs/row_by_row_fashion

writes runs/row_by_row_fashion/{metrics.json, log.jsonl, curves.png}.
"""

from __future__ import annotations

import dataclasses
import functools
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
from experiments import common
from lstm_jax import data, training
from lstm_jax.data import fashion_mnist_idx
from lstm_jax.data.pipeline import shard_for_process
from lstm_jax.training import distributed

DATASETS = ("mnist", "fashion_mnist")
ROWS = COLUMNS = 28
NUM_CLASSES = 10
# Fashion-MNIST README benchmark table (see the module docstring): test accuracy.
PUBLISHED = {
    "fashion_mnist": {"GRU+SVM (README table)": 0.888, "GRU+SVM, dropout (README table)": 0.897},
    "mnist": {"GRU+SVM (README table)": 0.965, "GRU+SVM, dropout (README table)": 0.988},
}
EVAL_CHUNK = 1000


# ---- configuration ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Config(common.RunConfig):
    out: str = "runs/row_by_row"
    steps: int = 3000
    hidden: int = 128
    batch_size: int = 128
    lr: float = 2e-3
    schedule: str = "cosine"
    eval_size: int = 10000
    eval_every: int = 500
    dataset: str = common.option("fashion_mnist", "which images", choices=DATASETS)
    data_dir: str | None = common.option(
        None,
        common.DATA_DIR_HELP,
        type=str,
    )


def parse_args(argv: Sequence[str] | None) -> Config:
    return common.parse_config(Config, argv, __doc__.split("\n\n")[0])


# ---- data ---------------------------------------------------------------------------------


def open_split(config: Config, split: str) -> tuple[Any, str]:
    """The split as a data source, and the TFDS name it was read from.

    The standard TFDS set first; for ``fashion_mnist``, Debian's files next.

    Raises:
      DataNotFoundError: neither is there (the message says how to get them).
    """
    try:
        return data.data_source(config.dataset, split, data_dir=config.data_dir), config.dataset
    except data.DataNotFoundError as e:
        if config.dataset != "fashion_mnist":
            raise
        if fashion_mnist_idx.files_present():
            name = "fashion_mnist_idx"
            return data.data_source(name, split, data_dir=config.data_dir), name
        raise data.DataNotFoundError(
            f"{e} For fashion_mnist there is a second way: `apt-get install "
            f"dataset-fashion-mnist` (30 MB) installs the files under "
            f"{fashion_mnist_idx.DEBIAN_DIR}, which this script then reads (or set "
            f"${fashion_mnist_idx.DIR_ENV} to a directory holding the four IDX files)."
        ) from e


def to_rows(example: dict[str, Any]) -> dict[str, np.ndarray]:
    """An image ``uint8 [28, 28, 1]`` -> ``x: float32 [28 rows, 28 pixels]`` in [0, 1]."""
    image = np.asarray(example["image"]).reshape(ROWS, COLUMNS)
    return {"x": image.astype(np.float32) / 255.0, "label": np.int32(example["label"])}


def first_examples(source, n: int) -> dict[str, np.ndarray]:
    """The first ``n`` examples of ``source``, stacked."""
    rows = [to_rows(source[i]) for i in range(min(n, len(source)))]
    return {k: np.stack([r[k] for r in rows]) for k in ("x", "label")}


def train_batches(source: Any, config: Config, shard: tuple[int, int] | None = None) -> Any:
    """The training stream (a ``grain.MapDataset``): shuffled images as rows (``to_rows``),
    reshuffled every epoch, forever; batch ``s`` is a function of ``--seed`` and ``s`` alone.
    ``shard=(index, count)``: only process ``index``'s rows of each global batch
    (``data.pipeline.shard_for_process()``)."""
    return data.batches(
        source,
        config.batch_size,
        seed=config.seed,
        num_epochs=None,
        transform=to_rows,
        drop_remainder=True,
        shard=shard,
    )


# ---- model --------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnums=0)
def init_params(cell: lstm_jax.Cell, key: jax.Array) -> dict[str, Any]:
    k_rnn, k_out = jax.random.split(key)
    return {
        "rnn": cell.init(k_rnn, COLUMNS),
        "out": common.dense_init(k_out, cell.output_size, NUM_CLASSES),
    }


def logits_fn(cell: lstm_jax.Cell, params: dict[str, Any], x: jax.Array) -> jax.Array:
    """``x: [batch, 28, 28] -> [batch, 10]``, read out from the last hidden state."""
    _, hs = lstm_jax.unroll(cell, params["rnn"], x)
    return common.dense(params["out"], hs[:, -1])


# ---- loop and results ---------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    config = parse_args(argv)
    train_source, name = open_split(config, "train")
    test_source, _ = open_split(config, "test")
    test = first_examples(test_source, config.eval_size)
    print(
        f"{config.dataset} (read as {name}): {len(train_source)} train images, "
        f"{len(test['label'])} test images scored"
    )

    cell = common.make_cell(config.cell, config.hidden)
    seed_key = jax.random.PRNGKey(config.seed)
    params = init_params(cell, jax.random.fold_in(seed_key, 0))
    stream = train_batches(train_source, config, shard_for_process())

    def batch_fn(step: int) -> dict[str, np.ndarray]:
        return stream[step]

    def loss_fn(params, batch, key):
        del key  # no dropout here
        logits = logits_fn(cell, params, batch["x"])
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()
        accuracy = jnp.mean((jnp.argmax(logits, -1) == batch["label"]).astype(jnp.float32))
        return loss, {"accuracy": accuracy}

    @jax.jit
    def correct(params, x, label):
        return jnp.sum((jnp.argmax(logits_fn(cell, params, x), -1) == label).astype(jnp.int32))

    def eval_fn(params):
        hits = sum(
            int(correct(params, test["x"][i : i + EVAL_CHUNK], test["label"][i : i + EVAL_CHUNK]))
            for i in range(0, len(test["label"]), EVAL_CHUNK)
        )
        return {"test_accuracy": hits / len(test["label"])}

    start = time.perf_counter()
    # ---- training: the optimiser, the devices, the train step, the loop in --out
    schedule = training.learning_rate_schedule(
        config.lr, schedule=config.schedule, total_steps=config.steps
    )
    optimizer = training.make_optimizer(schedule, clip_norm=config.clip_norm)
    mesh = training.make_mesh(config.devices)
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
        distributed.sync("row_by_row:history")
        history = training.read_history(config.out)
    params = state.params
    train_seconds = time.perf_counter() - start

    train_records = [r for r in history if r["split"] == "train"]
    metrics = {
        **common.last_eval(history),
        "published": PUBLISHED[config.dataset],
        "source": name,
        "test_images": len(test["label"]),
        "first_train_loss": train_records[0]["loss"],
        "final_train_loss": train_records[-1]["loss"],
        "train_seconds": train_seconds,
        "num_params": common.count_params(params),
    }
    common.write_metrics(config, metrics, history=history)
    common.plot_curves(
        history,
        f"{config.out}/curves.png",
        panels=[
            ("cross-entropy", [("train", "loss")]),
            ("accuracy", [("train", "accuracy"), ("eval", "test_accuracy")]),
        ],
        baselines={"accuracy": max(PUBLISHED[config.dataset].values())},
        title=f"{config.dataset} row by row, {config.cell} x{config.hidden} "
        f"(dashed: best GRU+SVM in the Fashion-MNIST README)",
    )
    published = ", ".join(f"{k} {v:.3f}" for k, v in PUBLISHED[config.dataset].items())
    if distributed.is_writer():
        print(
            f"{config.dataset} row by row, {config.cell}: test accuracy "
            f"{metrics.get('test_accuracy', float('nan')):.4f} ({train_seconds:.0f} s); "
            f"published: {published}"
        )
    return metrics


if __name__ == "__main__":
    try:
        common.cli(main)
    except data.DataNotFoundError as e:
        sys.exit(f"row_by_row: {e}")
