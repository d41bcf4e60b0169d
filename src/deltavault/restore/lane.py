"""One lane for restore tasks of small blobs, stepped out of while the kernel creates a file.

Restoring small files is a handful of short GIL-releasing calls per file;
two workers trading the GIL for each of them spent more in hand-offs than
they gained (see :func:`~deltavault.restore.fetch.run_task`), so such tasks
take turns. One call is not short: creating the file, which the file system
may make slow (ext4 without a journal searches past every inode freed in the
last minutes: 390 µs a file after a large deletion, ~40 µs otherwise). A
worker steps out of the lane for that one call, so the other runs its Python
while the kernel works: 200,000 files of 1-4 KiB restored in 72-82 s instead
of 138-144 s right after a large deletion, 20.9-21.6 s instead of 23.0-24.3 s
on a settled file system (alternating runs, 2 cores). Since then a one-blob
file steps out for everything the kernel does for it (create, write, times,
close; create, write and close alone take 32-44 µs a file on ext4):
18.9-21.1 s instead of 24.2-25.6 s (see :mod:`~deltavault.restore.files`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Lane:
    """A lock that its holder may leave for one blocking call and take back after it."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __enter__(self) -> Lane:
        self._lock.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    def outside(self, call: Callable[..., T], *args: object) -> T:
        """``call(*args)`` with the lane left to another task meanwhile (holder only)."""
        self._lock.release()
        try:
            return call(*args)
        finally:
            self._lock.acquire()
