"""Sorted runs of index records: in memory, or a verified cache file read in blocks.

A segment is a set of index records sorted by id prefix (the first 8 bytes
of the id, :data:`~deltavault.repo.indexfile.PREFIX_VIEW`) with the pack
table they point into. Only the prefixes (8 bytes a record) and one hash
per block of records are held in RAM: a lookup that misses — most lookups
of a backup's new blobs — ends at the prefix array; a hit reads one block
of records with ``pread`` and checks it against its hash before using it.

Segment file (client cache, docs/format.md §13)::

    header (64) ‖ records (n × 82) ‖ sources (s × 32) ‖ supersedes (u × 32)
    ‖ packs (p × 32) ‖ prefixes (n × 8, uint64 LE) ‖ block hashes (b × 32) ‖ mac (32)
    header = "DVXSEG1\\0" ‖ repository id (32) ‖ n (uint64) ‖ s ‖ u ‖ p ‖ block size (uint32)
    mac    = BLAKE3-keyed(K_icache, "segment" ‖ header ‖ sources … block hashes)
    block hash i = BLAKE3(records of block i)

The file is read into private memory (never mapped), so nothing changes
under the reader after it was verified.
"""

from __future__ import annotations

import hmac
import os
import struct
import threading
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path

import blake3
import numpy as np
import numpy.typing as npt

from deltavault.errors import FormatError
from deltavault.repo.distinct import distinct
from deltavault.repo.indexfile import (
    RECORD,
    RECORD_DTYPE,
    RECORD_SIZE,
    IndexFile,
    Record,
    id_prefix,
    prefixes,
    scatter,
    take,
)

SEG_MAGIC = b"DVXSEG1\0"
_SEG_HEAD = struct.Struct("<8s32sQIIII")
#: records a block: a hit reads and hashes 1.3 KiB; the block hashes cost 2 bytes a blob
BLOCK_RECORDS = 16
_MAC_SIZE = 32
_BLOCKS_KEPT = 256  # verified blocks remembered per segment (about 330 KiB)
#: a segment is read and verified whole, once, when one lookup wants at least
#: 1/WHOLE_SHARE of its blocks, or lookups have read as many blocks one by one as it
#: has (at least WHOLE_MIN_BLOCKS), and its records fit in WHOLE_MAX bytes: a full
#: restore of 200,000 files asked for ~3,300 random blocks a batch, 122,000 reads and
#: hashes in all (1.3 s), and ``check`` one directory's 100 at a time, 200,000 in all,
#: where the whole 16 MB is one read. WHOLE_MAX bounds all segments a process holds
#: whole at once (a smaller segment is at most a quarter of the next: the cache's rule)
WHOLE_SHARE = 16
WHOLE_MIN_BLOCKS = 256
WHOLE_MAX = 96 * 1024 * 1024
_whole_held = [0]  # bytes of records held whole by live segments (under _whole_lock)
_whole_given: list[int] = []  # shares of segments gone since (appended without a lock)
_whole_lock = threading.Lock()


def _held_locked() -> int:
    while _whole_given:
        _whole_held[0] -= _whole_given.pop()
    return _whole_held[0]


def whole_bytes_held() -> int:
    """Bytes of records this process holds in segments read whole."""
    with _whole_lock:
        return _held_locked()


def _take_whole(size: int) -> bool:
    """Reserve ``size`` bytes of the process's WHOLE_MAX; False if they do not fit."""
    with _whole_lock:
        if _held_locked() + size > WHOLE_MAX:
            return False
        _whole_held[0] += size
        return True


def _give_whole(size: int) -> None:
    """A segment's share back. No lock: a finalizer may run in any thread at any
    allocation, also one inside :func:`_take_whole` holding the lock."""
    _whole_given.append(size)


_EMPTY_PACKS = np.zeros(0, dtype="S32")


class DamagedSegment(FormatError):
    """A block of an opened segment file no longer matches its verified hash."""

    def __init__(self, message: str, segment: Segment) -> None:
        super().__init__(message)
        self.segment = segment


def segment_mac(key: bytes) -> blake3.blake3:
    """The keyed hash that authenticates a segment file's header and tail."""
    return blake3.blake3(b"segment", key=key)


class Segment:
    """Records sorted by id prefix; subclasses say where the records live."""

    n: int
    pfx: npt.NDArray[np.uint64]
    packs: npt.NDArray[np.bytes_]
    packs_raw: bytes
    sources: frozenset[str]
    supersedes: frozenset[str]

    def span(self, blob_id: bytes) -> tuple[int, int]:
        """Positions [lo, hi) of the records whose prefix equals the id's (empty: absent)."""
        p = id_prefix(blob_id)
        lo = int(self.pfx.searchsorted(p, "left"))
        if lo == self.n or self.pfx[lo] != p:
            return lo, lo
        return lo, int(self.pfx.searchsorted(p, "right"))

    def find(self, blob_id: bytes) -> list[tuple[int, Record]]:
        """(position, record) of every record of ``blob_id``, verified.

        A miss (the usual case for a backup's new blobs) costs one binary
        search of the prefixes and touches no record.
        """
        p = id_prefix(blob_id)
        pfx = self.pfx
        pos = int(pfx.searchsorted(p, "left"))
        out = []
        while pos < self.n and pfx[pos] == p:
            r = self.record(pos)
            if r[0] == blob_id:
                out.append((pos, r))
            pos += 1
        return out

    def record(self, pos: int) -> Record:
        """The record at ``pos``, verified."""
        raise NotImplementedError

    def records(self, lo: int, hi: int) -> npt.NDArray[np.void]:
        """Records [lo, hi), verified."""
        raise NotImplementedError

    def records_at(self, positions: npt.NDArray[np.int64]) -> npt.NDArray[np.void]:
        """The records at ``positions`` (any order, each in range), verified."""
        raise NotImplementedError

    def batches(self) -> Iterator[tuple[int, npt.NDArray[np.void]]]:
        """(first position, records) over the whole segment in order, verified."""
        step = BLOCK_RECORDS * 4096
        for lo in range(0, self.n, step):
            yield lo, self.records(lo, min(self.n, lo + step))

    def pack_hex(self, i: int) -> str:
        """The hex id of the pack at position ``i`` of the pack table."""
        return self.packs_raw[32 * i: 32 * i + 32].hex()


class ArraySegment(Segment):
    """A segment held in memory (``MasterIndex.load`` of index files, tests)."""

    def __init__(self, records: npt.NDArray[np.void], packs: npt.NDArray[np.bytes_],
                 sources: frozenset[str] = frozenset(),
                 supersedes: frozenset[str] = frozenset(), *,
                 sorted_prefixes: npt.NDArray[np.uint64] | None = None) -> None:
        """``records`` in any order, or already sorted with their ``sorted_prefixes``."""
        if sorted_prefixes is None:
            pfx = prefixes(records)
            order = np.argsort(pfx, kind="stable")
            self.rec = take(records, order)
            self.pfx = pfx[order]
        else:
            self.rec, self.pfx = records, sorted_prefixes
        self.n = len(self.rec)
        self.packs = packs
        self.packs_raw = packs.tobytes()
        self.sources = sources
        self.supersedes = supersedes

    @classmethod
    def from_files(cls, files: Sequence[tuple[str, IndexFile]]) -> ArraySegment:
        """One segment of index files held in memory (their packs merged into one table)."""
        tables = [np.frombuffer(b"".join(f.pack_ids), dtype="S32") for _, f in files]
        table = distinct(np.concatenate(tables)) if tables else np.zeros(0, "S32")
        # Sorted first (by prefix, stable: file order among equal prefixes), then each
        # file's records scattered to their sorted places in one array and their pack
        # numbers remapped there: the records are held once besides the files (a copy per file, a
        # concatenation and a sorted copy held them three times: `check` of 1M files
        # needs ~80 MiB a copy).
        pfx = (np.concatenate([prefixes(f.records) for _, f in files]) if files
               else np.zeros(0, dtype=np.uint64))
        order = np.argsort(pfx, kind="stable")
        where = np.empty(len(order), dtype=np.intp)
        where[order] = np.arange(len(order))
        merged = np.empty(len(order), dtype=RECORD_DTYPE)
        pos = 0
        for (_, f), t in zip(files, tables, strict=True):
            n = len(f.records)
            if n:
                places = where[pos:pos + n]
                scatter(merged, places, f.records)
                merged["pack"][places] = np.searchsorted(table, t).astype(np.uint32)[
                    f.records["pack"]]
            pos += n
        return cls(merged, table, frozenset(iid for iid, _ in files),
                   frozenset(s.hex() for _, f in files for s in f.supersedes),
                   sorted_prefixes=pfx[order])

    def record(self, pos: int) -> Record:
        return RECORD.unpack(self.rec[pos: pos + 1].tobytes())  # type: ignore[return-value]

    def records(self, lo: int, hi: int) -> npt.NDArray[np.void]:
        return self.rec[lo:hi]

    def records_at(self, positions: npt.NDArray[np.int64]) -> npt.NDArray[np.void]:
        return take(self.rec, positions)


def _read_exact(fd: int, buf: memoryview, offset: int) -> None:
    pos = 0
    while pos < len(buf):
        got = os.preadv(fd, [buf[pos:]], offset + pos)
        if got <= 0:
            raise FormatError("index cache: segment file is truncated")
        pos += got


def _runs(items: list[tuple[int, int]]) -> Iterator[list[tuple[int, int]]]:
    """``(slot, block)`` pairs, sorted, cut into runs of consecutive blocks (one read each)."""
    run: list[tuple[int, int]] = []
    for item in items:
        if run and item[1] != run[-1][1] + 1:
            yield run
            run = []
        run.append(item)
    if run:
        yield run


class FileSegment(Segment):
    """A verified segment file of the client cache, its records read block by block."""

    def __init__(self, path: Path, fd: int, head: tuple[int, int, int, int, int],
                 tail: bytearray, mac: bytes) -> None:
        n, n_src, n_sup, n_packs, block = head
        self.path = path
        self.name = path.name
        self.mac = mac
        self.n = n
        self.block = block
        self._fd = fd
        view = memoryview(tail)
        pos = 0

        def ids(count: int) -> list[str]:
            nonlocal pos
            out = [bytes(view[pos + 32 * i: pos + 32 * (i + 1)]).hex() for i in range(count)]
            pos += 32 * count
            return out

        src = ids(n_src)
        if src != sorted(set(src)):
            raise FormatError("index cache: segment sources are not sorted and unique")
        self.sources = frozenset(src)
        self.supersedes = frozenset(ids(n_sup))
        self.packs = np.frombuffer(tail, dtype="S32", count=n_packs, offset=pos)
        self.packs_raw = bytes(view[pos: pos + 32 * n_packs])
        pos += 32 * n_packs
        self.pfx = np.frombuffer(tail, dtype="<u8", count=n, offset=pos)
        pos += 8 * n
        if n > 1 and not bool(np.all(self.pfx[1:] >= self.pfx[:-1])):
            raise FormatError("index cache: segment is not sorted")
        self._hashes = view[pos: pos + 32 * self._n_blocks()]
        self._cache: dict[int, bytes] = {}
        self._whole: npt.NDArray[np.void] | None = None
        self._blocks_read = 0  # by records_at, one by one (approximate under threads)
        self._no_whole = False  # set when the process's WHOLE_MAX had no room for it
        self._lock = threading.Lock()

    def _n_blocks(self) -> int:
        return -(-self.n // self.block)

    @classmethod
    def open(cls, path: Path, key: bytes, repo_id: bytes) -> FileSegment:
        """Open and verify a segment file; FormatError (or OSError) if it is not ours."""
        fd = os.open(path, os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            raw = bytearray(_SEG_HEAD.size)
            if size < _SEG_HEAD.size + _MAC_SIZE:
                raise FormatError("index cache: segment file is truncated")
            _read_exact(fd, memoryview(raw), 0)
            magic, rid, n, n_src, n_sup, n_packs, block = _SEG_HEAD.unpack(raw)
            if magic != SEG_MAGIC or rid != repo_id:
                raise FormatError("index cache: not a segment of this repository")
            if not 1 <= block <= 1 << 16:
                raise FormatError("index cache: bad block size")
            n_blocks = -(-n // block)
            tail_len = 32 * (n_src + n_sup + n_packs) + 8 * n + 32 * n_blocks
            if size != _SEG_HEAD.size + RECORD_SIZE * n + tail_len + _MAC_SIZE:
                raise FormatError("index cache: segment size does not match its counts")
            tail = bytearray(tail_len + _MAC_SIZE)
            _read_exact(fd, memoryview(tail), _SEG_HEAD.size + RECORD_SIZE * n)
            mac = bytes(tail[tail_len:])
            h = segment_mac(key)
            h.update(raw)
            h.update(memoryview(tail)[:tail_len])
            if not hmac.compare_digest(h.digest(), mac):
                raise FormatError("index cache: segment authentication failed")
            del tail[tail_len:]
            seg = cls(path, fd, (n, n_src, n_sup, n_packs, block), tail, mac)
        except BaseException:
            os.close(fd)
            raise
        weakref.finalize(seg, os.close, fd)  # only now: a failed open closed it above
        return seg

    def _read(self, buf: bytearray | memoryview, first: int) -> None:
        """Records from position ``first`` into ``buf``; a file cut short is damage."""
        try:
            _read_exact(self._fd, memoryview(buf), _SEG_HEAD.size + first * RECORD_SIZE)
        except (FormatError, OSError) as exc:
            raise DamagedSegment(f"index cache: {self.name}: {exc}", self) from exc

    def _block(self, b: int) -> bytes:
        """Block ``b``'s bytes, checked against its hash (the last few read are kept)."""
        hit = self._cache.get(b)  # a dict read is atomic: no lock on the hot path
        if hit is not None:
            return hit
        whole = self._whole
        if whole is not None:  # read and verified already
            return whole[b * self.block: (b + 1) * self.block].tobytes()
        size = min(self.block, self.n - b * self.block) * RECORD_SIZE
        try:
            data = os.pread(self._fd, size, _SEG_HEAD.size + b * self.block * RECORD_SIZE)
        except OSError as exc:
            raise DamagedSegment(f"index cache: {self.name}: {exc}", self) from exc
        if len(data) != size:
            raise DamagedSegment(f"index cache: block {b} of {self.name} was changed", self)
        self._check(b, data)
        with self._lock:  # first in, first out: random lookups gain nothing from LRU order
            self._cache[b] = data
            if len(self._cache) > _BLOCKS_KEPT:
                del self._cache[next(iter(self._cache))]
        return data

    def record(self, pos: int) -> Record:
        b, i = divmod(pos, self.block)
        return RECORD.unpack_from(self._block(b), i * RECORD_SIZE)  # type: ignore[return-value]

    def records(self, lo: int, hi: int) -> npt.NDArray[np.void]:
        if hi <= lo:
            return np.zeros(0, dtype=RECORD_DTYPE)
        first, last = lo // self.block, (hi - 1) // self.block
        data = b"".join(self._block(b) for b in range(first, last + 1))
        start = first * self.block
        return np.frombuffer(data, dtype=RECORD_DTYPE)[lo - start: hi - start]

    def records_at(self, positions: npt.NDArray[np.int64]) -> npt.NDArray[np.void]:
        """Each block holding one of ``positions`` taken from the kept ones or read and
        verified once — neighbouring blocks with one read — into one buffer; the
        records are then picked from it. A lookup that wants a large share of the
        blocks has the whole segment read and verified instead, once, and kept."""
        whole = self._whole
        if whole is not None:
            return whole[positions]
        blocks = positions // self.block
        wanted = distinct(blocks)
        n_blocks = self._n_blocks()
        if (n_blocks >= WHOLE_MIN_BLOCKS and not self._no_whole
                and (len(wanted) * WHOLE_SHARE >= n_blocks or self._blocks_read >= n_blocks)):
            whole = self._load_whole()
            if whole is not None:
                return whole[positions]
        step = self.block * RECORD_SIZE
        buf = bytearray(len(wanted) * step)
        view = memoryview(buf)
        missing: list[tuple[int, int]] = []  # (slot, block) not kept
        for slot, b in enumerate(wanted.tolist()):
            hit = self._cache.get(b)
            if hit is None:
                missing.append((slot, b))
            else:
                buf[slot * step: slot * step + len(hit)] = hit
        self._blocks_read += len(missing)
        for run in _runs(missing):
            slot, first = run[0]
            end = min(self.n, (run[-1][1] + 1) * self.block)
            self._read(view[slot * step: slot * step + (end - first * self.block) * RECORD_SIZE],
                       first * self.block)
            for s_, b in run:
                n_rec = min(self.block, self.n - b * self.block)
                self._check(b, view[s_ * step: s_ * step + n_rec * RECORD_SIZE])
        rows = np.searchsorted(wanted, blocks) * self.block + positions % self.block
        rec: npt.NDArray[np.void] = np.frombuffer(buf, dtype=RECORD_DTYPE)[rows]
        return rec

    def _load_whole(self) -> npt.NDArray[np.void] | None:
        """Every record, read with one request and each block verified (kept from now);
        None when the process already holds WHOLE_MAX of segments whole."""
        with self._lock:
            if self._whole is None and not self._no_whole:
                size = self.n * RECORD_SIZE
                if not _take_whole(size):
                    self._no_whole = True
                    return None
                try:
                    buf = self._verified(0, self.n)
                except BaseException:
                    _give_whole(size)
                    raise
                self._whole = np.frombuffer(buf, dtype=RECORD_DTYPE)
                weakref.finalize(self, _give_whole, size)
            return self._whole

    def _check(self, b: int, data: memoryview | bytes) -> None:
        """Refuse block ``b`` unless its bytes have the hash the verified tail names."""
        if not hmac.compare_digest(blake3.blake3(data).digest(),
                                   self._hashes[32 * b: 32 * (b + 1)]):
            raise DamagedSegment(f"index cache: block {b} of {self.name} was changed", self)

    def batches(self) -> Iterator[tuple[int, npt.NDArray[np.void]]]:
        """Sequential reads of many blocks at once, each block verified (no LRU churn)."""
        step = self.block * 4096
        for lo in range(0, self.n, step):
            yield lo, np.frombuffer(self._verified(lo, min(self.n, lo + step)),
                                    dtype=RECORD_DTYPE)

    def _verified(self, lo: int, hi: int) -> bytearray:
        """Records ``lo`` (a block's first) to ``hi`` with one read, every block checked."""
        buf = bytearray((hi - lo) * RECORD_SIZE)
        self._read(buf, lo)
        view = memoryview(buf)
        step = self.block * RECORD_SIZE
        for off in range(0, len(buf), step):
            self._check((lo + off // RECORD_SIZE) // self.block, view[off: off + step])
        return buf


class SegmentWriter:
    """Writes a segment file from records that arrive sorted by prefix, in one pass."""

    def __init__(self, path: Path, key: bytes, repo_id: bytes) -> None:
        self.path = path
        self._key = key
        self._repo_id = repo_id
        self._f = open(path, "wb")  # noqa: SIM115 - closed in finish/abort
        self._f.write(bytes(_SEG_HEAD.size))
        self._n = 0
        self._carry = b""
        self._hashes: list[bytes] = []
        self._pfx: list[npt.NDArray[np.uint64]] = []
        self._last = -1

    def write(self, rec: npt.NDArray[np.void]) -> None:
        """Append records (sorted, none below what was written before)."""
        if not len(rec):
            return
        pfx = prefixes(rec)
        if int(pfx[0]) < self._last:
            raise ValueError("segment records must arrive sorted")
        self._last = int(pfx[-1])
        self._pfx.append(pfx)
        data = np.ascontiguousarray(rec).tobytes()
        self._f.write(data)
        self._n += len(rec)
        buf = memoryview(self._carry + data) if self._carry else memoryview(data)
        size = BLOCK_RECORDS * RECORD_SIZE
        whole = len(buf) // size * size
        for off in range(0, whole, size):
            self._hashes.append(blake3.blake3(buf[off: off + size]).digest())
        self._carry = bytes(buf[whole:])

    def finish(self, sources: list[str], supersedes: list[str],
               packs: npt.NDArray[np.bytes_]) -> Path:
        """Write the tail and the header, fsync; returns the path."""
        if self._carry:
            self._hashes.append(blake3.blake3(self._carry).digest())
        head = _SEG_HEAD.pack(SEG_MAGIC, self._repo_id, self._n, len(sources),
                              len(supersedes), len(packs), BLOCK_RECORDS)
        mac = segment_mac(self._key)
        mac.update(head)
        f = self._f
        pieces = [b"".join(bytes.fromhex(s) for s in sorted(sources)),
                  b"".join(bytes.fromhex(s) for s in sorted(supersedes)),
                  np.ascontiguousarray(packs, dtype="S32").tobytes()]
        for piece in pieces:
            f.write(piece)
            mac.update(piece)
        for pfx in self._pfx:
            data = pfx.astype("<u8").tobytes()
            f.write(data)
            mac.update(data)
        hashes = b"".join(self._hashes)
        f.write(hashes)
        mac.update(hashes)
        f.write(mac.digest())
        f.seek(0)
        f.write(head)
        f.flush()
        os.fsync(f.fileno())
        f.close()
        return self.path

    def abort(self) -> None:
        """Close and remove the unfinished file."""
        self._f.close()
        self.path.unlink(missing_ok=True)


def empty_packs() -> npt.NDArray[np.bytes_]:
    """A pack table with no packs."""
    return _EMPTY_PACKS
