"""The one conformance suite every Store backend must pass.

A backend's test module subclasses :class:`StoreConformance` and provides a
``store`` fixture returning a fresh, empty store::

    class TestLocal(StoreConformance):
        @pytest.fixture
        def store(self, tmp_path): return LocalStore(tmp_path, create=True)

It ships in the package (like zarr's ``StoreTests``) so third-party
backends can run it too, together with the fault-injecting wrappers the
engine's own fault tests use: :class:`FaultyStore` (unavailable, flaky,
corrupt reads, lost acknowledgements) and :class:`CrashingStore` (a power
cut before the N-th write).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal, TypeVar

import pytest

from deltavault.errors import (
    BackendUnavailable,
    DeltavaultError,
    NoCompareAndSwap,
    ObjectExists,
    ObjectNotFound,
    VersionConflict,
)
from deltavault.store.base import ByteRange, ObjectInfo, Store
from deltavault.store.wrappers import StoreWrapper

T = TypeVar("T")


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

    def test_put_file_stores_the_first_bytes_once(self, store: Store, tmp_path: Path) -> None:
        """A pack waits in a temporary file; the object is exactly its first ``size`` bytes."""
        data = bytes(range(256)) * 9_000 + b"not part of the object"
        with open(tmp_path / "spool", "w+b") as fh:
            fh.write(data)
            store.put_file("data/cd/cd01", fh, 256 * 9_000)
            assert store.get("data/cd/cd01") == data[:256 * 9_000]
            with pytest.raises(ObjectExists):
                store.put_file("data/cd/cd01", fh, 10)
            with pytest.raises((OSError, DeltavaultError)):  # shorter than it says
                store.put_file("data/cd/cd02", fh, len(data) + 1)
        assert not store.exists("data/cd/cd02")
        assert store.get("data/cd/cd01") == data[:256 * 9_000]

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

    def test_mtime_is_the_stores(self, store: Store) -> None:
        # Lock staleness is judged by it (docs/format.md §10): aware, current,
        # and the same through stat and list (S3 lists milliseconds, HEAD seconds).
        store.put("locks/l1", b"x")
        info = store.stat("locks/l1")
        assert info.mtime is not None and info.mtime.utcoffset() == timedelta(0)
        assert abs(info.mtime - datetime.now(UTC)) < timedelta(minutes=5)
        (listed,) = store.list("locks/")
        assert listed.mtime is not None and abs(listed.mtime - info.mtime) < timedelta(seconds=2)

    def _refuses_replace(self, store: Store) -> bool:
        """A store without atomic replace must refuse it, writing nothing."""
        if store.atomic_replace:
            return False
        with pytest.raises(NoCompareAndSwap):
            store.replace("ledger/checkpoint", b"size 1", None)
        assert not store.exists("ledger/checkpoint")
        return True

    def test_replace_cas(self, store: Store) -> None:
        if self._refuses_replace(store):
            return
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
        if self._refuses_replace(store):
            return
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
        if not store.atomic_replace:
            # Without conditional writes only content-addressed (same bytes)
            # and uniquely named objects are written: those must stay intact.
            self._concurrent_put_same_bytes(store)
            return
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

    def _concurrent_put_same_bytes(self, store: Store) -> None:
        data = bytes(range(256)) * 64
        results: list[str] = []

        def attempt() -> None:
            try:
                store.put("data/aa/same", data)
                results.append("won")
            except ObjectExists:
                results.append("lost")

        threads = [threading.Thread(target=attempt) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(results) == 8 and "won" in results
        assert store.get("data/aa/same") == data

    def test_keys_are_checked(self, store: Store) -> None:
        from deltavault.errors import UserError

        for bad in ("../escape", "/abs", "a//b", "a/../b", ""):
            with pytest.raises(UserError):
                store.put(bad, b"x")

    def test_replace_missing_with_a_version_conflicts(self, store: Store) -> None:
        if self._refuses_replace(store):
            return
        v = store.replace("ledger/checkpoint", b"1", None)
        store.delete("ledger/checkpoint")
        with pytest.raises(VersionConflict):
            store.replace("ledger/checkpoint", b"2", v)
        assert not store.exists("ledger/checkpoint")

    def test_versions_agree(self, store: Store) -> None:
        store.put("index/i1", b"index")
        v = store.stat("index/i1").version
        assert store.get_versioned("index/i1") == (b"index", v)
        assert {o.key: o.version for o in store.list("index/")} == {"index/i1": v}
        with pytest.raises(ObjectNotFound):
            store.get_versioned("index/missing")

    def test_replace_then_put_refused(self, store: Store) -> None:
        if self._refuses_replace(store):
            return
        store.replace("locks/l", b"a", None)
        with pytest.raises(ObjectExists):
            store.put("locks/l", b"b")


class FaultyStore(StoreWrapper):
    """Inject failures into a store for fault tests.

    Args:
        inner: the store to wrap.
        fail_after: operations that succeed before faults start.
        mode: ``unavailable`` — every later operation raises
            BackendUnavailable; ``flaky`` — later operations alternate
            between failing and succeeding (a retry succeeds);
            ``corrupt`` — later reads return the data with one bit flipped;
            ``lost-ack`` — later writes are stored but then raise
            BackendUnavailable, as when a response is lost on the network.
        ops: operation names subject to faults (default all).
        prefixes: only keys (or listed prefixes) starting with one of these
            are subject to faults, e.g. ``("locks/",)`` to break lock
            refreshes alone (default: every key).
    """

    def __init__(self, inner: Store, fail_after: int = 0,
                 mode: Literal["unavailable", "flaky", "corrupt", "lost-ack"] = "unavailable",
                 ops: tuple[str, ...] = ("get", "put", "replace", "stat", "list", "delete"),
                 prefixes: tuple[str, ...] | None = None) -> None:
        super().__init__(inner)
        self.fail_after = fail_after
        self.mode = mode
        self.ops = ops
        self.prefixes = prefixes
        self.calls = 0
        self.faults = 0
        self._lock = threading.Lock()

    def _fault(self, op: str, key: str) -> bool:
        if op not in self.ops:
            return False
        if self.prefixes is not None and not key.startswith(self.prefixes):
            return False
        with self._lock:
            self.calls += 1
            if self.calls <= self.fail_after:
                return False
            if self.mode == "flaky" and (self.calls - self.fail_after) % 2 == 0:
                return False
            self.faults += 1
            return True

    def _raise(self, op: str) -> None:
        raise BackendUnavailable(f"injected fault in {op} (call {self.calls})")

    def get(self, key: str, byte_range: ByteRange | None = None) -> bytes:
        fault = self._fault("get", key)
        if fault and self.mode in ("unavailable", "flaky"):
            self._raise("get")
        data = self.inner.get(key, byte_range)
        if fault and self.mode == "corrupt" and data:
            data = bytes([data[0] ^ 1]) + data[1:]
        return data

    def get_versioned(self, key: str) -> tuple[bytes, str]:
        fault = self._fault("get", key)
        if fault and self.mode in ("unavailable", "flaky"):
            self._raise("get")
        data, version = self.inner.get_versioned(key)
        if fault and self.mode == "corrupt" and data:
            data = bytes([data[0] ^ 1]) + data[1:]
        return data, version

    def _write(self, op: str, key: str, fn: Callable[[], T]) -> T:
        fault = self._fault(op, key)
        if fault and self.mode in ("unavailable", "flaky"):
            self._raise(op)
        result = fn()
        if fault and self.mode == "lost-ack":
            self._raise(op)
        return result

    def put(self, key: str, data: bytes | bytearray) -> None:
        self._write("put", key, lambda: self.inner.put(key, data))

    def replace(self, key: str, data: bytes, expected_version: str | None) -> str:
        return self._write("replace", key, lambda: self.inner.replace(key, data, expected_version))

    def delete(self, key: str) -> None:
        self._write("delete", key, lambda: self.inner.delete(key))

    def stat(self, key: str) -> ObjectInfo:
        if self._fault("stat", key) and self.mode in ("unavailable", "flaky"):
            self._raise("stat")
        return self.inner.stat(key)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        if self._fault("list", prefix) and self.mode in ("unavailable", "flaky"):
            self._raise("list")
        return self.inner.list(prefix)


class Crash(Exception):
    """The simulated power cut."""


class CrashingStore(StoreWrapper):
    """Delegates to ``inner``; the ``limit``-th write (put/replace/delete) raises."""

    def __init__(self, inner: Store, limit: int) -> None:
        super().__init__(inner)
        self.limit, self.writes = limit, 0

    def _write(self) -> None:
        if self.writes >= self.limit:
            raise Crash(f"crash before write {self.writes}")
        self.writes += 1

    def put(self, key: str, data: bytes | bytearray) -> None:
        self._write()
        self.inner.put(key, data)

    def replace(self, key: str, data: bytes, expected_version: str | None) -> str:
        self._write()
        return self.inner.replace(key, data, expected_version)

    def delete(self, key: str) -> None:
        self._write()
        self.inner.delete(key)
