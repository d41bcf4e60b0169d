"""Rendering of benchmark results: Rich tables on stdout, JSON on disk."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console()
MiB = 1 << 20


def write_json(path: Path, doc: dict[str, Any]) -> None:
    """Write the result document atomically (temp + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def fmt(key: str, value: float | None) -> str:
    """A figure with its unit, from the suffix of its key."""
    if value is None:
        return "-"
    if key.endswith("_s"):
        return f"{value:.2f} s"
    if "bytes" in key:
        return f"{value / MiB:.1f} MiB" if value >= MiB else f"{value / 1024:.1f} KiB"
    if key.endswith("Bps"):
        return f"{value / 1e6:.0f} MB/s"
    return f"{value:g}"


def show(doc: dict[str, Any]) -> None:
    """Print the figures, the ratios, the floor and the limits."""
    m = doc["machine"]
    console.print(f"\n[bold]machine[/bold]: {m['cores']} cores, {m['cpu']}, "
                  f"{m['memory_bytes'] / 2**30:.0f} GiB, {m['os']}, Python {m['python']}")
    for name, v in doc["versions"].items():
        console.print(f"  {name}: {v}")
    w = doc["workload"]
    console.print(f"[bold]workload[/bold]: scale {doc['scale']:g}, "
                  f"{w['total_bytes'] / MiB:.1f} MiB in {w['files']} files; "
                  f"median of {doc['runs']} run(s), {doc['days']} days")
    results: dict[str, dict[str, float]] = doc["results"]
    if results:
        tools = list(results)
        t = Table(title="figures (median)")
        t.add_column("figure")
        for name in tools:
            t.add_column(name, justify="right")
        for key in results[tools[0]]:
            t.add_row(key, *(fmt(key, results[n].get(key)) for n in tools))
        console.print(t)
    if doc["ratios"]:
        keys = list(doc["ratios"])
        t = Table(title="ratios deltavault / other (below 1 is better for deltavault)")
        t.add_column("figure")
        for k in keys:
            t.add_column(k, justify="right")
        for fig in next(iter(doc["ratios"].values())):
            t.add_row(fig, *(_ratio(doc["ratios"][k].get(fig)) for k in keys))
        console.print(t)
    if doc.get("floor"):
        _show_floor(doc["floor"], results)
    t = Table(title="machine limits on the same bytes (median)")
    t.add_column("figure")
    t.add_column("value", justify="right")
    for k, v in doc["limits"].items():
        t.add_row(k, fmt(k, v))
    console.print(t)


def _ratio(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}x"


def _show_floor(fl: dict[str, Any], results: dict[str, dict[str, float]]) -> None:
    t = Table(title=f"day-1 change: floor per part (zstd -{fl['zstd_level']})")
    for col in ("part", "files", "changed file bytes", "floor", "winning estimators"):
        t.add_column(col, justify="left" if col == "part" else "right")
    for part, p in fl["parts"].items():
        wins = ", ".join(f"{k[5:]}×{v}" for k, v in p.items() if k.startswith("best_"))
        t.add_row(part, str(p["files"]), fmt("bytes", p["new_bytes"]),
                  fmt("bytes", p["floor_bytes"]), wins)
    t.add_row("total", "", fmt("bytes", fl["total_changed_file_bytes"]),
              fmt("bytes", fl["total_floor_bytes"]), "")
    console.print(t)
    for name, figs in results.items():
        if "day1_bytes_added" in figs:
            console.print(f"  {name}: day-1 added {fmt('bytes', figs['day1_bytes_added'])} "
                          f"= {figs['day1_bytes_added'] / max(1, fl['total_floor_bytes']):.1f}x "
                          f"the floor")


def to_markdown(doc: dict[str, Any]) -> str:
    """The figures of a result document as a Markdown table (for docs/benchmark.md)."""
    m = doc["machine"]
    results: dict[str, dict[str, float]] = doc["results"]
    tools = list(results)
    lines = [
        f"Scale {doc['scale']:g} ({doc['workload']['total_bytes'] / MiB:.0f} MiB, "
        f"{doc['workload']['files']} files), median of {doc['runs']} run(s), {doc['date']}; "
        f"{m['cores']} cores, {m['cpu']}, {m['memory_bytes'] / 2**30:.0f} GiB, {m['os']}; "
        + "; ".join(f"{k}: {v}" for k, v in doc["versions"].items() if "-" not in k) + ".",
        "",
        "| figure | " + " | ".join(tools) + " |",
        "|---|" + "---:|" * len(tools),
    ]
    for key in results[tools[0]] if tools else []:
        lines.append(f"| {key} | " + " | ".join(fmt(key, results[t].get(key)) for t in tools)
                     + " |")
    if doc.get("floor"):
        fl = doc["floor"]
        lines += ["", f"Day-1 floor (zstd -{fl['zstd_level']}):", "",
                  "| part | files | changed file bytes | floor | winning estimators |",
                  "|---|---:|---:|---:|---|"]
        for part, p in fl["parts"].items():
            wins = ", ".join(f"{k[5:]}×{v}" for k, v in p.items() if k.startswith("best_"))
            lines.append(f"| {part} | {p['files']} | {fmt('bytes', p['new_bytes'])} | "
                         f"{fmt('bytes', p['floor_bytes'])} | {wins} |")
        lines.append(f"| total | | {fmt('bytes', fl['total_changed_file_bytes'])} | "
                     f"{fmt('bytes', fl['total_floor_bytes'])} | |")
    lines += ["", "| machine limit | value |", "|---|---:|"]
    lines += [f"| {k} | {fmt(k, v)} |" for k, v in doc["limits"].items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import sys

    for arg in sys.argv[1:]:
        print(to_markdown(json.loads(Path(arg).read_text())))
