"""The one conformance suite every Store backend must pass.

A backend's test module subclasses :class:`StoreConformance` and provides a
``store`` fixture returning a fresh, empty store::

    class TestLocal(StoreConformance):
        @pytest.fixture
        def store(self, tmp_path): return LocalStore(tmp_path, create=True)

It ships in the package (like zarr's ``StoreTests``) so third-party
backends can run it too.
"""

from __future__ import annotations

import threading

import pytest

from deltavault.errors import ObjectExists, ObjectNotFound, VersionConflict
from deltavault.store.base import ByteRange, Store


class StoreConformance:
    """Contract tests; the subclass supplies a ``store`` fixture."""

    def test_put_get_roundtrip(self, store: Store) -> None:
        store.put("data/ab/ab01", b"hello")
        assert store.get("data/ab/ab01") == b"hello"

    def test_empty_object(self, store: Store) -> None:
        store.put("empty", b"")
        assert store.get("empty") == b""
        assert store.stat("empty").size == 0

    def test_binary_and_large(self, store: Store) -> None:
        data = bytes(range(256)) * 40_000  # ~10 MiB, crosses multipart limits
        store.put("data/00/big", data)
        assert store.get("data/00/big") == data
        assert store.stat("data/00/big").size == len(data)

    def test_put_is_write_once(self, store: Store) -> None:
        store.put("snapshots/s1", b"one")
        with pytest.raises(ObjectExists):
            store.put("snapshots/s1", b"two")
        assert store.get("snapshots/s1") == b"one"

    def test_get_missing(self, store: Store) -> None:
        with pytest.raises(ObjectNotFound):
            store.get("nothing/here")
        with pytest.raises(ObjectNotFound):
            store.stat("nothing/here")
        assert not store.exists("nothing/here")

    def test_byte_range(self, store: Store) -> None:
        store.put("r", b"0123456789")
        assert store.get("r", ByteRange(2, 3)) == b"234"
        assert store.get("r", ByteRange(7)) == b"789"
        assert store.get("r", ByteRange(0, 10)) == b"0123456789"

    def test_list_prefix(self, store: Store) -> None:
        keys = {"data/aa/aa1", "data/aa/aa2", "data/bb/bb1", "index/i1", "config"}
        for k in keys:
            store.put(k, k.encode())
        assert {o.key for o in store.list("data/")} == {"data/aa/aa1", "data/aa/aa2", "data/bb/bb1"}
        assert {o.key for o in store.list("data/aa/")} == {"data/aa/aa1", "data/aa/aa2"}
        assert {o.key for o in store.list("index/")} == {"index/i1"}
        assert {o.key for o in store.list("")} >= keys
        sizes = {o.key: o.size for o in store.list("data/")}
        assert sizes["data/aa/aa1"] == len(b"data/aa/aa1")
        assert list(store.list("nope/")) == []

    def test_delete(self, store: Store) -> None:
        store.put("locks/l1", b"x")
        store.delete("locks/l1")
        assert not store.exists("locks/l1")
        with pytest.raises(ObjectNotFound):
            store.delete("locks/l1")
        store.put("locks/l1", b"again")  # a deleted key can be created anew
        assert store.get("locks/l1") == b"again"

    def test_replace_cas(self, store: Store) -> None:
        v1 = store.replace("ledger/checkpoint", b"size 1", None)
        with pytest.raises(VersionConflict):
            store.replace("ledger/checkpoint", b"size 1 again", None)
        data, v = store.get_versioned("ledger/checkpoint")
        assert (data, v) == (b"size 1", v1)
        assert store.stat("ledger/checkpoint").version == v1
        v2 = store.replace("ledger/checkpoint", b"size 2", v1)
        assert v2 != v1
        with pytest.raises(VersionConflict):
            store.replace("ledger/checkpoint", b"stale writer", v1)
        assert store.get("ledger/checkpoint") == b"size 2"

    def test_concurrent_replace_one_winner(self, store: Store) -> None:
        if not store.atomic_replace:
            pytest.xfail("store documents non-atomic replace; callers hold the lock")
        v0 = store.replace("cp", b"0", None)
        wins: list[int] = []
        conflicts: list[int] = []

        def attempt(i: int) -> None:
            try:
                store.replace("cp", str(i).encode(), v0)
                wins.append(i)
            except VersionConflict:
                conflicts.append(i)

        threads = [threading.Thread(target=attempt, args=(i,)) for i in range(1, 9)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(wins) == 1 and len(conflicts) == 7
        assert store.get("cp") == str(wins[0]).encode()

    def test_concurrent_put_one_winner(self, store: Store) -> None:
        results: list[str] = []

        def attempt(i: int) -> None:
            try:
                store.put("once", str(i).encode())
                results.append("won")
            except ObjectExists:
                results.append("lost")

        threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results.count("won") == 1
        assert store.get("once") in {str(i).encode() for i in range(8)}

    def test_keys_are_checked(self, store: Store) -> None:
        from deltavault.errors import UserError

        for bad in ("../escape", "/abs", "a//b", "a/../b", ""):
            with pytest.raises(UserError):
                store.put(bad, b"x")
