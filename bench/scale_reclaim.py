"""Prune reclaim: forget half of 30 daily snapshots, prune, compare with a fresh backup.

A workload (``mixed`` by default) is backed up once a day for ``days`` days
(day 0 full, then each tool's daily kind). Every odd day's snapshot is then
forgotten and the repository pruned; its size is compared with a fresh
repository into which only the kept days (0, 2, 4, ...) were backed up, in
order, from the same deterministic states. Issue 13's target: within 10 %
(ratio <= 1.10). A prune that only deletes packs no snapshot uses cannot
reach it when every pack mixes kept and forgotten data; one that repacks can.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import variants
from tools import Tool, describe, dir_bytes, make_tools, remove_tree


def _daily(tool: Tool, wl: variants.Workload, live: Path, days: int, seed: int,
           keep: set[int] | None) -> tuple[list[str], float]:
    """Back up day 0..days-1 (only the days in ``keep`` if given); ids and backup seconds."""
    ids: list[str] = []
    seconds = 0.0
    for day in range(days):
        if day:
            wl.mutate(live, day=day, seed=seed)
        if keep is not None and day not in keep:
            continue
        snap, m = tool.backup(live, f"day{day}", "full" if not ids else "change")
        ids.append(snap)
        seconds += m.seconds
    return ids, seconds


def bench_reclaim(work: Path, workload: str, scale: float, days: int, seed: int,
                  tool_names: list[str], say: Any) -> dict[str, Any]:
    """Run the reclaim comparison for every tool."""
    wl = variants.WORKLOADS[workload]
    out: dict[str, Any] = {"workload": workload, "scale": scale, "days": days, "tools": {}}
    kept = set(range(0, days, 2))
    for tool in make_tools(tool_names, work):
        live = work / "live"
        r: dict[str, Any] = {}
        try:
            for phase in ("all", "fresh"):
                remove_tree(live)
                remove_tree(tool.work)
                wl.generate(live, scale=scale, seed=seed)
                tool.prepare()
                tool.init()
                t0 = time.perf_counter()
                ids, backup_s = _daily(tool, wl, live, days, seed,
                                       None if phase == "all" else kept)
                r[f"{phase}_backups_s"] = backup_s
                r[f"{phase}_wall_s"] = time.perf_counter() - t0
                if phase == "all":
                    r["repo_bytes_all_days"] = dir_bytes(tool.repo)
                    forget, prune = tool.forget_and_prune(
                        [s for d, s in enumerate(ids) if d not in kept])
                    r.update(forget.figures("forget"))
                    r.update(prune.figures("prune"))
                    r["repo_bytes_after_prune"] = dir_bytes(tool.repo)
                else:
                    r["repo_bytes_fresh_kept_days"] = dir_bytes(tool.repo)
            r["after_prune_vs_fresh"] = r["repo_bytes_after_prune"] / r[
                "repo_bytes_fresh_kept_days"]
            say(f"  {tool.name}: {days} days {r['repo_bytes_all_days'] / 2**20:.1f} MiB, "
                f"after forget of {days - len(kept)} + prune "
                f"{r['repo_bytes_after_prune'] / 2**20:.1f} MiB (prune {r['prune_s']:.1f} s), "
                f"fresh backup of the kept days {r['repo_bytes_fresh_kept_days'] / 2**20:.1f} "
                f"MiB: x{r['after_prune_vs_fresh']:.2f}")
        except Exception as exc:  # one tool's failure is a finding; the rest go on
            r["error"] = describe(exc)
            say(f"  [red]{tool.name} failed[/red]: {describe(exc)}")
        finally:
            remove_tree(tool.work)
            remove_tree(live)
        out["tools"][tool.name] = r
    return out
