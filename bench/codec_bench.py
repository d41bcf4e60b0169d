"""Measure deltavault's codecs and chunk sizes on synthetic trading-state changes.

For each data kind (order books ticked at 0.01 and 0.5, float32 weights
fine-tuned by N(0, 1e-4), a 100k-row SQLite positions table with 3 % of rows
updated in place, an appended JSONL trade log) it builds an old and a new
version, chunks both, and reports for the changed chunks:

* ``zstd3``  — plain zstd -3 of every changed chunk (= restic/borg-like
  whole-chunk dedup: every changed chunk stored compressed);
* one column per delta codec (against the old chunk at the same position; for
  the log, the most similar old chunk by sketch); ``decimal`` falls back to
  zstd -3 where it does not apply;
* ``best``   — the smallest codec per chunk; ``auto`` — what the policy stores;
* stored bytes include 184 bytes of per-blob overhead (envelope 28, pack
  header entry 74, index record 82), which is what penalises tiny chunks.

Then encode/decode MB/s per codec, ``auto`` vs zstd -3 wall time, and sketch
speed. Prints tables and writes JSON to bench/results/codec_bench.json.

Run: ``PYTHONPATH=src python bench/codec_bench.py [--quick]``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from deltavault.chunk.base import ChunkRef
from deltavault.chunk.fastcdc import CdcParams, FastCdcChunker
from deltavault.chunk.npy import NpyChunker
from deltavault.chunk.sqlite import SqliteChunker
from deltavault.codec import CODECS, CodecId, choose, decode, encode
from deltavault.codec.sketch import SketchIndex, sketch

OVERHEAD = 28 + 74 + 82
DELTA_CODECS = [CodecId.ZSTD_PATCH, CodecId.FLOAT_XOR, CodecId.FLOAT_SUB, CodecId.DECIMAL]
RNG = np.random.default_rng(20261123)


# --- synthetic data -------------------------------------------------------------


def order_book(tick: float, snapshots: int, levels: int = 20) -> tuple[bytes, bytes]:
    """L2 book snapshots [bid_px, bid_sz, ask_px, ask_sz] × levels, float64 .npy.

    The new version moves every price by -2..+2 ticks and a third of sizes.
    Prices are ``ticks / (1/tick)`` — the nearest double to the decimal, as a
    feed parser produces.
    """
    scale = round(1 / tick)
    mid = np.round(np.cumsum(RNG.normal(0, 4, snapshots))) + 400_000 // (100 // scale or 1)
    lv = np.arange(1, levels + 1)
    bid = mid[:, None] - lv[None, :]
    ask = mid[:, None] + lv[None, :]
    bsz = RNG.integers(1, 500, (snapshots, levels)).astype(np.float64)
    asz = RNG.integers(1, 500, (snapshots, levels)).astype(np.float64)

    def pack(bid_t: np.ndarray, ask_t: np.ndarray, b: np.ndarray, a: np.ndarray) -> bytes:
        arr = np.stack([bid_t / scale, b, ask_t / scale, a], axis=-1)
        buf = io.BytesIO()
        np.save(buf, arr)
        return buf.getvalue()

    move = RNG.integers(-2, 3, (snapshots, 1))
    bsz2 = np.where(RNG.random(bsz.shape) < 0.33, RNG.integers(1, 500, bsz.shape), bsz)
    asz2 = np.where(RNG.random(asz.shape) < 0.33, RNG.integers(1, 500, asz.shape), asz)
    return pack(bid, ask, bsz, asz), pack(bid + move, ask + move, bsz2, asz2)


def weights(n: int) -> tuple[bytes, bytes]:
    """A float32 layer and its fine-tuned version (+N(0, 1e-4) on every value)."""
    w = RNG.normal(0, 0.05, n).astype(np.float32)
    w2 = (w + RNG.normal(0, 1e-4, n)).astype(np.float32)
    out = []
    for arr in (w, w2):
        buf = io.BytesIO()
        np.save(buf, arr)
        out.append(buf.getvalue())
    return out[0], out[1]


def positions_db(tmp: Path, rows: int = 100_000, share: float = 0.03) -> tuple[bytes, bytes]:
    """A positions table; the new version has ``share`` of rows updated in place."""
    path = tmp / "positions.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE positions (id INTEGER PRIMARY KEY, account TEXT, symbol TEXT,"
                " qty REAL, avg_px REAL, collateral REAL, updated INTEGER)")
    con.executemany("INSERT INTO positions VALUES (?,?,?,?,?,?,?)",
                    [(i, f"ACC{i % 500:05d}", f"SYM{int(RNG.integers(5000)):05d}",
                      float(RNG.integers(-5000, 5000)), round(float(RNG.uniform(1, 900)), 2),
                      round(float(RNG.uniform(0, 1e6)), 2), 1_700_000_000)
                     for i in range(rows)])
    con.commit()
    old = path.read_bytes()
    ids = RNG.choice(rows, int(rows * share), replace=False)
    con.executemany("UPDATE positions SET qty = qty + ?, avg_px = ?, updated = ? WHERE id = ?",
                    [(float(RNG.integers(-50, 50)), round(float(RNG.uniform(1, 900)), 2),
                      1_700_086_400, int(i)) for i in ids])
    con.commit()
    con.close()
    return old, path.read_bytes()


def trade_log(lines: int) -> tuple[bytes, bytes]:
    """A JSONL trade log and the same log with a day of trades appended."""
    def make(start: int, n: int) -> bytes:
        return b"".join(json.dumps({
            "ts": 1_700_000_000_000 + 37 * i, "id": i, "sym": f"SYM{int(RNG.integers(500)):03d}",
            "side": "B" if RNG.random() < 0.5 else "S", "px": int(RNG.integers(1, 90000)) / 100,
            "qty": int(RNG.integers(1, 1000)), "venue": "XNAS"}).encode() + b"\n"
            for i in range(start, start + n))
    old = make(0, lines)
    return old, old + make(lines, lines // 10)


# --- measurement ------------------------------------------------------------------


def _chunks(chunker: Any, data: bytes) -> list[ChunkRef]:
    return list(chunker.split(io.BytesIO(data)))


def _bases(old: list[ChunkRef], new: list[ChunkRef], aligned: bool) -> list[
        tuple[ChunkRef, bytes | None]]:
    """Changed new chunks with their base: same position, or most similar by sketch."""
    known = {hashlib.sha256(c.data).digest() for c in old}
    changed = [c for c in new if hashlib.sha256(c.data).digest() not in known]
    if aligned:
        by_off = {c.offset: bytes(c.data) for c in old}
        return [(c, by_off.get(c.offset)) for c in changed]
    index = SketchIndex()
    for i, c in enumerate(old):
        index.add(i, sketch(c.data), c.offset)
    out: list[tuple[ChunkRef, bytes | None]] = []
    for c in changed:
        best = index.best(sketch(c.data), c.offset)
        out.append((c, bytes(old[best].data) if isinstance(best, int) else None))
    return out


def stored_bytes(pairs: list[tuple[ChunkRef, bytes | None]]) -> dict[str, int]:
    """Bytes stored for the changed chunks under each method (+ per-blob overhead)."""
    res = {"changed_chunks": len(pairs), "changed_raw": sum(c.length for c, _ in pairs)}
    totals = {"zstd3": 0, "best": 0, "auto": 0} | {CODECS[c].name: 0 for c in DELTA_CODECS}
    for c, base in pairs:
        z = len(encode(CodecId.ZSTD, c.data, level=3) or b"")
        totals["zstd3"] += z + OVERHEAD
        best = z
        for cid in DELTA_CODECS:
            p = encode(cid, c.data, base, level=3, hint=c.hint)
            size = z if p is None else len(p)
            totals[CODECS[cid].name] += size + OVERHEAD
            best = min(best, size)
        totals["best"] += min(best, c.length) + OVERHEAD
        enc = choose(c.data, base, c.hint, "auto")
        assert decode(enc.codec_id, enc.payload, base if enc.base_used else None,
                      c.length) == bytes(c.data)
        totals["auto"] += len(enc.payload) + OVERHEAD
    return res | totals


def _median_time(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def throughput(pairs: list[tuple[ChunkRef, bytes | None]], repeat: int) -> dict[str, Any]:
    """Encode/decode MB/s of each codec over the changed chunks; auto vs zstd -3."""
    raw = sum(c.length for c, _ in pairs)
    out: dict[str, Any] = {}
    for cid in [CodecId.ZSTD, *DELTA_CODECS]:
        payloads = [encode(cid, c.data, b, level=3, hint=c.hint) for c, b in pairs]
        if any(p is None for p in payloads):
            out[CODECS[cid].name] = None
            continue
        te = _median_time(lambda cid=cid: [encode(cid, c.data, b, level=3, hint=c.hint)
                                           for c, b in pairs], repeat)
        uses = CODECS[cid].uses_base
        td = _median_time(lambda cid=cid, payloads=payloads, uses=uses: [
            decode(cid, p, b if uses else None, c.length)
            for (c, b), p in zip(pairs, payloads, strict=True)], repeat)
        out[CODECS[cid].name] = {"enc_MBps": raw / te / 1e6, "dec_MBps": raw / td / 1e6}
    t_z = _median_time(lambda: [encode(CodecId.ZSTD, c.data, level=3) for c, _ in pairs], repeat)
    t_auto = _median_time(lambda: [choose(c.data, b, c.hint, "auto") for c, b in pairs], repeat)
    t_full = _median_time(lambda: [choose(c.data, None, c.hint, "auto") for c, _ in pairs],
                          repeat)
    out["auto_vs_zstd3_time"] = t_auto / t_z
    out["auto_nobase_vs_zstd3_time"] = t_full / t_z
    return out


def kinds(tmp: Path, quick: bool) -> dict[str, tuple[bytes, bytes, str]]:
    """Data kind → (old, new, chunker family)."""
    scale = 4 if quick else 1
    return {
        "book_tick0.01": (*order_book(0.01, 40_000 // scale), "npy"),
        "book_tick0.5": (*order_book(0.5, 40_000 // scale), "npy"),
        "weights_f32": (*weights(8_000_000 // scale), "npy"),
        "sqlite_3pct": (*positions_db(tmp, 100_000 // scale), "sqlite"),
        "trade_log": (*trade_log(200_000 // scale), "cdc"),
    }


def chunkers(family: str) -> dict[str, Any]:
    """Chunk sizes to compare for a chunker family."""
    if family == "npy":
        return {f"{s // 1024}K": NpyChunker(s) for s in (64 << 10, 256 << 10, 1 << 20, 4 << 20)}
    if family == "sqlite":
        return {f"{s // 1024}K": SqliteChunker(s)
                for s in (4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20)}
    return {"cdc1M": FastCdcChunker(CdcParams(seed=7)),
            "cdc256K": FastCdcChunker(CdcParams(64 << 10, 256 << 10, 1 << 20, seed=7))}


def sketch_speed(repeat: int) -> float:
    data = RNG.bytes(1 << 20)
    t = _median_time(lambda: [sketch(data) for _ in range(20)], repeat)
    return 20 * len(data) / t / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="quarter-size data, one repeat")
    ap.add_argument("--out", default="bench/results/codec_bench.json")
    args = ap.parse_args()
    repeat = 1 if args.quick else 3
    machine = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
               "python": sys.version.split()[0]}
    result: dict[str, Any] = {"machine": machine, "repeat": repeat, "sizes": {}, "speed": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for kind, (old, new, family) in kinds(Path(tmp), args.quick).items():
            print(f"\n== {kind}: old {len(old) / 2**20:.1f} MiB, new {len(new) / 2**20:.1f} MiB")
            cols = ["zstd3", "zstd-patch", "float-xor", "float-sub", "decimal", "best", "auto"]
            print(f"{'chunk':>8} {'chg':>5} {'chg MiB':>8} " + " ".join(f"{c:>10}" for c in cols))
            for label, chunker in chunkers(family).items():
                pairs = _bases(_chunks(chunker, old), _chunks(chunker, new), family != "cdc")
                sizes = stored_bytes(pairs)
                result["sizes"].setdefault(kind, {})[label] = sizes
                print(f"{label:>8} {sizes['changed_chunks']:>5} "
                      f"{sizes['changed_raw'] / 2**20:>8.2f} "
                      + " ".join(f"{sizes[c] / 1024:>9.0f}K" for c in cols))
            default = {"npy": "1024K", "sqlite": "64K", "cdc": "cdc1M"}[family]
            pairs = _bases(_chunks(chunkers(family)[default], old),
                           _chunks(chunkers(family)[default], new), family != "cdc")
            speed = throughput(pairs, repeat)
            result["speed"][kind] = speed
            print("  MB/s enc/dec: " + ", ".join(
                f"{k} {v['enc_MBps']:.0f}/{v['dec_MBps']:.0f}" for k, v in speed.items()
                if isinstance(v, dict)))
            print(f"  auto time / zstd-3 time: with base {speed['auto_vs_zstd3_time']:.2f}, "
                  f"no base {speed['auto_nobase_vs_zstd3_time']:.2f}")
    result["speed"]["sketch_MBps"] = sketch_speed(repeat)
    print(f"\nsketch: {result['speed']['sketch_MBps']:.0f} MB/s on 1 MiB random chunks")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
