"""``MasterIndex.single_packs``: the array lookup ``check`` and no-change backups use.

It must answer exactly what the per-record path answers (a pack for a blob
stored once and self-contained; None for anything else), whether the records
are in memory or in verified cache files, and must not trust a block of a
cache file that changed after it was opened.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deltavault import api
from deltavault.repo.index import IndexFile, MasterIndex
from deltavault.repo.packs import PackEntry
from deltavault.repo.repository import Repository
from tests.repo.test_index import packs
from tests.support.cli import PASSWORD
from tests.support.hostile import ROUNDTRIP
from tests.support.indexes import Entries, entries, expected, same_host


def _want(index: MasterIndex, blob_ids: list[bytes]) -> list[str | None]:
    out: list[str | None] = []
    for bid in blob_ids:
        locs = index.locations(bid)
        out.append(locs[0].pack_id if len(locs) == 1 and locs[0].base is None else None)
    return out


def _queries(p: Entries, extra: list[bytes]) -> list[bytes]:
    ids = [e.id for es in p.values() for e in es]
    # an id sharing a stored id's 8-byte prefix but not the rest: the prefix search
    # finds one record, the comparison of whole ids must refuse it
    twins = [i[:8] + bytes(b ^ 0xFF for b in i[8:]) for i in ids[:3]]
    return [*ids, *twins, *extra]


@given(packs(), st.lists(st.binary(min_size=32, max_size=32), max_size=3))
@ROUNDTRIP
def test_in_memory_answers_like_locations(p: dict[str, list[PackEntry]],
                                          extra: list[bytes]) -> None:
    m = MasterIndex()
    m.load([("i1", IndexFile.decode(IndexFile.from_packs(p).encode()))])
    q = _queries(p, extra)
    assert m.single_packs(q) == _want(m, q)


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return api.init(tmp_path / "repo", PASSWORD.encode(), kdf_memory_kib=8192, kdf_time_cost=1)


def _stored_twice(repo: Repository) -> tuple[Entries, PackEntry]:
    a = entries(5, 80, seed=21, delta_share=0.3)
    repo.save_index_files(a, max_records=120)  # several files: several cache segments
    twice = next(iter(a.values()))[1]
    repo.save_index_files({"ee" * 32: [twice]})
    return a, twice


def test_cached_segments_answer_like_locations(repo: Repository) -> None:
    a, twice = _stored_twice(repo)
    again = same_host(repo)
    again.load_index()
    q = _queries(a, [b"\0" * 32])
    got = again.index.single_packs(q)
    assert got == _want(again.index, q)
    by_id = dict(zip(q, got, strict=True))
    assert by_id[twice.id] is None  # stored twice: the caller resolves it per snapshot
    deltas = [bid for bid, loc in expected(a).items() if loc.base is not None]
    assert deltas and all(by_id[bid] is None for bid in deltas)
    plain = [bid for bid, loc in expected(a).items() if loc.base is None and bid != twice.id]
    assert all(by_id[bid] == expected(a)[bid].pack_id for bid in plain)
    assert again.index.self_contained_packs(q) == [
        loc.pack_id if loc is not None and loc.base is None else None
        for loc in (again.index.get(bid) for bid in q)]


def test_blob_added_in_this_session_is_left_to_the_caller(repo: Repository) -> None:
    a, _ = _stored_twice(repo)
    again = same_host(repo)
    again.load_index()
    first = next(iter(a.values()))[0]
    again.index.add("dd" * 32, [first])  # now known twice: stored and pending
    q = _queries(a, [])
    got = again.index.single_packs(q)
    assert got[q.index(first.id)] is None
    assert got == _want(again.index, q)


def test_block_changed_after_open_is_not_trusted(repo: Repository) -> None:
    a = entries(4, 100, seed=22)
    repo.save_index_files(a)
    again = same_host(repo)
    again.load_index()
    [seg] = sorted(again.index_cache().dir.glob("seg-*"))
    with open(seg, "r+b") as f:  # the first record's pack number, in place
        f.seek(64 + 64)
        f.write(b"\xff\xff\xff\x7f")
    q = _queries(a, [])
    assert again.index.single_packs(q) == _want(again.index, q)
    assert again.index_sync is not None and again.index_sync.fetched == 1  # rebuilt
