"""The environment a run was made in, and the glibc allocator settings (``--malloc-tuned``).

glibc returns freed blocks above ``M_MMAP_THRESHOLD`` to the operating system at once, and
trims the heap top above ``M_TRIM_THRESHOLD``; on a VM each new call then page-faults its big
buffers in again. Raising both thresholds keeps the memory in the process (it measured about
30 % faster torch training on the issue's machine). The settings change both peers' speed, so
runs are comparable only when made under the same ones; every result records them.
``--malloc-tuned`` re-executes the run with ``TUNED_MALLOC`` in the environment (glibc reads
these variables once, at start-up, so they cannot be changed from inside the process).
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import sys
from importlib import metadata
from typing import Any

# 1 GiB: above every buffer these benchmarks allocate, so none is mmapped or trimmed away.
# (glibc >= 2.26 accepts thresholds above its dynamic-threshold cap of 32 MiB.)
TUNED_MALLOC = {
    "MALLOC_TRIM_THRESHOLD_": str(1 << 30),
    "MALLOC_MMAP_THRESHOLD_": str(1 << 30),
}
_REEXEC_MARK = "LSTM_JAX_BENCH_MALLOC_REEXEC"


def allocator_settings() -> dict[str, Any]:
    """The glibc allocator variables in effect (``MALLOC_*``, ``GLIBC_TUNABLES``)."""
    env = {k: v for k, v in sorted(os.environ.items()) if k.startswith("MALLOC_")}
    if "GLIBC_TUNABLES" in os.environ:
        env["GLIBC_TUNABLES"] = os.environ["GLIBC_TUNABLES"]
    tuned = all(os.environ.get(k) == v for k, v in TUNED_MALLOC.items())
    return {
        "env": env,
        "label": "tuned (" + ", ".join(f"{k}={v}" for k, v in TUNED_MALLOC.items()) + ")"
        if tuned
        else ("glibc defaults" if not env else "custom: " + str(env)),
        "tuned": tuned,
        "glibc": "-".join(platform.libc_ver()),
    }


def reexec_with_tuned_malloc(module: str, argv: list[str]) -> None:
    """Replaces this process by ``python -m module *argv`` with ``TUNED_MALLOC`` set.

    Returns (doing nothing) when the settings are already in effect.
    """
    if all(os.environ.get(k) == v for k, v in TUNED_MALLOC.items()):
        return
    if os.environ.get(_REEXEC_MARK):
        raise RuntimeError("re-exec with tuned malloc settings did not take effect")
    env = dict(os.environ) | TUNED_MALLOC | {_REEXEC_MARK: "1"}
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", module, *argv], env)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags() -> list[str]:
    """The SIMD flags of interest (AVX2, AVX-512, AMX) that /proc/cpuinfo lists."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile")
                    return [w for w in wanted if w in flags]
    except OSError:
        pass
    return []


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def environment() -> dict[str, Any]:
    """Versions, CPU, cores, threads, allocator and thread-related variables, date."""
    import jax

    out: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {
            p: _version(p)
            for p in ("jax", "jaxlib", "flax", "torch", "equinox", "keras", "numpy", "lstm-jax")
        },
        "jax_backend": jax.default_backend(),
        "jax_devices": [str(d) for d in jax.devices()],
        "cpu_model": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cores": os.cpu_count(),
        "cores_available": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else None,
        "load_average_start": load_average(),
        "allocator": allocator_settings(),
        "thread_env": {
            k: os.environ[k]
            for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "XLA_FLAGS")
            if k in os.environ
        },
    }
    try:
        import torch

        out["torch_threads"] = torch.get_num_threads()
        out["torch_mkldnn"] = bool(torch.backends.mkldnn.is_available())
    except ImportError:  # pragma: no cover - torch is a test dependency
        pass
    return out
