"""Index files and the compact in-memory index (docs/format.md §6).

The in-memory index is a few numpy arrays sorted by blob id, not a dict of
Python objects: 82 bytes a blob, so ten million chunks fit in under 1 GiB and
load with one ``frombuffer`` per index file.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import zstandard

from deltavault.codec.registry import CODECS_ALLOWING_BASE, CODECS_REQUIRING_BASE, KNOWN_CODECS
from deltavault.errors import FormatError
from deltavault.repo.packs import ZERO_ID, PackEntry

INDEX_MAGIC = b"DVI1"
RECORD_DTYPE = np.dtype([
    ("id", "S32"), ("base", "S32"), ("pack", "<u4"), ("offset", "<u4"),
    ("length", "<u4"), ("raw_length", "<u4"), ("type", "u1"), ("codec", "u1"),
])
assert RECORD_DTYPE.itemsize == 82
_HEAD = struct.Struct("<4sIII")
_MAX_INDEX_PLAINTEXT = 1 << 31


def _full_id(raw: bytes) -> bytes:
    # numpy's S32 strips trailing NULs on element access; put them back.
    return raw.ljust(32, b"\0")


@dataclass(frozen=True)
class BlobLocation:
    """Where a blob is stored and how it is encoded."""

    id: bytes
    pack_id: str
    offset: int
    length: int
    raw_length: int
    type: int
    codec: int
    base: bytes | None


@dataclass
class IndexFile:
    """One ``index/<id>`` object's content."""

    pack_ids: list[bytes]
    records: npt.NDArray[np.void]
    supersedes: list[bytes]

    @classmethod
    def from_packs(cls, packs: dict[str, list[PackEntry]],
                   supersedes: Iterable[bytes] = ()) -> IndexFile:
        """Index records for freshly written packs."""
        pack_ids = sorted(packs)
        n = sum(len(v) for v in packs.values())
        rec = np.zeros(n, dtype=RECORD_DTYPE)
        i = 0
        for p, pid in enumerate(pack_ids):
            for e in packs[pid]:
                rec[i] = (e.id, e.base or ZERO_ID, p, e.offset, e.length, e.raw_length, e.type,
                          e.codec)
                i += 1
        return cls([bytes.fromhex(p) for p in pack_ids], rec, list(supersedes))

    def encode(self) -> bytes:
        """Plaintext, zstd-compressed (the caller encrypts)."""
        body = b"".join([
            _HEAD.pack(INDEX_MAGIC, len(self.supersedes), len(self.pack_ids), len(self.records)),
            *self.supersedes, *self.pack_ids, self.records.tobytes(),
        ])
        return bytes(zstandard.ZstdCompressor(level=3).compress(body))

    @classmethod
    def decode(cls, compressed: bytes, what: str = "index") -> IndexFile:
        """Parse hostile bytes; FormatError for anything malformed."""
        # Stream in pieces: decompress() allocates the size a (hostile) frame header
        # declares up front, so one flipped bit could demand gigabytes (MemoryError).
        parts: list[bytes] = []
        total = 0
        try:
            reader = zstandard.ZstdDecompressor().stream_reader(compressed)
            while piece := reader.read(1 << 20):
                total += len(piece)
                if total > _MAX_INDEX_PLAINTEXT:
                    raise FormatError(f"{what}: decompresses beyond the index size limit")
                parts.append(piece)
        except zstandard.ZstdError as exc:
            raise FormatError(f"{what}: not a zstd frame ({exc})") from exc
        body = b"".join(parts)
        if len(body) < _HEAD.size:
            raise FormatError(f"{what}: truncated")
        magic, n_sup, n_packs, n_blobs = _HEAD.unpack_from(body)
        if magic != INDEX_MAGIC:
            raise FormatError(f"{what}: bad magic")
        expect = _HEAD.size + 32 * (n_sup + n_packs) + RECORD_DTYPE.itemsize * n_blobs
        if len(body) != expect:
            raise FormatError(f"{what}: length does not match its counts")
        pos = _HEAD.size
        sup = [body[pos + 32 * i : pos + 32 * (i + 1)] for i in range(n_sup)]
        pos += 32 * n_sup
        packs = [body[pos + 32 * i : pos + 32 * (i + 1)] for i in range(n_packs)]
        pos += 32 * n_packs
        rec = np.frombuffer(body, dtype=RECORD_DTYPE, count=n_blobs, offset=pos).copy()
        if n_blobs:
            if int(rec["pack"].max()) >= n_packs:
                raise FormatError(f"{what}: record names a pack out of range")
            if int(rec["type"].max()) > 1:
                raise FormatError(f"{what}: record has an unknown blob type")
            codecs = set(np.unique(rec["codec"]).tolist())
            if not codecs <= KNOWN_CODECS:
                raise FormatError(f"{what}: record has an unknown codec")
            has_base = rec["base"] != b""
            may = np.isin(rec["codec"], list(CODECS_ALLOWING_BASE))
            must = np.isin(rec["codec"], list(CODECS_REQUIRING_BASE))
            if bool(np.any((has_base & ~may) | (must & ~has_base))):
                raise FormatError(f"{what}: record base does not fit its codec")
        return cls(packs, rec, sup)


class MasterIndex:
    """Every known blob location, loaded from all index files, plus new ones.

    Thread-safe for the backup pipeline: lookups of loaded records are
    lock-free reads of immutable arrays; additions go to a small pending
    table under a lock until the backup writes its index file.
    """

    def __init__(self) -> None:
        self._pack_ids: list[str] = []
        self._records = np.zeros(0, dtype=RECORD_DTYPE)
        self._pending: dict[bytes, BlobLocation] = {}
        self._lock = threading.Lock()
        self.index_ids: set[str] = set()

    def __len__(self) -> int:
        return len(self._records) + len(self._pending)

    def load(self, files: Iterable[tuple[str, IndexFile]]) -> None:
        """Merge index files (replacing what was loaded), sorted by blob id."""
        pack_pos: dict[str, int] = {}
        pack_ids: list[str] = []
        parts = []
        superseded: set[str] = set()
        files = list(files)
        for _, f in files:
            superseded.update(s.hex() for s in f.supersedes)
        for index_id, f in files:
            if index_id in superseded:
                continue
            self.index_ids.add(index_id)
            remap = np.zeros(max(len(f.pack_ids), 1), dtype="<u4")
            for i, raw in enumerate(f.pack_ids):
                pid = raw.hex()
                if pid not in pack_pos:
                    pack_pos[pid] = len(pack_ids)
                    pack_ids.append(pid)
                remap[i] = pack_pos[pid]
            rec = f.records.copy()
            if len(rec):
                rec["pack"] = remap[rec["pack"]]
            parts.append(rec)
        merged = np.concatenate(parts) if parts else np.zeros(0, dtype=RECORD_DTYPE)
        # A blob stored both as a delta and self-contained: the self-contained
        # record sorts first, so lookups (leftmost match) prefer it.
        order = np.lexsort((merged["base"] != b"", merged["id"]))
        self._records = merged[order]
        self._pack_ids = pack_ids

    def add(self, pack_id: str, entries: Iterable[PackEntry]) -> None:
        """Record blobs of a pack written in this session."""
        with self._lock:
            for e in entries:
                old = self._pending.get(e.id)
                if old is not None and old.base is None:
                    continue  # keep the self-contained copy
                self._pending[e.id] = BlobLocation(e.id, pack_id, e.offset, e.length,
                                                   e.raw_length, e.type, e.codec, e.base)

    def get(self, blob_id: bytes) -> BlobLocation | None:
        """The location of a blob (a self-contained one if any), or None if unknown."""
        loc = self._pending.get(blob_id)
        if loc is not None and loc.base is None:
            return loc
        stored = self._get_loaded(blob_id)
        if stored is not None and (loc is None or stored.base is None):
            return stored
        return loc

    def locations(self, blob_id: bytes) -> list[BlobLocation]:
        """Every known location of a blob (it may be stored more than once)."""
        rec = self._records
        lo = int(np.searchsorted(rec["id"], blob_id, side="left"))
        hi = int(np.searchsorted(rec["id"], blob_id, side="right"))
        out = [self._location(blob_id, rec[i]) for i in range(lo, hi)
               if _full_id(bytes(rec["id"][i])) == blob_id]
        pending = self._pending.get(blob_id)
        if pending is not None:
            out.append(pending)
        return out

    def _location(self, blob_id: bytes, r: np.void) -> BlobLocation:
        base = _full_id(bytes(r["base"])) if r["base"] != b"" else None
        return BlobLocation(blob_id, self._pack_ids[int(r["pack"])], int(r["offset"]),
                            int(r["length"]), int(r["raw_length"]), int(r["type"]),
                            int(r["codec"]), base)

    def _get_loaded(self, blob_id: bytes) -> BlobLocation | None:
        rec = self._records
        i = int(np.searchsorted(rec["id"], blob_id))
        if i < len(rec) and _full_id(bytes(rec["id"][i])) == blob_id:
            return self._location(blob_id, rec[i])
        return None

    def slot(self, blob_id: bytes) -> tuple[int, int]:
        """(position, stored length) of the blob's preferred loaded record; (-1, 0) if none.

        Positions run from 0 to ``len(self)`` and stay put until the next
        :meth:`load`, so a caller that marks blobs (counted, visited) keeps
        one byte a blob in an array instead of a set of ids.
        """
        rec = self._records
        i = int(np.searchsorted(rec["id"], blob_id))
        if i < len(rec) and _full_id(bytes(rec["id"][i])) == blob_id:
            return i, int(rec["length"][i])
        return -1, 0

    def self_contained_packs(self, blob_ids: Sequence[bytes]) -> list[str | None]:
        """For each blob, the pack of a self-contained copy, or None (unknown or only deltas).

        One vectorised search for the whole list: a no-change backup asks
        this for every unchanged file of a directory at once, where a
        :meth:`get` per blob cost more than the rest of the walk.
        """
        out: list[str | None] = [None] * len(blob_ids)
        rec = self._records
        if len(rec) and blob_ids:
            keys = np.array(blob_ids, dtype="S32")
            ids = rec["id"]
            lo = np.searchsorted(ids, keys, side="left")
            at = np.minimum(lo, len(rec) - 1)
            # among equal ids the self-contained record sorts first (load())
            hit = (lo < len(rec)) & (ids[at] == keys) & (rec["base"][at] == b"")
            packs = rec["pack"][at]
            for i in np.flatnonzero(hit).tolist():
                out[i] = self._pack_ids[int(packs[i])]
        if self._pending:
            for i, blob in enumerate(blob_ids):
                if out[i] is None:
                    loc = self._pending.get(blob)
                    if loc is not None and loc.base is None:
                        out[i] = loc.pack_id
        return out

    def __contains__(self, blob_id: bytes) -> bool:
        return self.get(blob_id) is not None

    def pack_ids(self) -> set[str]:
        """Every pack named by a loaded or pending record."""
        out = set(self._pack_ids)
        out.update(loc.pack_id for loc in self._pending.values())
        return out

    def all_locations(self) -> Iterable[BlobLocation]:
        """Every known location of every blob (a blob stored twice appears twice)."""
        rec = self._records
        for i in range(len(rec)):
            yield self._location(_full_id(bytes(rec["id"][i])), rec[i])
        yield from list(self._pending.values())
