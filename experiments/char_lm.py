"""A character language model on real English text: bits per character on held-out text, and
a sample of generated text.

Data: Python's own help text (``pydoc_data.topics``, shipped with Python: offline) as the TFDS
data set ``pydoc_topics``, read through grain. Each split's paragraphs are put back in order
(topic by topic, blank lines between paragraphs) into one text; test and validation text comes
from help topics never seen in training. The vocabulary is the training text's characters;
a character unseen in training is read and predicted as ``<unk>``.

Model: character embedding -> one recurrent layer -> a linear softmax over the vocabulary,
trained on random non-overlapping windows of ``--seq-len`` characters (no state carried
between batches). Held-out text is scored as ``--eval-size`` long contiguous streams, each
read in one pass so the state carries across the whole stream: bits per character is the mean
cross-entropy over every held-out character, in bits. A uniform guess scores
``log2(vocabulary)``; a unigram (character frequency) model is reported too.

    python -m experiments.char_lm --cell lstm --steps 1500 --out runs/char_lm

(LSTM, 256 units) took under 4 minutes on 2 busy CPU cores and scored 2.08 bits per character
on the test topics (unigram 4.78); it writes runs/char_lm/{metrics.json, log.jsonl,
curves.png}, and the generated sample is printed and stored in metrics.json.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
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
from lstm_jax.data.pipeline import shard_for_process
from lstm_jax.training import distributed

LN2 = math.log(2.0)


# ---- configuration ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Config(common.RunConfig):
    out: str = "runs/char_lm"
    steps: int = 1500
    hidden: int = 256
    batch_size: int = 32
    lr: float = 3e-3
    schedule: str = "cosine"
    eval_size: int = 16
    eval_every: int = 500
    embed: int = common.option(32, "character embedding width")
    seq_len: int = common.option(100, "training window, chars")
    eval_chars: int = common.option(0, "held-out chars scored (0: all)")
    # The prompt, length and temperature of the sample only shape the text drawn after
    # training: they may change on a rerun.
    prompt: str = common.option("The ", "text the sample continues")
    sample_len: int = common.option(400, "chars generated")
    temperature: float = common.option(0.7, "sampling temperature")
    data_dir: str | None = common.option(
        None,
        common.DATA_DIR_HELP,
        type=str,
    )


def parse_args(argv: Sequence[str] | None) -> Config:
    config = common.parse_config(Config, argv, __doc__.split("\n\n")[0])
    for name in ("embed", "seq_len", "sample_len", "eval_every"):
        if getattr(config, name) < 1:
            raise ValueError(
                f"--{name.replace('_', '-')} must be >= 1, got {getattr(config, name)}"
            )
    if config.eval_chars < 0:
        raise ValueError(f"--eval-chars must be >= 0, got {config.eval_chars}")
    if not config.temperature > 0:
        raise ValueError(f"--temperature must be > 0, got {config.temperature}")
    if not config.prompt:
        raise ValueError("--prompt must not be empty")
    return config


# ---- data ---------------------------------------------------------------------------------


def pydoc_text(split: str, data_dir: str | None) -> str:
    """The split's paragraphs in reading order: topics sorted, paragraphs by index."""
    source = data.data_source("pydoc_topics", split, data_dir=data_dir)
    rows = sorted(
        (source[i]["topic"].decode(), int(source[i]["index"]), source[i]["text"].decode())
        for i in range(len(source))
    )
    return "\n\n".join(text for _, _, text in rows)


class Windows:
    """Non-overlapping windows of ``seq_len + 1`` ids: a random-access source for grain.

    Example ``i``: ``ids: int32 [seq_len + 1]``, the characters ``i * seq_len .. (i + 1) *
    seq_len`` (inputs are ``ids[:-1]``, targets ``ids[1:]``).
    """

    def __init__(self, ids: np.ndarray, seq_len: int):
        self.ids, self.seq_len = ids, seq_len

    def __len__(self) -> int:
        return max((len(self.ids) - 1) // self.seq_len, 0)

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        i = int(i)
        if not 0 <= i < len(self):
            raise IndexError(f"Windows: index {i} out of range [0, {len(self)})")
        start = i * self.seq_len
        return {"ids": self.ids[start : start + self.seq_len + 1]}


def streams(ids: np.ndarray, rows: int, max_chars: int) -> np.ndarray:
    """``int32 [rows, len]``: the first ``max_chars`` ids (0: all) cut into ``rows`` contiguous
    streams of equal length (the remainder, fewer than ``rows`` ids, is dropped)."""
    if max_chars:
        ids = ids[:max_chars]
    width = len(ids) // rows
    if width < 2:
        raise ValueError(f"streams: {len(ids)} held-out chars are too few for {rows} streams")
    return ids[: rows * width].reshape(rows, width)


def unigram_bpc(train_ids: np.ndarray, test_ids: np.ndarray, vocab_size: int) -> float:
    """Bits per character of the training character frequencies (add-one smoothed)."""
    counts = np.bincount(train_ids, minlength=vocab_size).astype(np.float64) + 1.0
    p = counts / counts.sum()
    return float(-np.mean(np.log2(p[test_ids])))


def train_batches(windows: Windows, config: Config, shard: tuple[int, int] | None = None) -> Any:
    """The training stream (a ``grain.MapDataset``): shuffled windows, reshuffled every epoch,
    forever; batch ``s`` is a function of ``--seed`` and ``s`` alone. ``shard=(index,
    count)``: only process ``index``'s rows of each global batch
    (``data.pipeline.shard_for_process()``)."""
    return data.batches(
        windows,
        config.batch_size,
        seed=config.seed,
        num_epochs=None,
        drop_remainder=True,
        shard=shard,
    )


# ---- model --------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnums=(0, 2, 3))
def init_params(cell: lstm_jax.Cell, key: jax.Array, vocab: int, embed: int) -> dict[str, Any]:
    k_emb, k_rnn, k_out = jax.random.split(key, 3)
    return {
        "embed": jax.random.normal(k_emb, (vocab, embed), jnp.float32) * 0.1,
        "rnn": cell.init(k_rnn, embed),
        "out": common.dense_init(k_out, cell.output_size, vocab),
    }


def logits_fn(cell: lstm_jax.Cell, params: dict[str, Any], ids: jax.Array) -> jax.Array:
    """``ids: int [batch, time] -> [batch, time, vocab]``: next-character logits."""
    _, hs = lstm_jax.unroll(cell, params["rnn"], params["embed"][ids])
    return common.dense(params["out"], hs)


def mean_nats(cell, params, ids: jax.Array) -> jax.Array:
    """Mean cross-entropy (nats) of predicting ``ids[:, 1:]`` from ``ids[:, :-1]``."""
    logits = logits_fn(cell, params, ids[:, :-1])
    return optax.softmax_cross_entropy_with_integer_labels(logits, ids[:, 1:]).mean()


@functools.partial(jax.jit, static_argnums=(0, 3, 4))
def generate(cell, params, prompt: jax.Array, length: int, temperature: float, key) -> jax.Array:
    """``prompt: int [time]`` -> ``int [length]`` sampled characters that continue it."""
    carry, hs = lstm_jax.unroll(cell, params["rnn"], params["embed"][prompt])

    def step(state, key):
        carry, h = state
        logits = common.dense(params["out"], h) / temperature
        token = jax.random.categorical(key, logits)
        carry, h = cell.step(params["rnn"], carry, params["embed"][token])
        return (carry, h), token

    _, tokens = jax.lax.scan(step, (carry, hs[-1]), jax.random.split(key, length))
    return tokens


# ---- loop and results ---------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    config = parse_args(argv)
    texts = {s: pydoc_text(s, config.data_dir) for s in ("train", "validation", "test")}
    vocab = data.build_vocabulary([data.char_tokens(texts["train"])])
    ids = {split: vocab.encode(data.char_tokens(text)) for split, text in texts.items()}
    windows = Windows(ids["train"], config.seq_len)
    val = jnp.asarray(streams(ids["validation"], config.eval_size, config.eval_chars))
    test = jnp.asarray(streams(ids["test"], config.eval_size, config.eval_chars))
    unseen = float(np.mean(ids["test"] == data.UNK_ID))
    print(
        f"pydoc_topics: {len(ids['train'])} train / {len(ids['validation'])} validation / "
        f"{len(ids['test'])} test chars, {len(vocab)} symbols, {len(windows)} windows of "
        f"{config.seq_len}; {unseen:.2%} of test chars unseen in training"
    )

    cell = common.make_cell(config.cell, config.hidden)
    seed_key = jax.random.PRNGKey(config.seed)
    params = init_params(cell, jax.random.fold_in(seed_key, 0), len(vocab), config.embed)
    stream = train_batches(windows, config, shard_for_process())

    def batch_fn(step: int) -> dict[str, np.ndarray]:
        return stream[step]

    def loss_fn(params, batch, key):
        del key  # no dropout here
        nats = mean_nats(cell, params, batch["ids"])
        return nats, {"bpc": nats / LN2}

    @jax.jit
    def held_out_bpc(params, rows):
        return mean_nats(cell, params, rows) / LN2

    def eval_fn(params):
        return {"val_bpc": float(held_out_bpc(params, val))}

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
            sample_options = {"prompt", "sample_len", "temperature"}
            training.check_resume(ckpt, config, may_change=common.RESUMABLE | sample_options)
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
        distributed.sync("char_lm:history")
        history = training.read_history(config.out)
    params = state.params
    train_seconds = time.perf_counter() - start

    test_bpc = float(held_out_bpc(params, test))
    prompt = vocab.encode(data.char_tokens(config.prompt))
    tokens = generate(
        cell, params, jnp.asarray(prompt), config.sample_len, config.temperature,
        jax.random.fold_in(seed_key, 2),
    )  # fmt: skip
    sample = config.prompt + "".join(vocab.decode(np.asarray(tokens)))

    train_records = [r for r in history if r["split"] == "train"]
    metrics = {
        "test_bpc": test_bpc,
        "val_bpc": common.last_eval(history).get("val_bpc"),
        "uniform_bpc": math.log2(len(vocab)),
        "unigram_bpc": unigram_bpc(ids["train"], np.asarray(test).reshape(-1), len(vocab)),
        "first_train_bpc": train_records[0]["bpc"],
        "final_train_bpc": train_records[-1]["bpc"],
        "first_train_loss": train_records[0]["loss"],
        "final_train_loss": train_records[-1]["loss"],
        "test_chars_scored": int(test.shape[0] * (test.shape[1] - 1)),
        "test_unseen_fraction": unseen,
        "vocabulary": len(vocab),
        "train_chars": len(ids["train"]),
        "train_seconds": train_seconds,
        "num_params": common.count_params(params),
        "sample": sample,
    }
    common.write_metrics(config, metrics, history=history)
    common.plot_curves(
        history,
        f"{config.out}/curves.png",
        panels=[("bits per character", [("train", "bpc"), ("eval", "val_bpc")])],
        baselines={"bits per character": metrics["unigram_bpc"]},
        title=f"char LM on pydoc_topics, {config.cell} x{config.hidden} (baseline: unigram)",
    )
    if distributed.is_writer():
        print(
            f"char_lm pydoc_topics {config.cell}: test {test_bpc:.3f} bpc (unigram "
            f"{metrics['unigram_bpc']:.3f}, uniform {metrics['uniform_bpc']:.3f}), "
            f"{train_seconds:.0f} s\n--- sample (temperature {config.temperature}) ---\n{sample}"
        )
    return metrics


if __name__ == "__main__":
    common.cli(main)
