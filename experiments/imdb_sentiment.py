"""Sentiment of IMDB movie reviews with a bidirectional recurrent layer over words.

Data: the standard TFDS set ``imdb_reviews`` (25000 train and 25000 test reviews, half
positive), read through grain when it is prepared in the TFDS data directory
(``$LSTM_JAX_DATA_DIR``, see ``lstm_jax.data``); nothing is downloaded. Without it the script
stops with the data layer's message saying how to get it.

Text: HTML line breaks become spaces, then ``data.word_tokens(lower=True)`` (words and single
punctuation marks); the vocabulary is the ``--vocab`` most frequent training tokens (the rest
read as ``<unk>``). A review longer than ``--max-len`` tokens keeps its last ``--max-len``:
reviews tend to end on their verdict. Reviews are bucketed by length (``data.bucketed_batches``,
quantile boundaries) and padded within a bucket; the true lengths go to the recurrent layer as
``seq_lengths``, so padding never reaches a state: the forward direction's final state is the
one after the review's last word, the backward direction starts from that word.

Model: word embedding -> bidirectional layer (``--hidden`` units per direction) -> both final
``h`` concatenated -> a linear layer over {negative, positive}.

    python -m experiments.imdb_sentiment --cell lstm --steps 2000 --out runs/imdb

writes runs/imdb/{metrics.json, log.jsonl, curves.png}. The accuracy to compare with is that
of Maas et al. (2011), who introduced the data set: 88.89% for their best model (full model
trained with the extra unlabelled reviews, plus bag-of-words features; their Table 2).
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

NUM_CLASSES = 2
BUCKETS = 4


# ---- configuration ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Config(common.RunConfig):
    out: str = "runs/imdb"
    steps: int = 2000
    batch_size: int = 32
    lr: float = 2e-3
    schedule: str = "cosine"
    eval_size: int = 25000
    eval_every: int = 500
    embed: int = common.option(64, "word embedding width")
    vocab: int = common.option(20000, "vocabulary size, PAD+UNK in")
    max_len: int = common.option(256, "tokens kept per review")
    data_dir: str | None = common.option(
        None,
        common.DATA_DIR_HELP,
        type=str,
    )


def parse_args(argv: Sequence[str] | None) -> Config:
    config = common.parse_config(Config, argv, __doc__.split("\n\n")[0], multi_process=False)
    for name in ("embed", "max_len"):
        value = getattr(config, name)
        if value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if config.vocab < 3:
        raise ValueError(f"--vocab must be >= 3 (PAD, UNK and a word), got {config.vocab}")
    return config


# ---- data ---------------------------------------------------------------------------------


def tokens(text: bytes | str) -> list[str]:
    """A review's lower-cased words and punctuation marks, HTML line breaks dropped."""
    # Prepared data give bytes; TFDS mock data give str.
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    return data.word_tokens(text.replace("<br />", " "), lower=True)


def read_split(split: str, config: Config, limit: int | None = None):
    """``(token lists, labels int32 [n])`` of the first ``limit`` reviews of ``split``."""
    source = data.data_source("imdb_reviews", split, data_dir=config.data_dir)
    n = len(source) if limit is None else min(limit, len(source))
    rows = [source[i] for i in range(n)]
    return [tokens(r["text"]) for r in rows], np.array([int(r["label"]) for r in rows], np.int32)


def encode_all(token_lists, vocab: data.Vocabulary, max_len: int) -> list[dict[str, np.ndarray]]:
    """Each review -> ``{"ids": int32 [len]}``, its last ``max_len`` tokens; an empty review
    becomes one ``<unk>`` so that every row has a state to classify."""
    out = []
    for toks in token_lists:
        ids = vocab.encode(toks[-max_len:]) if toks else np.array([data.UNK_ID], np.int32)
        out.append({"ids": ids})
    return out


def identity(example: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return example


def batch_stream(examples, boundaries, config: Config, *, train: bool):
    """Bucketed padded batches: shuffled forever for training, one ordered pass otherwise.
    Rows are filled to ``batch_size`` (index -1, length 0) so each width compiles once."""
    return data.bucketed_batches(
        examples,
        identity,
        boundaries=boundaries,
        batch_size=config.batch_size,
        lengths=[len(e["ids"]) for e in examples],
        seed=config.seed if train else None,
        num_epochs=None if train else 1,
        fill_batch=True,
    )


def with_labels(batch: dict[str, np.ndarray], labels: np.ndarray) -> dict[str, np.ndarray]:
    """The batch's ids and lengths, its labels looked up by source index, and a row weight
    (0 on filled rows)."""
    index = batch[data.INDEX]
    return {
        "ids": batch["ids"],
        "seq_lengths": batch[data.SEQ_LENGTHS],
        "label": np.where(index >= 0, labels[np.maximum(index, 0)], 0).astype(np.int32),
        "weight": (index >= 0).astype(np.float32),
    }


# ---- model --------------------------------------------------------------------------------


def make_network(config: Config) -> lstm_jax.Stack:
    return lstm_jax.stack(common.make_cell(config.cell, config.hidden), 1, bidirectional=True)


@functools.partial(jax.jit, static_argnums=(0, 2, 3))
def init_params(network: lstm_jax.Stack, key, vocab: int, embed: int) -> dict[str, Any]:
    k_emb, k_rnn, k_out = jax.random.split(key, 3)
    return {
        "embed": jax.random.normal(k_emb, (vocab, embed), jnp.float32) * 0.1,
        "rnn": network.init(k_rnn, embed),
        "out": common.dense_init(k_out, network.output_size, NUM_CLASSES),
    }


def final_h(carry) -> jax.Array:
    """``h`` of a final carry (LSTM-family carries hold ``(h, c)``)."""
    return carry.h if hasattr(carry, "h") else carry


def logits_fn(network, params, ids: jax.Array, seq_lengths: jax.Array) -> jax.Array:
    """``ids: int [batch, time]``, ``seq_lengths: int [batch]`` -> ``[batch, 2]``."""
    ((forward, backward),), _ = network.apply(
        params["rnn"], params["embed"][ids], seq_lengths=seq_lengths
    )
    h = jnp.concatenate([final_h(forward), final_h(backward)], axis=-1)
    return common.dense(params["out"], h)


def weighted_mean(values: jax.Array, weight: jax.Array) -> jax.Array:
    return jnp.sum(values * weight) / jnp.maximum(jnp.sum(weight), 1.0)


# ---- loop and results ---------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    config = parse_args(argv)
    t0 = time.perf_counter()
    train_tokens, train_labels = read_split("train", config)
    test_tokens, test_labels = read_split("test", config, limit=config.eval_size)
    vocab = data.build_vocabulary(train_tokens, max_size=config.vocab)
    train_examples = encode_all(train_tokens, vocab, config.max_len)
    test_examples = encode_all(test_tokens, vocab, config.max_len)
    lengths = [len(e["ids"]) for e in train_examples + test_examples]
    boundaries = data.length_boundaries(lengths, BUCKETS)
    print(
        f"imdb_reviews: {len(train_examples)} train / {len(test_examples)} test reviews, "
        f"{len(vocab)} words, median {int(np.median(lengths))} tokens (cut at "
        f"{config.max_len}), buckets {boundaries}; {time.perf_counter() - t0:.0f} s to read"
    )

    network = make_network(config)
    seed_key = jax.random.PRNGKey(config.seed)
    params = init_params(network, jax.random.fold_in(seed_key, 0), len(vocab), config.embed)
    stream = batch_stream(train_examples, boundaries, config, train=True)

    def batch_fn(step: int) -> dict[str, np.ndarray]:
        return with_labels(stream[step], train_labels)

    def loss_fn(params, batch, key):
        del key  # no dropout here
        logits = logits_fn(network, params, batch["ids"], batch["seq_lengths"])
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
        hit = (jnp.argmax(logits, -1) == batch["label"]).astype(jnp.float32)
        return weighted_mean(ce, batch["weight"]), {"accuracy": weighted_mean(hit, batch["weight"])}

    @jax.jit
    def correct(params, batch):
        logits = logits_fn(network, params, batch["ids"], batch["seq_lengths"])
        hit = (jnp.argmax(logits, -1) == batch["label"]).astype(jnp.float32)
        return jnp.sum(hit * batch["weight"])

    def eval_fn(params):
        hits = 0.0
        for batch in batch_stream(test_examples, boundaries, config, train=False):
            hits += float(correct(params, with_labels(batch, test_labels)))
        return {"test_accuracy": hits / len(test_examples)}

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
        # The whole run's records: those of the interrupted runs this one resumed, too.
        history = training.read_history(config.out)
    params = state.params
    train_seconds = time.perf_counter() - start

    train_records = [r for r in history if r["split"] == "train"]
    metrics = {
        **common.last_eval(history),
        "majority_accuracy": float(max(np.mean(test_labels), 1 - np.mean(test_labels))),
        "published": {"Maas et al. 2011, full + unlabelled + bag of words": 0.8889},
        "test_reviews": len(test_examples),
        "vocabulary": len(vocab),
        "boundaries": boundaries,
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
        baselines={"accuracy": metrics["majority_accuracy"]},
        title=f"imdb_reviews, bidirectional {config.cell} x{config.hidden} (dashed: majority)",
    )
    print(
        f"imdb_reviews bidirectional {config.cell}: test accuracy "
        f"{metrics.get('test_accuracy', float('nan')):.4f} on {len(test_examples)} reviews "
        f"(majority {metrics['majority_accuracy']:.4f}), {train_seconds:.0f} s"
    )
    return metrics


if __name__ == "__main__":
    try:
        common.cli(main)
    except data.DataNotFoundError as e:
        sys.exit(f"imdb_sentiment: {e}")
