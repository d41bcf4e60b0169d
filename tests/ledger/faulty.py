"""A store wrapper that dies after N writes, to simulate a crash at every point."""

from __future__ import annotations

from deltavault.store.base import Store
from deltavault.store.wrappers import StoreWrapper


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
