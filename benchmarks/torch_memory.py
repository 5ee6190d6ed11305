"""torch's peak memory per call, as a peak-resident-memory delta in a fresh subprocess.

``tracemalloc`` sees none of torch's allocations (they bypass Python's allocator). The peak
resident set size is the OS's view. A fresh process per (model, size) keeps the benchmark
process's 2+ GiB of compiled JAX programs out of it; but ``getrusage``'s ``ru_maxrss`` is no
good even there: Linux carries it over ``fork`` + ``exec`` from the parent, and it never falls
(the import of torch alone sets a high mark). So the probe resets the kernel's high-water mark
(``/proc/self/clear_refs``, value 5) after building the module and the input, reads ``VmRSS``
(the baseline), runs the calls and reads ``VmHWM`` from ``/proc/self/status``; where the reset
is not allowed it falls back to the ``ru_maxrss`` delta (``method`` says which). Each mode is
measured from its own reset.

The delta is the resident memory the calls added at their peak: outputs, saved activations,
workspaces, and whatever the allocator kept. It is not the same quantity as XLA's
``memory_analysis`` (buffers the program declares): compare torch's numbers with each other.

Run by ``benchmarks.run``; by hand: ``python -m benchmarks.torch_memory lstm 32,128,128,256``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.workloads import MODELS, MODES, Size

_REPO = Path(__file__).resolve().parents[1]
CALLS = 3


def _maxrss_bytes() -> int:
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024  # "VmHWM:   123 kB"
    raise KeyError(field)


def _reset_peak() -> bool:
    """Sets the kernel's peak-RSS mark to the current RSS; False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        _status_bytes("VmHWM")
        return True
    except (OSError, KeyError):
        return False


def probe(
    model: str, size: Size, modes: tuple[str, ...] = MODES, threads: int | None = None
) -> dict[str, dict[str, Any]]:
    """Measures in this process (see the module docstring): mode -> ``{"peak_delta",
    "baseline", "method"}`` in bytes."""
    import torch

    from benchmarks.peers import configure_torch, torch_module

    configure_torch(threads)
    module = torch_module(model, size)
    xs = torch.randn(size.batch, size.time, size.input)
    xs_grad = xs.clone().requires_grad_(True)
    weights = list(module.parameters())
    out = {}
    for mode in modes:
        gc.collect()
        if _reset_peak():
            method, baseline = "VmHWM after clear_refs", _status_bytes("VmRSS")
        else:
            method, baseline = "ru_maxrss", _maxrss_bytes()
        for _ in range(CALLS):
            if mode == "forward":
                with torch.no_grad():
                    module(xs)
            else:
                ys = module(xs_grad)[0]
                torch.autograd.grad(ys.sum(), [xs_grad, *weights])
        peak = _status_bytes("VmHWM") if method != "ru_maxrss" else _maxrss_bytes()
        out[mode] = {"peak_delta": peak - baseline, "baseline": baseline, "method": method}
    return out


def measure(
    model: str, size: Size, threads: int | None = None, timeout_s: float = 300
) -> dict[str, dict[str, Any]]:
    """Runs ``probe`` (both modes) in a fresh interpreter with this process's environment
    (allocator settings included).

    Returns mode -> the probe's dict, or ``{"error": message}`` for each mode if it failed.
    """
    cmd = [sys.executable, "-m", "benchmarks.torch_memory", model, _size_arg(size)]
    if threads:
        cmd += ["--threads", str(threads)]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_REPO), env.get("PYTHONPATH")]))
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout_s, cwd=_REPO, env=env, check=False
        )
    except subprocess.TimeoutExpired:
        return {m: {"error": f"timed out after {timeout_s} s"} for m in MODES}
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or [f"exit {done.returncode}"]
        return {m: {"error": tail[0]} for m in MODES}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _size_arg(size: Size) -> str:
    return f"{size.batch},{size.time},{size.input},{size.hidden}"


def update_results(path: Path) -> None:
    """Re-probes torch's memory for every row of a saved ``<stem>.json`` and rewrites it and
    its markdown (for a run made without the probe, or with an older one). Refuses when this
    process's allocator settings differ from the run's."""
    from benchmarks import environment, report, run

    results = json.loads(path.read_text())
    if environment.allocator_settings()["env"] != results["environment"]["allocator"]["env"]:
        raise SystemExit(
            f"allocator settings differ from the run's: {results['environment']['allocator']}"
        )
    run.fill_torch_memory(results["rows"], results["config"].get("torch_threads"))
    note = "torch memory probed after the run with `python -m benchmarks.torch_memory --update`."
    notes = [n for n in results["notes"] if not n.startswith("torch memory")]
    results["notes"] = [*notes, note]
    report.write_results(results, path.parent, path.stem)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", choices=MODELS)
    parser.add_argument("size", nargs="?", type=Size.parse, help="batch,time,input,hidden")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--update", type=Path, help="a results JSON to fill in instead")
    args = parser.parse_args(argv)
    if args.update is not None:
        update_results(args.update)
        return
    if args.model is None or args.size is None:
        parser.error("give a model and a size, or --update PATH")
    print(json.dumps(probe(args.model, args.size, threads=args.threads)))


if __name__ == "__main__":
    main()
