"""Space prune reclaims: 30 daily snapshots, forget half, prune; compare with a fresh backup.

    python bench/prune_reclaim.py --scale 0.03 --days 30 --keep 15

Builds a repository of ``days`` daily ``incr`` backups of the trading-state
workload (BENCHMARK.md), forgets all but the newest ``keep`` and prunes it
twice from the same starting point: without repacking (``--max-unused
100%``, only whole packs go) and with the default 5%. Then it restores each
kept snapshot and backs it up, oldest first, into a fresh repository — "a
fresh backup of what remains" — and reports the sizes (data and index
bytes; the ledger is left out: it keeps every event by design). The
issue-13 target is pruned ≤ 1.10 × fresh. Prints a table and writes JSON to
``bench/results/prune_reclaim.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from deltavault import api, sampledata

PASSWORD = b"bench password"
KDF = {"kdf_memory_kib": 8192, "kdf_time_cost": 1}


def stored_bytes(repo: Path) -> dict[str, int]:
    """Bytes per kind of object (packs, index files, snapshots and pack lists)."""
    out = {}
    for kind in ("data", "index", "snapshots", "packlists"):
        out[kind] = sum(p.stat().st_size for p in (repo / kind).rglob("*") if p.is_file())
    out["total"] = sum(out.values())
    return out


def build(work: Path, scale: float, days: int, seed: int) -> tuple[Path, float]:
    src = work / "state"
    sampledata.generate(src, scale=scale, seed=seed)
    repo_path = work / "daily"
    repo = api.init(repo_path, PASSWORD, **KDF)
    t0 = time.perf_counter()
    for day in range(days):
        if day:
            sampledata.mutate(src, day=day, seed=seed)
        api.backup(repo, [src], hostname="trader-1")
    return repo_path, time.perf_counter() - t0


def prune_copy(daily: Path, dest: Path, keep: int, max_unused: float) -> dict[str, object]:
    shutil.copytree(daily, dest)
    repo = api.open(dest, PASSWORD)
    t0 = time.perf_counter()
    result = api.forget(repo, policy=api.RetentionPolicy(last=keep), prune=True,
                        max_unused=max_unused)
    seconds = time.perf_counter() - t0
    assert result.prune is not None
    report = api.check(api.open(dest, PASSWORD), read_data=True)
    if not report.ok:
        raise SystemExit(f"check failed after prune: {report.problems[:3]}")
    return {"seconds": round(seconds, 2), "stored": stored_bytes(dest),
            "prune": {k: v for k, v in result.prune.to_dict().items()
                      if isinstance(v, int)}}


def fresh(pruned: Path, work: Path) -> tuple[Path, float]:
    """Restore each kept snapshot in turn to one path and back it up into a new repository."""
    old = api.open(pruned, PASSWORD)
    repo_path = work / "fresh"
    repo = api.init(repo_path, PASSWORD, **KDF)
    state = work / "restored"
    t0 = time.perf_counter()
    for snap in api.snapshots(old):
        shutil.rmtree(state, ignore_errors=True)
        api.restore(old, snap.id, state)
        (root,) = list(state.iterdir())
        api.backup(repo, [root], hostname="trader-1")
    return repo_path, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=0.03)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--keep", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path,
                    default=Path(__file__).resolve().parent / "results" / "prune_reclaim.json")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dv-prune-bench-") as tmp:
        work = Path(tmp)
        daily, build_s = build(work, args.scale, args.days, args.seed)
        before = stored_bytes(daily)
        plain = prune_copy(daily, work / "no-repack", args.keep, 1.0)
        repacked = prune_copy(daily, work / "repack", args.keep, 0.05)
        fresh_repo, fresh_s = fresh(work / "repack", work)
        after_fresh = stored_bytes(fresh_repo)
    doc = {
        "scale": args.scale, "days": args.days, "keep": args.keep, "seed": args.seed,
        "build_seconds": round(build_s, 1), "fresh_seconds": round(fresh_s, 1),
        "before": before, "prune_without_repack": plain, "prune_with_repack": repacked,
        "fresh": after_fresh,
        "ratio_without_repack": round(plain["stored"]["total"] / after_fresh["total"], 3),  # type: ignore[index]
        "ratio_with_repack": round(repacked["stored"]["total"] / after_fresh["total"], 3),  # type: ignore[index]
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    mib = 1 << 20
    print(f"{args.days} daily snapshots (scale {args.scale}), keep the newest {args.keep}")
    print(f"  before forget            {before['total'] / mib:9.2f} MiB")
    for name, run in (("prune, no repacking", plain), ("prune, --max-unused 5%", repacked)):
        total = run["stored"]["total"]  # type: ignore[index]
        print(f"  {name:24s} {total / mib:9.2f} MiB  ({run['seconds']} s, "
              f"{total / after_fresh['total']:.3f} × fresh)")
    print(f"  fresh backup of the kept {after_fresh['total'] / mib:9.2f} MiB")
    print(f"  target: with repacking ≤ 1.10 × fresh: "
          f"{'met' if doc['ratio_with_repack'] <= 1.10 else 'NOT met'}")  # type: ignore[operator]
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
