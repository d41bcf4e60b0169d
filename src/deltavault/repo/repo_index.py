"""The index part of :class:`~deltavault.repo.repository.Repository` (docs/format.md §6, §13.1).

Loading goes through the client's verified index cache
(:mod:`deltavault.repo.index_cache`): a warm cache costs a listing of
``index/`` and a few local reads; new index files extend it. Writing
splits large indexes into bounded files and adds them to the cache.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING

from deltavault.errors import RepositoryError
from deltavault.repo import layout
from deltavault.repo.config import Config
from deltavault.repo.crypto import AAD_INDEX, Crypto
from deltavault.repo.objects import RepositoryObjects
from deltavault.store.base import Store

if TYPE_CHECKING:  # numpy and the codecs load on first use, not at start-up (issue 14)
    from deltavault.repo.index import BlobLocation, IndexFile, MasterIndex
    from deltavault.repo.index_cache import IndexCache, SyncResult
    from deltavault.repo.index_segment import Segment
    from deltavault.repo.packs import PackEntry


class RepositoryIndex:
    """Index loading, lookups and index writes of a repository."""

    store: Store
    objects: RepositoryObjects
    config: Config
    crypto: Crypto

    def _init_index(self) -> None:
        self._index: MasterIndex | None = None
        self.damaged_indexes: list[str] = []
        #: what the last load_index did (segments, files downloaded, damaged files)
        self.index_sync: SyncResult | None = None
        self._index_loaded = False
        self._index_cache: IndexCache | None = None
        self._depths: dict[tuple[str, int], int] = {}

    @property
    def index(self) -> MasterIndex:
        """The blob index (empty until :meth:`load_index`).

        Made on first use: it is numpy arrays, and commands that never look a
        blob up (``snapshots``, ``ledger verify``) should not import numpy.
        """
        if self._index is None:
            from deltavault.repo.index import MasterIndex

            self._index = MasterIndex()
        return self._index

    @index.setter
    def index(self, value: MasterIndex) -> None:
        self._index = value

    def _open_named(self, key: str, oid: str, read: Callable[[str], bytes], aad: bytes) -> bytes:
        raise NotImplementedError

    def load_index_file(self, index_id: str) -> IndexFile:
        """One index file: read, check its SHA-256 name, decrypt, parse."""
        from deltavault.repo.index import IndexFile

        return IndexFile.decode(self._index_plaintext(index_id), f"index {index_id[:12]}")

    def _index_plaintext(self, index_id: str) -> bytes:
        """An index file's compressed plaintext, its name and AEAD verified."""
        return self._open_named(layout.index_key(index_id), index_id, self.objects.read_index,
                                AAD_INDEX)

    def index_cache(self) -> IndexCache:
        """This client's verified cache of the index (docs/format.md §13.1)."""
        if self._index_cache is None:
            from deltavault.repo.index_cache import IndexCache

            self._index_cache = IndexCache.for_repository(
                self.config.id, self.store.location(), self.crypto.master.secret)
        return self._index_cache

    def load_index(self, *, force: bool = False, reread: bool = False) -> MasterIndex:
        """Bring the index cache up to date with the stored index files and use it.

        With a warm cache nothing is downloaded; new index files extend it,
        vanished or superseded ones make the segments that named them be
        rebuilt. A damaged index file is skipped with a warning (and listed
        in ``damaged_indexes``): one bad file must not block every restore;
        what it named is reported by ``check`` and repairable. ``reread``
        (implies ``force``) downloads and verifies every index file again
        and rebuilds the cache from them, for a check that trusts nothing
        local; ``index_sync.damaged`` then lists every unreadable file.
        """
        if self._index_loaded and not force and not reread:
            return self.index
        result = self.index_cache().sync(self.objects.index_ids(), self._index_plaintext,
                                         reread=reread)
        self._note_damage(result)
        from deltavault.repo.index import MasterIndex

        index = MasterIndex()
        index.use(result.segments, result.index_ids, heal=self._heal_index)
        self.index = index
        self._index_loaded = True
        return self.index

    def _note_damage(self, result: SyncResult) -> None:
        self.index_sync = result
        self.damaged_indexes = [f"{layout.index_key(iid)}: {msg}" for iid, msg in result.damaged]
        for iid, msg in result.damaged:
            warnings.warn(f"skipping damaged index/{iid[:12]}: {msg}", stacklevel=3)

    def _heal_index(self, bad: Segment) -> list[Segment]:
        """Rebuild a cache segment found damaged after it was opened (then retry)."""
        result = self.index_cache().heal(bad, self.objects.index_ids(), self._index_plaintext)
        self._note_damage(result)
        return list(result.segments)

    def save_index(self, index_file: IndexFile) -> str:
        """Encrypt and store one index file (any size); returns its id."""
        iid = self._write_index(index_file)
        self._cache_written([(iid, index_file)])
        return iid

    def save_index_files(self, entries: IndexFile | dict[str, list[PackEntry]], *,
                         supersedes: list[str] | None = None,
                         max_records: int | None = None) -> list[str]:
        """Store index records as files of at most ``max_records`` records each.

        ``entries`` is an index file or the entries of each pack. Only the
        last file written names ``supersedes`` (see :meth:`IndexFile.split`).
        The files join the client's index cache, so the next open does not
        download them.

        Returns:
            The ids of the files written, in order.
        """
        from deltavault.repo.index import IndexFile
        from deltavault.repo.indexfile import MAX_RECORDS_PER_FILE

        if isinstance(entries, IndexFile):
            whole = entries
            if supersedes is not None:
                whole = IndexFile(entries.pack_ids, entries.records,
                                  [bytes.fromhex(s) for s in supersedes])
        else:
            whole = IndexFile.from_packs(entries, [bytes.fromhex(s) for s in supersedes or ()])
        parts = whole.split(max_records or MAX_RECORDS_PER_FILE)
        written = [(self._write_index(part), part) for part in parts]
        self._cache_written(written)
        return [iid for iid, _ in written]

    def _write_index(self, index_file: IndexFile) -> str:
        data = self.crypto.seal(AAD_INDEX, index_file.encode())
        iid = hashlib.sha256(data).hexdigest()
        self.objects.write_index(iid, data)
        return iid

    def _cache_written(self, files: list[tuple[str, IndexFile]]) -> None:
        """Add files this process wrote to the cache; move this session's blobs there."""
        try:
            seg = self.index_cache().add_files(files)
        except OSError as exc:
            warnings.warn(f"could not update the index cache: {exc}", stacklevel=3)
            return
        if seg is None:
            return
        packs = {p.hex() for iid, f in files if iid in seg.sources for p in f.pack_ids}
        if self._index_loaded and not seg.supersedes and self.index.holds_pending(packs):
            self.index.attach(seg, packs)

    # --- lookups ---------------------------------------------------------------

    def locate(self, blob_id: bytes) -> BlobLocation:
        """The blob's location with the shortest delta chain (a blob may be stored twice)."""
        locs = self.index.locations(blob_id)
        if not locs:
            raise RepositoryError(f"blob {blob_id.hex()[:16]} is not in any index")
        if len(locs) == 1:
            return locs[0]
        return min(locs, key=self.depth_of)

    def depth_of(self, loc: BlobLocation) -> int:
        """Delta chain length under a stored blob (0: self-contained; huge: broken)."""
        depth, cur, seen = 0, loc, {loc.id}
        while cur.base is not None:
            cached = self._depths.get((cur.pack_id, cur.offset))
            if cached is not None:
                depth += cached
                break
            locs = self.index.locations(cur.base)
            if not locs or cur.base in seen or depth > 64:
                return 1 << 30  # missing or cyclic base: never build on it
            seen.add(cur.base)
            cur = min(locs, key=lambda x: x.base is not None)
            depth += 1
        if loc.base is not None:
            self._depths[(loc.pack_id, loc.offset)] = depth
        return depth
