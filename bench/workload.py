"""Benchmark workload: generate a trading state, or apply one day of change to it.

    python bench/workload.py gen DIR --scale 1 --seed 0
    python bench/workload.py mutate DIR --day 1 --seed 0

A thin command line over :mod:`deltavault.sampledata.state`, which holds the one
implementation of the workload described in BENCHMARK.md (the product's
``demo-data`` command uses the same generator at a small scale).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from deltavault import sampledata


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the sub-command, print a JSON summary."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen", help="generate a fresh state directory")
    g.add_argument("dir", type=Path)
    g.add_argument("--scale", type=float, default=1.0, help="1 ≈ 600 MiB (default 1)")
    g.add_argument("--seed", type=int, default=0)
    m = sub.add_parser("mutate", help="apply one day of change in place")
    m.add_argument("dir", type=Path)
    m.add_argument("--day", type=int, required=True, help="1 for the first day after gen")
    m.add_argument("--seed", type=int, default=0, help="the seed the state was made with")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    if args.cmd == "gen":
        out = sampledata.generate(args.dir, scale=args.scale, seed=args.seed).to_dict()
    else:
        out = sampledata.mutate(args.dir, day=args.day, seed=args.seed).to_dict()
    out["seconds"] = round(time.perf_counter() - t0, 3)
    print(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
