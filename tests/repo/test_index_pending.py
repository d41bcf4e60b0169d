"""Blobs added during a session: compact, thread-safe, moved out when an index file names them."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from deltavault import api
from deltavault.repo.index import MasterIndex
from deltavault.repo.packs import PackEntry
from deltavault.repo.repository import Repository
from tests.support.cli import PASSWORD
from tests.support.indexes import assert_finds, entries, expected, same_host


def test_threads_adding_and_looking_up_never_lose_a_blob() -> None:
    index = MasterIndex()
    packs = [entries(40, 25, seed=s) for s in range(4)]
    added: list[set[bytes]] = [set() for _ in packs]
    errors: list[str] = []
    done = threading.Event()

    def writer(k: int) -> None:
        for pid, es in packs[k].items():
            index.add(pid, es)
            added[k].update(e.id for e in es)

    def reader() -> None:
        while not done.is_set():
            for k in range(len(packs)):
                for bid in list(added[k])[:50]:
                    if index.get(bid) is None:
                        errors.append(bid.hex())

    readers = [threading.Thread(target=reader) for _ in range(3)]
    writers = [threading.Thread(target=writer, args=(k,)) for k in range(len(packs))]
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join()
    done.set()
    for t in readers:
        t.join()
    assert errors == []
    assert len(index) == 4 * 40 * 25
    for p in packs:
        for bid, loc in expected(p).items():
            assert index.locations(bid) == [loc]
    assert index.pack_ids() == {pid for p in packs for pid in p}


def test_self_contained_copy_is_preferred_wherever_it_is() -> None:
    index = MasterIndex()
    bid, base = b"\1" * 32, b"\2" * 32
    index.add("aa" * 32, [PackEntry(0, 2, 0, 50, 60, bid, base)])
    index.add("bb" * 32, [PackEntry(0, 1, 0, 70, 60, bid)])
    loc = index.get(bid)
    assert loc is not None and loc.pack_id == "bb" * 32 and loc.base is None
    assert [x.pack_id for x in index.locations(bid)] == ["bb" * 32, "aa" * 32]


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return api.init(tmp_path / "repo", PASSWORD.encode(), kdf_memory_kib=8192, kdf_time_cost=1)


def test_written_index_moves_session_blobs_out_of_ram(repo: Repository) -> None:
    repo.load_index()
    first, second = entries(3, 20, seed=1), entries(2, 20, seed=2)
    for pid, es in {**first, **second}.items():
        repo.index.add(pid, es)
    assert all(repo.index.slot(bid) == (-1, 0) for bid in expected(first))  # only pending
    repo.save_index_files(first)  # e.g. the backup's index every N packs
    assert len(repo.index) == 100
    for bid, loc in expected(first).items():
        assert repo.index.locations(bid) == [loc]  # once: moved, not copied
        assert repo.index.slot(bid)[0] >= 0  # now in a loaded segment
    assert all(repo.index.slot(bid) == (-1, 0) for bid in expected(second))
    assert_finds(repo, second)
    again = same_host(repo)
    again.load_index()
    assert again.index_sync is not None and again.index_sync.fetched == 0
    assert_finds(again, first)


def test_locate_many_answers_like_locations(repo: Repository) -> None:
    a, b = entries(4, 60, seed=3), entries(1, 10, seed=4)
    repo.save_index_files(a, max_records=100)
    repo.save_index_files(b)
    again = same_host(repo)
    again.load_index()
    twice = next(iter(b.values()))[0]
    again.index.add("ff" * 32, [twice])  # also added in this session: ambiguous
    want = expected(a)
    ids = [*want, b"\0" * 32, twice.id, *list(expected(b))[1:]]
    got = again.index.locate_many(ids)
    for bid, loc in zip(ids, got, strict=True):
        if bid == twice.id or bid == b"\0" * 32:
            assert loc is None
        else:
            assert loc is not None and again.index.locations(bid) == [loc]


def test_maybe_known_never_misses_a_blob_get_finds(repo: Repository) -> None:
    """False from ``maybe_known`` lets a backup skip ``get``: it must never be wrong."""
    stored, added = entries(4, 60, seed=5), entries(2, 30, seed=6)
    repo.save_index_files(stored, max_records=100)  # cache segments
    again = same_host(repo)
    again.load_index()
    for pid, es in added.items():
        again.index.add(pid, es)  # pending levels
    known = [*expected(stored), *expected(added)]
    # ids sharing a known id's 8-byte prefix: "maybe" (get decides), never "no"
    twins = [b[:8] + bytes(x ^ 0xFF for x in b[8:]) for b in known[::25]]
    unknown = [os.urandom(32) for _ in range(200)]
    got = again.index.maybe_known([*known, *twins, *unknown])
    assert got[:len(known) + len(twins)] == [True] * (len(known) + len(twins))
    assert not any(got[len(known) + len(twins):])  # 200 random prefixes: no collision
    assert again.index.maybe_known([]) == []
    assert MasterIndex().maybe_known(unknown[:3]) == [False] * 3
