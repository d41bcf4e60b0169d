"""Move objects between two stores byte for byte, verifying every hash-named one.

Used by ``copy`` (replicas): a hash-named object (packs, indexes, snapshots,
key files, journal batches) whose bytes do not hash to its name is damaged in
the source and is reported, never copied.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from deltavault.errors import ObjectExists, ObjectNotFound
from deltavault.repo.layout import HASH_NAMED, STAGING_PREFIX, name_of
from deltavault.store.base import Store

ProgressFn = Callable[[int, int], None]


def name_matches(key: str, data: bytes) -> bool:
    """Whether a hash-named object's bytes hash to its name (True for other keys)."""
    if not key.startswith(HASH_NAMED):
        return True
    return hashlib.sha256(data).hexdigest() == name_of(key)


@dataclass
class CopyReport:
    """What ``copy`` did."""

    source: str
    destination: str
    initialised: bool = False
    snapshots: list[str] = field(default_factory=list)
    objects_copied: int = 0
    bytes_copied: int = 0
    objects_present: int = 0
    indexes_written: int = 0
    ledger_size: int = 0
    damaged_in_source: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.damaged_in_source

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "source": self.source, "destination": self.destination,
                "initialised": self.initialised, "snapshots": self.snapshots,
                "objects_copied": self.objects_copied, "bytes_copied": self.bytes_copied,
                "objects_present": self.objects_present,
                "indexes_written": self.indexes_written, "ledger_size": self.ledger_size,
                "damaged_in_source": self.damaged_in_source}


class Transfer:
    """Copies missing objects, verifying hash-named ones; thread-safe counters."""

    def __init__(self, src: Store, dst: Store, report: CopyReport,
                 on_progress: ProgressFn | None, workers: int) -> None:
        self.src, self.dst, self.report = src, dst, report
        self.on_progress = on_progress
        self.workers = workers
        self.present = {info.key for info in dst.list("")}
        self.done = 0
        self.total = 0
        self._lock = threading.Lock()

    def missing(self, keys: Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
        out = []
        for key, size in keys:
            if key in self.present:
                self.report.objects_present += 1
            else:
                out.append((key, size))
        return out

    def plan(self, batches: Sequence[list[tuple[str, int]]]) -> None:
        self.total += sum(size for batch in batches for _, size in batch)
        self._tick(0)

    def _tick(self, n: int) -> None:
        with self._lock:
            self.done += n
            done, total = self.done, self.total
        if self.on_progress is not None:
            self.on_progress(done, total)

    def one(self, key: str, size: int) -> bool:
        try:
            data = self.src.get(key)
        except ObjectNotFound:
            if key.startswith(STAGING_PREFIX):  # its batch was published meanwhile
                self._tick(size)
                return False
            raise
        if not name_matches(key, data):
            with self._lock:
                self.report.damaged_in_source.append(key)
            self._tick(size)
            return False
        # ObjectExists: a lost ack or a concurrent copy; same name, same bytes.
        with contextlib.suppress(ObjectExists):
            self.dst.put(key, data)
        with self._lock:
            self.present.add(key)
            self.report.objects_copied += 1
            self.report.bytes_copied += len(data)
        self._tick(size)
        return True

    def run(self, keys: list[tuple[str, int]]) -> None:
        """Copy ``keys`` (already filtered by :meth:`missing`), packs in parallel."""
        if not keys:
            return
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            for future in [pool.submit(self.one, k, s) for k, s in keys]:
                future.result()
