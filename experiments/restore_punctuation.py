"""Restoring punctuation and capitals in real English text: does reading ahead help?

The text is Python's own help (``pydoc_data.topics``, shipped with Python: offline), read as
the TFDS data set ``pydoc_topics`` through grain. Its prose paragraphs, whitespace normalised,
are turned into a character-level labelling task whose labels come exactly from the text
(``lstm_jax.data.punctuation``): the model reads the text with word-final , . : ; ? ! removed
and capitals lowered, and tags every character with the mark that followed it (7 classes) and
whether it was a capital (2 classes). Test paragraphs come from help topics unseen in training.

Two models read the same batches: a bidirectional layer with ``--hidden`` units per direction,
and a forward layer with ``2 * --hidden`` units (same output width, more parameters, so a gap
is not down to size). Both: character embedding -> recurrent layer -> two linear heads, summed
cross-entropy, Adam. A forward model must guess a sentence's end before reading the next word.

    python -m experiments.restore_punctuation

trains both (3600 steps each; about 5 minutes on 2 idle CPU cores, 10-16 on loaded ones, see
README) with a progress bar per model (plain lines when the output is not a terminal), and
writes runs/restore_punctuation/{metrics.json, log.jsonl, curves.png, f1.png}. It prints the
per-label precision/recall/F1 table (also in metrics.json) and a test chunk on which the two
models' restorations differ most. Options: --cell --steps --seed --out --hidden --batch-size
--lr ...
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
from lstm_jax import data, training

CELLS = ("lstm", "peephole_lstm", "cifg_lstm", "gru", "simple_rnn")
MODELS = ("bidirectional", "forward")

# ---- configuration ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Config:
    cell: str = "lstm"
    steps: int = 3600
    seed: int = 0
    out: str = "runs/restore_punctuation"
    hidden: int = 64
    embed: int = 32
    batch_size: int = 32
    max_len: int = 160
    boundaries: tuple[int, ...] = (48, 96, 160)
    lr: float = 3e-3
    clip_norm: float = 1.0
    log_every: int = 50
    eval_every: int = 200
    data_dir: str | None = None
    progress: bool | None = None  # None: a bar on a terminal, plain lines otherwise


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
    p.add_argument("--embed", type=int, default=d.embed, help="character embedding width")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="chunks per step")
    p.add_argument("--max-len", type=int, default=d.max_len, help="longest chunk, characters")
    p.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate")
    p.add_argument("--clip-norm", type=float, default=d.clip_norm, help="gradient-norm clip")
    p.add_argument("--log-every", type=int, default=d.log_every, help="steps per train record")
    p.add_argument("--eval-every", type=int, default=d.eval_every, help="steps per validation")
    # The resolved directory as the default, so the help says where the data is read from.
    p.add_argument("--data-dir", default=data.default_data_dir(), help="TFDS data dir")
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=d.progress,
        help="progress bars (None: a bar on a terminal, plain lines otherwise)",
    )
    a = p.parse_args(argv)
    for name in ("steps", "hidden", "embed", "batch_size", "max_len", "log_every", "eval_every"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(a, name)}")
    if not (math.isfinite(a.lr) and a.lr > 0):
        p.error(f"argument --lr: must be a finite number > 0, got {a.lr}")
    if os.path.exists(a.out) and not os.path.isdir(a.out):
        p.error(f"argument --out: {a.out!r} is an existing file, not a directory")
    if not (math.isfinite(a.clip_norm) and a.clip_norm > 0):
        p.error(f"argument --clip-norm: must be a finite number > 0, got {a.clip_norm}")
    # Bucket widths: thirds of the longest chunk, rounded up to multiples of 16.
    widths = sorted({16 * math.ceil(a.max_len * k / 3 / 16) for k in (1, 2)} | {a.max_len})
    fields = {f.name for f in dataclasses.fields(Config)}
    return Config(**{k: v for k, v in vars(a).items() if k in fields}, boundaries=tuple(widths))


# ---- data ---------------------------------------------------------------------------------


def chunk_words(text: str, max_len: int) -> list[str]:
    """Splits at spaces into pieces of at most ``max_len`` characters (a longer word is cut)."""
    pieces, current = [], ""
    for word in text.split(" "):
        while len(word) > max_len:
            if current:
                pieces.append(current)
                current = ""
            pieces.append(word[:max_len])
            word = word[max_len:]
        if not current:
            current = word
        elif len(current) + 1 + len(word) <= max_len:
            current += " " + word
        else:
            pieces.append(current)
            current = word
    if current:
        pieces.append(current)
    return pieces


def load_split(split: str, config: Config) -> list[str]:
    """The split's prose paragraphs, whitespace normalised, in chunks of <= max_len chars."""
    source = data.data_source("pydoc_topics", split, data_dir=config.data_dir)
    chunks = []
    for i in range(len(source)):
        example = source[i]
        if example["prose"]:
            text = data.normalise_whitespace(example["text"].decode("utf-8"))
            chunks.extend(chunk_words(text, config.max_len))
    return chunks


def make_examples(
    chunks: Sequence[str], vocab: data.Vocabulary
) -> tuple[list[dict[str, np.ndarray]], list[str]]:
    """Each chunk -> ``{"ids", "punct", "case"}``, all ``int32 [len]``, and its stripped text."""
    examples, texts = [], []
    for chunk in chunks:
        stripped, punct, case = data.strip_punctuation(chunk)
        if stripped:
            examples.append({"ids": vocab.encode(stripped), "punct": punct, "case": case})
            texts.append(stripped)
    return examples, texts


def identity(example: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return example


def batch_stream(examples, config: Config, *, train: bool):
    """grain batches: shuffled forever for training; one ordered, row-filled pass otherwise."""
    return data.bucketed_batches(
        examples,
        identity,
        boundaries=config.boundaries,
        batch_size=config.batch_size,
        lengths=[len(e["ids"]) for e in examples],
        seed=config.seed if train else None,
        num_epochs=None if train else 1,
        fill_batch=True,
    )


# ---- model --------------------------------------------------------------------------------


def make_network(config: Config, model: str) -> lstm_jax.Stack:
    width = config.hidden if model == "bidirectional" else 2 * config.hidden
    cell = getattr(lstm_jax, config.cell)(width)
    return lstm_jax.stack(cell, 1, bidirectional=model == "bidirectional")


def dense_init(key, n_in: int, n_out: int) -> dict[str, jax.Array]:
    w = jax.random.normal(key, (n_in, n_out), jnp.float32) / math.sqrt(n_in)
    return {"w": w, "b": jnp.zeros((n_out,), jnp.float32)}


def dense(p: dict[str, jax.Array], x: jax.Array) -> jax.Array:
    return x @ p["w"] + p["b"].reshape((1,) * (x.ndim - 1) + p["b"].shape)


def init_params(key, network: lstm_jax.Stack, vocab_size: int, config: Config) -> dict:
    k_emb, k_rnn, k_p, k_c = jax.random.split(key, 4)
    return {
        "embed": jax.random.normal(k_emb, (vocab_size, config.embed), jnp.float32) * 0.1,
        "rnn": network.init(k_rnn, config.embed),
        "punct": dense_init(k_p, network.output_size, len(data.PUNCT_LABELS)),
        "case": dense_init(k_c, network.output_size, len(data.CASE_LABELS)),
    }


def apply(network, params, ids, seq_lengths):
    """``ids: int [batch, time]`` -> logits ``[batch, time, 7]`` and ``[batch, time, 2]``."""
    x = params["embed"][ids]
    _, ys = network.apply(params["rnn"], x, seq_lengths=seq_lengths)
    return dense(params["punct"], ys), dense(params["case"], ys)


def valid_mask(batch) -> jax.Array:
    time = batch["ids"].shape[1]
    return jnp.arange(time)[None, :] < batch["seq_lengths"][:, None]


def loss_fn(params, batch, network):
    """Mean cross-entropy per real character, both heads summed."""
    punct_logits, case_logits = apply(network, params, batch["ids"], batch["seq_lengths"])
    mask = valid_mask(batch).astype(jnp.float32)
    ce_p = optax.softmax_cross_entropy_with_integer_labels(punct_logits, batch["punct"])
    ce_c = optax.softmax_cross_entropy_with_integer_labels(case_logits, batch["case"])
    return jnp.sum((ce_p + ce_c) * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def make_steps(network, optimizer):
    @jax.jit
    def train_step(params, opt_state, batch):
        loss, grads = jax.value_and_grad(loss_fn)(params, batch, network)
        # Optax's Adam mixes Python floats with its int32 step count, which strict dtype
        # promotion (on in the tests) rejects; the scope covers Optax's code only.
        with jax.numpy_dtype_promotion("standard"):
            updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    @jax.jit
    def predict(params, batch):
        punct_logits, case_logits = apply(network, params, batch["ids"], batch["seq_lengths"])
        loss = loss_fn(params, batch, network) * jnp.sum(valid_mask(batch), dtype=jnp.float32)
        return jnp.argmax(punct_logits, -1), jnp.argmax(case_logits, -1), loss

    return train_step, predict


# ---- evaluation ---------------------------------------------------------------------------


def to_device(batch) -> dict[str, jax.Array]:
    return {k: jnp.asarray(batch[k]) for k in ("ids", "punct", "case", "seq_lengths")}


def predict_all(predict, params, stream) -> dict[str, Any]:
    """Flat arrays over every real character: true and predicted labels, and the loss; and
    under ``"rows"`` each example's predicted ``(punct, case)`` labels, by example index."""
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("punct", "case", "p_hat", "c_hat")}
    rows: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    total_loss, total_chars = 0.0, 0
    for batch in stream:
        p_hat, c_hat, loss = predict(params, to_device(batch))
        p_hat, c_hat = np.asarray(p_hat), np.asarray(c_hat)
        mask = np.arange(batch["ids"].shape[1])[None, :] < batch["seq_lengths"][:, None]
        for name, values in (("punct", batch["punct"]), ("case", batch["case"])):
            parts[name].append(values[mask])
        parts["p_hat"].append(p_hat[mask])
        parts["c_hat"].append(c_hat[mask])
        indices, lengths = batch[data.INDEX], batch["seq_lengths"]
        for row, (index, length) in enumerate(zip(indices, lengths, strict=True)):
            if index >= 0:  # rows that only fill the batch have index -1
                rows[int(index)] = (p_hat[row, :length], c_hat[row, :length])
        total_loss += float(loss)
        total_chars += int(mask.sum())
    out: dict[str, Any] = {k: np.concatenate(v) for k, v in parts.items()}
    out["loss"] = np.array(total_loss / max(total_chars, 1))
    out["rows"] = rows
    return out


def per_label_scores(true: np.ndarray, pred: np.ndarray, labels: Sequence[str]) -> dict:
    """``{label: {precision, recall, f1, support}}`` (0 where a denominator is 0)."""
    scores = {}
    for k, name in enumerate(labels):
        tp = int(np.sum((pred == k) & (true == k)))
        fp = int(np.sum((pred == k) & (true != k)))
        fn = int(np.sum((pred != k) & (true == k)))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        scores[name] = {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": tp + fn,
        }
    return scores


def summarise(pred: dict[str, np.ndarray]) -> dict[str, Any]:
    punct = per_label_scores(pred["punct"], pred["p_hat"], data.PUNCT_LABELS)
    case = per_label_scores(pred["case"], pred["c_hat"], data.CASE_LABELS)
    marks = [punct[m]["f1"] for m in data.PUNCTUATION if punct[m]["support"]]
    return {
        "loss": float(pred["loss"]),
        "punct": punct,
        "case": case,
        "punct_macro_f1": float(np.mean(marks)) if marks else 0.0,
        "capital_f1": case["capital"]["f1"],
        "char_accuracy": float(
            np.mean((pred["punct"] == pred["p_hat"]) & (pred["case"] == pred["c_hat"]))
        ),
    }


def results_table(results: dict[str, dict[str, Any]]) -> str:
    """The per-label precision / recall / F1 of each model, side by side."""
    models = list(results)
    head = f"{'label':>9} {'support':>7}" + "".join(f" | {m:^20}" for m in models)
    sub = f"{'':>9} {'':>7}" + " | {:>6}{:>7}{:>7}".format("P", "R", "F1") * len(models)
    lines = [head, sub, "-" * len(head)]
    rows = [("punct", m) for m in data.PUNCTUATION] + [("case", "capital")]
    for head_name, label in rows:
        support = results[models[0]][head_name][label]["support"]
        line = f"{label:>9} {support:>7}"
        for m in models:
            s = results[m][head_name][label]
            line += f" | {s['precision']:>6.3f}{s['recall']:>7.3f}{s['f1']:>7.3f}"
        lines.append(line)
    lines.append("-" * len(head))
    for key in ("punct_macro_f1", "capital_f1", "char_accuracy", "loss"):
        lines.append(f"{key:>17}" + "".join(f" | {results[m][key]:>20.4f}" for m in models))
    return "\n".join(lines)


# ---- the run ------------------------------------------------------------------------------


def train_model(model, config, vocab, train_examples, val_examples, log):
    """Trains one model; returns its parameters, predict function, size and seconds."""
    network = make_network(config, model)
    params = init_params(jax.random.PRNGKey(config.seed), network, len(vocab), config)
    optimizer = optax.chain(optax.clip_by_global_norm(config.clip_norm), optax.adam(config.lr))
    opt_state = optimizer.init(params)
    train_step, predict = make_steps(network, optimizer)
    n_params = sum(int(x.size) for x in jax.tree_util.tree_leaves(params))
    print(f"[{model}] {config.cell} x{network.cells[0].hidden_size}, {n_params} parameters")
    stream = iter(batch_stream(train_examples, config, train=True).to_iter_dataset())
    start, running = time.perf_counter(), []
    window_start = start
    bar = training.ProgressBar(config.steps, description=model, enabled=config.progress)
    with bar:
        for step in range(1, config.steps + 1):
            params, opt_state, loss = train_step(params, opt_state, to_device(next(stream)))
            running.append(loss)
            if step % config.log_every == 0 or step == config.steps:
                mean = float(np.mean(jax.device_get(running)))
                now = time.perf_counter()
                steps_per_s = len(running) / max(now - window_start, 1e-9)
                running, window_start = [], now
                log({"model": model, "step": step, "split": "train", "loss": mean,
                     "seconds": now - start})  # fmt: skip
                bar.update(
                    step,
                    loss=mean,
                    steps_per_s=steps_per_s,
                    examples_per_s=steps_per_s * config.batch_size,
                )
            if step % config.eval_every == 0 or step == config.steps:
                val = batch_stream(val_examples, config, train=False)
                s = summarise(predict_all(predict, params, val))
                log({"model": model, "step": step, "split": "validation", "loss": s["loss"],
                     "punct_macro_f1": s["punct_macro_f1"], "capital_f1": s["capital_f1"],
                     "seconds": time.perf_counter() - start})  # fmt: skip
                # The validation pass is not training time: keep it out of steps/s.
                window_start = time.perf_counter()
    return params, predict, n_params, time.perf_counter() - start


def choose_sample(rows: dict[str, dict[int, tuple[np.ndarray, np.ndarray]]]) -> tuple[int, int]:
    """The test chunk on which the models' labels differ at the most characters (ties: the
    lowest index), and that count; 0 when they agree everywhere (then chunk 0)."""
    first, second = (rows[m] for m in MODELS)
    best, best_count = 0, 0
    for index in sorted(first):
        (p1, c1), (p2, c2) = first[index], second[index]
        count = int(np.sum((p1 != p2) | (c1 != c2)))
        if count > best_count:
            best, best_count = index, count
    return best, best_count


def f1_by_label(results: dict[str, dict]) -> tuple[list[int], dict[str, list[float]]]:
    """Test support and each model's F1 per label (marks, then capital); NaN where a label
    has no test support, so the plot draws no bar rather than one that reads as a failure."""
    first = next(iter(results.values()))
    support = [first["punct"][m]["support"] for m in data.PUNCTUATION]
    support.append(first["case"]["capital"]["support"])
    f1 = {}
    for model, r in results.items():
        values = [r["punct"][m]["f1"] for m in data.PUNCTUATION] + [r["case"]["capital"]["f1"]]
        f1[model] = [v if n else math.nan for v, n in zip(values, support, strict=True)]
    return support, f1


def plot(history: list[dict], results: dict[str, dict], out: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    for model in results:
        rows = [r for r in history if r["model"] == model]
        for ax, (split, key) in zip(
            axes,
            [("train", "loss"), ("validation", "punct_macro_f1"), ("validation", "capital_f1")],
            strict=True,
        ):
            pts = [(r["step"], r[key]) for r in rows if r["split"] == split]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker=".", label=model)
            ax.set_title(f"{split} {key}")
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(os.path.join(out, "curves.png"))
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)

    labels = [*data.PUNCTUATION, "capital"]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    x = np.arange(len(labels))
    support, f1 = f1_by_label(results)
    for k, model in enumerate(results):
        ax.bar(x + (k - 0.5) * 0.4, f1[model], width=0.4, label=model)
    for xi, n in zip(x, support, strict=True):
        if not n:
            ax.text(xi, 0.02, "no support", rotation=90, ha="center", va="bottom", color="0.4")
    ax.set_xticks(x, [repr(m) if m != "capital" else m for m in labels])
    ax.set_ylabel("test F1")
    ax.set_ylim(0, 1)
    ax.legend()
    ax.set_title("Per-label test F1 (pydoc_topics, unseen topics)")
    fig.tight_layout()
    paths.append(os.path.join(out, "f1.png"))
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
    return paths


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    config = parse_args(argv)
    os.makedirs(config.out, exist_ok=True)
    t0 = time.perf_counter()

    train_chunks = load_split("train", config)
    vocab = data.build_vocabulary((data.strip_punctuation(c)[0] for c in train_chunks), min_count=3)
    train_examples, _ = make_examples(train_chunks, vocab)
    val_examples, _ = make_examples(load_split("validation", config), vocab)
    test_examples, test_texts = make_examples(load_split("test", config), vocab)
    print(
        f"pydoc_topics prose: {len(train_examples)} train / {len(val_examples)} validation / "
        f"{len(test_examples)} test chunks, {len(vocab)} characters in the vocabulary"
    )

    history: list[dict] = []
    log_path = os.path.join(config.out, "log.jsonl")
    with open(log_path, "w") as log_file:

        def log(record: dict) -> None:
            history.append(record)
            log_file.write(json.dumps(record) + "\n")
            log_file.flush()

        results, rows, sizes, seconds = {}, {}, {}, {}
        for model in MODELS:
            params, predict, sizes[model], seconds[model] = train_model(
                model, config, vocab, train_examples, val_examples, log
            )
            test = predict_all(predict, params, batch_stream(test_examples, config, train=False))
            results[model] = summarise(test)
            rows[model] = test["rows"]
            log({"model": model, "step": config.steps, "split": "test",
                 "loss": results[model]["loss"],
                 "punct_macro_f1": results[model]["punct_macro_f1"],
                 "capital_f1": results[model]["capital_f1"]})  # fmt: skip

    table = results_table(results)
    sample, differing = choose_sample(rows)
    example, text = test_examples[sample], test_texts[sample]
    truth = data.restore(text, example["punct"], example["case"])
    samples = {m: data.restore(text, *rows[m][sample]) for m in MODELS}
    print("\nTest set (topics unseen in training), per label:")
    print(table)
    if differing:
        print(f"\nThe test chunk where the two models differ most ({differing} characters):")
    else:
        print("\nThe two models label every test character alike; test chunk 0:")
    print(f"input         : {text}")
    print(f"truth         : {truth}")
    for model, restored in samples.items():
        print(f"{model:<14}: {restored}")

    metrics = {
        "results": results,
        "table": table,
        "parameters": sizes,
        "train_seconds": seconds,
        "total_seconds": time.perf_counter() - t0,
        "samples": {
            "chunk": sample,
            "differing_characters": differing,
            "input": text,
            "truth": truth,
            **samples,
        },
        "data": {
            "train_chunks": len(train_examples),
            "validation_chunks": len(val_examples),
            "test_chunks": len(test_examples),
            "vocabulary": len(vocab),
        },
        "config": dataclasses.asdict(config),
        "backend": jax.default_backend(),
    }
    with open(os.path.join(config.out, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    metrics["plots"] = plot(history, results, config.out)
    print(f"\nwrote {config.out}/metrics.json, log.jsonl, curves.png, f1.png")
    return metrics


if __name__ == "__main__":
    main(sys.argv[1:])
