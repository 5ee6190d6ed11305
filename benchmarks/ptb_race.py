"""PTB word language model: lstm_jax against PyTorch's examples/word_language_model, same data.

    python -m benchmarks.ptb_race [--preset tied|small] [--steps 40] [--tag TAG]

Both contenders train on the same PTB batches (the training stream cut into ``batch_size``
rows, windows of ``bptt`` steps, each carrying its own LSTM state from one window to the next)
with the preset's configuration from ``experiments/ptb_lm.py``:

* ``ours``: ``experiments.ptb_lm.train_step`` (``lstm_jax.stack`` over ``lstm_jax.lstm``, SGD,
  global-norm clip), jitted;
* ``torch``: the model of PyTorch's ``examples/word_language_model`` written here
  (``nn.Embedding`` -> ``nn.LSTM`` -> ``nn.Linear``, tied when the preset ties, dropout as the
  preset), its training step (detach the hidden state, ``CrossEntropyLoss``, ``backward``,
  ``clip_grad_norm_``, ``p.add_(p.grad, alpha=-lr)``), CPU, ``torch.set_num_threads(2)``.

Before timing, torch is loaded with our initial weights and the two losses of the first window
(no dropout) are compared. Training steps and evaluation windows (forward only, ``--eval-rows``
rows, state carried, torch under ``torch.no_grad()``) are timed interleaved round-robin, one
call of each per repetition, after warm-up; medians give tokens/s and ``ours / torch`` ratios
(above 1: ours is faster).

The second part is the softmax layer, where a word model's time goes: the loss and its
gradients for ``[batch * bptt, hidden] @ [hidden, 10000]`` written several ways (the 3-D einsum,
the 2-D reshape, the weight stored ``[vocab, hidden]``, bf16 inputs, a chunked cross-entropy
that never holds the whole logits), plus the plain matmuls and the 2048^2 ceiling, all with
torch's own softmax and cross-entropy beside them. Results: ``benchmarks/results/<date>-ptb-
race[-TAG].{json,md}``; ``benchmarks/README.md`` quotes them.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import sys
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks import environment, timing
from experiments import ptb_lm
from lstm_jax.data import ptb

RESULTS_DIR = Path(__file__).resolve().parent / "results"
THREADS = 2


@dataclasses.dataclass(frozen=True)
class Config:
    preset: str = "tied"
    steps: int = 40
    warmup: int = 3
    eval_rows: int = 10
    eval_steps: int = 40
    softmax: bool = True
    softmax_reps: int = 10
    chunk_rows: int = 140
    tag: str = ""
    out: Path = RESULTS_DIR
    data_dir: str | None = None


# ---- the torch model of examples/word_language_model --------------------------------------


def torch_model(cfg: ptb_lm.Config, vocab: int):
    import torch
    from torch import nn

    class RNNModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.drop = nn.Dropout(cfg.dropout)
            self.encoder = nn.Embedding(vocab, cfg.hidden)
            self.rnn = nn.LSTM(
                cfg.hidden, cfg.hidden, cfg.layers, dropout=cfg.dropout, batch_first=True
            )
            self.decoder = nn.Linear(cfg.hidden, vocab)
            if cfg.tied:
                self.decoder.weight = self.encoder.weight

        def forward(self, ids, hidden):
            emb = self.drop(self.encoder(ids))
            output, hidden = self.rnn(emb, hidden)
            output = self.drop(output)
            return self.decoder(output).view(-1, vocab), hidden

        def init_hidden(self, rows):
            z = torch.zeros(cfg.layers, rows, cfg.hidden)
            return (z, z.clone())

    return RNNModel()


def load_ours_into_torch(model, params: dict[str, Any], cfg: ptb_lm.Config) -> None:
    """Copies our parameters into the torch model (torch stores the transposes, two biases)."""
    import torch

    def t(x):
        return torch.from_numpy(np.array(x, dtype=np.float32))

    with torch.no_grad():
        model.encoder.weight.copy_(t(params["embed"]))
        for layer, p in enumerate(params["rnn"]):
            getattr(model.rnn, f"weight_ih_l{layer}").copy_(t(p.w_ih).T)
            getattr(model.rnn, f"weight_hh_l{layer}").copy_(t(p.w_hh).T)
            getattr(model.rnn, f"bias_ih_l{layer}").copy_(t(p.b))
            getattr(model.rnn, f"bias_hh_l{layer}").zero_()
        if not cfg.tied:
            model.decoder.weight.copy_(t(params["out"]["w"]).T)
        model.decoder.bias.copy_(t(params["out"]["b"]))


def torch_trainer(model, cfg: ptb_lm.Config, rows: np.ndarray, eval_rows: np.ndarray):
    """Closures running one training step on window k and one evaluation window k, each
    carrying its own hidden state, exactly as the example's ``train()`` and ``evaluate()``."""
    import torch
    from torch import nn

    criterion = nn.CrossEntropyLoss()
    data, edata = torch.from_numpy(rows.astype(np.int64)), torch.from_numpy(eval_rows)
    state = {"train": model.init_hidden(rows.shape[0]), "eval": model.init_hidden(len(edata))}
    edata = edata.long()

    def train(k: int) -> float:
        model.train()
        x = data[:, k * cfg.bptt : (k + 1) * cfg.bptt]
        y = data[:, k * cfg.bptt + 1 : (k + 1) * cfg.bptt + 1]
        hidden = tuple(h.detach() for h in state["train"])
        model.zero_grad()
        output, hidden = model(x, hidden)
        loss = criterion(output, y.reshape(-1))
        (loss * cfg.bptt if cfg.sum_over_time else loss).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_norm)
        for p in model.parameters():
            p.data.add_(p.grad, alpha=-cfg.lr)
        state["train"] = hidden
        return loss.item()

    def evaluate(k: int) -> float:
        model.eval()
        with torch.no_grad():
            x = edata[:, k * cfg.bptt : (k + 1) * cfg.bptt]
            y = edata[:, k * cfg.bptt + 1 : (k + 1) * cfg.bptt + 1]
            output, state["eval"] = model(x, state["eval"])
            return float(criterion(output, y.reshape(-1))) * y.numel()

    return train, evaluate


# ---- ours ---------------------------------------------------------------------------------


def ours_trainer(cfg: ptb_lm.Config, params, rows: np.ndarray, eval_rows: np.ndarray):
    state = {"train": ptb_lm.init_state(cfg, params["embed"].shape[0])._replace(params=params)}
    state["eval"] = ptb_lm.zero_carry(cfg, eval_rows.shape[0])
    rows_dev, eval_dev = jnp.asarray(rows), jnp.asarray(eval_rows)

    def train(k: int) -> float:
        s, m = ptb_lm.train_step(cfg, state["train"], rows_dev, jnp.asarray(k, jnp.int32))
        state["train"] = s
        return float(m["loss"])

    def evaluate(k: int) -> float:
        x = eval_dev[:, k * cfg.bptt : (k + 1) * cfg.bptt]
        y = eval_dev[:, k * cfg.bptt + 1 : (k + 1) * cfg.bptt + 1]
        state["eval"], total = ptb_lm.eval_window(cfg, state["train"].params, state["eval"], x, y)
        return float(total)

    return train, evaluate


def first_window_losses(cfg: ptb_lm.Config, params, model, rows: np.ndarray) -> dict[str, float]:
    """Both models' loss on window 0 from the same weights, without dropout."""
    import torch

    x, y = ptb.window(rows, 0, cfg.bptt)
    _, nll = ptb_lm.forward(cfg, params, jnp.asarray(x), ptb_lm.zero_carry(cfg, len(x)), y)
    model.eval()
    with torch.no_grad():
        out, _ = model(torch.from_numpy(x.astype(np.int64)), model.init_hidden(len(x)))
        theirs = float(torch.nn.functional.cross_entropy(out, torch.from_numpy(y).long().view(-1)))
    return {"ours": float(nll.mean()), "torch": theirs}


def race(config: Config, cfg: ptb_lm.Config, ids: dict[str, np.ndarray]) -> dict[str, Any]:
    import torch

    torch.manual_seed(0)
    rows = ptb.batchify(ids["train"], cfg.batch_size)
    eval_rows = ptb.batchify(ids["validation"], config.eval_rows)
    params = ptb_lm.init_params(cfg, jax.random.PRNGKey(0), 10_000)
    model = torch_model(cfg, 10_000)
    load_ours_into_torch(model, params, cfg)
    agreement = first_window_losses(cfg, params, model, rows)
    ours = ours_trainer(cfg, params, rows, eval_rows)
    theirs = torch_trainer(model, cfg, rows, eval_rows)
    counter = {"ours_train": 0, "torch_train": 0, "ours_eval": 0, "torch_eval": 0}
    n_train, n_eval = ptb.num_windows(rows, cfg.bptt), ptb.num_windows(eval_rows, cfg.bptt)

    def call(name: str, fn, n: int):
        def run() -> None:
            fn(counter[name] % n)  # same window sequence for both contenders
            counter[name] += 1

        return run

    train_plan = timing.TimingPlan(
        warmup=config.warmup, min_reps=config.steps, max_reps=config.steps, gap_s=0.002
    )
    eval_plan = timing.TimingPlan(
        warmup=config.warmup, min_reps=config.eval_steps, max_reps=config.eval_steps, gap_s=0.002
    )
    train_t = timing.time_interleaved(
        {
            "ours": call("ours_train", ours[0], n_train),
            "torch": call("torch_train", theirs[0], n_train),
        },
        train_plan,
    )
    eval_t = timing.time_interleaved(
        {
            "ours": call("ours_eval", ours[1], n_eval),
            "torch": call("torch_eval", theirs[1], n_eval),
        },
        eval_plan,
    )
    train_tokens = cfg.batch_size * cfg.bptt
    eval_tokens = config.eval_rows * cfg.bptt
    out: dict[str, Any] = {"preset": cfg.preset, "agreement_first_loss": agreement}
    for mode, stats, tokens in (("train", train_t, train_tokens), ("eval", eval_t, eval_tokens)):
        for s in stats.values():
            s["tokens_per_s"] = tokens / (s["median_ms"] * 1e-3)
            s["tokens_per_s_best"] = tokens / (s["min_ms"] * 1e-3)
        out[mode] = stats
        out[f"{mode}_ratio"] = stats["ours"]["tokens_per_s"] / stats["torch"]["tokens_per_s"]
        out[f"{mode}_ratio_best"] = (
            stats["ours"]["tokens_per_s_best"] / stats["torch"]["tokens_per_s_best"]
        )
    return out


# ---- the softmax layer --------------------------------------------------------------------


def ce_3d(h3, w, b, y2):
    """The issue's form: ``einsum('bth,hv->btv')`` logits, then the cross-entropy."""
    logits = jnp.einsum("bth,hv->btv", h3, w) + b[None, None, :]
    return optax.softmax_cross_entropy_with_integer_labels(logits, y2).mean()


def ce_2d(h, w, b, y):
    """``[rows, hidden] @ [hidden, vocab]``: what ``ptb_lm.token_nll`` does."""
    logits = h @ w + b[None, :]
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def ce_2d_vh(h, wt, b, y):
    """The weight stored ``[vocab, hidden]`` (an embedding, torch's ``nn.Linear``)."""
    logits = jax.lax.dot_general(h, wt, (((1,), (1,)), ((), ()))) + b[None, :]
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def ce_2d_bf16(h, w, b, y):
    """bf16 inputs to the matmul, f32 accumulation and softmax."""
    logits = jnp.dot(
        h.astype(jnp.bfloat16), w.astype(jnp.bfloat16), preferred_element_type=jnp.float32
    )
    logits = logits + b[None, :]
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def chunked_ce(chunk: int):
    """Cross-entropy computed ``chunk`` rows at a time with a hand-written backward: each
    chunk's logits ``[chunk, vocab]`` are made, reduced and dropped; the backward recomputes
    them chunk by chunk, so the whole ``[rows, vocab]`` logits never exist."""

    def chunk_lse(h, w, b):
        return jax.nn.logsumexp(h @ w + b[None, :], axis=-1)

    @jax.custom_vjp
    def mean_ce(h, w, b, y):
        return _fwd(h, w, b, y)[0]

    def _fwd(h, w, b, y):
        n = h.shape[0]
        hc = h.reshape(n // chunk, chunk, h.shape[1])
        lse = jax.lax.map(lambda x: chunk_lse(x, w, b), hc).reshape(n)
        picked = jnp.sum(h * w.T[y], axis=-1) + b[y]
        return jnp.mean(lse - picked), (h, w, b, y, lse)

    def _bwd(res, g):
        h, w, b, y, lse = res
        n, hid = h.shape
        scale = g / n

        def body(acc, xs):
            dw, db = acc
            x, yy, row_lse = xs
            p = jnp.exp(x @ w + b[None, :] - row_lse[:, None])
            d = (p - jax.nn.one_hot(yy, w.shape[1], dtype=p.dtype)) * scale
            return (dw + x.T @ d, db + d.sum(0)), d @ w.T

        xs = (h.reshape(n // chunk, chunk, hid), y.reshape(n // chunk, chunk),
              lse.reshape(n // chunk, chunk))  # fmt: skip
        (dw, db), dh = jax.lax.scan(body, (jnp.zeros_like(w), jnp.zeros_like(b)), xs)
        return dh.reshape(n, hid), dw, db, None

    mean_ce.defvjp(_fwd, _bwd)
    return mean_ce


def softmax_study(config: Config, cfg: ptb_lm.Config) -> dict[str, Any]:
    import torch

    rows = cfg.batch_size * cfg.bptt
    hid, vocab = cfg.hidden, 10_000
    rng = np.random.default_rng(0)
    h_np = rng.standard_normal((rows, hid), dtype=np.float32)
    w_np = (rng.standard_normal((hid, vocab), dtype=np.float32) * 0.05).astype(np.float32)
    b_np = np.zeros(vocab, np.float32)
    y_np = rng.integers(0, vocab, rows).astype(np.int32)
    h, w, b, y = map(jnp.asarray, (h_np, w_np, b_np, y_np))
    wt = jnp.asarray(np.ascontiguousarray(w_np.T))
    h3, y2 = h.reshape(cfg.batch_size, cfg.bptt, hid), y.reshape(cfg.batch_size, cfg.bptt)

    def grad_of(f, *args):
        g = jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2))).lower(*args).compile()
        return lambda: jax.block_until_ready(g(*args))

    def fwd_of(f, *args):
        g = jax.jit(f).lower(*args).compile()
        return lambda: jax.block_until_ready(g(*args))

    chunk = config.chunk_rows if rows % config.chunk_rows == 0 else cfg.bptt
    jax_calls = {
        "loss+grad 3-D einsum": grad_of(ce_3d, h3, w, b, y2),
        "loss+grad 2-D": grad_of(ce_2d, h, w, b, y),
        "loss+grad 2-D, W [vocab, hidden]": grad_of(ce_2d_vh, h, wt, b, y),
        "loss+grad 2-D, bf16 matmul": grad_of(ce_2d_bf16, h, w, b, y),
        f"loss+grad chunked ({chunk} rows)": grad_of(chunked_ce(chunk), h, w, b, y),
        "loss only 2-D": fwd_of(ce_2d, h, w, b, y),
        "matmul h @ W": fwd_of(jnp.dot, h, w),
        "matmul h @ W^T (W [vocab, hidden])": fwd_of(lambda a, c: a @ c.T, h, wt),
        "matmul W^T @ h^T (vocab-major logits)": fwd_of(lambda a, c: c.T @ a.T, h, w),
    }
    # How the contraction depth alone moves the flop rate: [rows, K] @ [K, vocab].
    for k in (64, 512, 2048):
        a = jnp.asarray(rng.standard_normal((rows, k), dtype=np.float32))
        c = jnp.asarray(rng.standard_normal((k, vocab), dtype=np.float32))
        jax_calls[f"matmul [{rows}, {k}] @ [{k}, {vocab}]"] = fwd_of(jnp.dot, a, c)
    check = {
        name: float(jax.jit(f)(*a))
        for name, f, a in (
            ("3-D", ce_3d, (h3, w, b, y2)),
            ("2-D", ce_2d, (h, w, b, y)),
            ("chunked", chunked_ce(chunk), (h, w, b, y)),
        )
    }
    g_ref = jax.jit(jax.grad(ce_2d, argnums=(0, 1, 2)))(h, w, b, y)
    g_chk = jax.jit(jax.grad(chunked_ce(chunk), argnums=(0, 1, 2)))(h, w, b, y)
    check["chunked_grad_max_abs_diff"] = max(
        float(jnp.max(jnp.abs(a - c))) for a, c in zip(g_ref, g_chk, strict=True)
    )

    th, tw = torch.from_numpy(h_np), torch.from_numpy(np.ascontiguousarray(w_np.T))
    tb, ty = torch.from_numpy(b_np), torch.from_numpy(y_np).long()

    def torch_grad():
        hh, ww, bb = (x.clone().requires_grad_(True) for x in (th, tw, tb))
        loss = torch.nn.functional.cross_entropy(torch.nn.functional.linear(hh, ww, bb), ty)
        torch.autograd.grad(loss, [hh, ww, bb])

    def torch_mm():
        torch.nn.functional.linear(th, tw)

    calls = {**jax_calls, "torch loss+grad (F.linear, cross_entropy)": torch_grad}
    calls["torch matmul (F.linear)"] = torch_mm
    plan = timing.TimingPlan(
        warmup=2, min_reps=config.softmax_reps, max_reps=config.softmax_reps, gap_s=0.002
    )
    stats = timing.time_interleaved(calls, plan)
    mm_flop = 2.0 * rows * hid * vocab
    for name, s in stats.items():
        depth = int(name.split("[")[1].split(",")[1].split("]")[0]) if "] @ [" in name else hid
        flop = mm_flop * depth / hid * (3 if "grad" in name else 1)
        s["gflops"] = flop / (s["median_ms"] * 1e-3) / 1e9
    return {
        "shape": {"rows": rows, "hidden": hid, "vocab": vocab},
        "losses": check,
        "timings": stats,
        "ceiling": timing.matmul_ceiling(2048),
    }


# ---- report -------------------------------------------------------------------------------


def markdown(results: dict[str, Any]) -> str:
    env = results["environment"]
    lines = [
        f"# PTB race: lstm_jax vs PyTorch word_language_model ({results['date']})",
        "",
        f"Command: `{results['command']}`  ",
        f"CPU: {env.get('cpu_model')}, {env.get('cores_available')} cores, torch threads "
        f"{THREADS}; load average at start {env.get('load_average_start')}, at end "
        f"{results.get('load_average_end')}",
        "",
    ]
    for r in results["races"]:
        a = r["agreement_first_loss"]
        lines += [
            f"## preset `{r['preset']}`",
            "",
            f"First-window loss from the same weights: ours {a['ours']:.6f}, torch "
            f"{a['torch']:.6f}.",
            "",
            "| mode | ours ms | torch ms | ours tokens/s | torch tokens/s | ratio (median) | "
            "ratio (best) |",
            "|---|---|---|---|---|---|---|",
        ]
        for mode in ("train", "eval"):
            o, t = r[mode]["ours"], r[mode]["torch"]
            lines.append(
                f"| {mode} | {o['median_ms']:.1f} | {t['median_ms']:.1f} | "
                f"{o['tokens_per_s']:.0f} | {t['tokens_per_s']:.0f} | "
                f"{r[f'{mode}_ratio']:.2f}x | {r[f'{mode}_ratio_best']:.2f}x |"
            )
        lines.append("")
    if results.get("softmax"):
        s = results["softmax"]
        shp, c = s["shape"], s["ceiling"]
        lines += [
            f"## softmax layer `[{shp['rows']}, {shp['hidden']}] @ [{shp['hidden']}, "
            f"{shp['vocab']}]`",
            "",
            f"2048^2 float32 matmul ceiling: jax {c['jax_gflops']:.0f} GFLOP/s, torch "
            f"{c['torch_gflops']:.0f} GFLOP/s. GFLOP/s below count the matmul flops only "
            "(x3 with the gradient).",
            "",
            "| variant | median ms | min ms | GFLOP/s |",
            "|---|---|---|---|",
        ]
        for name, t in s["timings"].items():
            lines.append(
                f"| {name} | {t['median_ms']:.1f} | {t['min_ms']:.1f} | {t['gflops']:.0f} |"
            )
        lines += ["", f"Loss check: {s['losses']}", ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", choices=("tied", "small", "both"), default="both")
    p.add_argument("--steps", type=int, default=Config.steps, help="timed training steps")
    p.add_argument("--eval-steps", type=int, default=Config.eval_steps, help="timed eval windows")
    p.add_argument("--warmup", type=int, default=Config.warmup)
    p.add_argument("--eval-rows", type=int, default=Config.eval_rows)
    p.add_argument("--no-softmax", action="store_true", help="skip the softmax study")
    p.add_argument("--softmax-reps", type=int, default=Config.softmax_reps)
    p.add_argument("--tag", default="")
    p.add_argument("--out", type=Path, default=RESULTS_DIR)
    p.add_argument("--data-dir", default=None)
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(THREADS)
    presets = ("tied", "small") if args.preset == "both" else (args.preset,)
    config = Config(
        preset=args.preset, steps=args.steps, warmup=args.warmup, eval_rows=args.eval_rows,
        eval_steps=args.eval_steps, softmax=not args.no_softmax, softmax_reps=args.softmax_reps,
        tag=args.tag, out=args.out, data_dir=args.data_dir,
    )  # fmt: skip
    ids, _ = ptb.token_streams(config.data_dir)
    results: dict[str, Any] = {
        "date": dt.date.today().isoformat(),
        "command": "python -m benchmarks.ptb_race " + " ".join(argv or sys.argv[1:]),
        "environment": environment.environment(),
        "races": [],
    }
    for name in presets:
        cfg = ptb_lm.parse_args(["--preset", name, "--eval-size", str(config.eval_rows)])
        r = race(config, cfg, ids)
        results["races"].append(r)
        print(
            f"{name}: train ours {r['train']['ours']['tokens_per_s']:.0f} tok/s, torch "
            f"{r['train']['torch']['tokens_per_s']:.0f} tok/s ({r['train_ratio']:.2f}x); eval "
            f"{r['eval']['ours']['tokens_per_s']:.0f} vs {r['eval']['torch']['tokens_per_s']:.0f}"
            f" ({r['eval_ratio']:.2f}x)",
            flush=True,
        )
    if config.softmax:
        results["softmax"] = softmax_study(config, ptb_lm.parse_args(["--preset", presets[0]]))
    results["load_average_end"] = environment.load_average()
    stem = f"{results['date']}-ptb-race" + (f"-{config.tag}" if config.tag else "")
    config.out.mkdir(parents=True, exist_ok=True)
    import json

    (config.out / f"{stem}.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    (config.out / f"{stem}.md").write_text(markdown(results))
    print(markdown(results))
    return results


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
    main(sys.argv[1:])
