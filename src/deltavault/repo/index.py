"""The index a session looks blobs up in (docs/format.md §6, §13).

:class:`MasterIndex` answers "where is blob X" from a few sorted segments
— normally files of the client's verified index cache, of which only the
8-byte id prefixes live in RAM — plus the blobs this session added. A
lookup that misses (most of a backup's) costs one binary search per
segment; a hit reads one verified block of records.

The wire format of ``index/<id>`` objects lives in
:mod:`deltavault.repo.indexfile`; its names are re-exported here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from deltavault.errors import IntegrityError
from deltavault.repo.distinct import distinct
from deltavault.repo.index_pending import Pending
from deltavault.repo.index_segment import ArraySegment, DamagedSegment, Segment
from deltavault.repo.indexfile import (
    INDEX_MAGIC,
    RECORD_DTYPE,
    BlobLocation,
    IndexFile,
    IndexStream,
    Record,
    full_id,
    present,
    take,
)
from deltavault.repo.packs import ZERO_ID, PackEntry

__all__ = ["INDEX_MAGIC", "RECORD_DTYPE", "BlobLocation", "IndexFile", "IndexStream",
           "MasterIndex"]

#: how often a session rebuilds damaged cache segments before it gives up
_MAX_HEALS = 3

Heal = Callable[[Segment], Sequence[Segment]]


@dataclass(frozen=True)
class _View:
    """Everything a lookup reads, replaced whole (never mutated) by writers."""

    segments: tuple[Segment, ...]
    offsets: tuple[int, ...]
    pending: Pending


def _location(r: Record, pack_id: str) -> BlobLocation:
    return BlobLocation(r[0], pack_id, r[3], r[4], r[5], r[6], r[7],
                        None if r[1] == ZERO_ID else r[1])


def _view(segments: Sequence[Segment], pending: Pending) -> _View:
    offsets, pos = [], 0
    for seg in segments:
        offsets.append(pos)
        pos += seg.n
    return _View(tuple(segments), tuple(offsets), pending)


def _prefixes(blob_ids: Sequence[bytes]) -> npt.NDArray[np.uint64]:
    """The sort key of each id (see :func:`~deltavault.repo.indexfile.id_prefix`)."""
    joined = b"".join(blob_ids)
    if len(joined) == 32 * len(blob_ids):  # 32-byte ids: every fourth word, no slicing
        return np.frombuffer(joined, dtype=">u8")[::4].astype(np.uint64)
    return np.frombuffer(b"".join(b[:8] for b in blob_ids), dtype=">u8").astype(np.uint64)


def _search(v: _View, q: npt.NDArray[np.uint64]) -> tuple[npt.NDArray[np.intp],
                                                          npt.NDArray[np.int64],
                                                          npt.NDArray[np.int64]]:
    """Positions of the query prefixes ``q`` that occur exactly once in all loaded
    segments, and for each query its position and segment (one search per segment)."""
    n = len(q)
    count = np.zeros(n, dtype=np.int64)
    where = np.zeros(n, dtype=np.int64)
    seg_of = np.zeros(n, dtype=np.int64)
    for k, seg in enumerate(v.segments):
        lo = seg.pfx.searchsorted(q, "left")
        c = seg.pfx.searchsorted(q, "right") - lo
        hit = c > 0
        count += c
        where[hit] = lo[hit]
        seg_of[hit] = k
    return np.flatnonzero(count == 1), where, seg_of


def _found(v: _View, blob_ids: Sequence[bytes]
           ) -> Iterator[tuple[Segment, npt.NDArray[np.intp], npt.NDArray[np.void]]]:
    """Per segment: the queries stored exactly once in the loaded index and found
    there, with their records (read as one array, whole ids compared as 64-bit
    words). A query whose prefix is also among this session's additions is left
    out: it may be stored twice, and the caller's per-blob path decides."""
    n = len(blob_ids)
    if not n or not v.segments:
        return
    q = _prefixes(blob_ids)
    single, where, seg_of = _search(v, q)
    if v.pending.levels:
        single = single[~v.pending.prefix_hits(q)[single]]
    ids = np.frombuffer(b"".join(blob_ids), dtype="<u8").reshape(n, 4)
    for k, seg in enumerate(v.segments):
        mine = single[seg_of[single] == k]
        if len(mine):
            rec = seg.records_at(where[mine])
            same = (_words(rec["id"]) == ids[mine]).all(axis=1)
            yield seg, mine[same], rec[same]


def _words(column: npt.NDArray[Any]) -> npt.NDArray[np.uint64]:
    """A column of 32-byte ids as four 64-bit words a row (exact byte comparison)."""
    return np.ascontiguousarray(column).view("<u8").reshape(len(column), 4)


class MasterIndex:
    """Every known blob location: loaded segments plus this session's additions.

    Thread-safe for the backup pipeline: lookups read an immutable view
    without locking; :meth:`add` and :meth:`attach` replace the view under
    a lock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._packs: dict[str, int] = {}
        self._v = _view((), Pending([]))
        self._heal: Heal | None = None
        self._heals = 0
        self.index_ids: set[str] = set()

    def __len__(self) -> int:
        v = self._v
        return sum(s.n for s in v.segments) + len(v.pending)

    # --- loading -------------------------------------------------------------------

    def use(self, segments: Sequence[Segment], index_ids: Iterable[str],
            heal: Heal | None = None) -> None:
        """Look up in ``segments`` (replacing what was loaded; additions are kept).

        ``heal`` rebuilds the segments when one turns out damaged after it
        was opened (a changed block of the cache file) and returns the new set.
        """
        with self._lock:
            self._v = _view(segments, self._v.pending)
            self._heal = heal
            self.index_ids = set(index_ids)

    def load(self, files: Iterable[tuple[str, IndexFile]]) -> None:
        """Merge index files held in memory (replacing what was loaded), sorted by blob id."""
        files = list(files)
        superseded = {s.hex() for _, f in files for s in f.supersedes}
        seg = ArraySegment.from_files([(iid, f) for iid, f in files if iid not in superseded])
        self.use([seg], seg.sources)

    def attach(self, segment: Segment, packs: Iterable[str]) -> None:
        """Add a segment that now indexes some of this session's packs.

        Their pending records are dropped in the same step, so a blob is
        never missing in between and RAM holds only what no file names yet.
        """
        with self._lock:
            pos = [self._packs[p] for p in packs if p in self._packs]
            v = self._v
            self._v = _view((*v.segments, segment), v.pending.without_packs(pos))
            self.index_ids |= segment.sources

    def holds_pending(self, packs: Iterable[str]) -> bool:
        """Whether every one of ``packs`` was added in this session (and there is one)."""
        packs = list(packs)
        return bool(packs) and all(p in self._packs for p in packs)

    def add(self, pack_id: str, entries: Iterable[PackEntry]) -> None:
        """Record blobs of a pack written in this session."""
        with self._lock:
            pos = self._packs.get(pack_id)
            if pos is None:
                pos = self._packs[pack_id] = len(self._packs)
                self._v.pending.packs.append(pack_id)
            v = self._v
            self._v = _View(v.segments, v.offsets, v.pending.with_entries(pos, entries))

    # --- lookups -------------------------------------------------------------------

    def _stored(self, blob_id: bytes) -> list[tuple[int, Record, str]]:
        """(position, record, pack id) of every loaded record of ``blob_id``."""
        while True:
            v = self._v
            try:
                out = []
                for seg, off in zip(v.segments, v.offsets, strict=True):
                    for pos, r in seg.find(blob_id):
                        out.append((off + pos, r, seg.pack_hex(r[2])))
                if len(out) > 1:  # self-contained copies first: readers prefer them
                    out.sort(key=lambda t: t[1][1] != ZERO_ID)
                return out
            except DamagedSegment as exc:
                self._repair(v, exc)

    def _repair(self, seen: _View, exc: DamagedSegment) -> None:
        """Rebuild the segments after a damaged block was found (once per damage)."""
        with self._lock:
            if self._v is not seen:
                return  # another thread already replaced them
            if self._heal is None or self._heals >= _MAX_HEALS:
                raise IntegrityError(f"{exc} (the index cache could not be rebuilt)") from exc
            self._heals += 1
            fresh = self._heal(exc.segment)
            self._v = _view(fresh, seen.pending)

    def _pending(self, blob_id: bytes) -> list[BlobLocation]:
        p = self._v.pending
        out = [_location(r, p.packs[r[2]]) for r in p.find(blob_id)]
        if len(out) > 1:
            out.sort(key=lambda loc: loc.base is not None)
        return out

    def get(self, blob_id: bytes) -> BlobLocation | None:
        """The location of a blob (a self-contained one if any), or None if unknown."""
        pending = self._pending(blob_id) if self._v.pending.levels else []
        if pending and pending[0].base is None:
            return pending[0]
        stored = self._stored(blob_id)
        if stored:
            _, r, pid = stored[0]
            return _location(r, pid)
        return pending[0] if pending else None

    def locations(self, blob_id: bytes) -> list[BlobLocation]:
        """Every known location of a blob (it may be stored more than once)."""
        out = [_location(r, pid) for _, r, pid in self._stored(blob_id)]
        return out + self._pending(blob_id)

    def locate_many(self, blob_ids: Sequence[bytes]) -> list[BlobLocation | None]:
        """The stored location of each blob; None where it is unknown, stored more than
        once or (perhaps) added in this session (the caller then asks :meth:`locations`).

        One vectorised search per segment; each segment's records are then read
        as one array (every block of the cache read and verified once) and
        compared as 64-bit words. A restore asks this for every blob of a
        batch, where a record read per blob cost more than the search.
        """
        v = self._v
        out: list[BlobLocation | None] = [None] * len(blob_ids)
        try:
            for seg, found, rec in _found(v, blob_ids):
                table = {int(i): seg.pack_hex(int(i)) for i in distinct(rec["pack"]).tolist()}
                for i, (_, base, pack, offset, length, raw, typ, codec) in zip(
                        found.tolist(), rec.tolist(), strict=True):
                    out[i] = BlobLocation(blob_ids[i], table[pack], offset, length, raw, typ,
                                          codec, full_id(base) if base else None)
        except DamagedSegment as exc:
            self._repair(v, exc)
            return self.locate_many(blob_ids)
        return out

    def single_packs(self, blob_ids: Sequence[bytes]) -> list[str | None]:
        """For each blob stored once in the loaded index, self-contained: its pack; else None.

        None also for a blob unknown, stored more than once, stored as a delta or
        (perhaps) added in this session: the caller asks :meth:`locations` or
        :meth:`get` for those. Only the distinct packs are turned into ids:
        ``check`` and a no-change backup ask this for every blob of a
        directory, where building a :class:`BlobLocation` per blob cost more
        than the search (issue 13).
        """
        v = self._v
        out: list[str | None] = [None] * len(blob_ids)
        try:
            for seg, found, rec in _found(v, blob_ids):
                plain = ~_words(rec["base"]).any(axis=1)
                packs = rec["pack"][plain]
                table = {int(i): seg.pack_hex(int(i)) for i in distinct(packs).tolist()}
                for i, pack in zip(found[plain].tolist(), packs.tolist(), strict=True):
                    out[i] = table[pack]
        except DamagedSegment as exc:
            self._repair(v, exc)
            return self.single_packs(blob_ids)
        return out

    def maybe_known(self, blob_ids: Sequence[bytes]) -> list[bool]:
        """For each blob, False if no loaded or added record shares its id prefix.

        False means unknown for certain and :meth:`get` can be skipped; True
        means ask it (a hit, or rarely another id with the same 8-byte
        prefix). One vectorised search per segment and level for the whole
        list: a backup of small files asked :meth:`get` per blob, and each
        search there released and re-took the GIL, which with the walker and
        a worker contending for it cost a quarter of the backup (issue 13).
        """
        if not blob_ids:
            return []
        v = self._v
        q = _prefixes(blob_ids)
        hit = v.pending.prefix_hits(q)
        for seg in v.segments:
            hit |= present(seg.pfx, q)
        return [bool(h) for h in hit.tolist()]

    def slot(self, blob_id: bytes) -> tuple[int, int]:
        """(position, stored length) of the blob's preferred loaded record; (-1, 0) if none.

        Positions run from 0 to ``len(self)`` and stay put until the next
        :meth:`use` or :meth:`load`, so a caller that marks blobs (counted,
        visited) keeps one byte a blob in an array instead of a set of ids.
        """
        stored = self._stored(blob_id)
        if stored:
            return stored[0][0], stored[0][1][4]
        return -1, 0

    def self_contained_packs(self, blob_ids: Sequence[bytes]) -> list[str | None]:
        """For each blob, the pack of a self-contained copy, or None (unknown or only deltas).

        One vectorised search for the whole list (:meth:`single_packs`): a
        no-change backup asks this for every unchanged file of a directory at
        once, where a :meth:`get` per blob cost more than the rest of the
        walk. Blobs stored more than once or added in this session fall back
        to :meth:`get`, which prefers a self-contained copy.
        """
        out = self.single_packs(blob_ids)
        for i, pack in enumerate(out):
            if pack is None:
                loc = self.get(blob_ids[i])
                out[i] = loc.pack_id if loc is not None and loc.base is None else None
        return out

    def __contains__(self, blob_id: bytes) -> bool:
        return self.get(blob_id) is not None

    # --- whole-index views -----------------------------------------------------------

    def pack_ids(self) -> set[str]:
        """Every pack named by a loaded index file or added in this session."""
        v = self._v
        out: set[str] = set(v.pending.packs)
        for seg in v.segments:
            out.update(p.hex() for p in np.frombuffer(seg.packs.tobytes(), "V32").tolist())
        return out

    def _batches(self) -> Iterator[tuple[npt.NDArray[np.void], Callable[[int], str]]]:
        v = self._v
        for seg in v.segments:
            for _, rec in seg.batches():
                yield rec, seg.pack_hex
        for rec in v.pending.records():
            yield rec, v.pending.packs.__getitem__

    def all_locations(self) -> Iterable[BlobLocation]:
        """Every known location of every blob (a blob stored twice appears twice)."""
        for rec, pack_of in self._batches():
            cols = [rec[f].tolist() for f in ("id", "base", "pack", "offset", "length",
                                                "raw_length", "type", "codec")]
            for bid, base, pack, off, length, raw, typ, codec in zip(*cols, strict=True):
                yield BlobLocation(full_id(bid), pack_of(pack), off, length, raw, typ, codec,
                                   full_id(base) if base else None)

    def arrays(self) -> tuple[list[str], npt.NDArray[np.void]]:
        """The loaded records (sorted by blob id) and the pack ids their ``pack`` field indexes.

        For whole-index planning (prune, repair) without a Python object per
        blob; blobs added in this session (pending) are not included. This
        materialises every record (82 bytes a blob).
        """
        v = self._v
        tables = [s.packs for s in v.segments]
        table = distinct(np.concatenate(tables)) if tables else np.zeros(0, "S32")
        # filled in place, not joined from copies: at a million blobs the copies,
        # their join and the sorted result were 250 MB at once (prune's peak)
        merged = np.empty(sum(seg.n for seg in v.segments), dtype=RECORD_DTYPE)
        at = 0
        for seg in v.segments:
            remap = np.searchsorted(table, seg.packs).astype(np.uint32)
            for _, rec in seg.batches():
                part = merged[at:at + len(rec)]
                part.view(np.uint8)[:] = np.ascontiguousarray(rec).view(np.uint8)
                part["pack"] = remap[rec["pack"]]
                at += len(rec)
        # a blob stored both as a delta and self-contained: the self-contained record
        # sorts first, so leftmost matches prefer it
        order = np.lexsort((merged["base"] != b"", merged["id"]))
        if not bool(np.all(order[1:] > order[:-1])):  # one segment is in order already
            merged = take(merged, order)
        return [t.hex() for t in np.frombuffer(table.tobytes(), "V32").tolist()], merged

