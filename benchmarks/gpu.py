"""GPU benchmark of issue 12, in one shot: ours (scan, split, pallas, cudnn) against torch
cuDNN, Flax ``nn.RNN``, Equinox and ``jax.experimental.rnn``.

    PYTHONPATH=. python -m benchmarks.gpu [--out DIR] [--budget-s 300] [--quick]

Needs only jax, and whichever of torch, flax, equinox are importable (the GPU image has jax
0.11.2, torch 2.11, flax, optax, equinox; nothing is installed). Every contender fails soft: an
import, compile or run error is recorded in its cell of the table and the run goes on. Rows
run in order of importance (the goal sizes first) until ``--budget-s`` is spent; the rest are
recorded as skipped. Per row the contenders are timed round-robin (``timing.time_interleaved``)
and the table gives median milliseconds, each peer's ratio peer / ours-pallas (above 1: ours
faster), the compile time and XLA's peak memory estimate (arguments + outputs + temporaries of
the compiled program; torch: ``max_memory_allocated``). A last row trains T = 100,000 at B=8,
H=512 with ``impl=Chunked()`` and records its compiled memory; then, if the budget allows,
``benchmarks.min_rnn_scan`` compares minGRU/minLSTM's parallel scan with their sequential
form and with our LSTM (batch 8, hidden 256, T = 512 .. 16,384). Results go to ``$OUT`` (or
``--out``, else ``benchmarks/results``) as ``<date>-gpu.json`` and ``.md``.

``--quick`` is the CPU smoke test: one tiny row (Pallas in interpret mode, GPU-only contenders
record their errors).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

import lstm_jax
from benchmarks import min_rnn_scan, timing


@dataclasses.dataclass(frozen=True)
class Row:
    model: str  # "lstm", "gru", "bilstm"
    batch: int
    time: int
    hidden: int
    dtype: str  # "float32", "bfloat16"
    mode: str  # "forward", "train"

    @property
    def label(self) -> str:
        return f"{self.model} B{self.batch} T{self.time} H{self.hidden} {self.dtype} {self.mode}"


def plan_rows(quick: bool) -> list[Row]:
    """The rows, most important first: the goal sizes (B64 T512 H512; B<=8), then the grid."""
    if quick:
        return [Row("lstm", 2, 5, 4, "float32", m) for m in ("forward", "train")]
    first = [
        Row("lstm", 64, 512, 512, "float32", "train"),
        Row("lstm", 8, 512, 512, "float32", "train"),
        Row("lstm", 1, 512, 512, "float32", "train"),
        Row("lstm", 64, 512, 512, "float32", "forward"),
        Row("gru", 64, 512, 512, "float32", "train"),
        Row("bilstm", 64, 512, 512, "float32", "train"),
        Row("lstm", 64, 512, 512, "bfloat16", "train"),
    ]
    rest = [
        Row(model, b, t, h, dt, mode)
        for t in (512, 128, 2048)
        for h in (512, 128, 1024)
        for b in (8, 64, 1, 256)
        for model in ("lstm", "gru", "bilstm")
        for dt in ("float32", "bfloat16")
        for mode in ("train", "forward")
    ]
    return first + [r for r in rest if r not in first]


# ---- contenders: each returns (call, compile_s, memory_bytes) -------------------------------
INPUT = 128


def _jax_inputs(row: Row, key_seed: int = 0):
    dtype = jnp.dtype(row.dtype)
    x = jax.random.normal(jax.random.key(key_seed), (row.batch, row.time, INPUT), dtype)
    return x


def _compiled(fn: Callable, *args) -> tuple[Callable[[], Any], float, int | None]:
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - start
    memory = None
    try:
        m = compiled.memory_analysis()
        memory = int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes)
    except Exception:  # some backends give no analysis
        pass
    return (lambda: jax.block_until_ready(compiled(*args))), compile_s, memory


def _loss_or_out(row: Row, forward: Callable) -> Callable:
    if row.mode == "forward":
        return forward

    def loss(params, x):
        return jnp.mean(forward(params, x).astype(jnp.float32) ** 2)

    return jax.grad(loss)


def ours(impl: Any) -> Callable:
    def build(row: Row):
        dtype = None if row.dtype == "float32" else jnp.dtype(row.dtype)
        cell = (lstm_jax.gru if row.model == "gru" else lstm_jax.lstm)(row.hidden, dtype=dtype)
        key = jax.random.key(1)
        if row.model == "bilstm":
            params = (cell.init(key, INPUT), cell.init(jax.random.key(2), INPUT))
            forward = lambda p, x: lstm_jax.bidirectional(cell, p, x, impl=impl)[1]
        else:
            params = cell.init(key, INPUT)
            forward = lambda p, x: lstm_jax.unroll(cell, p, x, impl=impl)[1]
        return _compiled(_loss_or_out(row, forward), params, _jax_inputs(row))

    return build


def jax_rnn(row: Row):
    if row.model == "gru":
        raise NotImplementedError("jax.experimental.rnn has no GRU")
    from jax.experimental import rnn

    directions = 2 if row.model == "bilstm" else 1
    size = rnn.get_num_params_in_lstm(INPUT, row.hidden, 1, directions == 2)
    weights = jax.random.normal(jax.random.key(1), (size,), row.dtype) * 0.05
    lengths = jnp.full((row.batch,), row.time, jnp.int32)
    zeros = jnp.zeros((directions, row.batch, row.hidden), row.dtype)

    def forward(w, x):
        y, _, _ = rnn.lstm(x, zeros, zeros, w, lengths, INPUT, row.hidden, 1, 0.0, directions == 2)
        return y

    return _compiled(_loss_or_out(row, forward), weights, _jax_inputs(row))


def flax_rnn(row: Row):
    from flax import linen as nn

    dtype = jnp.dtype(row.dtype)
    make = (
        (lambda: nn.GRUCell(row.hidden, dtype=dtype))
        if row.model == "gru"
        else (lambda: nn.OptimizedLSTMCell(row.hidden, dtype=dtype))
    )
    if row.model == "bilstm":
        module = nn.Bidirectional(nn.RNN(make()), nn.RNN(make()))
    else:
        module = nn.RNN(make())
    x = _jax_inputs(row)
    params = module.init(jax.random.key(1), x)
    return _compiled(_loss_or_out(row, module.apply), params, x)


def equinox_rnn(row: Row):
    import equinox as eqx

    dtype = jnp.dtype(row.dtype)
    make = eqx.nn.GRUCell if row.model == "gru" else eqx.nn.LSTMCell
    cells = [make(INPUT, row.hidden, key=jax.random.key(k)) for k in (1, 2)]
    cells = [jax.tree_util.tree_map(lambda a: a.astype(dtype), c) for c in cells]
    cells = cells[:2] if row.model == "bilstm" else cells[:1]

    def one(cell, xs, reverse):
        h0 = jnp.zeros((row.hidden,), dtype)
        init = h0 if row.model == "gru" else (h0, h0)

        def step(carry, x):
            carry = cell(x, carry)
            return carry, carry if row.model == "gru" else carry[0]

        return jax.lax.scan(step, init, xs, reverse=reverse)[1]

    def forward(cells, x):
        outs = [jax.vmap(lambda s, c=c, r=r: one(c, s, r))(x) for r, c in enumerate(cells)]
        return jnp.concatenate(outs, axis=-1) if len(outs) == 2 else outs[0]

    return _compiled(_loss_or_out(row, forward), cells, _jax_inputs(row))


def torch_cudnn(row: Row):
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("torch sees no CUDA device (cuDNN needs one)")
    device = torch.device("cuda")
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[row.dtype]
    cls = torch.nn.GRU if row.model == "gru" else torch.nn.LSTM
    module = cls(INPUT, row.hidden, batch_first=True, bidirectional=row.model == "bilstm")
    module = module.to(device=device, dtype=dtype)
    x = torch.randn(row.batch, row.time, INPUT, device=device, dtype=dtype)
    torch.cuda.reset_peak_memory_stats()

    def call():
        if row.mode == "forward":
            with torch.no_grad():
                module(x)
        else:
            module.zero_grad(set_to_none=True)
            y, _ = module(x)
            (y.float() ** 2).mean().backward()
        torch.cuda.synchronize()

    start = time.perf_counter()
    call()
    compile_s = time.perf_counter() - start  # first call: cuDNN plan selection
    return call, compile_s, int(torch.cuda.max_memory_allocated())


CONTENDERS: dict[str, Callable] = {
    "pallas": ours("pallas"),
    "scan": ours("scan"),
    "split": ours("split"),
    "cudnn": ours("cudnn"),
    "jax.experimental.rnn": jax_rnn,
    "torch cuDNN": torch_cudnn,
    "flax nn.RNN": flax_rnn,
    "equinox": equinox_rnn,
}


def _error(e: BaseException) -> str:
    return f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"


def run_row(row: Row, plan: timing.TimingPlan) -> dict[str, Any]:
    built, result = {}, {"row": dataclasses.asdict(row), "contenders": {}}
    for name, build in CONTENDERS.items():
        if name == "cudnn" and (row.model == "gru" or row.dtype != "float32"):
            result["contenders"][name] = {"error": "n/a: impl='cudnn' is float32 LSTM only"}
            continue
        try:
            call, compile_s, memory = build(row)
            call()  # fails here rather than inside the timing loop
            built[name] = call
            result["contenders"][name] = {"compile_s": compile_s, "memory_bytes": memory}
        except Exception as e:  # fail soft per contender
            result["contenders"][name] = {"error": _error(e)}
    if built:
        try:
            times = timing.time_interleaved(built, plan)
            for name, summary in times.items():
                result["contenders"][name].update(summary)
        except Exception as e:
            result["timing_error"] = _error(e)
    base = result["contenders"].get("pallas", {}).get("median_ms")
    for entry in result["contenders"].values():
        if base and entry.get("median_ms"):
            entry["ratio_vs_pallas"] = entry["median_ms"] / base
    return result


def long_sequence(quick: bool) -> dict[str, Any]:
    """Training memory of T = 100,000 at B=8, H=512 with impl=Chunked() (compiled estimate),
    and at T/4 for the growth rate."""
    batch, hidden, times = (2, 4, (64, 16)) if quick else (8, 512, (100_000, 25_000))
    out: dict[str, Any] = {"batch": batch, "hidden": hidden}
    cell = lstm_jax.lstm(hidden)
    params = cell.init(jax.random.key(0), hidden)
    for t in times:
        try:
            x = jnp.zeros((batch, t, hidden), jnp.float32)

            def loss(p, x):
                return jnp.mean(lstm_jax.unroll(cell, p, x, impl=lstm_jax.Chunked())[1] ** 2)

            call, compile_s, memory = _compiled(jax.grad(loss), params, x)
            start = time.perf_counter()
            call()
            out[str(t)] = {"memory_bytes": memory, "compile_s": compile_s,
                           "step_s": time.perf_counter() - start}  # fmt: skip
        except Exception as e:
            out[str(t)] = {"error": _error(e)}
    return out


def markdown(results: dict[str, Any]) -> str:
    names = list(CONTENDERS)
    lines = [
        f"# GPU benchmark {results['date']}",
        "",
        f"Device: {results['device']}; jax {results['jax']}. Cells: median ms "
        "(ratio peer / pallas, above 1 = pallas faster) [compile s, peak MiB].",
        "",
        "| row | " + " | ".join(names) + " |",
        "|---" * (len(names) + 1) + "|",
    ]
    for r in results["rows"]:
        cells = []
        for name in names:
            e = r["contenders"].get(name, {})
            if "median_ms" in e:
                ratio = f" ({e['ratio_vs_pallas']:.2f}x)" if "ratio_vs_pallas" in e else ""
                mem = f"{e['memory_bytes'] / 2**20:.0f}" if e.get("memory_bytes") else "-"
                cells.append(f"{e['median_ms']:.2f}{ratio} [{e['compile_s']:.1f}, {mem}]")
            else:
                cells.append(e.get("error", "-").replace("|", "/")[:60])
        lines.append(f"| {Row(**r['row']).label} | " + " | ".join(cells) + " |")
    if results["skipped"]:
        lines += ["", f"Skipped for the time budget: {len(results['skipped'])} rows."]
    lines += ["", "Long sequence (impl=Chunked(), training): "
              + json.dumps(results["long_sequence"])]  # fmt: skip
    min_rnn = results.get("min_rnn", {})
    if min_rnn.get("rows"):
        lines += ["", min_rnn_scan.markdown(min_rnn).replace("# ", "## ", 1)]
    if min_rnn.get("errors") or min_rnn.get("skipped"):
        lines += ["", f"minGRU / minLSTM scan, errors {min_rnn['errors']}, skipped lengths "
                      f"{min_rnn['skipped']} (time budget)"]  # fmt: skip
    return "\n".join(lines) + "\n"


def min_rnn(quick: bool, deadline: float) -> dict[str, Any]:
    """``benchmarks.min_rnn_scan`` at GPU sizes (a tiny one with ``quick``), one sequence length
    at a time while ``time.perf_counter()`` is before ``deadline``; a length that fails is
    recorded and the next one runs."""
    cfg = (
        min_rnn_scan.Config(times=(8,), batch=2, input=4, hidden=4, min_reps=1, max_reps=1,
                            target_s=0.0)
        if quick
        else min_rnn_scan.Config(times=(512, 2048, 16384), input=256, hidden=256, max_reps=10,
                                 target_s=0.2)
    )  # fmt: skip
    result: dict[str, Any] = {"rows": [], "errors": {}, "skipped": []}
    for t in cfg.times:
        if time.perf_counter() > deadline and not quick:
            result["skipped"].append(t)
            continue
        try:
            part = min_rnn_scan.run(dataclasses.replace(cfg, times=(t,)))
            result.update({k: v for k, v in part.items() if k != "rows"})
            result["rows"] += part["rows"]
        except Exception as e:
            result["errors"][str(t)] = _error(e)
    return result


def write(results: dict[str, Any], out: Path, quick: bool) -> None:
    stem = f"{results['date']}-{jax.default_backend()}{'-quick' if quick else ''}"
    (out / f"{stem}.json").write_text(json.dumps(results, indent=1, default=str))
    (out / f"{stem}.md").write_text(markdown(results))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--budget-s", type=float, default=300.0)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    out = args.out or Path(os.environ.get("OUT") or "benchmarks/results")
    out.mkdir(parents=True, exist_ok=True)
    plan = (
        timing.TimingPlan(warmup=1, min_reps=1, max_reps=2, target_s=0.0, gap_s=0.0)
        if args.quick
        else timing.TimingPlan(warmup=2, min_reps=5, max_reps=20, target_s=0.3, gap_s=0.0)
    )
    start = time.perf_counter()
    results: dict[str, Any] = {
        "date": datetime.date.today().isoformat(),
        "device": str(jax.devices()[0]),
        "jax": jax.__version__,
        "rows": [],
        "skipped": [],
    }
    for row in plan_rows(args.quick):
        if time.perf_counter() - start > args.budget_s:
            results["skipped"].append(dataclasses.asdict(row))
            continue
        try:
            results["rows"].append(run_row(row, plan))
        except Exception:
            results["rows"].append({"row": dataclasses.asdict(row), "contenders": {},
                                    "error": traceback.format_exc()[-500:]})  # fmt: skip
        print(Row(**results["rows"][-1]["row"]).label, f"{time.perf_counter() - start:.0f}s",
              flush=True)  # fmt: skip
    results["long_sequence"] = long_sequence(args.quick)
    results["wall_s"] = time.perf_counter() - start
    write(results, out, args.quick)  # kept if the last section overruns the machine's limit
    results["min_rnn"] = min_rnn(args.quick, deadline=start + args.budget_s + 60)
    results["wall_s"] = time.perf_counter() - start
    write(results, out, args.quick)
    return results


if __name__ == "__main__":
    main()
