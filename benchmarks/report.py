"""Writing results: the JSON (everything) and the markdown tables (what README quotes).

Ratios are ``contender median / ours median`` on the same row: above 1 means ours is faster.
The ceiling fraction is the contender's matmul flop rate (``workloads.flops``) over the
measured GFLOP/s of a 2048x2048 float32 ``jnp.dot``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

MIB = 1 << 20
MODE_TITLES = {
    "forward": "Forward (torch under `torch.no_grad()`)",
    "train": "Forward + backward (gradient of `sum(outputs)` wrt parameters and inputs)",
}


def write_results(results: dict[str, Any], out_dir: Path, stem: str) -> tuple[Path, Path]:
    """Writes ``<out_dir>/<stem>.json`` and ``<out_dir>/<stem>.md``; returns both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    json_path.write_text(json.dumps(results, indent=1, default=_jsonable) + "\n")
    md_path.write_text(markdown(results))
    return json_path, md_path


def _jsonable(x: Any) -> Any:
    if hasattr(x, "item"):
        return x.item()
    if isinstance(x, tuple | set):
        return list(x)
    return str(x)


def _ms(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:.3g}" if x < 100 else f"{x:.0f}"


def _ratio(x: float | None) -> str:
    return "—" if x is None or math.isnan(x) else f"{x:.2f}"


def _pct(x: float | None) -> str:
    return "—" if x is None or math.isnan(x) else f"{100 * x:.0f} %"


def _mib(x: int | None) -> str:
    return "—" if x is None else f"{x / MIB:.1f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def _peer_names(rows: list[dict[str, Any]]) -> list[str]:
    names: list[str] = []
    for row in rows:
        for name, c in row["contenders"].items():
            if c["framework"] != "lstm_jax" and name not in names:
                names.append(name)
    return names


def _main_table(rows: list[dict[str, Any]], mode: str) -> list[str]:
    peers = _peer_names(rows)
    header = ["model", "size", "ours ms", *(f"{p} ms" for p in peers)]
    header += [f"{p}/ours" for p in peers] + [f"{p}/ours (min)" for p in peers]
    header += ["ours % ceiling", *(f"{p} % ceiling" for p in peers)]
    body = []
    for row in rows:
        if row["mode"] != mode:
            continue
        cs = row["contenders"]
        ours = cs.get("ours", {})
        line = [row["model"], row["size_label"], _ms(ours.get("median_ms"))]
        line += [_ms(cs.get(p, {}).get("median_ms")) for p in peers]
        line += [f"**{_ratio(cs.get(p, {}).get('ratio_vs_ours'))}**" for p in peers]
        line += [_ratio(cs.get(p, {}).get("min_ratio_vs_ours")) for p in peers]
        line += [_pct(c.get("ceiling_fraction")) for c in [ours, *(cs.get(p, {}) for p in peers)]]
        body.append(line)
    return _table(header, body)


def _cost_table(rows: list[dict[str, Any]]) -> list[str]:
    peers = [p for p in _peer_names(rows) if p != "torch"]
    has_torch = "torch" in _peer_names(rows)
    header = ["model", "size", "mode", "ours compile s", *(f"{p} compile s" for p in peers)]
    header += ["ours XLA MiB", *(f"{p} XLA MiB" for p in peers)]
    header += ["torch Δpeak RSS MiB"] if has_torch else []
    body = []
    for row in rows:
        cs = row["contenders"]
        names = ["ours", *peers]
        line = [row["model"], row["size_label"], row["mode"]]
        line += [_ms(cs.get(n, {}).get("compile_s")) for n in names]
        line += [_mib((cs.get(n, {}).get("memory") or {}).get("temp_plus_output")) for n in names]
        if has_torch:
            mem = cs.get("torch", {}).get("memory") or {}
            line.append(_mib(mem.get("peak_delta")))
        body.append(line)
    return _table(header, body)


def _variant_table(rows: list[dict[str, Any]]) -> list[str]:
    header = ["model", "size", "mode", "ours (default) ms", "variant", "variant ms", "variant/ours"]
    header.append("(min)")
    body = []
    for row in rows:
        cs = row["contenders"]
        for name, c in cs.items():
            if c["framework"] != "lstm_jax" or name == "ours":
                continue
            body.append(
                [
                    row["model"],
                    row["size_label"],
                    row["mode"],
                    _ms(cs.get("ours", {}).get("median_ms")),
                    name.removeprefix("ours"),
                    _ms(c["median_ms"]),
                    f"**{_ratio(c.get('ratio_vs_ours'))}**",
                    _ratio(c.get("min_ratio_vs_ours")),
                ]
            )
    return _table(header, body) if body else []


def _torch_gflops(ceiling: dict[str, Any]) -> float:
    values = [ceiling.get(k, {}).get("torch_gflops") for k in ("start", "end")]
    return max((v for v in values if v), default=math.nan)


def markdown(results: dict[str, Any]) -> str:
    env = results["environment"]
    alloc = env["allocator"]
    ceiling = results["ceiling"]
    v = env["versions"]
    lines = [
        f"# lstm_jax vs Flax and PyTorch on CPU ({env['date'][:10]})",
        "",
        f"Command: `{results['command']}`",
        "",
        f"- CPU: {env['cpu_model']} ({', '.join(env['cpu_flags'])}), {env['cores']} cores; "
        f"torch threads: {env.get('torch_threads')}",
        f"- jax {v.get('jax')} (jaxlib {v.get('jaxlib')}), flax {v.get('flax')}, "
        f"torch {v.get('torch')}, numpy {v.get('numpy')}, python {env['python']}",
        f"- allocator: {alloc['label']}, {alloc['glibc']}",
        f"- load average (1, 5, 15 min) at start {env.get('load_average_start')}, "
        f"at end {env.get('load_average_end')}",
        f"- matmul ceiling: {ceiling['gflops']:.0f} GFLOP/s ({ceiling['n']}x{ceiling['n']} "
        f"float32 `jnp.dot`, the better of start and end; torch.mm {_torch_gflops(ceiling):.0f} "
        "GFLOP/s)",
        f"- timing: {results['config']['timing']}",
        "",
    ]
    lines += [f"> {note}" for note in results.get("notes", [])]
    lines += [
        "",
        "Medians in ms. Ratios are peer/ours: above 1 means ours is faster; `(min)` is the "
        "ratio of the fastest repetitions, less sensitive to load from other processes.",
        "",
    ]
    rows = results["rows"]
    for mode in ("forward", "train"):
        if any(r["mode"] == mode for r in rows):
            lines += [f"## {MODE_TITLES[mode]}", "", *_main_table(rows, mode), ""]
    if rows:
        lines += [
            "## Compile time and memory",
            "",
            "Compile: `jax.jit(f).lower(...).compile()` wall time. XLA MiB: "
            "`memory_analysis()` temp + output. torch Δpeak RSS: peak resident-memory growth "
            "over 3 calls in a fresh process (an OS view, allocator slack included; not "
            "comparable with XLA's).",
            "",
            *_cost_table(rows),
            "",
        ]
    variants = _variant_table(rows)
    if variants:
        lines += [
            "## Variants of ours",
            "",
            'Another `impl` than the default (`impl="auto"`); the results are the same, '
            "variant/ours below 1 means the variant is faster. `auto` resolves to: "
            + "; ".join(sorted({str(r["defaults"]) for r in rows})),
            "",
            *variants,
            "",
        ]
    worst = results.get("max_disagreement")
    if worst is not None:
        lines += [
            f"All contenders agree with ours: largest relative difference of outputs, input "
            f"and parameter gradients {worst:.1e} (same weights loaded into every peer).",
            "",
        ]
    return "\n".join(lines)
