"""lstm_jax vs Flax and PyTorch on CPU: LSTM, GRU and BiLSTM, forward and forward+backward.

    python -m benchmarks.run [--quick] [--out DIR] [--variants all] [--malloc-tuned] [--tag T]

Everything runs in one process. For every (model, size): build the contenders (ours with
``impl="auto"``, the other implementations asked for with ``--variants``, Flax, torch) on the
same weights and input, check that they agree, then time each mode with the contenders
interleaved (``timing.py``). Afterwards torch's memory is probed in subprocesses and the matmul
ceiling is measured again. Results go to ``<out>/<date>-cpu[-quick][-malloc-tuned][-TAG]
.{json,md}``; see ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import environment, ours, peers, report, timing, torch_memory
from benchmarks.contender import Contender, agreement
from benchmarks.workloads import (
    FULL_SIZES,
    MODELS,
    MODES,
    QUICK_SIZES,
    Size,
    Workload,
    flops,
    make_workload,
)

RESULTS_DIR = Path(__file__).resolve().parent / "results"
# Relative differences above this between a contender and ours abort the run: the contenders
# would not be doing the same work.
AGREEMENT_TOLERANCE = 1e-3


@dataclasses.dataclass(frozen=True)
class Config:
    """What to run. ``sizes=None`` means the issue's three sizes (or their --quick versions)."""

    quick: bool = False
    out: Path = RESULTS_DIR
    models: tuple[str, ...] = MODELS
    sizes: tuple[Size, ...] | None = None
    modes: tuple[str, ...] = MODES
    peers: tuple[str, ...] = peers.PEERS
    variants: tuple[str, ...] = ()
    torch_memory: bool | None = None  # None: on, except under --quick
    check: bool = True
    threads: int | None = None  # torch's; None: os.cpu_count()
    plan: timing.TimingPlan | None = None  # None: by --quick
    ceiling_n: int = 2048
    tag: str = ""  # appended to the output file names
    command: str = "python -m benchmarks.run"

    def resolved_sizes(self) -> tuple[Size, ...]:
        if self.sizes is not None:
            return self.sizes
        return QUICK_SIZES if self.quick else FULL_SIZES

    def resolved_plan(self) -> timing.TimingPlan:
        if self.plan is not None:
            return self.plan
        if self.quick:
            return timing.TimingPlan(warmup=1, min_reps=3, max_reps=10, target_s=0.1)
        return timing.TimingPlan()

    def use_torch_memory(self) -> bool:
        if "torch" not in self.peers:
            return False
        return (not self.quick) if self.torch_memory is None else self.torch_memory


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def build_contenders(workload: Workload, config: Config) -> list[Contender]:
    """Ours, its variants, and the peers."""
    out = [ours.ours_contender(workload)]
    for options in ours.variant_options(workload, config.variants):
        out.append(ours.ours_contender(workload, options))
    out += [peers.peer_contender(p, workload) for p in config.peers]
    return out


def measure_row(
    workload: Workload,
    contenders: list[Contender],
    config: Config,
    keep_outputs: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Checks agreement, then times every mode; returns one result row per mode."""
    agree: dict[str, dict[str, float]] = {}
    if config.check:
        reference = contenders[0].outputs()
        outputs = {contenders[0].name: reference}
        for c in contenders[1:]:
            outputs[c.name] = c.outputs()
            agree[c.name] = agreement(reference, outputs[c.name])
            if max(agree[c.name].values()) > AGREEMENT_TOLERANCE:
                raise RuntimeError(
                    f"{c.name} disagrees with {contenders[0].name} on {workload.model} "
                    f"{workload.size.label}: relative differences {agree[c.name]}"
                )
        if keep_outputs is not None:
            keep_outputs[f"{workload.model} {workload.size.label}"] = outputs
    rows = []
    for mode in config.modes:
        stats = timing.time_interleaved(
            {c.name: c.calls[mode] for c in contenders}, config.resolved_plan()
        )
        rows.append(
            {
                "model": workload.model,
                "size": dataclasses.asdict(workload.size),
                "size_label": workload.size.label,
                "mode": mode,
                "flops": flops(workload.model, workload.size, mode),
                "defaults": ours.resolved_defaults(workload),
                "contenders": {
                    c.name: {
                        "framework": c.framework,
                        "options": c.options,
                        **stats[c.name],
                        "compile_s": c.compile_s[mode],
                        "memory": c.memory[mode],
                        "agreement": agree.get(c.name),
                    }
                    for c in contenders
                },
            }
        )
        summary = ", ".join(f"{n} {s['median_ms']:.3g}" for n, s in stats.items())
        _log(f"  {workload.model} {workload.size.label} {mode}: {summary} (ms)")
    return rows


def fill_torch_memory(rows: list[dict[str, Any]], threads: int | None) -> None:
    """Probes torch's memory (one subprocess per model and size) into the rows' torch entries."""
    probes: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        if "torch" in row["contenders"]:
            key = (row["model"], row["size_label"])
            if key not in probes:
                probes[key] = torch_memory.measure(row["model"], Size(**row["size"]), threads)
            row["contenders"]["torch"]["memory"] = probes[key].get(row["mode"])


def _finish_row(row: dict[str, Any], gflops: float, reference: str | None) -> None:
    """Adds ratios to ``reference`` and ceiling fractions to every contender of a row."""
    cs = row["contenders"]
    ref = cs.get(reference, {}) if reference else {}
    for c in cs.values():
        # The ratio of minima is the load-robust companion of the ratio of medians: on a
        # shared machine the fastest repetition is the one least disturbed.
        c["ratio_vs_ours"] = c["median_ms"] / ref["median_ms"] if ref else None
        c["min_ratio_vs_ours"] = c["min_ms"] / ref["min_ms"] if ref else None
        c["ceiling_fraction"] = row["flops"] / (c["median_ms"] * 1e-3) / (gflops * 1e9)


def run_suite(config: Config, keep_outputs: dict[str, Any] | None = None) -> dict[str, Any]:
    """Runs the benchmarks of ``config`` and returns the results (see ``report.py``).

    ``keep_outputs``, if given, receives every contender's outputs per (model, size), for tests.
    """
    torch_threads = peers.configure_torch(config.threads) if "torch" in config.peers else None
    env = environment.environment()
    plan = config.resolved_plan()
    _log(f"environment: {env['cpu_model']}, {env['cores']} cores, load {env['load_average_start']}")
    ceiling_start = timing.matmul_ceiling(config.ceiling_n, reps=3 if config.quick else 10)
    _log(f"matmul ceiling: {ceiling_start['jax_gflops']:.0f} GFLOP/s (jnp.dot)")

    rows: list[dict[str, Any]] = []
    for model in config.models:
        for size in config.resolved_sizes():
            workload = make_workload(model, size)
            start = time.perf_counter()
            contenders = build_contenders(workload, config)
            _log(f"{model} {size.label}: built in {time.perf_counter() - start:.1f} s")
            rows += measure_row(workload, contenders, config, keep_outputs)
            del contenders
            gc.collect()

    notes = [
        "torch's forward runs under `torch.no_grad()`; its forward+backward uses autograd "
        "(`torch.autograd.grad`).",
        "Ours and Flax: ahead-of-time compiled `jax.jit` executables, timed with "
        "`jax.block_until_ready`; all contenders interleaved round-robin in one process "
        f"after warm-up ({plan.warmup} calls each).",
    ]
    if config.use_torch_memory():
        fill_torch_memory(rows, torch_threads)
    elif "torch" in config.peers:
        notes.append(
            "torch memory not measured (pass --torch-memory; it is off under --quick: one "
            "subprocess per row)."
        )

    ceiling_end = timing.matmul_ceiling(config.ceiling_n, reps=3 if config.quick else 10)
    # The better of the two measurements: load from other processes only ever lowers it.
    gflops = max(ceiling_start["jax_gflops"], ceiling_end["jax_gflops"])
    for row in rows:
        _finish_row(row, gflops, "ours")

    env["load_average_end"] = environment.load_average()
    cores = env["cores"] or 1
    loads = [(env["load_average_start"] or [0])[0], (env["load_average_end"] or [0])[0]]
    if max(loads) > 0.5 * cores:
        notes.append(
            f"The machine was busy: 1-minute load average {loads[0]} at start and {loads[1]} at "
            f"end on {cores} cores. Timings are noisy; trust the ratios of interleaved "
            "contenders more than absolute times."
        )
    diffs = [
        v
        for row in rows
        for c in row["contenders"].values()
        if c.get("agreement")
        for v in c["agreement"].values()
    ]
    return {
        "command": config.command,
        "config": {
            "quick": config.quick,
            "models": list(config.models),
            "sizes": [dataclasses.asdict(s) for s in config.resolved_sizes()],
            "modes": list(config.modes),
            "peers": list(config.peers),
            "variants": list(config.variants),
            "tag": config.tag,
            "timing": dataclasses.asdict(plan),
            "torch_threads": torch_threads,
        },
        "environment": env,
        "ceiling": {
            "n": config.ceiling_n,
            "gflops": gflops,
            "torch_gflops": max(
                (c.get("torch_gflops") or 0.0 for c in (ceiling_start, ceiling_end)),
                default=None,
            ),
            "start": ceiling_start,
            "end": ceiling_end,
        },
        "rows": rows,
        "max_disagreement": max(diffs) if diffs else None,
        "notes": notes,
    }


def output_stem(results: dict[str, Any]) -> str:
    """``<date>-cpu`` plus ``-quick``, ``-malloc-tuned``, ``-<tag>``: runs of one day with
    different settings do not overwrite each other."""
    stem = results["environment"]["date"][:10] + "-cpu"
    if results["config"]["quick"]:
        stem += "-quick"
    if results["environment"]["allocator"]["tuned"]:
        stem += "-malloc-tuned"
    if results["config"].get("tag"):
        stem += "-" + results["config"]["tag"]
    return stem


def _csv(choices: tuple[str, ...], name: str):
    def parse(text: str) -> tuple[str, ...]:
        items = tuple(t for t in text.split(",") if t)
        if items == ("all",):
            return choices
        if items == ("none",):
            return ()
        bad = [t for t in items if t not in choices]
        if bad:
            raise argparse.ArgumentTypeError(
                f"{name} must be a comma-separated subset of {choices} (or all, none), got {bad}"
            )
        return items

    return parse


def parse_args(argv: list[str]) -> tuple[Config, bool]:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--quick", action="store_true", help="small sizes and few reps (~1 minute)")
    p.add_argument("--out", type=Path, default=RESULTS_DIR, help="results directory")
    p.add_argument(
        "--models",
        type=_csv(MODELS, "--models"),
        default=MODELS,
        help="comma-separated subset of " + ",".join(MODELS),
    )
    p.add_argument(
        "--sizes",
        type=lambda s: tuple(Size.parse(t) for t in s.split(";") if t.strip()),
        default=None,
        help="';'-separated 'batch,time,input,hidden' (default: the issue's three sizes)",
    )
    p.add_argument("--modes", type=_csv(MODES, "--modes"), default=MODES)
    p.add_argument("--peers", type=_csv(peers.PEERS, "--peers"), default=peers.PEERS)
    p.add_argument(
        "--variants",
        type=_csv(ours.VARIANT_KINDS, "--variants"),
        default=(),
        help="extra rows of ours, one per other impl: scan, split, chunked, hoist "
        "(Split(hoist=True)); or all. The one impl='auto' picks is ours itself",
    )
    p.add_argument(
        "--malloc-tuned",
        action="store_true",
        help="re-execute with large glibc MALLOC_TRIM_THRESHOLD_/MALLOC_MMAP_THRESHOLD_ "
        f"({environment.TUNED_MALLOC})",
    )
    p.add_argument(
        "--torch-memory",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="probe torch's peak memory in subprocesses (default: on, off under --quick)",
    )
    p.add_argument(
        "--tag",
        default="",
        type=lambda t: "".join(c if c.isalnum() or c in "-_" else "-" for c in t),
        help="suffix for the output file names",
    )
    p.add_argument("--no-check", dest="check", action="store_false", help="skip agreement checks")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--min-reps", type=int, default=None)
    p.add_argument("--max-reps", type=int, default=None)
    p.add_argument("--target-s", type=float, default=None, help="seconds per contender and row")
    p.add_argument("--gap-ms", type=float, default=None, help="untimed sleep between calls")
    a = p.parse_args(argv)
    config = Config(
        quick=a.quick,
        out=a.out,
        models=a.models,
        sizes=a.sizes,
        modes=a.modes,
        peers=a.peers,
        variants=a.variants,
        torch_memory=a.torch_memory,
        check=a.check,
        threads=a.threads,
        tag=a.tag,
        command=shlex.join(["python", "-m", "benchmarks.run", *argv]),
    )
    overrides = {
        "warmup": a.warmup,
        "min_reps": a.min_reps,
        "max_reps": a.max_reps,
        "target_s": a.target_s,
        "gap_s": None if a.gap_ms is None else a.gap_ms / 1e3,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if overrides:
        plan = dataclasses.replace(config.resolved_plan(), **overrides)
        config = dataclasses.replace(config, plan=plan)
    return config, a.malloc_tuned


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    config, malloc_tuned = parse_args(argv)
    if malloc_tuned:
        environment.reexec_with_tuned_malloc("benchmarks.run", argv)
    results = run_suite(config)
    json_path, md_path = report.write_results(results, config.out, output_stem(results))
    print(md_path.read_text())
    _log(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()
