"""Scale benchmarks built through the API: 10 million blobs, 10 million journal records.

``blobs``: a repository whose index names ``n`` blobs in ``n / 2,048`` packs
(4 KiB blobs in 8 MiB packs), written as index files of ``--blobs-per-index``
records through the repository's own classes (records of
``repo.index.RECORD_DTYPE`` in an ``IndexFile`` -> ``Repository.save_index_files``),
without pack data: building it costs seconds per million blobs, not a backup
of millions of files. The writer's own index cache goes to a scratch
directory that is deleted, so the probes start cold. A fresh process
(``probe-blobs``) then opens the repository, loads the index and looks up
ids, reporting open time, index-load time, RSS before and after the load and
after the lookups, and lookups per second for present and absent ids. It
runs twice with the same (initially empty) cache directory: ``cold`` (first
open: every index file downloaded and the local cache built) and ``warm``
(second open; the OS page cache is warm for both, which the benchmark cannot
drop without disturbing other work on the machine).

``journal``: two repositories with one small backup each; ``n`` journal
records (trade-like JSON objects) appended in batches through
``Journal.append`` to one of them. Then ``deltavault backup`` of the small
tree (one file changed) and ``deltavault snapshots`` are timed on both
(median of ``--repeat``); the target is the journal repository costing at
most 1.25x the empty one.

    python bench/scale_repo.py probe-blobs REPO IDS.npy   # internal: one probe process
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
from variants.common import rng  # noqa: E402

PASSWORD = b"benchmark-password"
BLOBS_PER_PACK = 2048
BLOB_BYTES = 4096


def cache_env(cache: Path) -> dict[str, str]:
    """Environment that keeps deltavault's local cache (if any) in ``cache``."""
    return {**os.environ, "DELTAVAULT_CACHE_DIR": str(cache / "dv"),
            "XDG_CACHE_HOME": str(cache / "xdg"),
            "PYTHONPATH": os.pathsep.join(p for p in (str(HERE.parent / "src"),
                                                      os.environ.get("PYTHONPATH")) if p)}


def build_blob_repo(path: Path, n: int, seed: int, *, per_index: int,
                    sample: int = 100_000) -> dict[str, Any]:
    """Create the repository and its index files; save ``sample`` present ids beside it."""
    import shutil

    from deltavault import api
    from deltavault.codec.registry import CodecId
    from deltavault.repo.index import RECORD_DTYPE, IndexFile
    from deltavault.repo.packs import BLOB_DATA

    t0 = time.perf_counter()
    scratch = path / "writer-cache"
    old = os.environ.get("DELTAVAULT_CACHE_DIR")
    os.environ["DELTAVAULT_CACHE_DIR"] = str(scratch)  # the probes' caches start empty
    try:
        repo = api.init(path / "repo", PASSWORD)
        g = rng(seed, "blobs")
        keep = np.sort(g.choice(n, size=min(sample, n), replace=False))
        kept: list[bytes] = []
        written = pack_no = 0
        index_files = 0
        while written < n:
            count = min(per_index, n - written)
            ids = g.bytes(32 * count)
            lengths = g.integers(BLOB_BYTES // 2, BLOB_BYTES * 3 // 2, count).astype(np.int64)
            rec = np.zeros(count, dtype=RECORD_DTYPE)
            rec["id"] = np.frombuffer(ids, dtype="S32")
            local = np.arange(count) // BLOBS_PER_PACK
            n_packs = int(local[-1]) + 1
            rec["pack"] = local
            stored = lengths + 28
            ends = np.cumsum(stored)
            starts = ends - stored
            first = np.searchsorted(local, local, side="left")  # first record of each pack
            rec["offset"] = starts - starts[first]
            rec["length"] = stored
            rec["raw_length"] = lengths * 2
            rec["type"] = BLOB_DATA
            rec["codec"] = int(CodecId.ZSTD)
            packs = [g.bytes(32) for _ in range(n_packs)]
            pack_no += n_packs
            lo, hi = np.searchsorted(keep, [written, written + count])
            kept += [ids[32 * (int(i) - written):32 * (int(i) - written) + 32]
                     for i in keep[lo:hi]]
            index_files += len(repo.save_index_files(IndexFile(packs, rec, []),
                                                     max_records=per_index))
            written += count
    finally:
        if old is None:
            os.environ.pop("DELTAVAULT_CACHE_DIR", None)
        else:
            os.environ["DELTAVAULT_CACHE_DIR"] = old
        shutil.rmtree(scratch, ignore_errors=True)
    np.save(path / "ids.npy", np.frombuffer(b"".join(kept), np.uint8).reshape(-1, 32))
    return {"blobs": n, "packs": pack_no, "index_files": index_files,
            "build_s": time.perf_counter() - t0,
            "index_bytes": sum(f.stat().st_size for f in (path / "repo" / "index").rglob("*")
                               if f.is_file())}


def _rss() -> tuple[int, int]:
    """(current RSS, peak RSS) of this process in bytes, from /proc."""
    vals = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            vals[line[:5]] = int(line.split()[1]) * 1024
    return vals.get("VmRSS", 0), vals.get("VmHWM", 0)


def _trimmed_rss() -> int:
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # glibc: give freed heap back
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return _rss()[0]


def probe_blobs(repo_path: Path, ids_path: Path, lookups: int) -> dict[str, Any]:
    """In this process: open, load the index, look ids up. Prints nothing; returns figures."""
    from deltavault import api

    rss0, _ = _rss()
    t0 = time.perf_counter()
    repo = api.open(repo_path, PASSWORD)
    t1 = time.perf_counter()
    # the queries exist before the baseline, so the RSS figures are the index's alone
    present = np.load(ids_path)
    g = rng(0, "probe")
    hits = [bytes(present[i]) for i in g.integers(0, len(present), lookups)]
    misses = [g.bytes(32) for _ in range(lookups)]
    del present
    rss_open = _trimmed_rss()
    with contextlib.suppress(OSError):  # reset the peak (VmHWM) so it excludes Argon2's
        Path("/proc/self/clear_refs").write_text("5")
    t2 = time.perf_counter()
    index = repo.load_index()
    t3 = time.perf_counter()
    rss_loaded, peak = _rss()
    rss_trimmed = _trimmed_rss()
    t4 = time.perf_counter()
    found = sum(index.get(b) is not None for b in hits)
    t5 = time.perf_counter()
    false = sum(index.get(b) is not None for b in misses)
    t6 = time.perf_counter()
    rss_looked_up = _trimmed_rss()
    if found != lookups or false:
        raise SystemExit(f"lookup check failed: {found}/{lookups} present ids found, "
                         f"{false} absent ids found")
    sync = getattr(repo, "index_sync", None)
    return {"open_s": t1 - t0, "index_load_s": t3 - t2, "open_total_s": (t1 - t0) + (t3 - t2),
            "rss_after_imports_bytes": rss0, "rss_after_open_bytes": rss_open,
            "rss_after_index_bytes": rss_loaded, "peak_rss_bytes": peak,
            "rss_after_index_trimmed_bytes": rss_trimmed,
            "index_rss_bytes": rss_trimmed - rss_open,
            "index_rss_after_lookups_bytes": rss_looked_up - rss_open,
            "index_load_peak_bytes": peak - rss_open,
            "index_files_fetched": getattr(sync, "fetched", None),
            "cache_segments": len(getattr(sync, "segments", []) or []),
            "lookups_present_per_s": lookups / (t5 - t4),
            "lookups_absent_per_s": lookups / (t6 - t5)}


def run_probe(path: Path, cache: Path, lookups: int) -> dict[str, float]:
    """One probe in a fresh interpreter (so imports and RSS are its own)."""
    r = subprocess.run([sys.executable, str(Path(__file__).resolve()), "probe-blobs",
                        str(path / "repo"), str(path / "ids.npy"), str(lookups)],
                       capture_output=True, text=True, env=cache_env(cache))
    if r.returncode != 0:
        raise RuntimeError(f"probe-blobs failed: {r.stderr.strip()[-500:]}")
    return dict(json.loads(r.stdout.strip().splitlines()[-1]))


def bench_blobs(work: Path, n: int, seed: int, *, per_index: int, lookups: int,
                say: Any) -> dict[str, Any]:
    """Build an ``n``-blob repository and probe it cold and warm."""
    path = work / f"blobs-{n}"
    path.mkdir(parents=True)
    built = build_blob_repo(path, n, seed, per_index=per_index)
    say(f"  built {n:,} blobs in {built['index_files']} index files "
        f"({built['index_bytes'] / 2**20:.1f} MiB) in {built['build_s']:.1f} s")
    cache = work / f"blobs-{n}-cache"
    out: dict[str, Any] = {"build": built}
    for phase in ("cold", "warm"):
        out[phase] = run_probe(path, cache, lookups)
        p = out[phase]
        say(f"  {phase}: open {p['open_total_s']:.2f} s (index {p['index_load_s']:.2f} s), "
            f"index RSS {p['index_rss_bytes'] / n:.1f} B/blob "
            f"({p['index_rss_after_lookups_bytes'] / n:.1f} after lookups), "
            f"{p['lookups_present_per_s']:,.0f} / {p['lookups_absent_per_s']:,.0f} "
            "lookups/s present / absent")
    out["index_rss_per_blob"] = out["warm"]["index_rss_bytes"] / n
    out["index_rss_after_lookups_per_blob"] = out["warm"]["index_rss_after_lookups_bytes"] / n
    return out


# --- journal -----------------------------------------------------------------------------

def _records(g: np.random.Generator, start: int, count: int) -> list[dict[str, Any]]:
    px = np.round(g.lognormal(5, 1, count), 2).tolist()
    qty = g.integers(1, 5000, count).tolist()
    side = g.integers(0, 2, count).tolist()
    return [{"type": "fill", "id": start + i, "px": px[i], "qty": qty[i],
             "side": "BUY" if side[i] else "SELL", "sym": f"S{(start + i) % 500:03d}"}
            for i in range(count)]


def bench_journal(work: Path, n: int, seed: int, *, batch: int, repeat: int,
                  say: Any) -> dict[str, Any]:
    """Time ``backup`` and ``snapshots`` with ``n`` journal records against none."""
    import scaletree
    from tools import Deltavault

    from deltavault import api
    from deltavault.ledger.journal import Journal

    tree = work / f"journal-{n}-tree"
    scaletree.make_tree(tree, 100, "binary", seed)
    out: dict[str, Any] = {"records": n}
    for name, records in (("empty", 0), ("journal", n)):
        tool = Deltavault(work / f"journal-{n}-{name}", "incr")
        tool.prepare()
        repo = api.init(tool.repo, PASSWORD)
        api.backup(repo, [tree], snapshot_type="full")
        if records:
            journal = Journal(repo.ledger, repo.crypto)
            g = rng(seed, "journal")
            t0 = time.perf_counter()
            done = 0
            while done < records:
                count = min(batch, records - done)
                journal.append(_records(g, done, count))
                done += count
            out["append_s"] = time.perf_counter() - t0
            out["append_per_s"] = records / out["append_s"]
            say(f"  appended {records:,} journal records in {out['append_s']:.1f} s "
                f"({out['append_per_s']:,.0f}/s)")
        del repo
        backups, listings = [], []
        for k in range(repeat):
            f = tree / "g000" / "d000" / "f00.bin"
            f.write_bytes(f.read_bytes()[:-8] + k.to_bytes(8, "little"))
            backups.append(tool.backup(tree, f"r{k}", "change")[1].seconds)
            listings.append(tool.list_snapshots().seconds)
        out[f"{name}_backup_s"] = statistics.median(backups)
        out[f"{name}_snapshots_s"] = statistics.median(listings)
        say(f"  {name}: backup {out[f'{name}_backup_s']:.2f} s, "
            f"snapshots {out[f'{name}_snapshots_s']:.2f} s")
    out["backup_ratio"] = out["journal_backup_s"] / out["empty_backup_s"]
    out["snapshots_ratio"] = out["journal_snapshots_s"] / out["empty_snapshots_s"]
    return out


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "probe-blobs":
        result = probe_blobs(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]))
        print(json.dumps(result))
    else:
        raise SystemExit(__doc__)
