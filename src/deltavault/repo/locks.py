"""Repository locks ``locks/<id>`` with expiry (docs/format.md §10).

Locks are advisory objects, so they work on every store: a process first
publishes its own lock, then looks for conflicting ones and backs off if it
finds any. A held lock is refreshed by a daemon thread (a new object
written, the old one deleted). A lock is stale when the store last wrote it
more than 30 minutes ago — by the store's own clock: the lock object's
mtime against the mtime of a lock object just written, so no host's clock
enters the judgement — or when it belongs to this host and its process is
gone.

Holding a lock is checked, not assumed: the engine calls :meth:`Lock.check`
before every commit point (index, snapshot, ledger event, deletion). If
refreshing has failed long enough that another process could soon judge the
lock stale, or the lock object was deleted or replaced behind our back, the
operation stops with :class:`~deltavault.errors.LockLost` before committing
anything more — a prune elsewhere may be about to delete the packs it wrote
(restic aborts an operation whose lock refresh failed for the same reason).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from deltavault.errors import (
    BackendError,
    DeltavaultError,
    LockLost,
    ObjectNotFound,
    RepositoryLocked,
)
from deltavault.repo.canonical import pack_msgpack, unpack_msgpack_map
from deltavault.repo.crypto import AAD_LOCK, Crypto
from deltavault.repo.layout import LOCK_PREFIX, lock_key
from deltavault.store.base import ObjectInfo, Store

STALE_AFTER = timedelta(minutes=30)
REFRESH_EVERY = timedelta(minutes=5)


@dataclass(frozen=True)
class LockTiming:
    """How a held lock is kept; the defaults are the format's (docs/format.md §10).

    Attributes:
        stale_after: a lock the store last wrote longer ago than this is stale.
        refresh_every: how often the holder writes a fresh lock object.
        retry_every: how soon a failed refresh is tried again.
        commit_window: :meth:`Lock.check` passes only if the lock stays
            valid for at least this long, so the commit that follows cannot
            outlive it: refreshing may fail for ``stale_after -
            commit_window`` before the operation is stopped.
        verify_every: how often :meth:`Lock.check` re-reads the lock object
            to see that nobody removed or replaced it.
    """

    stale_after: timedelta = STALE_AFTER
    refresh_every: timedelta = REFRESH_EVERY
    retry_every: timedelta = timedelta(seconds=30)
    commit_window: timedelta = timedelta(minutes=10)
    verify_every: timedelta = timedelta(seconds=5)


DEFAULT_TIMING = LockTiming()


def _clock() -> float:
    """Seconds on a clock that never jumps and keeps counting through a suspend."""
    boottime = getattr(time, "CLOCK_BOOTTIME", None)
    return time.clock_gettime(boottime) if boottime is not None else time.monotonic()


@dataclass(frozen=True)
class LockInfo:
    """A decoded lock object.

    ``time`` is what the writer's clock said (shown to people); ``mtime`` is
    when the store wrote the object, by the store's clock (judges staleness).
    """

    key: str
    time: datetime
    exclusive: bool
    hostname: str
    pid: int
    username: str
    mtime: datetime | None = None
    #: why the object could not be read ("" for a readable lock)
    unreadable: str = ""

    def is_stale(self, server_now: datetime | None = None, *,
                 stale_after: timedelta = STALE_AFTER) -> bool:
        """Whether the lock no longer holds the repository.

        Args:
            server_now: the store's clock now (the mtime of a lock object
                just written). Without it, or for a store that reports no
                mtimes, the writer's own ``time`` is compared with this host's
                clock — the best such a store allows.
            stale_after: age past which a lock is stale.
        """
        if server_now is not None and self.mtime is not None:
            age = server_now - self.mtime
        else:
            age = datetime.now(UTC) - self.time
        if age > stale_after:
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
        if self.unreadable:
            return (f"{self.key} cannot be read ({self.unreadable}); an unreadable lock counts "
                    f"as an exclusive one until it is stale by the store's clock")
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


def _decode(store: Store, crypto: Crypto, info: ObjectInfo) -> LockInfo:
    d = unpack_msgpack_map(crypto.open(AAD_LOCK, store.get(info.key), info.key), info.key)
    when, pid = datetime.fromisoformat(str(d["time"])), int(d["pid"])
    if when.tzinfo is None or not 0 < pid < 2**31:
        raise ValueError("lock time without a zone or pid out of range")
    return LockInfo(info.key, when, bool(d["exclusive"]), str(d["hostname"]), pid,
                    str(d.get("username", "")), info.mtime)


def read_locks(store: Store, crypto: Crypto) -> list[LockInfo]:
    """Every readable lock; unreadable ones count as held, exclusively (be safe)."""
    out = []
    for info in store.list(LOCK_PREFIX):
        try:
            out.append(_decode(store, crypto, info))
        except ObjectNotFound:
            continue
        except (DeltavaultError, KeyError, ValueError, TypeError, OverflowError) as exc:
            # still ages by the store's mtime, so junk cannot block forever
            out.append(LockInfo(info.key, datetime.now(UTC), True, "?", 0, "?", info.mtime,
                                unreadable=str(exc) or type(exc).__name__))
    return out


def _write_lock(store: Store, crypto: Crypto, exclusive: bool) -> tuple[str, ObjectInfo, float]:
    """Put a new lock object; returns its key, its stat and when the put started."""
    started = _clock()
    key = lock_key(secrets.token_hex(32))
    store.put(key, _encode(crypto, exclusive))
    try:
        return key, store.stat(key), started
    except BaseException:
        with contextlib.suppress(BackendError):
            store.delete(key)
        raise


def server_now(store: Store, crypto: Crypto) -> datetime | None:
    """The store's clock now: the mtime of a lock object written (and dropped) for it."""
    key, info, _ = _write_lock(store, crypto, False)
    with contextlib.suppress(ObjectNotFound):
        store.delete(key)
    return info.mtime


class Lock:
    """A held lock; refreshed by a daemon thread until released.

    Thread use: :meth:`check` may be called from any thread.
    """

    def __init__(self, store: Store, crypto: Crypto, exclusive: bool, *,
                 timing: LockTiming = DEFAULT_TIMING) -> None:
        self.store = store
        self.crypto = crypto
        self.exclusive = exclusive
        self.timing = timing
        self.key = ""
        self._version = ""
        self._written_at = 0.0  # _clock() when the put of the current object started
        self._verified_at = 0.0
        self._failure: LockLost | None = None
        self._refresh_error: Exception | None = None  # the last failed refresh, if any
        self._leftovers: list[str] = []  # superseded lock objects a delete missed
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._mutex = threading.Lock()

    @property
    def kind(self) -> str:
        return "exclusive" if self.exclusive else "shared"

    def acquire(self) -> Lock:
        """Publish the lock, then back off if a live conflicting one exists.

        Raises:
            RepositoryLocked: another process holds a conflicting lock.
        """
        key, info, started = _write_lock(self.store, self.crypto, self.exclusive)
        self.key, self._version = key, info.version
        self._written_at = self._verified_at = started
        try:
            for other in read_locks(self.store, self.crypto):
                if other.key == self.key or other.is_stale(info.mtime,
                                                            stale_after=self.timing.stale_after):
                    continue
                if self.exclusive or other.exclusive:
                    raise RepositoryLocked(f"repository is locked: {other.describe()}")
        except BaseException:
            self._drop(self.key)  # back off: leave no lock of ours behind
            self.key = ""
            raise
        self._thread = threading.Thread(target=self._refresh_loop, daemon=True,
                                        name="deltavault-lock-refresh")
        self._thread.start()
        return self

    # --- health -------------------------------------------------------------------

    def check(self) -> None:
        """Raise LockLost unless the lock is held and stays valid for the commit window.

        The engine calls this before each commit point. The age bound is
        exact without asking the store: the current lock object was written
        after ``_written_at``, so by any clock running at the rate of ours it
        is younger than the time since then. Every ``verify_every`` the lock
        object is also read back; a transport error there proves nothing
        either way, so only a missing or replaced object fails the check.

        Raises:
            LockLost: refresh failed, or the lock was removed or replaced.
        """
        if self._failure is not None:
            raise self._failure
        with self._mutex:
            key, version, verified = self.key, self._version, self._verified_at
        if not key:
            raise LockLost(f"the {self.kind} lock on {self.store.location()} was released")
        if self._expiring():
            self._fail_expired()
        now = _clock()
        if now - verified < self.timing.verify_every.total_seconds():
            return
        try:
            problem = self._problem(key, version)
        except BackendError:
            return
        with self._mutex:
            if self.key != key:  # refreshed meanwhile: the old object is gone by design
                return
            if problem is None:
                self._verified_at = now
                return
        self._fail(problem)

    def _problem(self, key: str, version: str) -> str | None:
        """Why the lock object ``key`` is no longer ours, or None if it is."""
        try:
            info = self.store.stat(key)
        except ObjectNotFound:
            return (f"the {self.kind} lock {key} was removed by another process "
                    "(deltavault unlock, or judged stale)")
        if info.version != version:
            return f"the {self.kind} lock {key} was replaced by another writer"
        return None

    def _fail_expired(self) -> NoReturn:
        error = self._refresh_error
        if error is not None:
            self._fail(f"could not refresh the {self.kind} lock on {self.store.location()} "
                       f"for {self._since_written()}: {error}", error)
        self._fail(f"the {self.kind} lock on {self.store.location()} has not been refreshed "
                   f"for {self._since_written()}")

    def _expiring(self) -> bool:
        limit = self.timing.stale_after - self.timing.commit_window
        return _clock() - self._written_at > limit.total_seconds()

    def _since_written(self) -> str:
        return f"{_clock() - self._written_at:.0f} s"

    def _fail(self, reason: str, cause: BaseException | None = None) -> NoReturn:
        """Record the loss once (later checks repeat it) and raise it."""
        with self._mutex:
            if self._failure is None:
                self._failure = LockLost(f"lost the repository lock: {reason}")
                self._failure.__cause__ = cause
            failure = self._failure
        raise failure

    # --- refresh --------------------------------------------------------------------

    def _refresh_loop(self) -> None:
        wait = self.timing.refresh_every
        while not self._stop.wait(wait.total_seconds()):
            try:
                self._refresh()
                self._refresh_error = None
                wait = self.timing.refresh_every
            except LockLost:
                return  # recorded; the next check() stops the operation
            except Exception as exc:  # any failure is a failed refresh; retry while we may
                self._refresh_error = exc
                if self._expiring():
                    with contextlib.suppress(LockLost):
                        self._fail_expired()
                    return
                wait = self.timing.retry_every

    def _refresh(self) -> None:
        """Write a fresh lock object and drop the old one, if ours is still there."""
        key, version = self.key, self._version  # only this thread changes them after acquire
        problem = self._problem(key, version)
        if problem is not None:
            self._fail(problem)
        new, info, started = _write_lock(self.store, self.crypto, self.exclusive)
        with self._mutex:
            released = self._stop.is_set() or not self.key
            if not released:
                self.key, self._version = new, info.version
                self._written_at = self._verified_at = started
        self._drop(new if released else key)
        for old in list(self._leftovers):
            self._drop(old)

    def _drop(self, key: str) -> None:
        """Delete one of our lock objects; one a failure left behind is retried later."""
        try:
            self.store.delete(key)
        except ObjectNotFound:
            pass
        except BackendError:
            if key not in self._leftovers:
                self._leftovers.append(key)
            return
        if key in self._leftovers:
            self._leftovers.remove(key)

    def release(self) -> None:
        """Stop refreshing and delete the lock (a failed delete only warns: it goes stale)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        with self._mutex:
            key, self.key = self.key, ""
        for k in ([key] if key else []) + list(self._leftovers):
            self._drop(k)
        if self._leftovers:
            warnings.warn(f"could not delete lock objects {', '.join(self._leftovers)}; they "
                          f"turn stale after {self.timing.stale_after}", stacklevel=2)


@contextlib.contextmanager
def locked(store: Store, crypto: Crypto, *, exclusive: bool,
           timing: LockTiming = DEFAULT_TIMING) -> Iterator[Lock]:
    """Hold a lock for the duration of a ``with`` block."""
    lock = Lock(store, crypto, exclusive, timing=timing).acquire()
    try:
        yield lock
    finally:
        lock.release()


def remove_locks(store: Store, crypto: Crypto, *, all_locks: bool) -> list[LockInfo]:
    """Delete stale locks (or every lock); returns what was removed."""
    now = None if all_locks else server_now(store, crypto)
    removed = []
    for lock in read_locks(store, crypto):
        if all_locks or lock.is_stale(now):
            with contextlib.suppress(ObjectNotFound):
                store.delete(lock.key)
            removed.append(lock)
    return removed
