"""What the public boundary's checks cost: an eager ``cell.step`` against the same maths unchecked.

Issue 11 asks for an eager ``cell.step(params, carry, x)`` (argument checks included) to cost
at most 2x the unchecked maths, ``cell.recur_step(params, carry, cell.project_inputs(params,
x))``, run eagerly too (op by op). Both are also timed under ``jax.jit`` (where the checks run
at trace time only, so the two should be equal), and ``lstm_jax.unroll`` is timed eagerly
against its jitted call, which shows the per-call overhead of the sequence API outside
``jit``. All calls interleaved in one process (``timing.time_interleaved``); medians.

    python -m benchmarks.validation_cost [--root TREE] [--json PATH]

``--root`` imports ``lstm_jax`` from another tree (put first on ``sys.path``), e.g. a
``git worktree`` of the code before the rewrite, whose unchecked maths is
``cell.recur(params, carry, cell.project_inputs(params, x))``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

# The harness is this tree's even when --root puts another lstm_jax first.
from benchmarks import environment, timing

BATCH, INPUT, HIDDEN, TIME = 32, 128, 256, 16
PLAN = timing.TimingPlan(warmup=3, min_reps=20, max_reps=200, target_s=0.5, gap_s=0.0)


def unchecked(cell: Any) -> Any:
    """The step's maths without the checks: ``(params, carry, x) -> (carry, y)``."""
    if hasattr(cell, "recur_step"):

        def step(params, carry, x):
            return cell.recur_step(params, carry, cell.project_inputs(params, x))[:2]

    else:  # the code before the rewrite

        def step(params, carry, x):
            return cell.recur(params, carry, cell.project_inputs(params, x))

    return step


def measure(model: str = "lstm") -> dict[str, Any]:
    """Median ms of each way of calling one step (and one unroll) of ``model``."""
    import jax
    import numpy as np

    import lstm_jax

    cell = lstm_jax.gru(HIDDEN) if model == "gru" else lstm_jax.lstm(HIDDEN)
    params = cell.init(jax.random.key(0), INPUT)
    rng = np.random.default_rng(0)
    x = jax.numpy.asarray(rng.standard_normal((BATCH, INPUT), dtype=np.float32))
    xs = jax.numpy.asarray(rng.standard_normal((BATCH, TIME, INPUT), dtype=np.float32))
    carry = cell.initial_carry(BATCH)
    raw = unchecked(cell)
    jit_step, jit_raw = jax.jit(cell.step), jax.jit(raw)

    def run(params, xs):
        return lstm_jax.unroll(cell, params, xs)

    jit_run = jax.jit(run)
    calls = {
        "eager step": lambda: cell.step(params, carry, x),
        "eager unchecked": lambda: raw(params, carry, x),
        "jit step": lambda: jit_step(params, carry, x),
        "jit unchecked": lambda: jit_raw(params, carry, x),
        "eager unroll": lambda: run(params, xs),
        "jit unroll": lambda: jit_run(params, xs),
    }
    calls = {k: (lambda f=f: jax.block_until_ready(f())) for k, f in calls.items()}
    stats = timing.time_interleaved(calls, PLAN)
    ms = {k: s["median_ms"] for k, s in stats.items()}
    return dict(
        model=model,
        lstm_jax=str(Path(lstm_jax.__file__).resolve().parent.parent),
        size=f"B{BATCH} I{INPUT} H{HIDDEN} (unroll: T{TIME})",
        median_ms=ms,
        min_ms={k: s["min_ms"] for k, s in stats.items()},
        eager_step_over_unchecked=ms["eager step"] / ms["eager unchecked"],
        jit_step_over_unchecked=ms["jit step"] / ms["jit unchecked"],
        eager_unroll_over_jit=ms["eager unroll"] / ms["jit unroll"],
        load=environment.load_average(),
    )


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", default=None, help="import lstm_jax from this tree")
    p.add_argument("--models", default="lstm,gru")
    p.add_argument("--json", default=None, help="write the results here")
    a = p.parse_args(argv)
    if a.root:
        sys.path.insert(0, a.root)
    results = [measure(m) for m in a.models.split(",") if m]
    for r in results:
        times = ", ".join(f"{k} {v:.3g}" for k, v in r["median_ms"].items())
        print(
            f"{r['model']} {r['size']} from {r['lstm_jax']} (load {r['load']}): {times} ms; "
            f"eager step / unchecked {r['eager_step_over_unchecked']:.2f}x, "
            f"eager unroll / jit {r['eager_unroll_over_jit']:.1f}x"
        )
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1) + "\n")
    return results


if __name__ == "__main__":
    main()
