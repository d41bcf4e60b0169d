"""``deltavault mount``: ``ls -R`` of a many-file snapshot and ``cat`` of a large file.

Builds its inputs (a tree of N small files in 100 directories, and one file of
incompressible float32 "model weights"), backs them up into a fresh local
repository, mounts it with the real CLI (needs root or fusermount3, and
/dev/fuse), and times with the shell tools a user would run:

* ``ls -R`` and ``ls -lR`` of the many-file snapshot, cold (first look after
  mounting: every tree read, decrypted and verified) and warm (kernel caches);
* ``cat BIG > /dev/null`` cold (every blob fetched, decrypted, decoded and
  re-hashed) and warm (the kernel page cache, kept because snapshots never
  change), beside ``cat`` of the source file and ``deltavault dump`` of the
  same file for reference;
* the mount process's peak RSS.

The pack files were just written, so they are in the OS page cache: the cold
figures measure deltavault, not the disk. Results: a table, and JSON in
``bench/results/mount-<date>.json``.

    PYTHONPATH=src python bench/mount_bench.py [--files 100000] [--big-mib 1024]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from deltavault import api

PASSWORD = "mount bench"
SRC = Path(__file__).resolve().parents[1] / "src"


def build_many(root: Path, files: int) -> None:
    """``files`` small files (64–576 bytes) in 100 directories."""
    rng = np.random.default_rng(1)
    per_dir = max(1, files // 100)
    for d in range(0, files, per_dir):
        sub = root / f"dir{d // per_dir:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        for i in range(d, min(files, d + per_dir)):
            note = rng.bytes(int(rng.integers(16, 256))).hex()
            (sub / f"order-{i:07d}.json").write_text(f'{{"id": {i}, "note": "{note}"}}\n')


def build_big(path: Path, mib: int) -> None:
    """Incompressible float32 weights, written in 64 MiB pieces."""
    rng = np.random.default_rng(2)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        for left in range(mib, 0, -64):
            fh.write(rng.standard_normal((min(64, left) << 20) // 4, dtype=np.float32)
                     .tobytes())


def timed(argv: list[str], **kw: object) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, **kw)  # type: ignore[call-overload]
    return time.perf_counter() - start


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--big-mib", type=int, default=1024)
    ap.add_argument("--work", type=Path, default=None, help="work directory (default: temp)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="dv-mount-bench-"))
    env = {**os.environ, "PYTHONPATH": str(SRC), "DELTAVAULT_PASSWORD": PASSWORD,
           "DELTAVAULT_REPO": str(work / "repo")}
    results: dict[str, object] = {"files": args.files, "big_mib": args.big_mib,
                                  "machine": f"{os.cpu_count()} cores",
                                  "load_before": os.getloadavg()}

    many, big = work / "many", work / "big" / "weights.bin"
    t = time.perf_counter()
    build_many(many, args.files)
    build_big(big, args.big_mib)
    results["build_s"] = round(time.perf_counter() - t, 1)
    repo = api.init(work / "repo", PASSWORD.encode(), kdf_memory_kib=8192, kdf_time_cost=1)
    t = time.perf_counter()
    many_id = api.backup(repo, [many], snapshot_type="full").snapshot.id
    big_id = api.backup(repo, [big.parent], snapshot_type="full").snapshot.id
    results["backup_s"] = round(time.perf_counter() - t, 1)

    mnt = work / "mnt"
    mnt.mkdir(exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-m", "deltavault", "mount", str(mnt), "-q"],
                            env=env)
    try:
        deadline = time.monotonic() + 120
        while not os.path.ismount(mnt):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the mount did not come up")
            time.sleep(0.05)
        tree = mnt / "ids" / many_id
        results["ls_R_cold_s"] = timed(["ls", "-R", str(tree)])
        results["ls_R_warm_s"] = timed(["ls", "-R", str(tree)])
        results["ls_lR_s"] = timed(["ls", "-lR", str(tree)])
        target = mnt / "ids" / big_id / "big" / "weights.bin"
        results["cat_cold_s"] = timed(["cat", str(target)])
        results["cat_warm_s"] = timed(["cat", str(target)])
        results["mount_peak_rss_mib"] = peak_rss_mib(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    results["cat_source_s"] = timed(["cat", str(big)])
    results["dump_s"] = timed([sys.executable, "-m", "deltavault", "dump", big_id,
                               "big/weights.bin"], env=env)
    results["load_after"] = os.getloadavg()
    mib = args.big_mib
    for key in ("cat_cold", "cat_warm", "cat_source", "dump"):
        results[f"{key}_mib_s"] = round(mib / float(results[f"{key}_s"]), 1)  # type: ignore[arg-type]
    for key, value in results.items():
        print(f"{key:>22}: {value if not isinstance(value, float) else round(value, 3)}")
    out = args.json or (Path(__file__).parent / "results" /
                        f"mount-{datetime.date.today()}-{args.files}f-{mib}m.json")
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")
    if args.work is None and not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
