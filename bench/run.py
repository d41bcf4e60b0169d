"""Benchmark deltavault against restic and borg on the trading-state workload.

    python bench/run.py --scale 1 --runs 3 --tools deltavault,restic,borg

For each tool variant and each run: full backup of the day-0 state, five
days of change each backed up (deltavault: one sequence of ``diff`` and one
of ``incr``), restore of the latest and of the middle snapshot (verified
byte-identical against a hash of the tree at that day), and a rollback to
the middle snapshot. Once per benchmark: the floor of the day-1 change per
part, and in every run the machine's limits on the same bytes. Figures are
medians over the runs; the table goes to stdout and everything to
``bench/results/<date>-scale<S>.json``. See docs/benchmark.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import blake3

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

import floor  # noqa: E402
import limits  # noqa: E402
import report  # noqa: E402
from tools import Deltavault, Measured, Tool, ToolError, dir_bytes, make_tools  # noqa: E402

from deltavault import sampledata  # noqa: E402

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


def sequence(tool: Tool, state0: Path, work: Path, days: int, seed: int) -> dict[str, float]:
    """One run of one tool: full, ``days`` changes, restores, rollback."""
    tool.prepare()
    tool.init()
    live = work / "live"
    shutil.rmtree(live, ignore_errors=True)
    shutil.copytree(state0, live)
    hashes = [tree_hash(live)]
    fig: dict[str, float] = {}
    snap, m = tool.backup(live, "day0", "full")
    snaps = [snap]
    size = dir_bytes(tool.repo)
    fig.update(full_s=m.seconds, full_repo_bytes=size, full_peak_rss_bytes=m.peak_rss)
    later_s = 0.0
    for day in range(1, days + 1):
        sampledata.mutate(live, day=day, seed=seed)
        hashes.append(tree_hash(live))
        snap, m = tool.backup(live, f"day{day}", "change")
        snaps.append(snap)
        new_size = dir_bytes(tool.repo)
        if day == 1:
            fig.update(day1_s=m.seconds, day1_bytes_added=new_size - size,
                       day1_peak_rss_bytes=m.peak_rss)
        else:
            later_s += m.seconds
        size = new_size
    fig[f"days2_{days}_s"] = later_s
    fig[f"repo_bytes_after_{days}_days"] = size
    mid = days // 2
    for name, index in (("latest", days), ("middle", mid)):
        target = work / f"restore-{name}"
        shutil.rmtree(target, ignore_errors=True)
        tree, m = tool.restore(snaps[index], target)
        verify(tree, hashes[index], f"{tool.name} restore {name}")
        fig[f"restore_{name}_s"] = m.seconds
        fig[f"restore_{name}_peak_rss_bytes"] = m.peak_rss
        shutil.rmtree(target)
    fig["rollback_s"] = rollback(tool, snaps[mid], live, work).seconds
    verify(live, hashes[mid], f"{tool.name} rollback")
    shutil.rmtree(live)
    shutil.rmtree(tool.work)
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
    shutil.rmtree(sibling, ignore_errors=True)
    t0 = time.perf_counter()
    tree, m = tool.restore(snapshot, sibling)
    old = live.with_name(live.name + ".old")
    os.rename(live, old)
    os.rename(tree, live)
    seconds = time.perf_counter() - t0
    shutil.rmtree(old)
    shutil.rmtree(sibling, ignore_errors=True)
    return Measured(seconds, m.peak_rss, "")


def day1_floor(state0: Path, work: Path, seed: int, level: int) -> dict[str, object]:
    """Floor of the day-1 change, per file and per part."""
    day1 = work / "floor-day1"
    shutil.copytree(state0, day1)
    summary = sampledata.mutate(day1, day=1, seed=seed)
    changed = list(summary.changed_files)
    t0 = time.perf_counter()
    floors = floor.tree_floor(state0, day1, changed,
                              {r: sampledata.part_of(r) for r in changed}, level=level)
    shutil.rmtree(day1)
    return {
        "zstd_level": level,
        "seconds": time.perf_counter() - t0,
        "parts": floor.by_part(floors),
        "total_floor_bytes": sum(f.best[1] for f in floors),
        "total_changed_file_bytes": sum(f.new_bytes for f in floors),
        "files": [{"path": f.path, "part": f.part, "new_bytes": f.new_bytes, **f.sizes}
                  for f in floors],
        "change": summary.to_dict(),
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
    """Run the benchmark and write its table and JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="workload scale, 1 ≈ 600 MiB")
    ap.add_argument("--runs", type=int, default=3, help="runs per tool; figures are medians")
    ap.add_argument("--tools", default="deltavault,restic,borg")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--days", type=int, default=5)
    ap.add_argument("--floor-level", type=int, default=19, help="zstd level of the floor")
    ap.add_argument("--no-floor", action="store_true", help="skip the (slow) floor estimate")
    ap.add_argument("--workdir", type=Path, help="where state and repositories go (default: temp)")
    ap.add_argument("--out", type=Path,
                    help="JSON path (default bench/results/<date>-scale<S>.json)")
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="deltavault-bench-", dir=args.workdir))
    try:
        return _run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(args: argparse.Namespace, work: Path) -> int:
    say = report.console.print
    say(f"[bold]workload[/bold] scale {args.scale:g}, seed {args.seed} in {work}")
    state0 = work / "state0"
    t0 = time.perf_counter()
    manifest = sampledata.generate(state0, scale=args.scale, seed=args.seed)
    say(f"  generated {manifest.total_bytes / 2**20:.1f} MiB in {time.perf_counter() - t0:.1f} s")
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
            shutil.rmtree(tool.work, ignore_errors=True)
    floor_result = None
    if not args.no_floor:
        say(f"[bold]floor[/bold] of the day-1 change (zstd -{args.floor_level}) ...")
        floor_result = day1_floor(state0, work, args.seed, args.floor_level)
    runs: list[dict[str, dict[str, float]]] = []
    run_limits: list[dict[str, dict[str, float]]] = []
    for r in range(args.runs):
        say(f"[bold]run {r + 1}/{args.runs}[/bold]")
        run_limits.append({"limits": limits.throughput(state0, work)})
        run: dict[str, dict[str, float]] = {}
        for tool in tools:
            t0 = time.perf_counter()
            run[tool.name] = sequence(tool, state0, work, args.days, args.seed)
            say(f"  {tool.name}: done in {time.perf_counter() - t0:.1f} s")
        runs.append(run)
    results = median_figures(runs)
    doc = {
        "date": date.today().isoformat(),
        "scale": args.scale, "seed": args.seed, "days": args.days, "runs": args.runs,
        "machine": limits.machine(),
        "versions": {t.name: t.version() for t in tools},
        "skipped": skipped,
        "workload": manifest.to_dict(),
        "limits": median_figures(run_limits)["limits"],
        "results": results,
        "ratios": ratios(results),
        "floor": floor_result,
        "all_runs": runs,
    }
    out = args.out or HERE / "results" / f"{doc['date']}-scale{args.scale:g}.json"
    report.write_json(out, doc)
    report.show(doc)
    say(f"JSON written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
