"""The core before and after the ``impl=`` rewrite, side by side: speed and XLA memory.

Old is the tree at a commit before the rewrite, new one after it (each a ``git worktree``, or
this tree when ``--new-root`` is left out), each imported in its own process with its path
first on ``sys.path``. Processes alternate old, new, old, new
so that drifting load hits both alike. In each process the contenders of one side are timed
interleaved (``timing.time_interleaved``) on the workloads of ``workloads.make_workload``:

* old: ``custom_vjp=True`` (its default: the custom VJP) and ``custom_vjp=False`` (autodiff of
  the scan);
* new: ``impl="auto"`` (the default; ``"split"`` on CPU) and ``"scan"``.

Within one process the ratios are side by side; between old and new they are across processes
(medians over the rounds), so trust large differences only.

    git worktree add /tmp/bench_old 480e499; git worktree add --detach /tmp/bench_new HEAD
    python -m benchmarks.old_vs_new --old-root /tmp/bench_old --new-root /tmp/bench_new \\
        --rounds 2 --out benchmarks/results/2026-12-01-cpu-impl
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

# Imported before the old tree goes first on sys.path: the harness is always this tree's.
from benchmarks import environment, timing
from benchmarks.contender import jax_contender
from benchmarks.workloads import Size, make_workload

WORKLOADS = (
    ("lstm", Size(32, 128, 128, 256)),
    ("lstm", Size(128, 64, 256, 512)),
    ("lstm", Size(1, 512, 64, 128)),
    ("gru", Size(32, 128, 128, 256)),
    ("bilstm", Size(32, 128, 128, 256)),
)
QUICK_WORKLOADS = tuple((m, Size(2, 5, 3, 4)) for m in ("lstm", "gru", "bilstm"))
PLAN = timing.TimingPlan(warmup=2, min_reps=5, max_reps=10, target_s=0.5)
MIB = 1 << 20


def _options(side: str) -> dict[str, dict[str, Any]]:
    if side == "old":
        return {"old custom_vjp": {}, "old autodiff": {"custom_vjp": False}}
    return {"new auto": {}, "new scan": {"impl": "scan"}}


def worker(side: str, root: str | None, quick: bool = False) -> dict[str, Any]:
    """Times ``side``'s contenders on every workload in this process."""
    if root:
        sys.path.insert(0, root)
    import jax

    import lstm_jax

    where = str(Path(lstm_jax.__file__).resolve().parent.parent)
    if root and where != str(Path(root).resolve()):
        raise RuntimeError(f"imported lstm_jax from {where}, not {root}")
    # make_workload names the cells by their new class names; the old tree has the factories.
    if not hasattr(lstm_jax, "LSTMCell"):
        lstm_jax.LSTMCell, lstm_jax.GRUCell = lstm_jax.lstm, lstm_jax.gru
    rows = []
    plan = timing.TimingPlan(warmup=1, min_reps=1, max_reps=2, target_s=0.0) if quick else PLAN
    for model, size in QUICK_WORKLOADS if quick else WORKLOADS:
        w = make_workload(model, size)
        contenders = []
        for name, opts in _options(side).items():
            run = lstm_jax.bidirectional if model == "bilstm" else lstm_jax.unroll

            def forward(p, x, run=run, opts=opts, cell=w.cell):
                return run(cell, p, x, **opts)[1]

            contenders.append(
                jax_contender(
                    name, "lstm_jax", {}, forward, w.params, jax.numpy.asarray(w.xs), list
                )
            )
        for mode in ("forward", "train"):
            stats = timing.time_interleaved({c.name: c.calls[mode] for c in contenders}, plan)
            for c in contenders:
                rows.append(
                    dict(
                        model=model,
                        size=size.label,
                        mode=mode,
                        contender=c.name,
                        median_ms=stats[c.name]["median_ms"],
                        min_ms=stats[c.name]["min_ms"],
                        temp_bytes=(c.memory[mode] or {}).get("temp"),
                    )
                )
            line = ", ".join(f"{n} {s['median_ms']:.3g}" for n, s in stats.items())
            print(f"  {side} {model} {size.label} {mode}: {line} ms", file=sys.stderr, flush=True)
        del contenders
    return dict(side=side, lstm_jax=where, load=environment.load_average(), rows=rows)


def _run_worker(side: str, root: str | None, quick: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "out.json"
        cmd = [sys.executable, "-m", "benchmarks.old_vs_new", "--worker", side, "--json", str(path)]
        cmd += [f"--{side}-root", root] if root else []
        cmd += ["--quick"] if quick else []
        subprocess.run(cmd, check=True, cwd=Path(__file__).resolve().parent.parent)
        return json.loads(path.read_text())


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def markdown(runs: list[dict[str, Any]], command: str, load_start: Any) -> str:
    """Medians over rounds of each (workload, mode, contender), ratios to new auto."""
    table: dict[tuple[str, str, str], dict[str, list[float]]] = {}
    names: list[str] = []
    for run in runs:
        for r in run["rows"]:
            key = (r["model"], r["size"], r["mode"])
            table.setdefault(key, {}).setdefault(r["contender"], []).append(r["median_ms"])
            table[key].setdefault(r["contender"] + " temp", []).append(r["temp_bytes"] or 0)
            if r["contender"] not in names:
                names.append(r["contender"])
    env = environment.environment()
    lines = [
        f"# Old core (custom VJP) vs new core (impl=) on CPU ({env['date'][:10]})",
        "",
        f"Command: `{command}`",
        "",
        f"- CPU: {env['cpu_model']}, {env['cores']} cores; jax {env['versions'].get('jax')}",
        f"- load average at start {load_start}, per process: "
        + "; ".join(f"{r['side']} {r['load']}" for r in runs),
        f"- processes in order: {', '.join(r['side'] for r in runs)}; timing {PLAN}",
        "- ms: median over processes of each process's median; `x auto`: that over new auto's "
        "(above 1: new auto is faster). MiB: `memory_analysis().temp_size_in_bytes` of the "
        "compiled executable (the same in every process).",
        "",
    ]
    for mode, title in (("forward", "Forward"), ("train", "Forward + backward (jitted grad)")):
        header = ["model", "size"]
        for n in names:
            header += [f"{n} ms"] + ([] if n == "new auto" else [f"{n} x auto"])
        header += [f"{n} MiB" for n in names]
        lines += [f"## {title}", "", "| " + " | ".join(header) + " |"]
        lines.append("|" + "---|" * len(header))
        for (model, size, m), by in table.items():
            if m != mode:
                continue
            auto = _median(by.get("new auto", []))
            cells = [model, size]
            for n in names:
                ms = _median(by.get(n, []))
                cells.append(f"{ms:.3g}")
                if n != "new auto":
                    cells.append(f"{ms / auto:.2f}")
            cells += [f"{_median(by.get(n + ' temp', [])) / MIB:.1f}" for n in names]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Every process (median ms)", ""]
    header = ["model", "size", "mode", "contender"]
    header += [f"{i + 1}: {r['side']}, load {r['load'][0]}" for i, r in enumerate(runs)]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    keys = list(
        dict.fromkeys(
            (r["model"], r["size"], r["mode"], r["contender"]) for run in runs for r in run["rows"]
        )
    )
    for key in keys:
        cells = list(key)
        for run in runs:
            got = [
                r["median_ms"]
                for r in run["rows"]
                if (r["model"], r["size"], r["mode"], r["contender"]) == key
            ]
            cells.append(f"{got[0]:.3g}" if got else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--old-root", default=None, help="the old tree (a git worktree)")
    p.add_argument("--new-root", default=None, help="the new tree (default: this one)")
    p.add_argument("--rounds", type=int, default=2, help="old/new process pairs")
    p.add_argument("--out", default=None, help="output stem: writes <stem>.json and <stem>.md")
    p.add_argument("--quick", action="store_true", help="tiny sizes, one rep (a smoke test)")
    p.add_argument("--worker", choices=("old", "new"), default=None, help=argparse.SUPPRESS)
    p.add_argument("--json", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        result = worker(a.worker, a.old_root if a.worker == "old" else a.new_root, a.quick)
        Path(a.json).write_text(json.dumps(result))
        return
    if not a.old_root or not Path(a.old_root, "lstm_jax").is_dir():
        p.error("--old-root must name a tree holding lstm_jax/")
    command = "python -m benchmarks.old_vs_new " + " ".join(argv or sys.argv[1:])
    load_start = environment.load_average()
    runs = []
    for _ in range(a.rounds):
        for side in ("old", "new"):
            runs.append(_run_worker(side, a.old_root if side == "old" else a.new_root, a.quick))
            text = markdown(runs, command, load_start)
            if a.out:  # after every process, so that a failure keeps what was measured
                Path(a.out + ".json").write_text(json.dumps(runs, indent=1) + "\n")
                Path(a.out + ".md").write_text(text)
    print(text)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "default")
    main()
