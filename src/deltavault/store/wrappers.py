"""Wrapper stores: behaviour layered around any backend, not flags inside one.

* :class:`RetryingStore` retries transient transport failures.
* :class:`RateLimitedStore` caps the bytes per second moved through it.
* :class:`MetricsStore` counts operations, errors and bytes.

Each wraps an inner :class:`~deltavault.store.base.Store` and forwards the
capability flags, so a wrapper never changes what a caller may assume.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, TypeVar

from deltavault.errors import BackendError, BackendUnavailable, UserError, VersionConflict
from deltavault.store.base import ByteRange, ObjectInfo, Store

T = TypeVar("T")


class StoreWrapper(Store):
    """Forward every operation to ``inner``; subclasses override what they change."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner

    # Forwarded live, not copied: a backend may learn its capabilities late
    # (S3 probes conditional writes on first use, REST asks the server).
    @property  # type: ignore[override]
    def atomic_replace(self) -> bool:  # type: ignore[override]
        return self.inner.atomic_replace

    @property  # type: ignore[override]
    def supports_deletes(self) -> bool:  # type: ignore[override]
        return self.inner.supports_deletes

    def location(self) -> str:
        return self.inner.location()

    def get(self, key: str, byte_range: ByteRange | None = None) -> bytes:
        return self.inner.get(key, byte_range)

    def get_versioned(self, key: str) -> tuple[bytes, str]:
        return self.inner.get_versioned(key)

    def put(self, key: str, data: bytes | bytearray) -> None:
        self.inner.put(key, data)

    def replace(self, key: str, data: bytes, expected_version: str | None) -> str:
        return self.inner.replace(key, data, expected_version)

    def stat(self, key: str) -> ObjectInfo:
        return self.inner.stat(key)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return self.inner.list(prefix)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def close(self) -> None:
        self.inner.close()


# --- retry --------------------------------------------------------------------


class RetryingStore(StoreWrapper):
    """Retry operations that failed with a transient transport error.

    Only :class:`~deltavault.errors.BackendUnavailable` (and other
    ``BackendError`` subclasses marked ``transient`` by the backend, except
    :class:`~deltavault.errors.VersionConflict`) is retried. A lost
    compare-and-swap is *not* retried here: the caller must re-read and
    rebuild, which only it knows how to do.

    A ``put`` retried after a timeout may find its own first attempt already
    stored; the retry then raises ObjectExists, which content-addressed
    callers treat as success.

    Args:
        inner: the store to wrap.
        attempts: total tries per operation (>= 1).
        backoff: first delay in seconds; doubled each retry, with jitter.
        max_backoff: cap on one delay.
        first_contact_attempts: tries per operation until one operation has
            succeeded (default ``attempts``). An endpoint that was never
            reached is most likely wrong or down, so ``open_store`` sets 2:
            the user gets one clear error at once instead of after a minute.
        sleep: injectable for tests.
    """

    def __init__(
        self,
        inner: Store,
        attempts: int = 5,
        backoff: float = 0.5,
        *,
        max_backoff: float = 30.0,
        first_contact_attempts: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(inner)
        if attempts < 1:
            raise UserError(f"retry attempts must be >= 1, got {attempts}")
        self.attempts = attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._sleep = sleep
        self.retries = 0
        self.first_contact_attempts = max(1, first_contact_attempts or attempts)
        self._reached = False

    def _call(self, fn: Callable[[], T]) -> T:
        delay = self.backoff
        attempts = self.attempts if self._reached else min(self.attempts,
                                                            self.first_contact_attempts)
        for attempt in range(1, attempts + 1):
            try:
                result = fn()
                self._reached = True
                return result
            except BackendUnavailable:
                if attempt == attempts:
                    raise
            except BackendError as exc:
                if not _retryable(exc):
                    self._reached = True  # the endpoint answered
                    raise
                if attempt == attempts:
                    raise
            self.retries += 1
            self._sleep(min(self.max_backoff, delay) * random.uniform(0.5, 1.0))
            delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    def get(self, key: str, byte_range: ByteRange | None = None) -> bytes:
        return self._call(lambda: self.inner.get(key, byte_range))

    def get_versioned(self, key: str) -> tuple[bytes, str]:
        return self._call(lambda: self.inner.get_versioned(key))

    def put(self, key: str, data: bytes | bytearray) -> None:
        self._call(lambda: self.inner.put(key, data))

    def put_file(self, key: str, fh: BinaryIO, size: int) -> None:
        # the inner store reads by offset (or seeks first): a retry reads it all again
        self._call(lambda: self.inner.put_file(key, fh, size))

    def replace(self, key: str, data: bytes, expected_version: str | None) -> str:
        return self._call(lambda: self.inner.replace(key, data, expected_version))

    def stat(self, key: str) -> ObjectInfo:
        return self._call(lambda: self.inner.stat(key))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        # A listing is materialised so that a failure half-way is retried as
        # a whole instead of yielding duplicates.
        return iter(self._call(lambda: list(self.inner.list(prefix))))

    def delete(self, key: str) -> None:
        self._call(lambda: self.inner.delete(key))


def _retryable(exc: BackendError) -> bool:
    return exc.transient and not isinstance(exc, VersionConflict)


# --- rate limit ---------------------------------------------------------------


class _TokenBucket:
    """Thread-safe token bucket; ``take(n)`` blocks until n bytes may pass."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = burst
        self._stamp = clock()
        self._lock = threading.Lock()

    def take(self, n: int, sleep: Callable[[float], None]) -> None:
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            # Go into debt rather than refusing objects larger than the burst;
            # the debt is paid by the sleep below and by later callers.
            self._tokens -= n
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            sleep(wait)


class RateLimitedStore(StoreWrapper):
    """Limit upload and download bandwidth (separately) to ``bytes_per_second``.

    Args:
        inner: the store to wrap.
        bytes_per_second: limit for each direction; ``upload_bps`` /
            ``download_bps`` override it per direction (None = unlimited).
    """

    def __init__(
        self,
        inner: Store,
        bytes_per_second: float | None = None,
        *,
        upload_bps: float | None = None,
        download_bps: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(inner)
        up = upload_bps if upload_bps is not None else bytes_per_second
        down = download_bps if download_bps is not None else bytes_per_second
        for rate in (up, down):
            if rate is not None and rate <= 0:
                raise UserError(f"rate limit must be positive, got {rate}")
        # A quarter second of burst keeps small objects from stalling.
        self._up = _TokenBucket(up, up / 4, clock) if up else None
        self._down = _TokenBucket(down, down / 4, clock) if down else None
        self._sleep = sleep

    def get(self, key: str, byte_range: ByteRange | None = None) -> bytes:
        data = self.inner.get(key, byte_range)
        if self._down:
            self._down.take(len(data), self._sleep)
        return data

    def get_versioned(self, key: str) -> tuple[bytes, str]:
        data, version = self.inner.get_versioned(key)
        if self._down:
            self._down.take(len(data), self._sleep)
        return data, version

    def put(self, key: str, data: bytes | bytearray) -> None:
        if self._up:
            self._up.take(len(data), self._sleep)
        self.inner.put(key, data)

    def replace(self, key: str, data: bytes, expected_version: str | None) -> str:
        if self._up:
            self._up.take(len(data), self._sleep)
        return self.inner.replace(key, data, expected_version)


# --- metrics ------------------------------------------------------------------


@dataclass
class StoreMetrics:
    """Counters of one :class:`MetricsStore`; read them at any time."""

    ops: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    bytes_in: int = 0  # written to the store
    bytes_out: int = 0  # read from the store
    seconds: dict[str, float] = field(default_factory=dict)


class MetricsStore(StoreWrapper):
    """Count operations, failures, bytes and time per operation."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self.metrics = StoreMetrics()
        self._lock = threading.Lock()

    def _measure(self, op: str, fn: Callable[[], T], *, sent: int = 0) -> T:
        start = time.perf_counter()
        try:
            result = fn()
        except Exception:
            self._count(op, start, failed=True)
            raise
        self._count(op, start, sent=sent)
        return result

    def _count(self, op: str, start: float, *, failed: bool = False, sent: int = 0) -> None:
        with self._lock:
            m = self.metrics
            m.ops[op] = m.ops.get(op, 0) + 1
            m.seconds[op] = m.seconds.get(op, 0.0) + time.perf_counter() - start
            if failed:
                m.errors[op] = m.errors.get(op, 0) + 1
            m.bytes_in += sent

    def _received(self, n: int) -> None:
        with self._lock:
            self.metrics.bytes_out += n

    def get(self, key: str, byte_range: ByteRange | None = None) -> bytes:
        data = self._measure("get", lambda: self.inner.get(key, byte_range))
        self._received(len(data))
        return data

    def get_versioned(self, key: str) -> tuple[bytes, str]:
        data, version = self._measure("get", lambda: self.inner.get_versioned(key))
        self._received(len(data))
        return data, version

    def put(self, key: str, data: bytes | bytearray) -> None:
        self._measure("put", lambda: self.inner.put(key, data), sent=len(data))

    def replace(self, key: str, data: bytes, expected_version: str | None) -> str:
        return self._measure(
            "replace", lambda: self.inner.replace(key, data, expected_version), sent=len(data)
        )

    def stat(self, key: str) -> ObjectInfo:
        return self._measure("stat", lambda: self.inner.stat(key))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return iter(self._measure("list", lambda: list(self.inner.list(prefix))))

    def delete(self, key: str) -> None:
        self._measure("delete", lambda: self.inner.delete(key))
