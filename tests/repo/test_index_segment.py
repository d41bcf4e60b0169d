"""Segment files and the manifest of the index cache: round trip and hostile bytes."""

from __future__ import annotations

import gc
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from deltavault.errors import DeltavaultError, FormatError
from deltavault.repo import index_segment
from deltavault.repo.index_build import SegmentBuilder, build_segment
from deltavault.repo.index_cache import encode_manifest, parse_manifest
from deltavault.repo.index_segment import BLOCK_RECORDS, FileSegment
from deltavault.repo.indexfile import IndexFile
from tests.support.hostile import HOSTILE, ROUNDTRIP, decode_or_reject, mutations
from tests.support.indexes import Entries, entries, expected

KEY = bytes(range(32))
RID = bytes(32 * [7])


def _segment(directory: Path, n_packs: int = 3, per_pack: int = 30, seed: int = 1
             ) -> tuple[FileSegment, Entries]:
    packs = entries(n_packs, per_pack, seed, delta_share=0.3)
    builder = SegmentBuilder(directory, "t")
    builder.add_file("ab" * 32, IndexFile.from_packs(packs, [b"\1" * 32]))
    return build_segment(builder, directory / "seg-00", KEY, RID), packs


def _all_records(seg: FileSegment) -> list[bytes]:
    return [r.tobytes() for _, rec in seg.batches() for r in rec]


def test_segment_round_trip(tmp_path: Path) -> None:
    seg, packs = _segment(tmp_path)
    want = expected(packs)
    assert seg.n == len(want) and seg.sources == {"ab" * 32}
    assert seg.supersedes == {"01" * 32}
    assert sorted(seg.pack_hex(i) for i in range(len(seg.packs))) == sorted(packs)
    for bid, loc in want.items():
        lo, hi = seg.span(bid)
        [rec] = [r for r in seg.records(lo, hi) if bytes(r["id"]).ljust(32, b"\0") == bid]
        assert seg.pack_hex(int(rec["pack"])) == loc.pack_id
        assert int(rec["offset"]) == loc.offset and int(rec["length"]) == loc.length
    assert seg.span(b"\xff" * 32)[0] == seg.span(b"\xff" * 32)[1]
    assert np.all(np.diff(seg.pfx.astype(np.float64)) >= 0)
    assert seg.n > BLOCK_RECORDS  # several blocks


def test_segment_refuses_another_key_or_repository(tmp_path: Path) -> None:
    seg, _ = _segment(tmp_path)
    with pytest.raises(FormatError):
        FileSegment.open(seg.path, bytes(32), RID)
    with pytest.raises(FormatError):
        FileSegment.open(seg.path, KEY, bytes(32))


_VALID_DIR = Path(tempfile.mkdtemp(prefix="dv-seg-test-"))
_VALID_SEG, _ = _segment(_VALID_DIR, n_packs=2, per_pack=40, seed=2)
VALID_SEGMENT = _VALID_SEG.path.read_bytes()
VALID_RECORDS = _all_records(_VALID_SEG)


def _open_and_read(data: bytes) -> list[bytes]:
    fd, name = tempfile.mkstemp(prefix="dv-seg-")
    try:
        os.write(fd, data)
        os.close(fd)
        seg = FileSegment.open(Path(name), KEY, RID)
        return _all_records(seg)
    finally:
        os.unlink(name)


@given(mutations(VALID_SEGMENT))
@HOSTILE
def test_hostile_segment_bytes(data: bytes) -> None:
    got = decode_or_reject(_open_and_read, data)
    # anything accepted is exactly what was written (a MAC and block hashes, not luck)
    assert got is None or (data == VALID_SEGMENT and got == VALID_RECORDS)


@given(st.integers(0, len(VALID_SEGMENT) - 1), st.integers(1, 255))
@HOSTILE
def test_any_changed_byte_of_a_segment_is_refused(pos: int, xor: int) -> None:
    data = bytearray(VALID_SEGMENT)
    data[pos] ^= xor
    with pytest.raises(DeltavaultError):
        _open_and_read(bytes(data))


VALID_MANIFEST = encode_manifest([("seg-" + "ab" * 16, b"\2" * 32),
                                  ("seg-" + "cd" * 16, b"\3" * 32)], KEY)


def test_manifest_round_trip() -> None:
    assert parse_manifest(VALID_MANIFEST, KEY) == [("seg-" + "ab" * 16, b"\2" * 32),
                                                   ("seg-" + "cd" * 16, b"\3" * 32)]
    with pytest.raises(FormatError):
        parse_manifest(VALID_MANIFEST, bytes(32))
    twice = encode_manifest([("seg-" + "ab" * 16, b"\2" * 32)] * 2, KEY)
    with pytest.raises(FormatError):
        parse_manifest(twice, KEY)


@given(mutations(VALID_MANIFEST))
@HOSTILE
def test_hostile_manifest_bytes(data: bytes) -> None:
    got = decode_or_reject(lambda d: parse_manifest(d, KEY), data)
    assert got is None or data == VALID_MANIFEST


@given(st.lists(st.tuples(st.integers(0, 200), st.integers(1, 4), st.booleans()), max_size=5),
       st.integers(0, 2**32 - 1))
def test_merging_files_equals_sorting_their_concatenation(shape: list[tuple[int, int, bool]],
                                                          seed: int) -> None:
    """``ArraySegment.from_files`` scatters each file into sorted places; the result is the
    plain path's: concatenate (pack numbers remapped to the merged table), sort stably."""
    from deltavault.repo.index_segment import ArraySegment
    from deltavault.repo.indexfile import RECORD_DTYPE, concat

    rng = np.random.default_rng(seed)
    files = []
    for k, (n, n_packs, shared_prefix) in enumerate(shape):
        rec = np.zeros(n, dtype=RECORD_DTYPE)
        # equal 8-byte prefixes across files: the stable order must keep file order
        rec["id"] = [(b"\x01" * 8 if shared_prefix and i % 2 else rng.bytes(8)) + rng.bytes(24)
                     for i in range(n)]
        rec["offset"] = np.arange(n) + 1000 * k
        rec["pack"] = rng.integers(0, n_packs, n)
        f = IndexFile([bytes([p, k % 3]) * 16 for p in range(n_packs)], rec, [])
        files.append((f"i{k}", f))
    merged = ArraySegment.from_files(files)
    table = merged.packs
    parts = []
    for _, f in files:
        part = f.records.copy()
        t = np.frombuffer(b"".join(f.pack_ids), dtype="S32")
        part["pack"] = np.searchsorted(table, t).astype(np.uint32)[part["pack"]]
        parts.append(part)
    plain = ArraySegment(concat(parts), table)
    assert merged.rec.tobytes() == plain.rec.tobytes()
    assert np.array_equal(merged.pfx, plain.pfx) and merged.n == plain.n


@given(st.lists(st.integers(0, 10**6), max_size=60), st.lists(st.integers(0, 10**6), max_size=8))
@ROUNDTRIP
def test_records_at_equals_one_record_at_a_time(picks: list[int], kept: list[int]) -> None:
    """Neighbouring blocks are read together and blocks already kept are copied: the
    records are the same as reading each position alone, in the order asked."""
    with tempfile.TemporaryDirectory() as d:
        seg, _ = _segment(Path(d), n_packs=4, per_pack=40)
        for p in kept:  # some blocks in the segment's cache, between runs
            seg.record(p % seg.n)
        pos = np.array([p % seg.n for p in picks], dtype=np.int64)
        got = [r.tobytes() for r in seg.records_at(pos)]
        want = [seg.records(int(p), int(p) + 1)[0].tobytes() for p in pos.tolist()]
        assert got == want


def test_records_at_refuses_a_block_changed_inside_a_run(tmp_path: Path) -> None:
    seg, _ = _segment(tmp_path, n_packs=4, per_pack=40)
    with open(seg.path, "r+b") as f:  # a record of the third block
        f.seek(64 + (2 * BLOCK_RECORDS + 3) * 82 + 70)
        f.write(b"\x55")
    with pytest.raises(DeltavaultError, match=r"block 2 .* was changed"):
        seg.records_at(np.arange(0, 5 * BLOCK_RECORDS, dtype=np.int64))
    ok = seg.records_at(np.array([0, BLOCK_RECORDS + 1], dtype=np.int64))  # blocks 0, 1
    assert len(ok) == 2


@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=60))
@ROUNDTRIP
def test_a_lookup_of_many_blocks_reads_the_segment_whole_once(picks: list[int]) -> None:
    """Same records as one at a time; later lookups read nothing more."""
    with tempfile.TemporaryDirectory() as d, pytest.MonkeyPatch.context() as mp:
        mp.setattr(index_segment, "WHOLE_MIN_BLOCKS", 1)
        seg, _ = _segment(Path(d), n_packs=4, per_pack=40)
        pos = np.array([p % seg.n for p in picks], dtype=np.int64)
        alone = FileSegment.open(seg.path, KEY, RID)  # its kept blocks are not seg's
        want = [alone.records(int(p), int(p) + 1)[0].tobytes() for p in pos.tolist()]
        many = np.arange(0, seg.n, BLOCK_RECORDS, dtype=np.int64)  # one from every block
        seg.records_at(many)
        reads: list[int] = []
        mp.setattr(index_segment, "_read_exact", lambda *a: reads.append(1))
        assert [r.tobytes() for r in seg.records_at(pos)] == want
        assert reads == []


def test_a_segment_read_whole_is_verified_block_by_block(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index_segment, "WHOLE_MIN_BLOCKS", 1)
    seg, _ = _segment(tmp_path, n_packs=4, per_pack=40)
    with open(seg.path, "r+b") as f:  # a record of the last block
        f.seek(64 + (seg.n - 2) * 82 + 70)
        f.write(b"\x55")
    with pytest.raises(DeltavaultError, match=r"block .* was changed"):
        seg.records_at(np.arange(0, seg.n, BLOCK_RECORDS, dtype=np.int64))


def test_lookups_that_read_as_many_blocks_as_the_segment_has_read_it_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``check`` asks one directory's blobs at a time: once its small lookups have read
    the segment's size in single blocks, the next reads it whole and none after that."""
    monkeypatch.setattr(index_segment, "WHOLE_MIN_BLOCKS", 1)
    monkeypatch.setattr(index_segment, "WHOLE_SHARE", 10**6)  # no lookup is large
    seg, _ = _segment(tmp_path, n_packs=4, per_pack=40)
    n_blocks = -(-seg.n // BLOCK_RECORDS)
    for b in range(n_blocks):
        seg.records_at(np.array([b * BLOCK_RECORDS], dtype=np.int64))
    seg.records_at(np.array([0], dtype=np.int64))  # this one reads the segment whole
    alone = FileSegment.open(seg.path, KEY, RID)
    reads: list[int] = []
    monkeypatch.setattr(index_segment, "_read_exact", lambda *a: reads.append(1))
    for p in range(0, seg.n, 7):
        assert seg.records_at(np.array([p], dtype=np.int64))[0].tobytes() == \
            alone.records(p, p + 1)[0].tobytes()
    assert reads == []


def test_segments_held_whole_stay_within_one_budget_per_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second segment that does not fit beside the first is looked up block by block,
    with the same answers; the first's share comes back when it goes."""
    monkeypatch.setattr(index_segment, "WHOLE_MIN_BLOCKS", 1)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, _ = _segment(tmp_path / "a", n_packs=4, per_pack=40, seed=1)
    second, _ = _segment(tmp_path / "b", n_packs=4, per_pack=40, seed=2)
    held = index_segment.whole_bytes_held()
    monkeypatch.setattr(index_segment, "WHOLE_MAX", held + first.n * 82 + 82)
    every = np.arange(0, first.n, dtype=np.int64)
    first.records_at(every)
    assert first._whole is not None
    alone = FileSegment.open(second.path, KEY, RID)
    got = [r.tobytes() for r in second.records_at(every)]
    assert second._whole is None
    assert got == [alone.records(p, p + 1)[0].tobytes() for p in range(second.n)]
    del first
    gc.collect()
    assert index_segment.whole_bytes_held() == held
