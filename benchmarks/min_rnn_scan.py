"""minGRU and minLSTM: the parallel scan against their sequential form and against our LSTM.

Question: on this backend, is ``impl="parallel"`` (an associative scan over time, in log space)
faster than running the same cells step by step, and how do both compare with an LSTM of the
same size under ``impl="auto"``? For each ``time`` in ``--times`` and each mode (``forward``:
``unroll``'s outputs; ``train``: the value and gradient of ``mean(ys**2)`` in the parameters),
every contender is jitted, warmed up and timed in one process, interleaved round-robin
(``benchmarks.timing``), and the medians are reported with the ratios to the parallel scan.

Contenders (batch 8, input 64, hidden 64, float32):

* ``min_gru/parallel``, ``min_lstm/parallel``: ``impl="parallel"``;
* ``min_gru/sequential``, ``min_lstm/sequential``: ``impl="scan"`` (``recur`` step by step);
* ``lstm/auto``: ``LSTMCell`` with ``impl="auto"`` (what ``auto`` resolves to is recorded).

    python -m benchmarks.min_rnn_scan [--times 512 1024 ...] [--tag 2026-12-01-min-rnn-scan]

writes ``benchmarks/results/<tag>.json`` and ``.md`` with the environment and load averages.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib

import jax
import jax.numpy as jnp

import lstm_jax
from benchmarks import environment, timing
from lstm_jax.cells.min_rnn import MinGRUCell, MinLSTMCell
from lstm_jax.impl import resolve


@dataclasses.dataclass(frozen=True)
class Config:
    times: tuple[int, ...] = (512, 1024, 2048, 4096, 8192, 16384)
    batch: int = 8
    input: int = 64
    hidden: int = 64
    tag: str = "2026-12-01-min-rnn-scan"
    out: str = "benchmarks/results"
    warmup: int = 1
    min_reps: int = 3
    max_reps: int = 15
    target_s: float = 0.4


def contenders(cfg: Config) -> dict[str, tuple[lstm_jax.Cell, str]]:
    h = cfg.hidden
    return {
        "min_gru/parallel": (MinGRUCell(h), "parallel"),
        "min_gru/sequential": (MinGRUCell(h), "scan"),
        "min_lstm/parallel": (MinLSTMCell(h), "parallel"),
        "min_lstm/sequential": (MinLSTMCell(h), "scan"),
        "lstm/auto": (lstm_jax.LSTMCell(h), "auto"),
    }


def make_call(cell, impl: str, mode: str, xs: jax.Array, key: jax.Array):
    """A function running one jitted call of ``mode`` to completion."""
    params = cell.init(key, xs.shape[-1])

    def forward(params, xs):
        return lstm_jax.unroll(cell, params, xs, impl=impl)[1]

    def loss(params, xs):
        return jnp.mean(forward(params, xs) ** 2)

    fn = jax.jit(forward if mode == "forward" else jax.value_and_grad(loss))
    compiled = fn.lower(params, xs).compile()
    return lambda: jax.block_until_ready(compiled(params, xs))


def run(cfg: Config) -> dict:
    env = environment.environment()
    plan = timing.TimingPlan(
        warmup=cfg.warmup, min_reps=cfg.min_reps, max_reps=cfg.max_reps, target_s=cfg.target_s
    )
    rows = []
    for num_steps in cfg.times:
        xs = jax.random.normal(jax.random.key(num_steps), (cfg.batch, num_steps, cfg.input))
        for mode in ("forward", "train"):
            calls = {
                name: make_call(cell, impl, mode, xs, jax.random.key(1))
                for name, (cell, impl) in contenders(cfg).items()
            }
            stats = timing.time_interleaved(calls, plan)
            row = {"time": num_steps, "mode": mode, "load_average": environment.load_average()}
            row["results"] = stats
            rows.append(row)
            medians = {k: round(v["median_ms"], 2) for k, v in stats.items()}
            print(num_steps, mode, medians, row["load_average"], flush=True)
    env["load_average_end"] = environment.load_average()
    return {
        "config": dataclasses.asdict(cfg),
        "lstm_auto_resolves_to": resolve("auto").name,
        "environment": env,
        "rows": rows,
    }


def markdown(result: dict) -> str:
    env, cfg = result["environment"], result["config"]
    lines = [
        f"# minGRU / minLSTM: parallel scan vs sequential vs LSTM ({env['date']})",
        "",
        f"`python -m benchmarks.min_rnn_scan`; batch {cfg['batch']}, input {cfg['input']}, "
        f"hidden {cfg['hidden']}, float32, jitted, medians of interleaved repetitions (ms). "
        f"Backend {env['jax_backend']}, {env['cores_available']} cores ({env['cpu_model']}), "
        f"jax {env['versions']['jax']}; load average at start {env['load_average_start']}, at "
        f"end {env['load_average_end']}. `lstm/auto` resolved to "
        f"`{result['lstm_auto_resolves_to']}`. Ratios are sequential / parallel (above 1: the "
        "parallel scan is faster).",
        "",
        "| time | mode | minGRU par | minGRU seq | ratio | minLSTM par | minLSTM seq | ratio "
        "| LSTM auto | LSTM / minGRU par | load (1 min) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        m = {k: v["median_ms"] for k, v in row["results"].items()}
        gp, gs = m["min_gru/parallel"], m["min_gru/sequential"]
        lp, ls = m["min_lstm/parallel"], m["min_lstm/sequential"]
        lstm = m["lstm/auto"]
        load = row["load_average"][0] if row["load_average"] else "?"
        lines.append(
            f"| {row['time']} | {row['mode']} | {gp:.2f} | {gs:.2f} | {gs / gp:.2f}x | "
            f"{lp:.2f} | {ls:.2f} | {ls / lp:.2f}x | {lstm:.2f} | {lstm / gp:.2f}x | {load} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    defaults = Config()
    parser.add_argument("--times", type=int, nargs="+", default=list(defaults.times))
    parser.add_argument("--tag", default=defaults.tag)
    parser.add_argument("--out", default=defaults.out)
    parser.add_argument("--max-reps", type=int, default=defaults.max_reps)
    args = parser.parse_args(argv)
    cfg = Config(times=tuple(args.times), tag=args.tag, out=args.out, max_reps=args.max_reps)
    result = run(cfg)
    out = pathlib.Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{cfg.tag}.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / f"{cfg.tag}.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
