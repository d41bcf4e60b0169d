"""Index files and the in-memory index (docs/format.md §6)."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from deltavault.codec.registry import CODECS_REQUIRING_BASE as CODECS_WITH_BASE
from deltavault.codec.registry import KNOWN_CODECS
from deltavault.errors import FormatError
from deltavault.repo.index import RECORD_DTYPE, IndexFile, MasterIndex
from deltavault.repo.indexfile import entry_records
from deltavault.repo.packs import PackEntry
from tests.support.hostile import HOSTILE, ROUNDTRIP, decode_or_reject, mutations

# ids that end in NUL bytes are the interesting case for numpy's S32
ids = st.binary(min_size=32, max_size=32) | st.binary(min_size=1, max_size=31).map(
    lambda b: b.ljust(32, b"\0"))


@st.composite
def packs(draw: st.DrawFn) -> dict[str, list[PackEntry]]:
    out: dict[str, list[PackEntry]] = {}
    for pid in draw(st.lists(st.binary(min_size=32, max_size=32), max_size=4, unique=True)):
        es = []
        for _ in range(draw(st.integers(0, 5))):
            codec = draw(st.sampled_from(sorted(KNOWN_CODECS)))
            base = draw(ids.filter(any)) if codec in CODECS_WITH_BASE else None
            es.append(PackEntry(draw(st.sampled_from([0, 1])), codec,
                                draw(st.integers(0, 2**32 - 1)), draw(st.integers(28, 2**32 - 1)),
                                draw(st.integers(0, 2**32 - 1)), draw(ids), base))
        out[pid.hex()] = es
    return out


def _valid() -> bytes:
    es = [PackEntry(0, 1, 0, 100, 90, b"\1" * 32), PackEntry(1, 2, 100, 50, 40, b"\2" * 32,
                                                             b"\1" * 32)]
    return IndexFile.from_packs({"ab" * 32: es}, supersedes=[b"\3" * 32]).encode()


VALID = _valid()


@given(packs(), st.lists(st.binary(min_size=32, max_size=32), max_size=3))
@ROUNDTRIP
def test_round_trip(p: dict[str, list[PackEntry]], sup: list[bytes]) -> None:
    f = IndexFile.from_packs(p, supersedes=sup)
    g = IndexFile.decode(f.encode())
    assert g.pack_ids == f.pack_ids == [bytes.fromhex(k) for k in sorted(p)]
    assert g.supersedes == sup
    assert g.records.tobytes() == f.records.tobytes()


@given(packs())
@ROUNDTRIP
def test_packs_kept_as_records_make_the_same_index_file(p: dict[str, list[PackEntry]]) -> None:
    """A backup keeps written packs as records (82 B a blob, not ~290 as objects)."""
    as_records = {pid: entry_records(es) for pid, es in p.items()}
    f = IndexFile.from_packs(p)
    g = IndexFile.from_packs(as_records)
    assert g.encode() == f.encode()
    assert [bytes(r["id"]).ljust(32, b"\0") for r in g.records] == [
        e.id for k in sorted(p) for e in p[k]]
    assert all(int(r["pack"]) == 0 for rec in as_records.values() for r in rec)  # not changed


@given(packs())
@ROUNDTRIP
def test_master_index_finds_every_blob(p: dict[str, list[PackEntry]]) -> None:
    m = MasterIndex()
    m.load([("i1", IndexFile.decode(IndexFile.from_packs(p).encode()))])
    expected = {e.id: (pid, e) for pid, es in p.items() for e in es}
    for bid, (pid, e) in expected.items():
        loc = m.get(bid)
        assert loc is not None, bid
        if sum(1 for es in p.values() for x in es if x.id == bid) == 1:
            assert (loc.pack_id, loc.offset, loc.length, loc.raw_length, loc.type, loc.codec,
                    loc.base) == (pid, e.offset, e.length, e.raw_length, e.type, e.codec, e.base)
    assert m.get(b"\xff" * 32) is None or b"\xff" * 32 in expected
    assert m.pack_ids() == set(p)


@given(packs())
@ROUNDTRIP
def test_slots_are_distinct_positions_with_the_preferred_length(
        p: dict[str, list[PackEntry]]) -> None:
    m = MasterIndex()
    m.load([("i1", IndexFile.decode(IndexFile.from_packs(p).encode()))])
    slots = {}
    for bid in {e.id for es in p.values() for e in es}:
        pos, length = m.slot(bid)
        loc = m.get(bid)
        assert loc is not None and 0 <= pos < len(m) and length == loc.length
        slots[bid] = pos
    assert len(set(slots.values())) == len(slots)  # one mark per blob, never shared
    unknown = b"\xfe" * 32
    assert unknown in slots or m.slot(unknown) == (-1, 0)


def test_superseded_index_files_are_ignored() -> None:
    old = IndexFile.from_packs({"aa" * 32: [PackEntry(0, 0, 0, 40, 12, b"\5" * 32)]})
    new = IndexFile.from_packs({"bb" * 32: [PackEntry(0, 0, 0, 40, 12, b"\5" * 32)]},
                               supersedes=[bytes.fromhex("cc" * 32)])
    m = MasterIndex()
    m.load([("cc" * 32, old), ("dd" * 32, new)])
    loc = m.get(b"\5" * 32)
    assert loc is not None and loc.pack_id == "bb" * 32
    assert m.index_ids == {"dd" * 32}


@given(mutations(VALID))
@HOSTILE
def test_hostile_compressed_bytes(data: bytes) -> None:
    decode_or_reject(IndexFile.decode, data)


@given(mutations(zstandard.ZstdDecompressor().decompress(VALID)))
@HOSTILE
def test_hostile_plaintext(body: bytes) -> None:
    # what an attacker holding the key (or a bug) could produce: valid zstd, bad body
    decode_or_reject(IndexFile.decode, zstandard.ZstdCompressor().compress(body))


def _body(n_sup: int, n_packs: int, recs: np.ndarray) -> bytes:
    head = struct.pack("<4sIII", b"DVI1", n_sup, n_packs, len(recs))
    return zstandard.ZstdCompressor().compress(
        head + b"\7" * 32 * (n_sup + n_packs) + recs.tobytes())


@pytest.mark.parametrize("field,value", [("pack", 1), ("type", 2), ("codec", 77),
                                         ("base", b"\1" * 32)])
def test_bad_record_fields_are_rejected(field: str, value: object) -> None:
    rec = np.zeros(1, dtype=RECORD_DTYPE)
    rec[0] = (b"\1" * 32, b"", 0, 0, 40, 12, 0, 0)
    rec[field] = value
    with pytest.raises(FormatError):
        IndexFile.decode(_body(0, 1, rec))


def test_counts_must_match_length() -> None:
    rec = np.zeros(2, dtype=RECORD_DTYPE)
    body = zstandard.ZstdDecompressor().decompress(_body(0, 1, rec))
    for bad in (body[:-1], body + b"\0", body.replace(b"DVI1", b"DVI2", 1)):
        with pytest.raises(FormatError):
            IndexFile.decode(zstandard.ZstdCompressor().compress(bad))
    huge = struct.pack("<4sIII", b"DVI1", 2**32 - 1, 2**32 - 1, 2**32 - 1)
    with pytest.raises(FormatError):
        IndexFile.decode(zstandard.ZstdCompressor().compress(huge))


@given(packs(), packs())
@ROUNDTRIP
def test_arrays_hold_every_record_sorted_with_self_contained_copies_first(
        p: dict[str, list[PackEntry]], q: dict[str, list[PackEntry]]) -> None:
    """Prune's whole-index view: every record of every index file, pack ids remapped."""
    q = {pid: es for pid, es in q.items() if pid not in p}
    m = MasterIndex()
    m.load([("i1", IndexFile.decode(IndexFile.from_packs(p).encode())),
            ("i2", IndexFile.decode(IndexFile.from_packs(q).encode()))])
    pack_ids, rec = m.arrays()
    got = [(bytes(r["id"]).ljust(32, b"\0"), pack_ids[int(r["pack"])], int(r["offset"]),
            int(r["length"]), bytes(r["base"]).ljust(32, b"\0")) for r in rec]
    want = [(e.id, pid, e.offset, e.length, (e.base or b"").ljust(32, b"\0"))
            for packs_ in (p, q) for pid, es in packs_.items() for e in es]
    assert sorted(got) == sorted(want)
    keys = [(g[0], g[4] != b"\0" * 32) for g in got]
    assert keys == sorted(keys)  # by id; a self-contained copy before a delta
