"""Repository locks ``locks/<id>`` with expiry (docs/format.md §10).

Locks are advisory objects, so they work on every store: a writer first
publishes its own lock, then looks for conflicting ones and backs off if it
finds any. A lock is refreshed by writing a new one and deleting the old;
one that was not refreshed for 30 minutes, or whose process is gone on this
host, is stale.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from deltavault.errors import DeltavaultError, ObjectNotFound, RepositoryLocked
from deltavault.repo.canonical import pack_msgpack, unpack_msgpack_map
from deltavault.repo.crypto import AAD_LOCK, Crypto
from deltavault.repo.layout import LOCK_PREFIX, lock_key
from deltavault.store.base import Store

STALE_AFTER = timedelta(minutes=30)
REFRESH_EVERY = timedelta(minutes=5)


@dataclass(frozen=True)
class LockInfo:
    """A decoded lock object."""

    key: str
    time: datetime
    exclusive: bool
    hostname: str
    pid: int
    username: str

    def is_stale(self, now: datetime | None = None) -> bool:
        now = now or datetime.now(UTC)
        if now - self.time > STALE_AFTER:
            return True
        if self.hostname == socket.gethostname():
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return True
            except PermissionError:
                return False
        return False

    def describe(self) -> str:
        kind = "exclusive" if self.exclusive else "shared"
        return (f"{kind} lock by {self.username}@{self.hostname} pid {self.pid} "
                f"since {self.time:%Y-%m-%d %H:%M:%S}Z")


def _encode(crypto: Crypto, exclusive: bool) -> bytes:
    doc: dict[str, Any] = {
        "time": datetime.now(UTC).isoformat(), "exclusive": exclusive,
        "hostname": socket.gethostname(), "pid": os.getpid(),
        "username": os.environ.get("USER", str(os.getuid())),
    }
    return crypto.seal(AAD_LOCK, pack_msgpack(doc))


def read_locks(store: Store, crypto: Crypto) -> list[LockInfo]:
    """Every readable lock; unreadable ones count as held (be safe)."""
    out = []
    for info in store.list(LOCK_PREFIX):
        try:
            d = unpack_msgpack_map(crypto.open(AAD_LOCK, store.get(info.key), info.key),
                                   info.key)
            when, pid = datetime.fromisoformat(str(d["time"])), int(d["pid"])
            if when.tzinfo is None or not 0 < pid < 2**31:
                raise ValueError("lock time without a zone or pid out of range")
            out.append(LockInfo(info.key, when, bool(d["exclusive"]), str(d["hostname"]), pid,
                                str(d.get("username", ""))))
        except ObjectNotFound:
            continue
        except (DeltavaultError, KeyError, ValueError, TypeError, OverflowError):
            out.append(LockInfo(info.key, datetime.now(UTC), True, "?", 0, "?"))
    return out


class Lock:
    """A held lock; refreshed by a daemon thread until released."""

    def __init__(self, store: Store, crypto: Crypto, exclusive: bool) -> None:
        self.store = store
        self.crypto = crypto
        self.exclusive = exclusive
        self.key = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._mutex = threading.Lock()

    def acquire(self) -> Lock:
        self.key = self._write()
        for other in read_locks(self.store, self.crypto):
            if other.key == self.key or other.is_stale():
                continue
            if self.exclusive or other.exclusive:
                self._delete(self.key)
                raise RepositoryLocked(f"repository is locked: {other.describe()}")
        self._thread = threading.Thread(target=self._refresh_loop, daemon=True,
                                        name="deltavault-lock-refresh")
        self._thread.start()
        return self

    def _write(self) -> str:
        key = lock_key(secrets.token_hex(32))
        self.store.put(key, _encode(self.crypto, self.exclusive))
        return key

    def _delete(self, key: str) -> None:
        with contextlib.suppress(ObjectNotFound):
            self.store.delete(key)

    def _refresh_loop(self) -> None:
        while not self._stop.wait(REFRESH_EVERY.total_seconds()):
            with self._mutex:
                if self._stop.is_set():
                    return
                old, self.key = self.key, self._write()
                self._delete(old)

    def release(self) -> None:
        self._stop.set()
        with self._mutex:
            if self.key:
                self._delete(self.key)
                self.key = ""


@contextlib.contextmanager
def locked(store: Store, crypto: Crypto, *, exclusive: bool) -> Iterator[Lock]:
    """Hold a lock for the duration of a ``with`` block."""
    lock = Lock(store, crypto, exclusive).acquire()
    try:
        yield lock
    finally:
        lock.release()


def remove_locks(store: Store, crypto: Crypto, *, all_locks: bool) -> list[LockInfo]:
    """Delete stale locks (or every lock); returns what was removed."""
    removed = []
    for lock in read_locks(store, crypto):
        if all_locks or lock.is_stale():
            with contextlib.suppress(ObjectNotFound):
                store.delete(lock.key)
            removed.append(lock)
    return removed
