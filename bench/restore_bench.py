"""Restore and rollback against restic: many small files, and the trading workload.

    python bench/restore_bench.py --workload smallfiles --files 50000 --runs 3
    python bench/restore_bench.py --workload trading --scale 0.2 --runs 3

Per run and tool: back up the state (tagged ``known-good``), restore it all
into an empty directory, restore one file, then apply one day of change to
the live state and put it back: deltavault's ``rollback --tag known-good``
against restic's restore into a sibling plus a directory swap (what an
operator would script; restic has no rollback). Every restore and rollback
is checked byte for byte against the backed-up state. Figures are medians
over the runs (wall seconds and peak RSS of the child process, read with GNU
time); the table goes to stdout and the JSON to
``bench/results/<date>-restore-<workload>.json``. The machine's load average
is recorded before and after: other work on the machine makes times noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

from run import tree_hash, verify  # noqa: E402
from tools import Deltavault, Measured, Restic, Tool, measure  # noqa: E402

from deltavault import sampledata  # noqa: E402

TAG = "known-good"


def small_files(root: Path, files: int, seed: int) -> None:
    """``files`` unique files of 1–4 KiB, 100 per directory, 100 directories per level."""
    rng = random.Random(seed)
    for i in range(files):
        d = root / f"d{i // 10000:03d}" / f"d{i // 100 % 100:02d}"
        if i % 100 == 0:
            d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:07d}.bin").write_bytes(rng.randbytes(rng.randint(1024, 4096)))


def small_files_day(root: Path, files: int, seed: int) -> None:
    """One day of change: 1% of files rewritten, 0.5% removed, 0.5% added."""
    rng = random.Random(seed + 1)
    for i in rng.sample(range(files), files // 100):
        p = root / f"d{i // 10000:03d}" / f"d{i // 100 % 100:02d}" / f"f{i:07d}.bin"
        if p.exists():
            p.write_bytes(rng.randbytes(rng.randint(1024, 4096)))
    for i in rng.sample(range(files), files // 200):
        p = root / f"d{i // 10000:03d}" / f"d{i // 100 % 100:02d}" / f"f{i:07d}.bin"
        p.unlink(missing_ok=True)
    for i in range(files // 200):
        (root / f"d{(i * 37) % max(1, files // 10000):03d}" / "d00" / f"new{i:06d}.bin"
         ).write_bytes(rng.randbytes(2048))


def one_file(root: Path) -> Path:
    """A file in the middle of the tree (sorted order)."""
    dirs = sorted(p for p in root.rglob("*") if p.is_dir() and any(x.is_file()
                                                                   for x in p.iterdir()))
    d = dirs[len(dirs) // 2]
    files = sorted(x for x in d.iterdir() if x.is_file())
    return files[len(files) // 2]


def restore_one(tool: Tool, snapshot: str, live: Path, rel: Path, target: Path) -> Measured:
    """Restore one file by its path and check its bytes."""
    if isinstance(tool, Restic):
        m = measure(["restic", "restore", snapshot, "--target", str(target), "--include",
                     str(live.resolve() / rel)], env=tool._env())
        got = target / live.resolve().relative_to("/") / rel
    else:
        assert isinstance(tool, Deltavault)
        m = measure([*tool.cmd, "restore", snapshot, "--target", str(target), "--include",
                     str(Path(live.name) / rel), "--json"], env=tool._env())
        got = target / live.name / rel
    if got.read_bytes() != (live / rel).read_bytes():
        raise SystemExit(f"{tool.name}: one-file restore of {rel} differs")
    return m


def rollback(tool: Tool, snapshot: str, live: Path, work: Path) -> Measured:
    """deltavault's rollback, or restic's restore into a sibling + swap."""
    if isinstance(tool, Deltavault):
        help_text = measure([*tool.cmd, "rollback", "--help"], env=tool._env()).stdout
        discard = ["--discard-previous"] if "--discard-previous" in help_text else []
        return measure([*tool.cmd, "rollback", "--tag", TAG, "--target", str(live), *discard,
                        "--json"], env=tool._env())
    sibling = live.parent / ".restic-rollback"
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


def one_run(tool: Tool, state: Path, work: Path, args: argparse.Namespace) -> dict[str, float]:
    """Backup, full restore, one-file restore, one day of change, rollback."""
    tool.prepare()
    tool.init()
    live = work / "live" / state.name
    shutil.rmtree(live.parent, ignore_errors=True)
    live.parent.mkdir(parents=True)
    shutil.copytree(state, live, symlinks=True)
    expected = tree_hash(live)
    fig: dict[str, float] = {}
    if isinstance(tool, Deltavault):
        snap, m = tool.backup(live, TAG, "full")
    else:
        snap, m = tool.backup(live, TAG, "full")
    fig.update(backup_s=m.seconds, backup_rss=m.peak_rss)
    target = work / "restore"
    shutil.rmtree(target, ignore_errors=True)
    tree, m = tool.restore(snap, target)
    verify(tree, expected, f"{tool.name} restore")
    fig.update(restore_s=m.seconds, restore_rss=m.peak_rss)
    shutil.rmtree(target)
    rel = one_file(live).relative_to(live)
    m = restore_one(tool, snap, live, rel, target)
    fig.update(restore_one_s=m.seconds, restore_one_rss=m.peak_rss)
    shutil.rmtree(target)
    if args.workload == "smallfiles":
        small_files_day(live, args.files, args.seed)
    else:
        sampledata.mutate(live, day=1, seed=args.seed)
    os.sync()
    m = rollback(tool, snap, live, work)
    verify(live, expected, f"{tool.name} rollback")
    fig.update(rollback_s=m.seconds, rollback_rss=m.peak_rss)
    shutil.rmtree(live.parent)
    shutil.rmtree(tool.work)
    return fig


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print a table of medians."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", choices=["smallfiles", "trading"], default="smallfiles")
    ap.add_argument("--files", type=int, default=50_000)
    ap.add_argument("--scale", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tools", default="deltavault,restic")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--label", default="")
    ap.add_argument("--dv-src", type=Path, default=None,
                    help="run deltavault from this src/ directory (a before figure)")
    args = ap.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="dv-restore-bench-"))
    state = work / "state" / "state"
    if not state.exists():
        if args.workload == "smallfiles":
            small_files(state, args.files, args.seed)
        else:
            sampledata.generate(state, scale=args.scale, seed=args.seed)
    tools: list[Tool] = []
    for name in args.tools.split(","):
        if name == "restic":
            tools.append(Restic(work / "restic", "auto"))
            continue
        dv = Deltavault(work / "dv", "incr")
        if args.dv_src:  # another checkout's code (e.g. main) for a before/after figure
            dv.name = f"deltavault@{args.dv_src.parent.name}"
            dv.cmd = [sys.executable, "-c", "from deltavault.cli.main import run; run()"]
            base_env = dv._env

            def env(base_env=base_env, src=str(args.dv_src)) -> dict[str, str]:
                return {**base_env(), "PYTHONPATH": src}

            dv._env = env  # type: ignore[method-assign]
        tools.append(dv)
    load_before = os.getloadavg()
    runs: dict[str, list[dict[str, float]]] = {t.name: [] for t in tools}
    for _ in range(args.runs):
        for tool in tools:
            runs[tool.name].append(one_run(tool, state, work / "run", args))
            print(tool.name, json.dumps(runs[tool.name][-1]), flush=True)
    load_after = os.getloadavg()
    medians = {name: {k: statistics.median(r[k] for r in rs) for k in rs[0]}
               for name, rs in runs.items()}
    keys = ["backup_s", "restore_s", "restore_rss", "restore_one_s", "restore_one_rss",
            "rollback_s", "rollback_rss"]
    print(f"\n{args.workload} ({args.files if args.workload == 'smallfiles' else args.scale}), "
          f"median of {args.runs}, load {load_before[0]:.1f} -> {load_after[0]:.1f}, "
          f"{os.cpu_count()} cores")
    print(f"{'':18}" + "".join(f"{n:>16}" for n in medians))
    for k in keys:
        row = [medians[n][k] for n in medians]
        fmt = [f"{v / 2**20:>13.0f}MiB" if k.endswith("rss") else f"{v:>15.2f}s" for v in row]
        print(f"{k:18}" + "".join(fmt))
    out = {"workload": args.workload, "files": args.files, "scale": args.scale,
           "runs": runs, "medians": medians, "load": [load_before, load_after],
           "label": args.label}
    name = f"{date.today()}-restore-{args.workload}{'-' + args.label if args.label else ''}.json"
    (HERE / "results" / name).write_text(json.dumps(out, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
