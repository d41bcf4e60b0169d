"""Benchmark workloads: generate a state, apply one day of change, or check determinism.

    python bench/workload.py gen DIR --workload books --scale 1 --seed 0
    python bench/workload.py mutate DIR --workload books --day 1 --seed 0
    python bench/workload.py selftest --scale 0.02

``trading`` (the default) is :mod:`deltavault.sampledata.state`, the product's
own demo-data generator; ``books``, ``weights``, ``textlog`` and ``mixed`` are
independent generators in ``bench/variants/`` (see docs/benchmark.md).
``selftest`` generates every workload twice and applies three days to each
copy, and fails unless both copies are byte-identical at every step and a
different seed gives different bytes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

import blake3  # noqa: E402
import variants  # noqa: E402
from variants.common import walk_files  # noqa: E402


def tree_digest(root: Path) -> str:
    """BLAKE3 over every file's path and content, in path order."""
    h = blake3.blake3()
    for rel, size in walk_files(root):
        h.update(f"{rel}\0{size}\0".encode())
        h.update((root / rel).read_bytes())
    return h.hexdigest()[:16]


def selftest(scale: float, seed: int, days: int) -> int:
    """Generate each workload twice; compare digests after generation and each day."""
    failed = 0
    with tempfile.TemporaryDirectory(prefix="workload-selftest-") as tmp:
        for wl in variants.WORKLOADS.values():
            runs = []
            for copy in range(2):
                root = Path(tmp) / f"{wl.name}-{copy}"
                wl.generate(root, scale=scale, seed=seed)
                digests = [tree_digest(root)]
                for day in range(1, days + 1):
                    change = wl.mutate(root, day=day, seed=seed)
                    if not change.changed_files:
                        digests.append("no change")
                    digests.append(tree_digest(root))
                runs.append(digests)
                shutil.rmtree(root)
            other = Path(tmp) / f"{wl.name}-other"
            wl.generate(other, scale=scale, seed=seed + 1)
            differs = tree_digest(other) != runs[0][0]
            shutil.rmtree(other)
            ok = runs[0] == runs[1] and differs and "no change" not in runs[0] \
                and len(set(runs[0])) == len(runs[0])
            failed += not ok
            print(f"{wl.name:8} {'ok' if ok else 'FAILED'}: {' '.join(runs[0])}"
                  + ("" if differs else " (another seed gave the same bytes)"))
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the sub-command, print a JSON summary."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen", help="generate a fresh state directory")
    g.add_argument("dir", type=Path)
    g.add_argument("--scale", type=float, default=1.0, help="1: the sizes in docs/benchmark.md")
    m = sub.add_parser("mutate", help="apply one day of change in place")
    m.add_argument("dir", type=Path)
    m.add_argument("--day", type=int, required=True, help="1 for the first day after gen")
    for p in (g, m):
        p.add_argument("--workload", default="trading", choices=list(variants.WORKLOADS))
        p.add_argument("--seed", type=int, default=0, help="the seed the state is made with")
    s = sub.add_parser("selftest", help="check that every workload is deterministic")
    s.add_argument("--scale", type=float, default=0.02)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--days", type=int, default=3)
    args = ap.parse_args(argv)
    if args.cmd == "selftest":
        return selftest(args.scale, args.seed, args.days)
    wl = variants.WORKLOADS[args.workload]
    t0 = time.perf_counter()
    if args.cmd == "gen":
        out = wl.generate(args.dir, scale=args.scale, seed=args.seed)
    else:
        out = wl.mutate(args.dir, day=args.day, seed=args.seed).to_dict()
    out["seconds"] = round(time.perf_counter() - t0, 3)
    print(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
