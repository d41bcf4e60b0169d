"""A bound on the bytes of work in flight, shared by the threads that queue work.

The backup pipeline reads ahead of its workers so that no core waits for
I/O, but read-ahead is memory: every queued chunk or small file holds its
bytes until a worker has encrypted it into a pack. Counting *bytes* rather
than tasks keeps memory the same whether the tree holds 4 KiB files or
4 MiB chunks, and lets many small files be queued at once (a count of three
tasks starved the workers on small files).
"""

from __future__ import annotations

import threading
import time


class ByteBudget:
    """A counting bound in bytes; ``acquire`` blocks while the budget is spent.

    One request larger than the whole budget is admitted when nothing else is
    in flight, so a single huge chunk never deadlocks the pipeline.
    """

    def __init__(self, limit: int) -> None:
        if limit <= 0:
            raise ValueError("budget must be positive")
        self.limit = limit
        self._used = 0
        self.peak = 0
        #: seconds producers spent blocked on a spent budget (workers behind)
        self.waited_s = 0.0
        self._cond = threading.Condition(threading.Lock())
        self._broken = False

    @property
    def used(self) -> int:
        """Bytes currently admitted and not yet released."""
        return self._used

    def acquire(self, n: int) -> None:
        """Wait until ``n`` more bytes fit (or the budget is broken by an error)."""
        with self._cond:
            if self._used and self._used + n > self.limit and not self._broken:
                t0 = time.monotonic()
                while self._used and self._used + n > self.limit and not self._broken:
                    self._cond.wait()
                self.waited_s += time.monotonic() - t0
            self._used += n
            self.peak = max(self.peak, self._used)

    def release(self, n: int) -> None:
        """Give ``n`` bytes back and wake the waiters."""
        with self._cond:
            self._used -= n
            self._cond.notify_all()

    def wait_idle(self) -> None:
        """Block until everything admitted was released."""
        with self._cond:
            while self._used and not self._broken:
                self._cond.wait()

    def break_(self) -> None:
        """Stop blocking anyone: the pipeline failed and is draining."""
        with self._cond:
            self._broken = True
            self._cond.notify_all()
