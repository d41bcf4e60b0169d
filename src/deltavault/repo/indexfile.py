"""The ``index/<id>`` object: its plaintext format, streamed (docs/format.md §6).

An index file is read as a stream — header, supersedes, pack ids, then the
records in batches — so the reader never holds the whole plaintext, let
alone several copies of it, and no size cap limits one file. A frame that
declares far more plaintext than its compressed size can carry is refused
before anything is allocated.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import zstandard

from deltavault.codec.registry import CODECS_ALLOWING_BASE, CODECS_REQUIRING_BASE, KNOWN_CODECS
from deltavault.errors import FormatError
from deltavault.repo.distinct import distinct
from deltavault.repo.packs import ZERO_ID, PackEntry

INDEX_MAGIC = b"DVI1"
RECORD_DTYPE = np.dtype([
    ("id", "S32"), ("base", "S32"), ("pack", "<u4"), ("offset", "<u4"),
    ("length", "<u4"), ("raw_length", "<u4"), ("type", "u1"), ("codec", "u1"),
])
RECORD_SIZE = RECORD_DTYPE.itemsize
assert RECORD_SIZE == 82
#: one record as Python values (a lookup's hit path: no numpy scalars, full 32-byte ids)
RECORD = struct.Struct("<32s32sIIIIBB")
assert RECORD.size == RECORD_SIZE
#: (id, base, pack, offset, length, raw_length, type, codec); base is 32 zero bytes if none
Record = tuple[bytes, bytes, int, int, int, int, int, int]
#: the first 8 bytes of a record's id as one big-endian integer: the sort key of every
#: sorted record array (ids are keyed hashes, so equal prefixes are almost always equal ids)
PREFIX_VIEW = np.dtype({"names": ["p"], "formats": [">u8"], "offsets": [0],
                        "itemsize": RECORD_SIZE})
_HEAD = struct.Struct("<4sIII")
#: records carry 32 random id bytes each, so a real file's plaintext is under 3× its
#: compressed size; one declaring more than this many times is a decompression bomb
_MAX_EXPANSION = 64
_SLACK = 1 << 20
#: records per index file that writers aim for (about 21 MiB of plaintext); readers
#: stream, so this bounds a writer's memory, not what a reader accepts
MAX_RECORDS_PER_FILE = 1 << 18
#: records handed over at once while streaming (5 MiB)
BATCH_RECORDS = 1 << 16
_PIECE = 1 << 20


_RAW = np.dtype((np.void, RECORD_SIZE))


def take(records: npt.NDArray[np.void], order: npt.NDArray[np.intp]) -> npt.NDArray[np.void]:
    """``records[order]``, copying whole records as bytes (3× numpy's field-wise copy)."""
    return np.ascontiguousarray(records).view(_RAW)[order].view(RECORD_DTYPE)


def scatter(out: npt.NDArray[np.void], where: npt.NDArray[np.intp],
            records: npt.NDArray[np.void]) -> None:
    """``out[where] = records``, copying whole records as bytes (like :func:`take`)."""
    out.view(_RAW)[where] = np.ascontiguousarray(records).view(_RAW)


def concat(parts: Sequence[npt.NDArray[np.void]]) -> npt.NDArray[np.void]:
    """Record arrays joined end to end, as one byte copy."""
    if not parts:
        return np.zeros(0, dtype=RECORD_DTYPE)
    if len(parts) == 1:
        return parts[0]
    raw = np.concatenate([np.ascontiguousarray(p).view(np.uint8) for p in parts])
    return raw.view(RECORD_DTYPE)


def full_id(raw: bytes) -> bytes:
    """A 32-byte id from numpy's S32 element (which strips trailing NUL bytes)."""
    return raw.ljust(32, b"\0")


def prefixes(records: npt.NDArray[np.void]) -> npt.NDArray[np.uint64]:
    """The sort key of each record (see :data:`PREFIX_VIEW`), as native uint64."""
    return records.view(PREFIX_VIEW)["p"].astype(np.uint64)


def id_prefix(blob_id: bytes) -> np.uint64:
    """The sort key of one id (a numpy scalar: a Python int would compare as float)."""
    return np.uint64(int.from_bytes(blob_id[:8], "big"))


def present(sorted_pfx: npt.NDArray[np.uint64],
            q: npt.NDArray[np.uint64]) -> npt.NDArray[np.bool_]:
    """Which of the prefixes ``q`` occur in the sorted array ``sorted_pfx`` (one search)."""
    if not len(sorted_pfx):
        return np.zeros(len(q), dtype=bool)
    pos = np.minimum(sorted_pfx.searchsorted(q, "left"), len(sorted_pfx) - 1)
    return np.asarray(sorted_pfx[pos] == q)


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


def check_records(rec: npt.NDArray[np.void], n_packs: int, what: str) -> None:
    """Refuse records no writer produces (FormatError), vectorised over a batch."""
    if not len(rec):
        return
    if int(rec["pack"].max()) >= n_packs:
        raise FormatError(f"{what}: record names a pack out of range")
    if int(rec["type"].max()) > 1:
        raise FormatError(f"{what}: record has an unknown blob type")
    codecs = set(distinct(rec["codec"]).tolist())
    if not codecs <= KNOWN_CODECS:
        raise FormatError(f"{what}: record has an unknown codec")
    has_base = rec["base"] != b""
    may = np.isin(rec["codec"], list(CODECS_ALLOWING_BASE))
    must = np.isin(rec["codec"], list(CODECS_REQUIRING_BASE))
    if bool(np.any((has_base & ~may) | (must & ~has_base))):
        raise FormatError(f"{what}: record base does not fit its codec")


class IndexStream:
    """One index file's plaintext, read from its compressed bytes piece by piece.

    The header, ``supersedes`` and ``pack_ids`` are read at construction;
    :meth:`batches` then yields the records, each batch checked. The file
    is valid only once :meth:`batches` has run to its end (trailing bytes
    and truncation are found there): consumers commit nothing before.
    """

    def __init__(self, compressed: bytes | memoryview, what: str = "index") -> None:
        self.what = what
        try:
            self._reader = zstandard.ZstdDecompressor().stream_reader(compressed)
        except zstandard.ZstdError as exc:
            raise FormatError(f"{what}: not a zstd frame ({exc})") from exc
        head = self._read(_HEAD.size)
        if len(head) < _HEAD.size:
            raise FormatError(f"{what}: truncated")
        magic, n_sup, n_packs, n_blobs = _HEAD.unpack(head)
        if magic != INDEX_MAGIC:
            raise FormatError(f"{what}: bad magic")
        declared = _HEAD.size + 32 * (n_sup + n_packs) + RECORD_SIZE * n_blobs
        if declared > _MAX_EXPANSION * len(compressed) + _SLACK:
            raise FormatError(f"{what}: length does not match its counts "
                              f"(declares {declared} bytes from {len(compressed)})")
        ids = self._read(32 * (n_sup + n_packs))
        if len(ids) != 32 * (n_sup + n_packs):
            raise FormatError(f"{what}: length does not match its counts")
        self.supersedes = [ids[32 * i: 32 * (i + 1)] for i in range(n_sup)]
        self.pack_ids = [ids[32 * i: 32 * (i + 1)] for i in range(n_sup, n_sup + n_packs)]
        self.n_records = n_blobs

    def _read(self, n: int) -> bytes:
        """Up to ``n`` bytes (fewer only at the end of the frame)."""
        parts: list[bytes] = []
        got = 0
        try:
            while got < n:
                piece = self._reader.read(min(n - got, _PIECE))
                if not piece:
                    break
                parts.append(piece)
                got += len(piece)
        except zstandard.ZstdError as exc:
            raise FormatError(f"{self.what}: not a zstd frame ({exc})") from exc
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def batches(self, size: int = BATCH_RECORDS) -> Iterator[npt.NDArray[np.void]]:
        """The records in file order, ``size`` at a time (read-only arrays)."""
        left = self.n_records
        while left:
            k = min(size, left)
            raw = self._read(k * RECORD_SIZE)
            if len(raw) != k * RECORD_SIZE:
                raise FormatError(f"{self.what}: length does not match its counts")
            rec = np.frombuffer(raw, dtype=RECORD_DTYPE)
            check_records(rec, len(self.pack_ids), self.what)
            yield rec
            left -= k
        if self._read(1):
            raise FormatError(f"{self.what}: length does not match its counts")


def entry_records(entries: Sequence[PackEntry]) -> npt.NDArray[np.void]:
    """One pack's entries as index records, pack number 0 (set when a file is made).

    A backup keeps its packs' entries until an index file names them; as
    records they take 82 bytes a blob instead of ~290 as objects (200,000
    small files: ~58 MB held to the end of the first backup).
    """
    rec = np.zeros(len(entries), dtype=RECORD_DTYPE)
    for i, e in enumerate(entries):
        rec[i] = (e.id, e.base or ZERO_ID, 0, e.offset, e.length, e.raw_length, e.type, e.codec)
    return rec


@dataclass
class IndexFile:
    """One ``index/<id>`` object's content, held in memory (small files, writers)."""

    pack_ids: list[bytes]
    records: npt.NDArray[np.void]
    supersedes: list[bytes]

    @classmethod
    def from_packs(cls, packs: Mapping[str, Sequence[PackEntry] | npt.NDArray[np.void]],
                   supersedes: Iterable[bytes] = ()) -> IndexFile:
        """Index records for freshly written packs (entries, or :func:`entry_records`)."""
        pack_ids = sorted(packs)
        parts = []
        for p, pid in enumerate(pack_ids):
            got = packs[pid]
            rec = entry_records(got) if isinstance(got, Sequence) else got.copy()
            rec["pack"] = p
            parts.append(rec)
        records = np.concatenate(parts) if parts else np.zeros(0, dtype=RECORD_DTYPE)
        return cls([bytes.fromhex(p) for p in pack_ids], records, list(supersedes))

    def encode(self) -> bytes:
        """Plaintext, zstd-compressed (the caller encrypts); records compressed in slices."""
        head = b"".join([_HEAD.pack(INDEX_MAGIC, len(self.supersedes), len(self.pack_ids),
                                    len(self.records)), *self.supersedes, *self.pack_ids])
        # the frame states its content size, as a one-shot compress would
        comp = zstandard.ZstdCompressor(level=3).compressobj(
            size=len(head) + RECORD_SIZE * len(self.records))
        out = [comp.compress(head)]
        rec = np.ascontiguousarray(self.records)
        for start in range(0, len(rec), BATCH_RECORDS):
            out.append(comp.compress(rec[start: start + BATCH_RECORDS].tobytes()))
        out.append(comp.flush())
        return b"".join(out)

    def split(self, max_records: int = MAX_RECORDS_PER_FILE) -> list[IndexFile]:
        """This file as several of at most ``max_records`` records each.

        One pack's records stay in one file (a pack with more records than
        the limit makes a file of its own, bigger than the limit). Only the last file names
        ``supersedes``: written last, it retires the old files only once
        every new one exists.
        """
        if max_records < 1:
            raise ValueError("max_records must be positive")
        if len(self.records) <= max_records:
            return [self]
        rec = self.records[np.argsort(self.records["pack"], kind="stable")]
        col = rec["pack"]
        out: list[IndexFile] = []
        start, n = 0, len(rec)
        while start < n:
            end = min(start + max_records, n)
            if end < n and col[end] == col[end - 1]:
                # a pack would straddle the cut: end before it, or after it if it is
                # the only pack left in this file
                cut = int(np.searchsorted(col, col[end], side="left"))
                end = cut if cut > start else int(np.searchsorted(col, col[end], side="right"))
            chunk = rec[start:end].copy()
            used = distinct(chunk["pack"])
            remap = np.zeros(len(self.pack_ids), dtype=np.uint32)
            remap[used] = np.arange(len(used), dtype=np.uint32)
            chunk["pack"] = remap[chunk["pack"]]
            out.append(IndexFile([self.pack_ids[int(p)] for p in used], chunk, []))
            start = end
        named = set(col.tolist())
        out[0].pack_ids += [p for i, p in enumerate(self.pack_ids) if i not in named]
        out[-1].supersedes = list(self.supersedes)
        return out

    @classmethod
    def decode(cls, compressed: bytes | memoryview, what: str = "index") -> IndexFile:
        """Parse hostile bytes; FormatError for anything malformed."""
        stream = IndexStream(compressed, what)
        rec = np.empty(stream.n_records, dtype=RECORD_DTYPE)
        pos = 0
        for batch in stream.batches():
            rec[pos: pos + len(batch)] = batch
            pos += len(batch)
        return cls(stream.pack_ids, rec, stream.supersedes)
