"""Word-level language modelling on the Penn Treebank: perplexity of a 2-layer LSTM, with the
published recipes as presets.

Data: Mikolov's 10k-word PTB (929,589 / 73,760 / 82,430 tokens with ``<eos>``) from the
offline TFDS builder ``ptb``. The training stream is cut into ``--batch-size`` contiguous rows
and read in windows of ``--bptt`` steps; the LSTM state is carried from one window to the next
(truncated backpropagation through time) and reset at the start of each epoch.

Model: word embedding -> ``--layers`` LSTM layers -> a linear softmax over the 10,000 words
(``--tied``: the softmax reuses the embedding matrix). Dropout, when set, is applied to the
embeddings, between the layers and to the last layer's output (the non-recurrent
connections). Plain SGD, the gradient clipped to a global norm of ``--clip-norm``, on the
cross-entropy summed over the window's steps and averaged over the batch, as Zaremba et al.
and the TensorFlow tutorial do (``--no-sum-over-time``: the mean over all the window's
tokens, as PyTorch's example does; the ``tied`` preset).

Perplexity is ``exp`` of the mean per-token cross-entropy over a whole split, read as
``--eval-size`` contiguous rows (1: one stream, every token after the first scored) with the
state carried through the split. The validation and test perplexities are logged after every
epoch; the test number to quote is the one after the last epoch.

Presets (``--preset``; any flag given as well overrides the preset):

    small   Zaremba et al. (2014): 2 x 200, no dropout, batch 20, BPTT 20, lr 1 halved each
            epoch after epoch 4, clip 5, init +-0.1, 13 epochs (published test 114.5; the
            TensorFlow tutorial's reproduction: valid 121.39, test 115.91)
    medium  2 x 650, dropout 0.5, BPTT 35, lr decay 0.8 after epoch 6, init +-0.05, 39 epochs
            (published test 82.7)
    large   2 x 1500, dropout 0.65, BPTT 35, lr decay 1/1.15 after epoch 14, clip 10,
            init +-0.04, 55 epochs (published test 78.4)
    tied    PyTorch examples/word_language_model defaults: 2 x 200, dropout 0.2, lr 20 divided
            by 4 whenever the validation loss does not improve, clip 0.25, BPTT 35, batch 20,
            PyTorch's default initialisation, tied embeddings, 40 epochs (its README: 110.44
            at 6 epochs, 87.17 at 40)

    nice -n 15 python -m experiments.ptb_lm --preset small --checkpoint-every 500 \\
        --out runs/ptb_small

writes runs/ptb_small/{metrics.json, log.jsonl, curves.png} and checkpoints; run the same
command again to resume from the newest checkpoint exactly where it stopped.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import os
import sys
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

import lstm_jax
from experiments import common
from lstm_jax import training
from lstm_jax.data import ptb
from lstm_jax.typing import Array, PyTree

# ---- configuration ------------------------------------------------------------------------

PRESETS: dict[str, dict[str, Any]] = {
    "small": dict(
        hidden=200, layers=2, dropout=0.0, batch_size=20, bptt=20, lr=1.0, anneal="epoch",
        lr_decay=0.5, decay_after=4, clip_norm=5.0, init="uniform", init_scale=0.1,
        epochs=13, tied=False, sum_over_time=True,
    ),
    "medium": dict(
        hidden=650, layers=2, dropout=0.5, batch_size=20, bptt=35, lr=1.0, anneal="epoch",
        lr_decay=0.8, decay_after=6, clip_norm=5.0, init="uniform", init_scale=0.05,
        epochs=39, tied=False, sum_over_time=True,
    ),
    "large": dict(
        hidden=1500, layers=2, dropout=0.65, batch_size=20, bptt=35, lr=1.0, anneal="epoch",
        lr_decay=1 / 1.15, decay_after=14, clip_norm=10.0, init="uniform", init_scale=0.04,
        epochs=55, tied=False, sum_over_time=True,
    ),
    "tied": dict(
        hidden=200, layers=2, dropout=0.2, batch_size=20, bptt=35, lr=20.0, anneal="plateau",
        lr_decay=0.25, decay_after=0, clip_norm=0.25, init="torch", init_scale=0.1,
        epochs=40, tied=True, sum_over_time=False,
    ),
}  # fmt: skip
ANNEALS = ("epoch", "plateau")
INITS = ("uniform", "torch")
PUBLISHED_TEST = {"small": 114.5, "medium": 82.7, "large": 78.4, "tied": 87.17}


@dataclasses.dataclass(frozen=True)
class Config:
    preset: str = "small"
    hidden: int = 200
    layers: int = 2
    dropout: float = 0.0
    batch_size: int = 20
    bptt: int = 20
    lr: float = 1.0
    anneal: str = "epoch"
    lr_decay: float = 0.5
    decay_after: int = 4
    clip_norm: float = 5.0
    init: str = "uniform"
    init_scale: float = 0.1
    epochs: int = 13
    tied: bool = False
    sum_over_time: bool = True
    steps: int = 0
    seed: int = 0
    out: str = "runs/ptb_lm"
    train_tokens: int = 0
    eval_tokens: int = 0
    eval_size: int = 1
    eval_window: int = 200
    log_every: int = 100
    eval_every: int = 0
    checkpoint_every: int = 0
    keep: int = 2
    progress: bool | None = None
    tensorboard: bool = False
    data_dir: str | None = None


def parse_args(argv: Sequence[str] | None) -> Config:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--preset", choices=sorted(PRESETS), default=Config.preset)
    preset = pre.parse_known_args(argv)[0].preset
    d = dataclasses.replace(Config(), preset=preset, **PRESETS[preset])
    parser = common.base_parser(
        __doc__.split("\n\n")[0],
        helps={"lr": "SGD learning rate of the first epochs (see --anneal)"},
        out=d.out, steps=d.steps, hidden=d.hidden, batch_size=d.batch_size, lr=d.lr,
        clip_norm=d.clip_norm, eval_size=d.eval_size, eval_every=d.eval_every,
        log_every=d.log_every,
    )  # fmt: skip
    parser.add_argument("--preset", choices=sorted(PRESETS), default=preset, help="recipe")
    parser.add_argument("--layers", type=int, default=d.layers, help="LSTM layers")
    parser.add_argument("--dropout", type=float, default=d.dropout, help="non-recurrent drop")
    parser.add_argument("--bptt", type=int, default=d.bptt, help="steps per training window")
    parser.add_argument("--anneal", choices=ANNEALS, default=d.anneal, help="lr schedule")
    parser.add_argument("--lr-decay", type=float, default=d.lr_decay, help="lr factor")
    parser.add_argument(
        "--decay-after", type=int, default=d.decay_after, help="epochs at the full lr (epoch)"
    )
    parser.add_argument("--init", choices=INITS, default=d.init, help="initialisation")
    parser.add_argument("--init-scale", type=float, default=d.init_scale, help="uniform +-")
    parser.add_argument("--epochs", type=int, default=d.epochs, help="passes over train")
    parser.add_argument(
        "--tied", action=argparse.BooleanOptionalAction, default=d.tied, help="tie embeddings"
    )
    parser.add_argument(
        "--sum-over-time",
        action=argparse.BooleanOptionalAction,
        default=d.sum_over_time,
        help="minimise the sum over the window's steps of the batch-mean loss (Zaremba, "
        "TensorFlow) instead of the mean over all its tokens (PyTorch)",
    )
    parser.add_argument(
        "--eval-window", type=int, default=d.eval_window, help="steps per evaluation window"
    )
    parser.add_argument(
        "--train-tokens", type=int, default=d.train_tokens, help="first N train tokens (0: all)"
    )
    parser.add_argument(
        "--eval-tokens", type=int, default=d.eval_tokens, help="first N held-out tokens (0: all)"
    )
    parser.add_argument(
        "--data-dir",
        default=d.data_dir,
        help=common.DATA_DIR_HELP,
    )
    parser.set_defaults(cell="lstm")
    args = parser.parse_args(argv)
    if args.cell != "lstm":
        raise ValueError(f"--cell must be lstm for the PTB recipes, got {args.cell!r}")
    if args.schedule != "constant":
        raise ValueError(f"--schedule: ptb_lm anneals per epoch (--anneal), got {args.schedule!r}")
    if args.distributed:
        # Every process would read the whole stream: its batch would depend on the layout.
        raise ValueError("--distributed: ptb_lm runs in one process (its batches are not sliced)")
    if args.devices not in (None, 1):
        raise ValueError(f"--devices: this experiment runs on one device, got {args.devices}")
    config = common.config_from_args(Config, args)
    at_least = {1: ("hidden", "layers", "batch_size", "bptt", "epochs", "eval_size", "log_every",
                    "eval_window"),
                0: ("steps", "eval_every", "checkpoint_every", "decay_after", "train_tokens",
                    "eval_tokens")}  # fmt: skip
    for low, names in at_least.items():
        for name in names:
            if getattr(config, name) < low:
                flag = "--" + name.replace("_", "-")
                raise ValueError(f"{flag} must be >= {low}, got {getattr(config, name)}")
    if not 0.0 <= config.dropout < 1.0:
        raise ValueError(f"--dropout must be in [0, 1), got {config.dropout}")
    for name in ("lr", "lr_decay", "clip_norm", "init_scale"):
        if not getattr(config, name) > 0:
            raise ValueError(f"--{name.replace('_', '-')} must be > 0, got {getattr(config, name)}")
    return config


# ---- model --------------------------------------------------------------------------------


def network(config: Config) -> lstm_jax.Stack:
    return lstm_jax.stack(
        lstm_jax.lstm(config.hidden), num_layers=config.layers, dropout=config.dropout
    )


def init_params(config: Config, key: Array, vocab: int) -> dict[str, Any]:
    """``embed: [vocab, hidden]``, ``rnn``: the stack's, ``out``: ``w: [hidden, vocab]`` (absent
    when tied: the softmax uses ``embed``) and ``b: [vocab]``.

    ``uniform``: every parameter from U(-init_scale, init_scale) (Zaremba et al.). ``torch``:
    what PyTorch's word_language_model does: embedding and softmax weights U(-0.1, 0.1), softmax
    bias 0, LSTM weights and both of its biases U(-1/sqrt(hidden), 1/sqrt(hidden)).
    """
    k_emb, k_rnn, k_out = jax.random.split(key, 3)
    params: dict[str, Any] = {
        "embed": jnp.zeros((vocab, config.hidden), jnp.float32),
        "rnn": network(config).init(k_rnn, config.hidden),
        "out": {"b": jnp.zeros((vocab,), jnp.float32)},
    }
    if not config.tied:
        params["out"]["w"] = jnp.zeros((config.hidden, vocab), jnp.float32)

    def uniform(key, leaf, scale):
        return jax.random.uniform(key, leaf.shape, leaf.dtype, -scale, scale)

    leaves, treedef = jax.tree_util.tree_flatten(params)
    keys = list(jax.random.split(k_emb, len(leaves)))
    if config.init == "uniform":
        s = config.init_scale
        return jax.tree_util.tree_unflatten(
            treedef, [uniform(k, x, s) for k, x in zip(keys, leaves, strict=True)]
        )
    s = 1.0 / math.sqrt(config.hidden)
    rnn_leaves, rnn_def = jax.tree_util.tree_flatten(params["rnn"])
    rnn_keys = jax.random.split(k_rnn, 2 * len(rnn_leaves))
    rnn = [
        uniform(rnn_keys[2 * j], x, s) + uniform(rnn_keys[2 * j + 1], x, s)  # b_ih + b_hh
        if x.ndim == 1
        else uniform(rnn_keys[2 * j], x, s)
        for j, x in enumerate(rnn_leaves)
    ]
    params["rnn"] = jax.tree_util.tree_unflatten(rnn_def, rnn)
    params["embed"] = uniform(keys[0], params["embed"], 0.1)
    if not config.tied:
        params["out"]["w"] = uniform(k_out, params["out"]["w"], 0.1)
    return params


def _dropout(key: Array | None, rate: float, x: Array) -> Array:
    if key is None or rate == 0.0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / jnp.asarray(1.0 - rate, x.dtype), jnp.zeros_like(x))


def token_nll(params: dict[str, Any], hs: Array, targets: Array) -> Array:
    """``hs: [batch, time, hidden]``, ``targets: int [batch, time]`` -> ``[batch, time]``: each
    target's negative log-likelihood under the softmax. The logits are one 2-D matmul
    ``[batch * time, hidden] @ [hidden, vocab]``."""
    b, t, h = hs.shape
    w = params["out"]["w"] if "w" in params["out"] else params["embed"].T
    logits = hs.reshape(b * t, h) @ w + params["out"]["b"][None, :]
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, targets.reshape(b * t))
    return nll.reshape(b, t)


def forward(
    config: Config,
    params: dict[str, Any],
    ids: Array,
    carry: PyTree,
    targets: Array,
    key: Array | None = None,
) -> tuple[PyTree, Array]:
    """``ids, targets: int [batch, time]``, ``carry``: the stack's, one per layer ->
    ``(carry, nll: [batch, time])``. Dropout only when ``key`` is given."""
    keys = [None] * 3 if key is None else list(jax.random.split(key, 3))
    xs = _dropout(keys[0], config.dropout, params["embed"][ids])
    carry, hs = network(config).apply(params["rnn"], xs, initial_carry=carry, dropout_key=keys[1])
    hs = _dropout(keys[2], config.dropout, hs)
    return carry, token_nll(params, hs, targets)


def zero_carry(config: Config, rows: int) -> PyTree:
    return network(config).initial_carry((rows,))


# ---- training -----------------------------------------------------------------------------


class LMState(NamedTuple):
    """What the run needs besides the parameters, kept in ``TrainState.opt_state`` so that a
    checkpoint holds it and a resumed run continues bit for bit: ``carry``, the LSTM state at
    the end of the last window (truncated BPTT); ``lr``, the SGD learning rate of this epoch;
    ``best_val``, the best validation loss so far (``plateau`` annealing)."""

    carry: PyTree
    lr: Array
    best_val: Array


def init_state(config: Config, vocab: int) -> training.TrainState:
    params = init_params(config, jax.random.PRNGKey(config.seed), vocab)
    extra = LMState(
        zero_carry(config, config.batch_size),
        jnp.asarray(config.lr, jnp.float32),
        jnp.asarray(np.inf, jnp.float32),
    )
    return training.TrainState(
        jnp.zeros((), jnp.int32), params, extra, jax.random.PRNGKey(config.seed + 1)
    )


def model_config(config: Config) -> Config:
    """The fields the jitted functions read, the rest at their defaults: runs that differ only
    in bookkeeping (``--steps``, ``--out``, ...) share one compiled step."""
    return Config(
        hidden=config.hidden, layers=config.layers, dropout=config.dropout, tied=config.tied,
        bptt=config.bptt, clip_norm=config.clip_norm, sum_over_time=config.sum_over_time,
    )  # fmt: skip


def train_step(
    config: Config, state: training.TrainState, rows: Array, k: Array
) -> tuple[training.TrainState, dict[str, Array]]:
    """One SGD step on window ``k`` of ``rows: int [batch, width]``; window 0 starts from zeros.

    Returns the new state (its carry: the state after this window) and ``loss``, ``grad_norm``
    (before clipping)."""
    return _train_step(model_config(config), state, rows, k)


@functools.partial(jax.jit, static_argnums=(0,))
def _train_step(config: Config, state: training.TrainState, rows: Array, k: Array):
    extra = state.opt_state
    carry = jax.tree_util.tree_map(lambda c: jnp.where(k == 0, jnp.zeros_like(c), c), extra.carry)
    b = rows.shape[0]
    start = k * config.bptt
    xs = jax.lax.dynamic_slice(rows, (0, start), (b, config.bptt))
    ys = jax.lax.dynamic_slice(rows, (0, start + 1), (b, config.bptt))
    key, step_key = jax.random.split(state.key)

    # Zaremba et al. and the TensorFlow tutorial sum the batch-mean loss over the window's
    # steps: the gradient (and so the meaning of lr and clip) is bptt times the mean's.
    scale = config.bptt if config.sum_over_time else 1

    def loss_fn(params):
        carry_out, nll = forward(config, params, xs, carry, ys, step_key)
        return nll.mean() * scale, (nll.mean(), carry_out)

    (_, (loss, carry)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    norm = optax.tree.norm(grads)
    clip = config.clip_norm / jnp.maximum(norm, config.clip_norm)
    params = jax.tree_util.tree_map(lambda p, g: p - extra.lr * clip * g, state.params, grads)
    new = training.TrainState(state.step + 1, params, extra._replace(carry=carry), key)
    return new, {"loss": loss, "grad_norm": norm}


def eval_window(config: Config, params, carry, xs, ys) -> tuple[PyTree, Array]:
    """``(carry, summed nll)`` of one window ``xs, ys: int [rows, time]`` from ``carry``."""
    return _eval_window(model_config(config), params, carry, xs, ys)


@functools.partial(jax.jit, static_argnums=(0,))
def _eval_window(config: Config, params, carry, xs, ys) -> tuple[PyTree, Array]:
    carry, nll = forward(config, params, xs, carry, ys)
    return carry, nll.sum()


def split_nll(config: Config, params: dict[str, Any], ids: np.ndarray) -> float:
    """The mean per-token cross-entropy (nats) of ``ids: [tokens]`` read as ``eval_size``
    contiguous rows, the state carried through; every token but each row's first is scored."""
    rows = ptb.batchify(ids[: config.eval_tokens or None], config.eval_size)
    xs, ys = rows[:, :-1], rows[:, 1:]
    carry = zero_carry(config, rows.shape[0])
    total = 0.0
    for start in range(0, xs.shape[1], config.eval_window):
        stop = start + config.eval_window
        carry, s = eval_window(config, params, carry, xs[:, start:stop], ys[:, start:stop])
        total += float(s)
    return total / ys.size


def perplexity(nll: float) -> float:
    return math.exp(nll)


def epoch_lr(config: Config, epoch: int, lr: float, val_nll: float, best_val: float) -> float:
    """The learning rate of epoch ``epoch + 1`` (epochs counted from 0), given this epoch's.

    ``epoch``: ``lr * lr_decay ** max(epoch + 1 - decay_after, 0)`` from the initial rate (the
    TensorFlow tutorial's rule). ``plateau``: ``lr * lr_decay`` when ``val_nll`` did not beat
    ``best_val`` (PyTorch's example).
    """
    if config.anneal == "epoch":
        return config.lr * config.lr_decay ** max(epoch + 2 - config.decay_after, 0)
    return lr if val_nll < best_val else lr * config.lr_decay


# ---- loop and results ---------------------------------------------------------------------


@functools.lru_cache(maxsize=2)
def load_data(data_dir: str | None) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    """``ptb.token_streams``, read once per process (reading the TFDS files takes seconds)."""
    return ptb.token_streams(data_dir)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    config = parse_args(argv)
    ids, vocab = load_data(config.data_dir)
    train_ids = ids["train"][: config.train_tokens or None]
    train_rows = ptb.batchify(train_ids, config.batch_size)
    epoch_size = ptb.num_windows(train_rows, config.bptt)
    total = config.steps or config.epochs * epoch_size
    print(
        f"ptb: {len(train_ids)} / {len(ids['validation'])} / {len(ids['test'])} tokens, "
        f"{len(vocab)} words; preset {config.preset}: {epoch_size} windows of "
        f"{config.batch_size} x {config.bptt} per epoch, {total} steps"
    )
    state = init_state(config, len(vocab))
    rows_dev = jnp.asarray(train_rows)
    os.makedirs(config.out, exist_ok=True)
    ckpt = training.Checkpointer(
        os.path.join(config.out, "checkpoints"),
        save_every=config.checkpoint_every,
        keep=config.keep,
    )
    if ckpt.latest_step() is not None:
        state = ckpt.restore(state)
    start = int(state.step)
    logger = training.MetricLogger(config.out, tensorboard=config.tensorboard)
    logger.truncate_after(start)
    history = [r for r in training.read_jsonl(logger.path) if r.get("step", 0) <= start]
    if start:
        print(f"resumed from step {start} (epoch {start / epoch_size:.2f})")

    def record(step: int, metrics: dict[str, Any], split: str) -> None:
        history.append({"step": step, "split": split, **metrics})
        logger.log(step, metrics, split)

    def evaluate(step: int, params) -> dict[str, float]:
        t0 = time.perf_counter()
        val, test = (split_nll(config, params, ids[s]) for s in ("validation", "test"))
        scored = sum(len(ids[s][: config.eval_tokens or None]) for s in ("validation", "test"))
        seconds = time.perf_counter() - t0
        metrics = {
            "epoch": step / epoch_size,
            "val_nll": val,
            "val_ppl": perplexity(val),
            "test_ppl": perplexity(test),
            "eval_tokens_per_s": scored / seconds,
        }
        record(step, metrics, "eval")
        return metrics

    losses: list[Array] = []
    window_start, run_start = time.perf_counter(), time.perf_counter()
    with ckpt, logger, training.ProgressBar(total, initial=start, enabled=config.progress) as bar:
        for step in range(start, total):
            epoch, k = divmod(step, epoch_size)
            state, metrics = train_step(config, state, rows_dev, jnp.asarray(k, jnp.int32))
            losses.append(metrics["loss"])
            done = step + 1
            if done % config.log_every == 0 or done == total:
                mean = float(np.mean(jax.device_get(losses)))
                if not math.isfinite(mean):
                    raise training.NonFiniteError(
                        done, "loss", mean, ckpt.latest_step(), ckpt.directory
                    )
                elapsed = time.perf_counter() - window_start
                means = {
                    "loss": mean,
                    "ppl": perplexity(mean),
                    "grad_norm": float(metrics["grad_norm"]),
                    "learning_rate": float(state.opt_state.lr),
                    "epoch": done / epoch_size,
                    "tokens_per_s": len(losses) * config.batch_size * config.bptt / elapsed,
                }
                record(done, means, "train")
                bar.update(
                    done, loss=mean, steps_per_s=len(losses) / elapsed,
                    examples_per_s=means["tokens_per_s"],
                )  # fmt: skip
                losses, window_start = [], time.perf_counter()
            if done % epoch_size == 0 or done == total:
                m = evaluate(done, state.params)
                extra = state.opt_state
                if done % epoch_size == 0:
                    best = float(extra.best_val)
                    lr = epoch_lr(config, epoch, float(extra.lr), m["val_nll"], best)
                    best = min(best, m["val_nll"])
                    state = state._replace(
                        opt_state=extra._replace(
                            lr=jnp.asarray(lr, jnp.float32), best_val=jnp.asarray(best, jnp.float32)
                        )
                    )
                print(
                    f"step {done} epoch {m['epoch']:.2f}: valid {m['val_ppl']:.2f} test "
                    f"{m['test_ppl']:.2f} (lr next {float(state.opt_state.lr):g})",
                    flush=True,
                )
                window_start = time.perf_counter()
            elif config.eval_every and done % config.eval_every == 0:
                evaluate(done, state.params)
                window_start = time.perf_counter()
            ckpt.maybe_save(state)
        ckpt.save(state)
        ckpt.wait()
    train_seconds = time.perf_counter() - run_start

    evals = [r for r in history if r["split"] == "eval"]
    trains = [r for r in history if r["split"] == "train"]
    last = evals[-1] if evals else {}
    metrics = {
        "val_ppl": last.get("val_ppl"),
        "test_ppl": last.get("test_ppl"),
        "epochs_done": total / epoch_size,
        "steps": total,
        "published_test_ppl": PUBLISHED_TEST[config.preset],
        "first_train_loss": trains[0]["loss"] if trains else None,
        "final_train_loss": trains[-1]["loss"] if trains else None,
        "train_tokens_per_s": trains[-1]["tokens_per_s"] if trains else None,
        "seconds_this_session": train_seconds,
        "vocabulary": len(vocab),
        "num_params": common.count_params(state.params),
    }
    common.write_metrics(config, metrics)
    common.plot_curves(
        history,
        f"{config.out}/curves.png",
        panels=[("perplexity", [("train", "ppl"), ("eval", "val_ppl"), ("eval", "test_ppl")])],
        baselines={"perplexity": PUBLISHED_TEST[config.preset]},
        log_y=("perplexity",),
        title=f"PTB word LM, preset {config.preset} (baseline: published test)",
    )
    print(
        f"ptb_lm {config.preset}: valid {metrics['val_ppl']:.2f} test {metrics['test_ppl']:.2f} "
        f"after {metrics['epochs_done']:.2f} epochs (published test "
        f"{PUBLISHED_TEST[config.preset]}), {train_seconds:.0f} s this session"
    )
    return metrics


if __name__ == "__main__":
    main(sys.argv[1:])
