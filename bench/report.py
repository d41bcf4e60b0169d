"""Rendering of benchmark results: Rich tables on stdout, JSON and Markdown on disk.

``python bench/report.py FILE.json ...`` prints result documents (of run.py or
scale.py) as Markdown; ``python bench/report.py --headline FILE.json ...`` prints
the headline figures of several workloads as one compact table each.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import targets as target_mod
from rich.console import Console
from rich.table import Table

console = Console()
MiB = 1 << 20
Section = tuple[str, list[str], list[list[str]]]  # title, header, rows


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
    if key.endswith("_util"):
        return f"{value:.2f}"
    if key.endswith("_s"):
        return f"{value:.3f} s" if value < 1 else f"{value:.2f} s"
    if "bytes" in key and "per" not in key:
        if abs(value) >= MiB:
            return f"{value / MiB:.1f} MiB"
        return f"{value / 1024:.1f} KiB"
    if key.endswith("Bps"):
        return f"{value / 1e6:.0f} MB/s"
    if key.endswith("per_s"):
        return f"{value:,.0f}/s"
    return f"{value:,.4g}" if isinstance(value, float) else f"{value:,}"


def machine_line(doc: dict[str, Any]) -> str:
    """Machine, tool versions and load average of a result document."""
    m = doc["machine"]
    load = doc.get("load_average") or {}
    loads = ", ".join(f"{k} {v[0]:.2f}" for k, v in load.items())
    vers = doc.get("versions", {})
    ours = next((k for k in vers if k.startswith("deltavault")), None)
    versions = "; ".join(f"{k.split('-')[0]}: {v}" for k, v in vers.items()
                         if k in ("restic", "borg") or k == ours)
    return (f"{m['cores']} cores, {m['cpu']}, {m['memory_bytes'] / 2**30:.0f} GiB, {m['os']}, "
            f"Python {m['python']}; load average (1 min) {loads or 'not recorded'}"
            + (f"; {versions}" if versions else ""))


def sections(doc: dict[str, Any]) -> list[Section]:
    """The tables of a workload result document, for both renderers."""
    out: list[Section] = []
    results: dict[str, dict[str, float]] = doc["results"]
    tools = list(results)
    if tools:
        keys: list[str] = []
        for figs in results.values():
            keys += [k for k in figs if k not in keys]
        out.append((f"figures (median of {doc['runs']})", ["figure", *tools],
                    [[k, *(fmt(k, results[t].get(k)) for t in tools)] for k in keys]))
    if doc.get("ratios"):
        cols = list(doc["ratios"])
        first = next(iter(doc["ratios"].values()))
        out.append(("ratios deltavault / other (below 1 is better for deltavault)",
                    ["figure", *cols],
                    [[k, *(_ratio(doc["ratios"][c].get(k)) for c in cols)] for k in first
                     if not k.endswith("_util")]))
    if doc.get("targets"):
        out.append(("targets (issue 14), against restic's default",
                    ["target", "variant", "measured", "bound", "verdict"],
                    [[r[0], row["variant"], *r[1:]] for row in doc["targets"]
                     for r in [target_mod.fmt_row(row)]]))
    if doc.get("floor"):
        fl = doc["floor"]
        rows = []
        for part, p in fl["parts"].items():
            wins = ", ".join(f"{k[5:]}×{v}" for k, v in p.items() if k.startswith("best_"))
            rows.append([part, str(p["files"]), fmt("bytes", p["new_bytes"]),
                         fmt("bytes", p["floor_bytes"]), wins])
        rows.append(["total", "", fmt("bytes", fl["total_changed_file_bytes"]),
                     fmt("bytes", fl["total_floor_bytes"]), ""])
        for name, figs in results.items():
            if "day1_bytes_added" in figs:
                rows.append([f"{name} day-1 added", "", "", fmt("bytes", figs["day1_bytes_added"]),
                             f"{figs['day1_bytes_added'] / max(1, fl['total_floor_bytes']):.1f}x "
                             "the floor"])
        out.append((f"day-1 change: floor per part (zstd -{fl['zstd_level']})",
                    ["part", "files", "changed file bytes", "floor", "winning estimators"], rows))
    if doc.get("limits"):
        out.append(("machine limits on the same bytes (median)", ["figure", "value"],
                    [[k, fmt(k, v)] for k, v in doc["limits"].items()]))
    if doc.get("errors"):
        out.append(("errors", ["run", "tool", "error"],
                    [[str(e["run"]), str(e["tool"]), str(e["error"])] for e in doc["errors"]]))
    return out


def _ratio(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}x"


def title(doc: dict[str, Any]) -> str:
    """One line naming the workload and its size."""
    w = doc["workload"]
    about = f" ({doc['workload_about']})" if doc.get("workload_about") else ""
    return (f"workload {doc.get('workload_name', '?')}{about}: "
            f"scale {doc['scale']:g}, {w['total_bytes'] / MiB:.1f} MiB in {w['files']} files, "
            f"seed {doc['seed']}, {doc['days']} days, median of {doc['runs']} run(s), "
            f"{doc['date']}")


def show(doc: dict[str, Any]) -> None:
    """Print a result document's tables on the console."""
    console.print(f"\n[bold]{title(doc)}[/bold]\nmachine: {machine_line(doc)}")
    for name, header, rows in sections(doc):
        t = Table(title=name)
        for i, h in enumerate(header):
            t.add_column(h, justify="left" if i == 0 else "right")
        for row in rows:
            t.add_row(*row)
        console.print(t)


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A GitHub Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return lines


def to_markdown(doc: dict[str, Any]) -> str:
    """A workload result document as Markdown (for docs/benchmark.md)."""
    lines = [f"### {title(doc)}", "", f"Machine: {machine_line(doc)}.", ""]
    for name, header, rows in sections(doc):
        lines += [f"**{name}**", "", *markdown_table(header, rows), ""]
    return "\n".join(lines)


def summary_markdown(docs: list[dict[str, Any]]) -> str:
    """The targets of several workloads side by side: one row per target, one column per
    workload, each cell the deltavault variants' values with met (ok) or MISSED."""
    lines = ["# Benchmark summary: targets of issue 14", ""]
    good = [d for d in docs if "failed" not in d]
    for doc in docs:
        if "failed" in doc:
            lines += [f"- workload {doc['workload_name']}: FAILED ({doc['failed']})"]
    if not good:
        return "\n".join(lines) + "\n"
    variants = sorted({r["variant"] for d in good for r in d.get("targets", [])})
    lines += [f"Machine: {machine_line(good[0])}. Scale {good[0]['scale']:g}, median of "
              f"{good[0]['runs']} run(s). Each cell: {' / '.join(variants)}.", ""]
    texts: dict[str, str] = {}
    cells: dict[tuple[str, str], list[str]] = {}
    for doc in good:
        for row in doc.get("targets", []):
            text, value, bound, verdict = target_mod.fmt_row(row)
            texts.setdefault(row["target"], f"{text} ({bound})")
            mark = {"met": "ok", "MISSED": "MISSED"}.get(verdict, "?")
            cells.setdefault((row["target"], doc["workload_name"]), []).append(
                f"{value} {mark}")
    rows = [["load average (1 min) at start / end", *(
        " / ".join(f"{v[0]:.1f}" for v in d.get("load_average", {}).values()) for d in good)]]
    rows += [[text, *(" / ".join(cells.get((key, d["workload_name"]), ["-"])) for d in good)]
             for key, text in texts.items()]
    lines += markdown_table(["target", *(d["workload_name"] for d in good)], rows)
    for doc in good:
        for e in doc.get("errors", []):
            lines.append(f"- {doc['workload_name']} run {e['run']} {e['tool']}: {e['error']}")
    return "\n".join(lines) + "\n"


HEADLINE = ("full_s", "full_cpu_util", "full_peak_rss_bytes", "full_repo_bytes", "day1_s",
            "day1_bytes_added", "repo_bytes_after_5_days", "snapshots_s", "restore_latest_s",
            "restore_latest_peak_rss_bytes", "restore_rollback_target_s", "rollback_1day_s",
            "help_s")


def headline_markdown(docs: list[dict[str, Any]]) -> str:
    """Per workload, the headline figures of every tool and ours/restic: a compact table."""
    lines: list[str] = []
    for doc in docs:
        if "failed" in doc:
            lines += [f"**{doc['workload_name']}**: failed ({doc['failed']})", ""]
            continue
        results = doc["results"]
        tools = list(results)
        ours = [t for t in tools if t.startswith("deltavault")]
        ref = "restic" if "restic" in results else None
        w = doc["workload"]
        lines += [f"**{doc['workload_name']}** — {w['total_bytes'] / MiB:.1f} MiB in "
                  f"{w['files']} files, scale {doc['scale']:g}, median of {doc['runs']}, "
                  f"load average {doc.get('load_average', {}).get('start', [0])[0]:.1f} at "
                  "the start", ""]
        header = ["figure", *tools, *(f"{o[11:]}/restic" for o in ours if ref)]
        rows = []
        for key in HEADLINE:
            if not any(key in results[t] for t in tools):
                continue
            ratio_cells = [_ratio(results[o][key] / results[ref][key])
                           if ref and results[ref].get(key) and key in results[o] else "-"
                           for o in ours if ref]
            rows.append([key, *(fmt(key, results[t].get(key)) for t in tools), *ratio_cells])
        lines += [*markdown_table(header, rows), ""]
        if doc.get("errors"):
            lines += [f"- errors: {doc['errors']}", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    args = sys.argv[1:]
    if args[:1] == ["--headline"]:
        print(headline_markdown([json.loads(Path(a).read_text()) for a in args[1:]]))
        raise SystemExit(0)
    for arg in args:
        d = json.loads(Path(arg).read_text())
        if d.get("kind") == "scale":
            import scale_report

            print(scale_report.to_markdown(d))
        else:
            d.setdefault("workload_name", "trading")  # a result of the old run.py
            print(to_markdown(d))
