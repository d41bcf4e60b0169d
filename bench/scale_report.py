"""Markdown for the scale benchmark's result document, with the targets of issue 13."""

from __future__ import annotations

from typing import Any

from report import fmt, machine_line, markdown_table

MiB = 1 << 20
COMPARED = ("first_backup", "nochange_backup", "restore_all", "restore_one", "check")


def _pair(results: dict[str, Any]) -> tuple[str | None, str | None]:
    ours = next((t for t in results if t.startswith("deltavault")), None)
    other = "restic" if "restic" in results else next(
        (t for t in results if not t.startswith("deltavault")), None)
    return ours, other


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a is not None and b else "-"


def files_section(kind: str, data: dict[str, Any]) -> list[str]:
    """Per size: every op's time, peak RSS and CPU use for both tools, with ratios."""
    import scale_files

    lines: list[str] = []
    for size, res in data["sizes"].items():
        r = res["results"]
        ours, other = _pair(r)
        if ours is None:
            continue
        o, t = r.get(ours, {}), r.get(other, {}) if other else {}
        tree = res["tree"]
        lines += [f"**{kind} files, {size}** ({tree['files']:,} files, "
                  f"{tree['bytes'] / MiB:.0f} MiB, {tree['dirs']:,} directories)", ""]
        rows = []
        for op in scale_files.OPS:
            if f"{op}_s" not in o and f"{op}_s" not in t:
                continue
            rows.append([op, fmt("_s", o.get(f"{op}_s")), fmt("_s", t.get(f"{op}_s")),
                         _ratio(o.get(f"{op}_s"), t.get(f"{op}_s")),
                         fmt("bytes", o.get(f"{op}_peak_rss_bytes")),
                         fmt("bytes", t.get(f"{op}_peak_rss_bytes")),
                         _ratio(o.get(f"{op}_peak_rss_bytes"), t.get(f"{op}_peak_rss_bytes")),
                         fmt("_util", o.get(f"{op}_cpu_util")),
                         fmt("_util", t.get(f"{op}_cpu_util"))])
        for key in ("repo_bytes_first", "repo_bytes_before_prune", "repo_bytes_after_prune"):
            if key in o or key in t:
                rows.append([key, fmt("bytes", o.get(key)), fmt("bytes", t.get(key)),
                             _ratio(o.get(key), t.get(key)), "", "", "", "", ""])
        lines += markdown_table(["operation", f"{ours} time", f"{other} time", "ratio",
                                 f"{ours} peak RSS", f"{other} peak RSS", "ratio",
                                 f"{ours} CPU util", f"{other} CPU util"], rows)
        for name, err in res.get("errors", {}).items():
            lines += ["", f"- **{name} failed**: {err}"]
        lines.append("")
    for tool, pairs in data.get("slopes", {}).items():
        rows = []
        for span, figs in pairs.items():
            for op in COMPARED:
                if f"{op}_rss_bytes_per_file" in figs:
                    rows.append([span, op, f"{figs[op + '_rss_bytes_per_file']:,.0f} B",
                                 f"{figs[op + '_us_per_file']:,.1f} µs"])
        if rows:
            lines += [f"**{kind} files: what each further file costs, {tool}** (slope "
                      "between sizes)", "", *markdown_table(
                          ["sizes", "operation", "peak RSS per file", "time per file"], rows), ""]
    return lines


def file_targets(files: dict[str, Any]) -> list[list[str]]:
    """Issue 13: every compared op at most restic's time and peak RSS, at every size."""
    rows = []
    for kind, data in files.items():
        for size, res in data["sizes"].items():
            ours, other = _pair(res["results"])
            if ours is None or other is None:
                continue
            o, t = res["results"][ours], res["results"][other]
            for op in COMPARED:
                keys = (f"{op}_s", f"{op}_peak_rss_bytes")
                if not all(o.get(k) is not None and t.get(k) for k in keys):
                    continue
                time_r, rss_r = (o[k] / t[k] for k in keys)
                rows.append([f"{kind} {size}: {op} vs {other}",
                             f"time {time_r:.2f}x, peak RSS {rss_r:.2f}x", "<= 1x both",
                             "met" if time_r <= 1 and rss_r <= 1 else "MISSED"])
    return rows


def to_markdown(doc: dict[str, Any]) -> str:
    """The whole scale document."""
    lines = [f"### Scale benchmark, {doc['date']}", "", f"Machine: {machine_line(doc)}.", "",
             f"Command: `{doc['command']}`", ""]
    targets: list[list[str]] = []
    for kind, data in doc.get("files", {}).items():
        lines += files_section(kind, data)
    if doc.get("files"):
        targets += file_targets(doc["files"])
    if doc.get("blobs"):
        rows = []
        for size, b in doc["blobs"].items():
            if "error" in b:
                rows.append([size, "failed: " + b["error"], *[""] * 8])
                continue
            n = b["build"]["blobs"]
            for phase in ("cold", "warm"):
                p = b[phase]
                rows.append([size, phase, fmt("_s", p["open_s"]), fmt("_s", p["index_load_s"]),
                             fmt("_s", p["open_total_s"]),
                             f"{p['index_rss_bytes'] / n:.1f} B",
                             f"{p['index_load_peak_bytes'] / n:.1f} B",
                             f"{p['lookups_present_per_s']:,.0f}/s",
                             f"{p['lookups_absent_per_s']:,.0f}/s",
                             f"{b['build']['index_files']} files, "
                             f"{b['build']['index_bytes'] / MiB:.1f} MiB, "
                             f"built in {b['build']['build_s']:.0f} s"])
            targets.append([f"{size} blobs: index RAM per blob (warm)",
                            f"{b['warm']['index_rss_bytes'] / n:.1f} B", "<= 32 B (at 10m)",
                            "met" if b["warm"]["index_rss_bytes"] / n <= 32 else "MISSED"])
            targets.append([f"{size} blobs: open with a warm cache",
                            fmt("_s", b["warm"]["open_total_s"]), "<= 1 s",
                            "met" if b["warm"]["open_total_s"] <= 1 else "MISSED"])
        lines += ["**synthetic repository: open, index, lookups**", "", *markdown_table(
            ["blobs", "cache", "open (key)", "index load", "open + index", "index RSS per blob",
             "load peak per blob", "lookups (present)", "lookups (absent)", "index files"],
            rows), ""]
        if doc.get("blob_slope_bytes_per_blob") is not None:
            lines += [f"Index RSS slope between sizes (warm): "
                      f"{doc['blob_slope_bytes_per_blob']:.1f} B per blob.", ""]
    if doc.get("journal"):
        rows = []
        for size, j in doc["journal"].items():
            if "error" in j:
                rows.append([size, "failed: " + j["error"], *[""] * 6])
                continue
            rows.append([size, f"{j.get('append_per_s', 0):,.0f}/s",
                         fmt("_s", j["empty_backup_s"]), fmt("_s", j["journal_backup_s"]),
                         f"{j['backup_ratio']:.2f}x", fmt("_s", j["empty_snapshots_s"]),
                         fmt("_s", j["journal_snapshots_s"]), f"{j['snapshots_ratio']:.2f}x"])
            for what in ("backup", "snapshots"):
                ratio = j[f"{what}_ratio"]
                targets.append([f"{size} journal records: {what} time vs none", f"{ratio:.2f}x",
                                "<= 1.25x", "met" if ratio <= 1.25 else "MISSED"])
        lines += ["**ledger with journal records: backup and snapshots against an empty "
                  "journal**", "", *markdown_table(
                      ["records", "append rate", "backup (none)", "backup (records)", "ratio",
                       "snapshots (none)", "snapshots (records)", "ratio"], rows), ""]
    if doc.get("deep"):
        rows = []
        for res in doc["deep"]:
            for tool, r in res["tools"].items():
                rows.append([f"{res['depth']:,}", tool, "pass" if r["ok"] else "FAIL",
                             *(fmt("_s", r.get(k)) for k in ("backup_s", "restore_s", "check_s")),
                             "" if r["ok"] else f"{r['failed_step']}: {r['error'][:240]}"])
        lines += ["**deep directory chain**", "", *markdown_table(
            ["levels", "tool", "result", "backup", "restore", "check", "error"], rows), ""]
    if doc.get("reclaim"):
        rc = doc["reclaim"]
        rows = []
        for tool, r in rc["tools"].items():
            if "error" in r:
                rows.append([tool, "failed: " + r["error"][:200], "", "", "", ""])
                continue
            rows.append([tool, fmt("bytes", r["repo_bytes_all_days"]),
                         fmt("bytes", r["repo_bytes_after_prune"]), fmt("_s", r["prune_s"]),
                         fmt("bytes", r["repo_bytes_fresh_kept_days"]),
                         f"{r['after_prune_vs_fresh']:.2f}x"])
            if tool.startswith("deltavault"):
                targets.append([f"{tool}: after forgetting half of {rc['days']} days and "
                                "pruning, vs a fresh backup of the rest",
                                f"{r['after_prune_vs_fresh']:.2f}x", "<= 1.10x",
                                "met" if r["after_prune_vs_fresh"] <= 1.10 else "MISSED"])
        lines += [f"**prune reclaim: workload {rc['workload']} at scale {rc['scale']:g}, "
                  f"{rc['days']} daily backups, every odd day forgotten**", "", *markdown_table(
                      ["tool", f"repository after {rc['days']} days", "after forget + prune",
                       "prune time", "fresh backup of the kept days", "after prune / fresh"],
                      rows), ""]
    if targets:
        lines += ["**targets (issue 13)**", "",
                  *markdown_table(["target", "measured", "bound", "verdict"], targets), ""]
    for section, err in doc.get("errors", {}).items():
        lines.append(f"- **{section} failed**: {err}")
    return "\n".join(lines) + "\n"
