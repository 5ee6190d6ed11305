"""Runs one experiment for every cell and seed (and optionally every value of one option) and
writes a markdown table and a plot of the summary metrics.

    python -m experiments.compare_cells --experiment adding_problem \\
        --cells simple_rnn lstm peephole_lstm cifg_lstm gru --seeds 0 1 2 --steps 3000 \\
        --sweep seq-len=50,100,200,400 --out runs/compare_adding -- --schedule cosine --lr 2e-3

The README's adding-problem table at T=100, every cell of ``common.CELLS`` (the cells from
issue 14 included: lstmp, layer_norm_lstm, layer_norm_gru, mgu, min_gru, min_lstm, slstm), one
seed each (an interrupted comparison resumes: finished runs are not retrained)::

    python -m experiments.compare_cells --experiment adding_problem --steps 3000 --seeds 0 \\
        --sweep seq-len=100 --out runs/compare_adding

Arguments after ``--`` go to every run unchanged. Each run writes its own directory
``<out>/<sweep value>/<cell>/seed<S>`` (an existing finished run is resumed from its final
checkpoint, not retrained); the comparison writes ``<out>/results.md``, ``<out>/results.json``
and ``<out>/compare.png``. Table cells are the mean ± standard deviation over seeds.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import statistics
import sys
from collections.abc import Sequence
from typing import Any

from experiments import common

EXPERIMENTS = ("adding_problem", "copy_task", "lookahead_tagging")


# ---- configuration ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Config:
    experiment: str = "adding_problem"
    cells: tuple[str, ...] = common.CELLS
    seeds: tuple[int, ...] = (0, 1, 2)
    steps: int = 2000
    out: str = "runs/compare"
    sweep_name: str | None = None
    sweep_values: tuple[str, ...] = ("",)
    extra: tuple[str, ...] = ()


def parse_args(argv: Sequence[str] | None) -> Config:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        extra, argv = argv[argv.index("--") + 1 :], argv[: argv.index("--")]
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--experiment", choices=EXPERIMENTS, default="adding_problem")
    p.add_argument("--cells", nargs="+", choices=common.CELLS, default=list(common.CELLS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=2000, help="optimiser steps per run")
    p.add_argument("--out", default="runs/compare", help="output directory")
    p.add_argument(
        "--sweep",
        default=None,
        help="one option of the experiment and its values, e.g. seq-len=50,100,200,400",
    )
    args = p.parse_args(argv)
    name, values = None, ("",)
    if args.sweep is not None:
        if "=" not in args.sweep:
            raise ValueError(f"--sweep must look like NAME=V1,V2,..., got {args.sweep!r}")
        name, _, raw = args.sweep.partition("=")
        values = tuple(v for v in raw.split(",") if v)
        if not values:
            raise ValueError(f"--sweep needs at least one value, got {args.sweep!r}")
    if args.steps < 1:
        raise ValueError(f"--steps must be >= 1, got {args.steps}")
    return Config(
        experiment=args.experiment,
        cells=tuple(args.cells),
        seeds=tuple(args.seeds),
        steps=args.steps,
        out=args.out,
        sweep_name=name,
        sweep_values=values,
        extra=tuple(extra),
    )


# ---- runs ---------------------------------------------------------------------------------


def run_dir(config: Config, value: str, cell: str, seed: int) -> str:
    parts = [config.out] + ([f"{config.sweep_name}{value}"] if config.sweep_name else [])
    return os.path.join(*parts, cell, f"seed{seed}")


def run_all(config: Config, module: Any) -> list[dict[str, Any]]:
    rows = []
    for value in config.sweep_values:
        for cell in config.cells:
            for seed in config.seeds:
                out = run_dir(config, value, cell, seed)
                argv = ["--cell", cell, "--seed", str(seed), "--steps", str(config.steps)]
                argv += ["--out", out, *config.extra]
                if config.sweep_name:
                    argv += [f"--{config.sweep_name}", value]
                metrics = module.main(argv)
                rows.append({"sweep": value, "cell": cell, "seed": seed, **metrics})
    return rows


# ---- results ------------------------------------------------------------------------------


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    mean = statistics.fmean(values)
    return mean, statistics.stdev(values) if len(values) > 1 else 0.0


def summarise(config: Config, rows: list[dict[str, Any]], metric_names: Sequence[str]):
    """``{(sweep value, cell): {metric: (mean, std)}}`` over seeds."""
    table = {}
    for value in config.sweep_values:
        for cell in config.cells:
            group = [r for r in rows if r["sweep"] == value and r["cell"] == cell]
            table[(value, cell)] = {m: mean_std([float(r[m]) for r in group]) for m in metric_names}
    return table


def markdown_table(config: Config, table, metric_names: Sequence[str]) -> str:
    """One row per cell; one column per (sweep value, metric)."""
    columns = [(v, m) for v in config.sweep_values for m in metric_names]
    label = lambda v, m: f"{config.sweep_name}={v} {m}" if config.sweep_name else m
    lines = [
        "| cell | " + " | ".join(label(v, m) for v, m in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for cell in config.cells:
        cells = [f"{table[(v, cell)][m][0]:.4f} ± {table[(v, cell)][m][1]:.4f}" for v, m in columns]
        lines.append(f"| {cell} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(config: Config, table, metric_names: Sequence[str], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1, len(metric_names), figsize=(5 * len(metric_names), 3.6), squeeze=False
    )
    xs = list(range(len(config.sweep_values)))
    for ax, m in zip(axes[0], metric_names, strict=True):
        for cell in config.cells:
            means = [table[(v, cell)][m][0] for v in config.sweep_values]
            stds = [table[(v, cell)][m][1] for v in config.sweep_values]
            ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, label=cell)
        ax.set_xticks(xs, [v or "-" for v in config.sweep_values])
        ax.set_xlabel(config.sweep_name or "")
        ax.set_ylabel(m)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{config.experiment}: mean ± std over seeds {list(config.seeds)}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> str:
    config = parse_args(argv)
    module = importlib.import_module(f"experiments.{config.experiment}")
    metric_names = module.SUMMARY_METRICS
    rows = run_all(config, module)
    table = summarise(config, rows, metric_names)
    md = markdown_table(config, table, metric_names)
    command = "python -m experiments.compare_cells " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    os.makedirs(config.out, exist_ok=True)
    with open(os.path.join(config.out, "results.md"), "w") as f:
        f.write(f"{config.experiment}, {config.steps} steps, seeds {list(config.seeds)}\n\n")
        f.write(f"```\n{command}\n```\n\n{md}\n")
    with open(os.path.join(config.out, "results.json"), "w") as f:
        json.dump({"config": dataclasses.asdict(config), "runs": rows}, f, indent=2)
    plot(config, table, metric_names, os.path.join(config.out, "compare.png"))
    print(md)
    return md


if __name__ == "__main__":
    main(sys.argv[1:])
