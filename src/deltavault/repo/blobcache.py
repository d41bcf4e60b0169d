"""A small LRU of decoded blobs: trees and delta bases are read again and again.

8 MiB, not more: the cache is the largest thing a restore or an incremental
backup keeps beyond its imports, and a larger one did not pay. Measured on
the bench's trading and books states with five days of incremental chains,
restoring the latest and an older snapshot and backing up a sixth day took the
same time with 8 MiB as with 32 MiB (within run-to-run noise), and 29-35 MiB
less peak memory (restore 130 -> 99 MiB, books day-6 backup 128 -> 99 MiB).

A backup needs even less (``BACKUP_BYTES``): it reads each delta base once,
right before encoding against it, and rereads only trees. Measured on the
bench's mixed state, days 1-4, three runs each: with 2 MiB, and sketching
bases without caching them, peak RSS fell from 110-112/118-126/107-110/
120-127 MiB to 98-106/110-117/95-102/107-120 MiB at the same times
(1.9-2.9 s per day) and the same bytes added.

A restore needs 4 MiB (``RESTORE_BYTES``): it reads each pack span once and
keeps only delta bases for deltas stored in other packs. Mixed, restoring the
latest of five days, four runs each: 96.6-99.0 MiB against 99.4-102.9 MiB
with 8 MiB, at 1.5-2.3 s against 2.1-2.8 s; trading and weights restored at
the same time and memory (the key derivation at open is their peak). Other
readers (mount, check, diff) keep 8 MiB: a mount reads a blob in many small
requests and must keep it decoded between them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

DEFAULT_BYTES = 8 * 1024 * 1024
BACKUP_BYTES = 2 * 1024 * 1024
RESTORE_BYTES = 4 * 1024 * 1024


class BlobCache:
    """Blob id → plaintext, bounded in bytes; a blob over a quarter of it is not kept."""

    def __init__(self, max_bytes: int = DEFAULT_BYTES) -> None:
        self._items: OrderedDict[bytes, bytes] = OrderedDict()
        self._size = 0
        self._max = max_bytes
        self._lock = threading.Lock()

    def get(self, key: bytes) -> bytes | None:
        """The cached plaintext, or None."""
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: bytes, value: bytes) -> None:
        """Remember a plaintext, evicting the least recently used."""
        if len(value) > self._max // 4:
            return
        with self._lock:
            if key in self._items:
                return
            self._items[key] = value
            self._size += len(value)
            self._evict_locked()

    def resize(self, max_bytes: int) -> int:
        """Bound the cache at ``max_bytes`` from now on; returns the old bound."""
        with self._lock:
            old, self._max = self._max, max_bytes
            self._evict_locked()
            return old

    @contextmanager
    def bounded(self, max_bytes: int) -> Iterator[None]:
        """Bound the cache at ``max_bytes`` inside the block, then as before.

        A backup or restore shrinks it for its run; the same open repository
        keeps the reader-sized cache for later commands (a server, a mount).
        """
        old = self.resize(max_bytes)
        try:
            yield
        finally:
            self.resize(old)

    def _evict_locked(self) -> None:
        """Drop the least recently used until the cache fits its bound (lock held)."""
        while self._size > self._max:
            _, value = self._items.popitem(last=False)
            self._size -= len(value)

    def clear(self) -> None:
        """Forget everything (after objects were replaced, e.g. by repair)."""
        with self._lock:
            self._items.clear()
            self._size = 0
