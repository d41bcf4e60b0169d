"""A store wrapper that dies after N writes, to simulate a crash at every point."""

from __future__ import annotations

from collections.abc import Iterator

from deltavault.store.base import ByteRange, ObjectInfo, Store


class Crash(Exception):
    """The simulated power cut."""


class CrashingStore(Store):
    """Delegates to ``inner``; the ``limit``-th write (put/replace/delete) raises."""

    def __init__(self, inner: Store, limit: int) -> None:
        self.inner, self.limit, self.writes = inner, limit, 0

    def _write(self) -> None:
        if self.writes >= self.limit:
            raise Crash(f"crash before write {self.writes}")
        self.writes += 1

    def location(self) -> str:
        return self.inner.location()

    def get(self, key: str, byte_range: ByteRange | None = None) -> bytes:
        return self.inner.get(key, byte_range)

    def get_versioned(self, key: str) -> tuple[bytes, str]:
        return self.inner.get_versioned(key)

    def put(self, key: str, data: bytes) -> None:
        self._write()
        self.inner.put(key, data)

    def replace(self, key: str, data: bytes, expected_version: str | None) -> str:
        self._write()
        return self.inner.replace(key, data, expected_version)

    def stat(self, key: str) -> ObjectInfo:
        return self.inner.stat(key)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return self.inner.list(prefix)

    def delete(self, key: str) -> None:
        self._write()
        self.inner.delete(key)
