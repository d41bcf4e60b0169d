"""Building segments: external sort with spills, merging, dropping files, streamed index files."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from deltavault.errors import FormatError
from deltavault.repo import index_build
from deltavault.repo.index_build import SegmentBuilder, build_segment, merge_sorted
from deltavault.repo.index_segment import ArraySegment
from deltavault.repo.indexfile import RECORD_DTYPE, IndexFile, IndexStream, prefixes
from tests.support.hostile import ROUNDTRIP
from tests.support.indexes import entries

KEY = bytes(range(32))
RID = bytes(32)


def _records(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rec = np.zeros(n, dtype=RECORD_DTYPE)
    rec["id"] = np.frombuffer(rng.bytes(32 * n), "S32")
    rec["offset"] = rng.integers(0, 2**31, n)
    return rec


@given(st.lists(st.integers(0, 300), max_size=6), st.integers(1, 64), st.integers(0, 2**31))
@ROUNDTRIP
def test_merge_sorted_is_a_sorted_permutation(sizes: list[int], window: int, seed: int) -> None:
    runs = []
    for i, n in enumerate(sizes):
        rec = _records(n, seed + i)
        # few distinct prefixes, so equal keys straddle windows and runs
        rec.view(np.uint8).reshape(n, 82)[:, :7] = 0
        rec = rec[np.argsort(prefixes(rec), kind="stable")]
        runs.append(rec)
    inputs = [iter([r[k: k + window] for k in range(0, len(r), window)]) for r in runs]
    out = list(merge_sorted(inputs))
    merged = np.concatenate(out) if out else np.zeros(0, RECORD_DTYPE)
    assert np.all(np.diff(prefixes(merged).astype(np.int64)) >= 0) if len(merged) > 1 else True
    want = np.concatenate(runs) if runs else np.zeros(0, RECORD_DTYPE)
    assert sorted(r.tobytes() for r in merged) == sorted(r.tobytes() for r in want)


def test_builder_spills_runs_and_merges_them_with_segments(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index_build, "RUN_RECORDS", 100)
    monkeypatch.setattr(index_build, "WINDOW_RECORDS", 17)
    a = IndexFile.from_packs(entries(5, 70, seed=1))
    b = IndexFile.from_packs(entries(2, 40, seed=2))
    old = ArraySegment.from_files([("cc" * 32, IndexFile.from_packs(entries(3, 33, seed=3)))])
    builder = SegmentBuilder(tmp_path, "t")
    builder.add_file("aa" * 32, a)
    builder.add_file("bb" * 32, b)
    assert len(list(tmp_path.glob("tmp-run-*"))) == 4  # 430 records: 4 runs of 100 spilled
    seg = build_segment(builder, tmp_path / "seg-1", KEY, RID, fold=[old])
    assert not list(tmp_path.glob("tmp-run-*"))  # scratch removed
    assert seg.n == 350 + 80 + 99
    assert seg.sources == {"aa" * 32, "bb" * 32, "cc" * 32}
    got = {}
    for _, rec in seg.batches():
        for r in rec:
            got[bytes(r["id"]).ljust(32, b"\0")] = (seg.pack_hex(int(r["pack"])), int(r["offset"]))
    for seed, n_packs, per in ((1, 5, 70), (2, 2, 40), (3, 3, 33)):
        for pid, es in entries(n_packs, per, seed=seed).items():
            for e in es:
                assert got[e.id] == (pid, e.offset)


def test_dropped_file_leaves_no_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index_build, "RUN_RECORDS", 64)
    keep, gone = entries(3, 40, seed=4), entries(3, 40, seed=5)
    builder = SegmentBuilder(tmp_path, "t")
    builder.add_file("aa" * 32, IndexFile.from_packs(keep))
    builder.add_file("bb" * 32, IndexFile.from_packs(gone))  # spilled together with keep's
    builder.drop("bb" * 32)
    seg = build_segment(builder, tmp_path / "seg-2", KEY, RID)
    assert seg.n == 120 and seg.sources == {"aa" * 32}
    assert sorted(seg.pack_hex(i) for i in range(len(seg.packs))) == sorted(keep)


def _stream_body(n_sup: int, n_packs: int, n_blobs: int, body: bytes = b"") -> bytes:
    head = struct.pack("<4sIII", b"DVI1", n_sup, n_packs, n_blobs)
    return zstandard.ZstdCompressor().compress(head + body)


def test_stream_refuses_a_decompression_bomb() -> None:
    # valid zstd, small, declaring 2**31 records: refused before anything is allocated
    with pytest.raises(FormatError, match="declares"):
        IndexStream(_stream_body(0, 1, 2**31, bytes(32)))


def test_stream_yields_the_records_in_batches() -> None:
    f = IndexFile.from_packs(entries(4, 100, seed=6))
    stream = IndexStream(f.encode())
    batches = list(stream.batches(size=64))
    assert [len(b) for b in batches] == [64] * 6 + [16]
    assert np.concatenate(batches).tobytes() == f.records.tobytes()
    assert stream.pack_ids == f.pack_ids


def test_split_keeps_packs_whole_and_supersedes_last() -> None:
    packs = entries(7, 30, seed=7)
    packs["ee" * 32] = []  # a pack without records stays named
    f = IndexFile.from_packs(packs, [b"\5" * 32])
    parts = f.split(70)
    assert len(parts) == 4 and [len(p.records) for p in parts] == [60, 60, 60, 30]
    assert [p.supersedes for p in parts] == [[], [], [], [b"\5" * 32]]
    seen = [pid for p in parts for pid in p.pack_ids]
    assert sorted(seen) == sorted(bytes.fromhex(p) for p in packs)  # each pack in one file
    for p in parts:
        again = IndexFile.decode(p.encode())
        assert again.records.tobytes() == p.records.tobytes()
    assert [len(p.records) for p in f.split(20)] == [30] * 7  # a pack is never cut
    with pytest.raises(ValueError):
        f.split(0)
