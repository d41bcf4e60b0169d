"""The packs a snapshot needs, gathered while it is written (its pack list, §9).

A snapshot's pack list names every pack holding one of its blobs or a delta
base of one. Collecting the *blob* ids first and resolving them at the end
held one Python object per blob of the snapshot (a million files, a million
ids); the set of *packs* is a few thousand at most, so each blob is resolved
to its pack as soon as the backup knows it: packs this backup writes are
added whole, blobs it finds already stored (deduplicated chunks, unchanged
files, unchanged trees) are looked up once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from deltavault.repo.index import BlobLocation
from deltavault.repo.repository import Repository


class PackSet:
    """Packs referenced by one snapshot; thread-safe."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.packs: set[str] = set()
        # bases already followed: only delta blobs land here, never every blob
        self._bases: set[bytes] = set()
        self._lock = threading.Lock()

    def add_pack(self, pack_id: str) -> None:
        """A pack this backup wrote (all its blobs belong to the snapshot)."""
        with self._lock:
            self.packs.add(pack_id)

    def note(self, blob_id: bytes) -> None:
        """A stored blob the snapshot references: its pack and its bases' packs."""
        self.note_location(self.repo.locate(blob_id))

    def note_location(self, loc: BlobLocation) -> None:
        """Like :meth:`note`, for a location the caller already looked up.

        The location must be the copy a restore reads (``Repository.locate``):
        a self-contained one when it exists.
        """
        with self._lock:
            self.packs.add(loc.pack_id)
            base = loc.base
        while base is not None:
            with self._lock:
                if base in self._bases:
                    return
                self._bases.add(base)
            loc = self.repo.locate(base)
            with self._lock:
                self.packs.add(loc.pack_id)
            base = loc.base

    def note_all(self, blob_ids: Iterable[bytes]) -> None:
        """:meth:`note` for each blob."""
        for b in blob_ids:
            self.note(b)
