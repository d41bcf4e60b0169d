"""Benchmark deltavault against restic and borg on trading-state workloads.

    python bench/run.py --workload all --scale 1 --runs 3 --tools deltavault,restic,borg

For each workload (``--workload``: trading, books, weights, textlog, mixed, a
comma list, or all), each tool variant and each run: full backup of the
day-0 state, ``--days`` days of change each backed up (deltavault: one
sequence of ``diff`` and one of ``incr``), a listing of the snapshots,
restores of the latest and of the middle snapshot (verified byte-identical
against a hash of the tree at that day), and a rollback of the live tree
after one day of change to the snapshot of the day before (deltavault's
``rollback``; restic and borg: restore into a sibling and swap), verified
too. Every command's wall time, peak RSS and CPU time are recorded. Once per
workload: the floor of the day-1 change per part; in every run the
machine's limits on the same bytes. Figures are medians over the runs.

Per workload the table goes to stdout and ``bench/results/<date>-<workload>-scale<S>.json``
and ``.md``; with several workloads, a summary of the targets goes to
``bench/results/<date>-summary-scale<S>.md``. See docs/benchmark.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from datetime import date
from pathlib import Path
from typing import Any

import blake3

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

import floor  # noqa: E402
import limits  # noqa: E402
import report  # noqa: E402
import targets  # noqa: E402
import variants  # noqa: E402
from tools import (  # noqa: E402
    Deltavault,
    Measured,
    Tool,
    ToolError,
    describe,
    dir_bytes,
    make_tools,
    median_seconds,
    remove_tree,
)

ROLLBACK_TAG = "known-good"


def tree_hash(root: Path) -> str:
    """BLAKE3 over every file's relative path, size and content, in path order."""
    h = blake3.blake3(max_threads=blake3.blake3.AUTO)
    for p in sorted(root.rglob("*")):
        if p.is_file():
            data = p.read_bytes()
            h.update(f"{p.relative_to(root).as_posix()}\0{len(data)}\0".encode())
            h.update(data)
    return h.hexdigest()


def verify(tree: Path, expected: str, what: str) -> None:
    """Fail loudly if a restored tree is not byte-identical to the backed-up one."""
    got = tree_hash(tree)
    if got != expected:
        raise ToolError(f"{what}: restored tree differs from the original ({got[:12]} != "
                        f"{expected[:12]})")


def sequence(tool: Tool, wl: variants.Workload, state0: Path, work: Path, days: int,
             seed: int) -> dict[str, float]:
    """One run of one tool: full, ``days`` changes, listing, restores, rollback, help."""
    tool.prepare()
    tool.init()
    live = work / "live"
    remove_tree(live)
    shutil.copytree(state0, live)
    hashes = [tree_hash(live)]
    fig: dict[str, float] = {}
    snap, m = tool.backup(live, "day0", "full")
    snaps = [snap]
    size = dir_bytes(tool.repo)
    fig.update(m.figures("full"))
    fig["full_repo_bytes"] = size
    later_s = 0.0
    for day in range(1, days + 1):
        wl.mutate(live, day=day, seed=seed)
        hashes.append(tree_hash(live))
        snap, m = tool.backup(live, f"day{day}", "change")
        snaps.append(snap)
        new_size = dir_bytes(tool.repo)
        if day == 1:
            fig.update(m.figures("day1"))
            fig["day1_bytes_added"] = new_size - size
        else:
            later_s += m.seconds
        size = new_size
    if days > 1:
        fig[f"days2_{days}_s"] = later_s
    fig[f"repo_bytes_after_{days}_days"] = size
    fig["snapshots_s"] = tool.list_snapshots().seconds
    back = days - 1  # the live tree is one day past this snapshot
    for name, index in (("latest", days), ("middle", days // 2), ("rollback_target", back)):
        target = work / f"restore-{name}"
        remove_tree(target)
        tree, m = tool.restore(snaps[index], target)
        verify(tree, hashes[index], f"{tool.name} restore {name}")
        fig.update(m.figures(f"restore_{name}"))
        remove_tree(target)
    fig.update(rollback(tool, snaps[back], live, work).figures("rollback_1day"))
    verify(live, hashes[back], f"{tool.name} rollback")
    fig["help_s"] = median_seconds(tool.help_command(), env=tool.env())
    remove_tree(live)
    remove_tree(live.with_name(live.name + ".old"))
    remove_tree(tool.work)
    return fig


def rollback(tool: Tool, snapshot: str, live: Path, work: Path) -> Measured:
    """deltavault's own rollback; for the others, what an operator would script.

    restic and borg have no rollback: the equivalent is a restore into a
    sibling directory and a swap of the two directories, timed together.
    """
    if isinstance(tool, Deltavault):
        tool.tag(snapshot, ROLLBACK_TAG)
        return tool.rollback(ROLLBACK_TAG, live)
    sibling = work / "rollback"
    remove_tree(sibling)
    t0 = time.perf_counter()
    tree, m = tool.restore(snapshot, sibling)
    old = live.with_name(live.name + ".old")
    os.rename(live, old)
    os.rename(tree, live)
    seconds = time.perf_counter() - t0
    remove_tree(old)
    remove_tree(sibling)
    return Measured(seconds, m.peak_rss, "", m.user_s, m.sys_s)


def day1_floor(wl: variants.Workload, state0: Path, work: Path, seed: int,
               level: int) -> dict[str, object]:
    """Floor of the day-1 change, per file and per part."""
    day1 = work / "floor-day1"
    shutil.copytree(state0, day1)
    change = wl.mutate(day1, day=1, seed=seed)
    changed = sorted(change.changed_files)
    t0 = time.perf_counter()
    floors = floor.tree_floor(state0, day1, changed, {r: wl.part_of(r) for r in changed},
                              level=level)
    remove_tree(day1)
    return {
        "zstd_level": level,
        "seconds": time.perf_counter() - t0,
        "parts": floor.by_part(floors),
        "total_floor_bytes": sum(f.best[1] for f in floors),
        "total_changed_file_bytes": sum(f.new_bytes for f in floors),
        "files": [{"path": f.path, "part": f.part, "new_bytes": f.new_bytes, **f.sizes}
                  for f in floors],
        "change": change.to_dict(),
    }


def median_figures(runs: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Per tool, the median of each figure over the runs that produced it."""
    values: dict[str, dict[str, list[float]]] = {}
    for run in runs:
        for tool, figs in run.items():
            for k, v in figs.items():
                values.setdefault(tool, {}).setdefault(k, []).append(v)
    return {t: {k: statistics.median(v) for k, v in f.items()} for t, f in values.items()}


def ratios(results: dict[str, dict[str, float]]) -> dict[str, dict[str, float | None]]:
    """deltavault/other for every figure, keyed ``"<deltavault variant>/<other>"``."""
    out: dict[str, dict[str, float | None]] = {}
    ours = [t for t in results if t.startswith("deltavault")]
    others = [t for t in results if not t.startswith("deltavault")]
    for a in ours:
        for b in others:
            out[f"{a}/{b}"] = {k: (v / results[b][k] if results[b].get(k) else None)
                               for k, v in results[a].items()}
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark for every selected workload and write tables and JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", default="all",
                    help=f"{', '.join(variants.WORKLOADS)}, a comma list, or all "
                         "(default all)")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="workload scale (1: the sizes in docs/benchmark.md)")
    ap.add_argument("--runs", type=int, default=3, help="runs per tool; figures are medians")
    ap.add_argument("--tools", default="deltavault,restic,borg",
                    help="deltavault, restic, borg (two variants each) or single variants "
                         "such as restic-auto, deltavault-incr")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--days", type=int, default=5)
    ap.add_argument("--floor-level", type=int, default=19, help="zstd level of the floor")
    ap.add_argument("--no-floor", action="store_true", help="skip the (slow) floor estimate")
    ap.add_argument("--no-limits", action="store_true",
                    help="skip the machine-limit figures (tar|zstd, hashes, disk)")
    ap.add_argument("--workdir", type=Path, help="where state and repositories go (default: temp)")
    ap.add_argument("--out", type=Path,
                    help="JSON path for a single workload (default "
                         "bench/results/<date>-<workload>-scale<S>.json)")
    args = ap.parse_args(argv)
    if args.days < 1:
        ap.error("--days must be at least 1")
    workloads = variants.select(args.workload)
    if args.out and len(workloads) > 1:
        ap.error("--out needs a single --workload")
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="deltavault-bench-", dir=args.workdir))
    docs: list[dict[str, Any]] = []
    try:
        for wl in workloads:
            try:
                docs.append(run_workload(args, wl, base / wl.name))
            except Exception as exc:  # one broken workload must not stop the rest
                report.console.print(f"[red]workload {wl.name} failed[/red]: {exc}")
                traceback.print_exc()
                docs.append({"workload_name": wl.name, "failed": f"{type(exc).__name__}: {exc}"})
            finally:
                remove_tree(base / wl.name)
    finally:
        remove_tree(base)
    if len(workloads) > 1:
        out = HERE / "results" / f"{date.today().isoformat()}-summary-scale{args.scale:g}.md"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report.summary_markdown(docs))
        report.console.print(f"summary written to {out}")
    return 1 if any("failed" in d or d.get("errors") for d in docs) else 0


def run_workload(args: argparse.Namespace, wl: variants.Workload, work: Path) -> dict[str, Any]:
    """Generate one workload, run every tool on it, write its JSON and Markdown."""
    say = report.console.print
    work.mkdir(parents=True)
    load_start = os.getloadavg()
    say(f"[bold]workload {wl.name}[/bold] scale {args.scale:g}, seed {args.seed} in {work} "
        f"(load average {load_start[0]:.2f})")
    state0 = work / "state0"
    t0 = time.perf_counter()
    manifest = wl.generate(state0, scale=args.scale, seed=args.seed)
    say(f"  generated {manifest['total_bytes'] / 2**20:.1f} MiB in {manifest['files']} files "
        f"in {time.perf_counter() - t0:.1f} s")
    tools = make_tools([t.strip() for t in args.tools.split(",") if t.strip()], work)
    skipped: dict[str, str] = {}
    for tool in list(tools):
        if isinstance(tool, Deltavault):
            why = tool.available()
            if why is not None:
                skipped[tool.name] = why
                tools.remove(tool)
                say(f"[yellow]skipping {tool.name}[/yellow]: the deltavault CLI is not usable "
                    f"here ({why})")
            remove_tree(tool.work)
    floor_result = None
    if not args.no_floor:
        say(f"[bold]floor[/bold] of the day-1 change (zstd -{args.floor_level}) ...")
        floor_result = day1_floor(wl, state0, work, args.seed, args.floor_level)
    runs: list[dict[str, dict[str, float]]] = []
    run_limits: list[dict[str, dict[str, float]]] = []
    errors: list[dict[str, object]] = []
    for r in range(args.runs):
        say(f"[bold]run {r + 1}/{args.runs}[/bold]")
        if not args.no_limits:
            run_limits.append({"limits": limits.throughput(state0, work)})
        run: dict[str, dict[str, float]] = {}
        for tool in tools:
            t0 = time.perf_counter()
            try:
                run[tool.name] = sequence(tool, wl, state0, work, args.days, args.seed)
                say(f"  {tool.name}: done in {time.perf_counter() - t0:.1f} s")
            except Exception as exc:  # one tool's failure is a finding; the rest go on
                errors.append({"run": r + 1, "tool": tool.name, "error": describe(exc)})
                say(f"  [red]{tool.name} failed[/red]: {describe(exc)}")
                remove_tree(tool.work)
                remove_tree(work / "live")
        runs.append(run)
    results = median_figures(runs)
    doc: dict[str, Any] = {
        "date": date.today().isoformat(),
        "workload_name": wl.name, "workload_about": wl.about,
        "scale": args.scale, "seed": args.seed, "days": args.days, "runs": args.runs,
        "machine": limits.machine(),
        "load_average": {"start": load_start, "end": os.getloadavg()},
        "versions": {t.name: t.version() for t in tools},
        "skipped": skipped,
        "errors": errors,
        "workload": manifest,
        "limits": median_figures(run_limits)["limits"] if run_limits else {},
        "results": results,
        "ratios": ratios(results),
        "targets": targets.evaluate(results),
        "floor": floor_result,
        "all_runs": runs,
    }
    out = args.out or (HERE / "results"
                       / f"{doc['date']}-{wl.name}-scale{args.scale:g}.json")
    report.write_json(out, doc)
    out.with_suffix(".md").write_text(report.to_markdown(doc))
    report.show(doc)
    say(f"JSON written to {out} (Markdown beside it)")
    return doc


if __name__ == "__main__":
    raise SystemExit(main())
