"""Cost of the ledger on everyday commands: backup and snapshots with a big journal.

Run (from the repository root):

    PYTHONPATH=src python bench/ledger_state.py --records 1000000 --runs 3 [--other-src PATH]

It builds two repositories through the API — one whose ledger holds
``--records`` journal records and one with none — and a small source tree,
then times ``deltavault backup`` and ``deltavault snapshots`` (the installed
entry point, a fresh process each run) on both: with a cold client cache
(the first, full verification of the log) and with a warm one (only the
entries appended since the last run are verified). ``--other-src`` times the
same commands with another checkout's ``src`` (e.g. the main branch) for a
before/after comparison. Numbers are printed and written as JSON to
``bench/results/``; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from deltavault import api
from deltavault.ledger.journal import Journal

PASSWORD = "bench password"
ROOT = Path(__file__).resolve().parents[1]


def build(path: Path, records: int, batch: int = 20_000) -> float:
    """A repository whose ledger holds ``records`` journal records; returns seconds taken."""
    repo = api.init(path, PASSWORD.encode(), kdf_memory_kib=8192, kdf_time_cost=1)
    journal = Journal(repo.ledger, repo.crypto)
    t0 = time.perf_counter()
    done = 0
    while done < records:
        n = min(batch, records - done)
        journal.append([{"order": done + i, "px": 100.25, "qty": 3, "side": "buy"}
                        for i in range(n)])
        done += n
    return time.perf_counter() - t0


def run(src: Path, cache: Path, args: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(src), "DELTAVAULT_PASSWORD": PASSWORD,
           "DELTAVAULT_CACHE_DIR": str(cache)}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "deltavault", *args], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def measure(src: Path, repo: Path, tree: Path, work: Path, runs: int,
            label: str) -> dict[str, float]:
    """Median seconds of backup and snapshots, cold and warm cache."""
    out: dict[str, float] = {}
    for command in ("backup", "snapshots"):
        args = ["backup", str(tree), "--repo", str(repo)] if command == "backup" else \
               ["snapshots", "--repo", str(repo)]
        cold = []
        for i in range(runs):
            cache = work / f"cache-{label}-{command}-cold-{i}"
            cold.append(run(src, cache, args))
            shutil.rmtree(cache, ignore_errors=True)
        warm_cache = work / f"cache-{label}-{command}-warm"
        run(src, warm_cache, args)  # first use: the full verification
        warm = [run(src, warm_cache, args) for _ in range(runs)]
        out[f"{command}_cold"] = statistics.median(cold)
        out[f"{command}_warm"] = statistics.median(warm)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--other-src", type=Path, help="another checkout's src/ (before)")
    parser.add_argument("--work", type=Path, help="where to build (default: a temp dir)")
    opts = parser.parse_args()
    work = opts.work or Path(tempfile.mkdtemp(prefix="dv-ledger-state-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ["DELTAVAULT_CACHE_DIR"] = str(work / "build-cache")
    tree = work / "tree"
    tree.mkdir(exist_ok=True)
    for i in range(20):
        (tree / f"f{i}.json").write_text(json.dumps({"i": i, "pad": "x" * 2000}))
    results: dict[str, object] = {"records": opts.records, "runs": opts.runs,
                                  "cpu_count": os.cpu_count()}
    built = {}
    for name, records in (("empty", 0), ("journal", opts.records)):
        path = work / name
        if not (path / "config").exists():
            built[name] = build(path, records)
    results["build_seconds"] = built
    sources = {"this": ROOT / "src"}
    if opts.other_src:
        sources["other"] = opts.other_src
    for label, src in sources.items():
        for name in ("empty", "journal"):
            # each measured backup adds one snapshot: work on a copy
            copy = work / f"{label}-{name}"
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(work / name, copy)
            results[f"{label}/{name}"] = measure(src, copy, tree, work, opts.runs,
                                                 f"{label}-{name}")
            print(label, name, results[f"{label}/{name}"], flush=True)
    out = ROOT / "bench" / "results" / f"{time.strftime('%Y-%m-%d')}-ledger-state.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
