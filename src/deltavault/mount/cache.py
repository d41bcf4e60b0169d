"""A bounded LRU of verified blob plaintexts with single-flight loading.

The kernel reads a file in 128 KiB requests from several FUSE threads at
once, while a blob is about 1 MiB: without a cache every request would fetch,
decrypt and re-hash the whole blob again, and without single-flight two
threads asking for the same blob at the same moment would both do it. A
failed load is not remembered, so a transient storage error heals on the
next read; damaged data fails again, verified again, every time.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable


class _Flight:
    """One load in progress; waiters block on ``done``."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: bytes | None = None
        self.error: BaseException | None = None


class ReadCache:
    """Blob id → plaintext, at most ``max_bytes`` of plaintext held.

    A blob larger than a quarter of the budget is returned but not kept, so
    one huge blob cannot flush everything else.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[bytes, bytes] = OrderedDict()
        self._size = 0
        self._flights: dict[bytes, _Flight] = {}
        self._lock = threading.Lock()
        #: loads done and requests answered from memory (for the bench and tests)
        self.loads = 0
        self.hits = 0

    @property
    def size(self) -> int:
        """Bytes of plaintext held now."""
        return self._size

    def __contains__(self, key: bytes) -> bool:
        with self._lock:
            return key in self._items or key in self._flights

    def get(self, key: bytes, load: Callable[[], bytes]) -> bytes:
        """The cached value, or ``load()``'s (run once however many threads ask).

        Raises:
            Whatever ``load`` raised, in every thread that waited for it.
        """
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return value
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
        if not leader:
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            assert flight.value is not None
            return flight.value
        try:
            value = load()
        except BaseException as exc:
            flight.error = exc
            raise
        else:
            flight.value = value
            self._put(key, value)
            return value
        finally:
            with self._lock:
                self._flights.pop(key, None)
                self.loads += 1
            flight.done.set()

    def _put(self, key: bytes, value: bytes) -> None:
        if len(value) > self.max_bytes // 4:
            return
        with self._lock:
            if key in self._items:
                return
            self._items[key] = value
            self._size += len(value)
            while self._size > self.max_bytes:
                _, old = self._items.popitem(last=False)
                self._size -= len(old)
