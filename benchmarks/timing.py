"""Timing: interleaved repetitions, medians, and the matmul ceiling.

Contenders of one row (one model, size and mode) are timed in the same process, round-robin:
each repetition calls every contender once, starting from a different one each time, so that
drifting load (the machine may be shared) hits all of them alike. Warm-up calls come first and
are not counted. The number of repetitions is chosen from the slowest contender's warm-up time
so that a row takes about ``target_s`` per contender, within ``[min_reps, max_reps]``.

Between two timed calls the harness sleeps ``gap_s``: torch's OpenMP workers spin for a while
after a parallel region, and without the gap they would steal cores from the next contender
(XLA's own thread pool) on a small machine. The gap is not timed.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class TimingPlan:
    warmup: int = 2
    min_reps: int = 5
    max_reps: int = 25
    target_s: float = 1.0
    gap_s: float = 0.002


def summarize(samples: list[float]) -> dict[str, Any]:
    """Median, min, quartiles and the count of a list of seconds (reported in milliseconds)."""
    ms = sorted(1e3 * s for s in samples)
    q = np.percentile(ms, [25, 75]) if ms else [math.nan, math.nan]
    return {
        "median_ms": statistics.median(ms) if ms else math.nan,
        "min_ms": ms[0] if ms else math.nan,
        "p25_ms": float(q[0]),
        "p75_ms": float(q[1]),
        "reps": len(ms),
    }


def time_interleaved(
    calls: dict[str, Callable[[], Any]], plan: TimingPlan
) -> dict[str, dict[str, Any]]:
    """Times each of ``calls`` (name -> a function that runs one call to completion).

    Returns:
      name -> ``summarize`` of its timed repetitions.
    """
    names = list(calls)
    warm: dict[str, float] = {}
    for _ in range(max(plan.warmup, 1)):
        for name in names:
            time.sleep(plan.gap_s)
            start = time.perf_counter()
            calls[name]()
            warm[name] = time.perf_counter() - start
    slowest = max(warm.values(), default=0.0)
    reps = plan.max_reps if slowest <= 0 else int(plan.target_s / slowest)
    reps = min(max(reps, plan.min_reps), plan.max_reps)

    samples: dict[str, list[float]] = {name: [] for name in names}
    gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()  # a collection inside one contender's call would be charged to it alone
    try:
        for r in range(reps):
            for k in range(len(names)):
                name = names[(r + k) % len(names)]
                time.sleep(plan.gap_s)
                start = time.perf_counter()
                calls[name]()
                samples[name].append(time.perf_counter() - start)
    finally:
        if gc_was_enabled:
            gc.enable()
    return {name: summarize(s) for name, s in samples.items()}


def matmul_ceiling(n: int = 2048, reps: int = 10, warmup: int = 2) -> dict[str, Any]:
    """GFLOP/s of an ``n x n`` float32 ``jnp.dot`` (the ceiling) and of ``torch.mm``.

    Returns:
      ``{"n", "jax_gflops", "jax_median_ms", "torch_gflops", "torch_median_ms"}``.
    """
    rng = np.random.default_rng(0)
    a_np = rng.standard_normal((n, n), dtype=np.float32)
    b_np = rng.standard_normal((n, n), dtype=np.float32)
    flop = 2.0 * n**3
    a, b = jnp.asarray(a_np), jnp.asarray(b_np)
    dot = jax.jit(jnp.dot).lower(a, b).compile()
    calls: dict[str, Callable[[], Any]] = {"jax": lambda: jax.block_until_ready(dot(a, b))}
    try:
        import torch

        ta, tb = torch.from_numpy(a_np), torch.from_numpy(b_np)
        calls["torch"] = lambda: torch.mm(ta, tb)
    except ImportError:  # pragma: no cover - torch is a test dependency
        pass
    plan = TimingPlan(warmup=warmup, min_reps=reps, max_reps=reps, target_s=0.0)
    stats = time_interleaved(calls, plan)
    out: dict[str, Any] = {"n": n}
    for name, s in stats.items():
        out[f"{name}_median_ms"] = s["median_ms"]
        out[f"{name}_gflops"] = flop / (s["median_ms"] * 1e-3) / 1e9
    return out
