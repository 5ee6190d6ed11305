"""A contender: one implementation of one workload, ready to be timed in both modes.

JAX contenders (ours and Flax) are compiled ahead of time with ``jax.jit(f).lower(*args)
.compile()``: that call's wall time is the compile time we report (tracing and lowering
included), and ``memory_analysis()`` of the same executable gives XLA's own account of the
memory it needs. The timed call is that executable, with ``jax.block_until_ready`` on its
outputs (its dispatch costs about 0.3 us more than a cached ``jax.jit`` call: negligible here).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np


@dataclasses.dataclass
class Contender:
    """One implementation of a workload.

    Attributes:
      name: the row label, e.g. ``"ours"``, ``"flax"``, ``"torch"``, ``"ours[unroll=4]"``.
      framework: ``"lstm_jax"``, ``"flax"`` or ``"torch"``.
      options: the keyword arguments that make a variant of ours (empty for the default).
      calls: mode (``"forward"``, ``"train"``) -> a function that runs one call to completion.
      compile_s: mode -> compile time in seconds (None where there is no compiler).
      memory: mode -> XLA's memory analysis in bytes (None where unavailable).
      outputs: returns ``{"ys": [batch, time, features], "dxs": [batch, time, input],
        "dparams": list of arrays in our parameter layout}`` as NumPy arrays, for checking
        that the contenders agree.
    """

    name: str
    framework: str
    options: dict[str, Any]
    calls: dict[str, Callable[[], Any]]
    compile_s: dict[str, float | None]
    memory: dict[str, dict[str, int] | None]
    outputs: Callable[[], dict[str, Any]]


def memory_stats(compiled: Any) -> dict[str, int] | None:
    """XLA's memory analysis of an executable in bytes, or None if the backend has none.

    ``temp_plus_output`` is what one call allocates beyond its arguments: the buffers it needs
    while running (``temp``) and the results it returns (``output``).
    """
    try:
        stats = compiled.memory_analysis()
    except (NotImplementedError, AttributeError, RuntimeError):
        return None
    if stats is None:
        return None
    fields = ("temp_size_in_bytes", "output_size_in_bytes", "argument_size_in_bytes")
    out = {f.removesuffix("_size_in_bytes"): int(getattr(stats, f, 0) or 0) for f in fields}
    peak = int(getattr(stats, "peak_memory_in_bytes", 0) or 0)
    if peak:
        out["peak"] = peak
    out["temp_plus_output"] = out["temp"] + out["output"]
    return out


def compile_jax(fn: Callable, *args: Any) -> tuple[Callable[[], Any], float, Any]:
    """Compiles ``jax.jit(fn)`` for ``args`` ahead of time.

    Returns:
      ``(call, compile_seconds, compiled)``: ``call()`` runs the executable on ``args`` and
      waits for every output.
    """
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    seconds = time.perf_counter() - start

    def call() -> Any:
        return jax.block_until_ready(compiled(*args))

    return call, seconds, compiled


def jax_contender(
    name: str,
    framework: str,
    options: dict[str, Any],
    forward: Callable[[Any, Any], Any],
    params: Any,
    xs: Any,
    grads_to_ours: Callable[[Any], list[np.ndarray]],
) -> Contender:
    """A contender from a JAX ``forward(params, xs) -> ys``.

    The train mode is ``jax.grad(lambda p, x: forward(p, x).sum(), argnums=(0, 1))``: the
    gradient of the sum of the outputs with respect to the parameters and the inputs.
    ``grads_to_ours`` maps the parameter gradient to a list of arrays in our layout.
    """

    def loss(p: Any, x: Any) -> Any:
        return forward(p, x).sum()

    train = jax.grad(loss, argnums=(0, 1))
    fwd_call, fwd_s, fwd_exe = compile_jax(forward, params, xs)
    train_call, train_s, train_exe = compile_jax(train, params, xs)

    def outputs() -> dict[str, Any]:
        ys = fwd_call()
        dparams, dxs = train_call()
        return {
            "ys": np.asarray(ys),
            "dxs": np.asarray(dxs),
            "dparams": [np.asarray(g) for g in grads_to_ours(dparams)],
        }

    return Contender(
        name=name,
        framework=framework,
        options=dict(options),
        calls={"forward": fwd_call, "train": train_call},
        compile_s={"forward": fwd_s, "train": train_s},
        memory={"forward": memory_stats(fwd_exe), "train": memory_stats(train_exe)},
        outputs=outputs,
    )


def agreement(reference: dict[str, Any], other: dict[str, Any]) -> dict[str, float]:
    """Largest absolute difference of each output, relative to the reference's largest
    magnitude (so one tolerance fits every size): ``{"ys": ..., "dxs": ..., "dparams": ...}``."""

    def rel(a: np.ndarray, b: np.ndarray) -> float:
        if a.shape != b.shape:
            raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
        scale = max(float(np.max(np.abs(a))), 1e-30) if a.size else 1.0
        return float(np.max(np.abs(a - b))) / scale if a.size else 0.0

    out = {k: rel(reference[k], other[k]) for k in ("ys", "dxs")}
    if len(reference["dparams"]) != len(other["dparams"]):
        raise ValueError(
            f"parameter gradients: {len(reference['dparams'])} arrays vs {len(other['dparams'])}"
        )
    out["dparams"] = max(
        (rel(a, b) for a, b in zip(reference["dparams"], other["dparams"], strict=True)),
        default=0.0,
    )
    return out
