"""Read, chunk and store file content: small files in batches, large ones chunk by chunk.

Per-file cost decides a backup of many small files (issue 13), per-chunk
parallelism a backup of a few large ones (issue 14); the two take different
paths:

* a **small file** (up to :data:`SMALL_FILE` bytes) is read whole by a
  worker, cut in memory (:meth:`FileChunker.split_buffer`, no chunker or
  file object per file) and stored there and then; the walker hands workers
  *batches* of them, so one task, one queue hand-off and one completion
  cover dozens of files;
* a **large file** is read and cut by the reader thread, which queues each
  chunk to the workers, so the reads of one file run ahead of the
  compression of its earlier chunks on every core.

A :class:`PendingFile` collects its chunks' blob ids; when the last one is
stored it is posted to the walker's completion queue (the walker alone owns
trees, so nothing about directories needs a lock).
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from deltavault.backup.blobwriter import BlobWriter, Chunk
from deltavault.backup.planner import BaseFile, DeltaPlanner
from deltavault.chunk.base import ChunkRef
from deltavault.chunk.files import FileChunker
from deltavault.repo.packs import BLOB_DATA
from deltavault.repo.tree import Node

#: files up to this size are read whole by a worker (one task for many)
SMALL_FILE = 1024 * 1024
#: a batch of small files is handed over at this many files or bytes (a running
#: batch holds all its files' bytes; with batches of 4 MiB, the read-ahead budget
#: was spent by the two running ones and the workers waited on the walker)
BATCH_FILES = 64
BATCH_BYTES = 1024 * 1024
#: budget charged per file on top of its bytes, so empty files are bounded too
FILE_OVERHEAD = 1024
#: a chunk with a delta base is charged this many times its size: while it is
#: encoded, its base is held decoded and copied into a zstd dictionary, with a
#: hash table sized to the base. Measured on the bench's mixed state, days 1-4,
#: two runs each: 2 took peak RSS on the delta-heavy days 2 and 4 from 106-110
#: to 101-106 MiB at the same times; 3 went lower still on mixed but slowed the
#: weights day-2 backup by 30% (1.22 -> 1.57-1.62 s), one delta chunk at a time
DELTA_WEIGHT = 2
#: batches of files this small on average are stored by one worker at a time: each
#: file is a few short GIL-releasing calls (open, read, close, hash, compress, seal),
#: and two workers trading the GIL for them spend more in hand-offs than they gain
#: (20,000 files of 1-4 KiB: 126,000 context switches and 6.1 s with two workers in
#: parallel, 25,000 and 4.9 s with one). Not larger: an order book of 60 KiB is a
#: millisecond of codec work (books workload at 64 KiB: 7.3-7.9 s; at 16 KiB 6.8-7.5 s)
TINY_FILE = 16 * 1024


@dataclass(slots=True, eq=False)
class PendingFile:
    """A file node whose content ids are being computed.

    ``remaining`` counts chunks not yet stored plus one while chunks are
    still being cut; whoever brings it to zero posts the file as done.
    """

    node: Node
    #: where to open it: a path relative to ``dir_fd`` (deep trees), or absolute
    path: str
    dir_fd: int | None
    #: root-relative path, for the delta planner (empty when it is not needed)
    rel: str
    frame: object
    slot: int
    content: list[bytes | None] = field(default_factory=list)
    remaining: int = 1
    bytes_read: int = 0
    #: why it could not be read (the walker adds the path)
    error: str | None = None


class ContentStore:
    """Turns file content into stored blobs for one backup (shared by all threads)."""

    def __init__(self, writer: BlobWriter, chunker: FileChunker, planner: DeltaPlanner,
                 done: queue.SimpleQueue[list[PendingFile]]) -> None:
        self.writer = writer
        self.chunker = chunker
        self.planner = planner
        self.done = done
        self._lock = threading.Lock()
        self._tiny_lane = threading.Lock()
        self._large: queue.Queue[PendingFile | None] = queue.Queue(maxsize=16)
        self._reader = threading.Thread(target=self._read_loop, name="dv-read", daemon=True)
        self._reader.start()
        self._batch: list[PendingFile] = []
        self._batch_bytes = 0

    # --- from the walker ------------------------------------------------------------

    def add(self, pf: PendingFile, size: int) -> None:
        """Schedule a file's content: batched if small, to the reader if large."""
        if size > SMALL_FILE:
            self.flush_batch()
            while True:
                try:
                    self._large.put(pf, timeout=0.5)
                    break
                except queue.Full:
                    self.writer.raise_error()
            return
        self._batch.append(pf)
        self._batch_bytes += size + FILE_OVERHEAD
        if len(self._batch) >= BATCH_FILES or self._batch_bytes >= BATCH_BYTES:
            self.flush_batch()

    def flush_batch(self) -> None:
        """Hand the small files gathered so far to a worker."""
        if self._batch:
            batch, nbytes = self._batch, self._batch_bytes
            self._batch, self._batch_bytes = [], 0
            self.writer.submit(self._small_batch, batch, nbytes)

    def close(self) -> None:
        """No more files: flush the batch and stop the reader once it is done."""
        self.flush_batch()
        self._large.put(None)
        self._reader.join()

    # --- small files, on a worker ----------------------------------------------------

    def _small_batch(self, batch: list[PendingFile]) -> None:
        if sum(pf.node.size for pf in batch) < TINY_FILE * len(batch):
            with self._tiny_lane:  # see TINY_FILE
                self._store_small(batch)
        else:
            self._store_small(batch)

    def _store_small(self, batch: list[PendingFile]) -> None:
        read: list[tuple[PendingFile, int, int]] = []
        chunks: list[Chunk] = []
        for pf in batch:
            try:
                data = _read_whole(pf.path, pf.dir_fd, pf.node.size)
            except OSError as exc:
                pf.error = str(exc.strerror)
                continue
            refs = self.chunker.split_buffer(data)
            if refs is None:  # SQLite: the stream path knows live databases
                self._read_file(pf, post=False)
                continue
            base_file = self.planner.file(pf.rel) if self.planner.enabled else None
            read.append((pf, len(data), len(refs)))
            chunks.extend((ref.data, self._base_for(base_file, ref), ref.hint) for ref in refs)
        ids: list[bytes | None] = list(self.writer.store_many(chunks, BLOB_DATA))
        at = 0
        for pf, nbytes, count in read:
            pf.content = ids[at:at + count]
            at += count
            pf.bytes_read = nbytes
            pf.remaining = 0
        self.done.put(batch)

    # --- large files, on the reader thread -------------------------------------------

    def _read_loop(self) -> None:
        while True:
            pf = self._large.get()
            if pf is None:
                return
            if self.writer.failed:
                pf.error = "backup aborted"
                self.done.put([pf])
                continue
            try:
                self._read_file(pf, post=True)
            except BaseException as exc:  # surfaced through the writer
                self.writer.fail(exc)
                pf.error = "backup aborted"
                self.done.put([pf])

    def _read_file(self, pf: PendingFile, *, post: bool) -> None:
        """Cut a file as a stream; chunks go to the workers (``post``) or are stored here."""
        try:
            fh = open(os.open(pf.path, _OPEN_FLAGS, dir_fd=pf.dir_fd),  # noqa: SIM115
                      "rb", buffering=0)
        except OSError as exc:
            pf.error = str(exc.strerror)
            if post:
                self.done.put([pf])
            return
        base_file = self.planner.file(pf.rel) if self.planner.enabled else None
        try:
            with fh:
                # the chunker may reopen a live SQLite database by name
                name = pf.path if pf.dir_fd is None else f"/proc/self/fd/{pf.dir_fd}/{pf.path}"
                for ref in self.chunker.chunks(fh, name):
                    base = self._base_for(base_file, ref)
                    pf.bytes_read += ref.length
                    if not post:
                        pf.content.append(self.writer.store(ref.data, BLOB_DATA, base,
                                                            ref.hint))
                        continue
                    with self._lock:
                        pf.content.append(None)
                        pf.remaining += 1
                    weight = DELTA_WEIGHT if base is not None else 1
                    self.writer.submit(self._chunk_task, (pf, len(pf.content) - 1, ref, base),
                                       ref.length * weight)
        except OSError as exc:
            pf.error = f"read failed: {exc.strerror}"
        if post:
            self._finish_one(pf)
        else:
            pf.remaining = 0

    def _chunk_task(self, arg: tuple[PendingFile, int, ChunkRef, bytes | None]) -> None:
        pf, i, ref, base = arg
        pf.content[i] = self.writer.store(ref.data, BLOB_DATA, base, ref.hint)
        self._finish_one(pf)

    def _finish_one(self, pf: PendingFile) -> None:
        with self._lock:
            pf.remaining -= 1
            last = pf.remaining == 0
        if last:
            self.done.put([pf])

    def _base_for(self, base_file: BaseFile | None, ref: ChunkRef) -> bytes | None:
        if base_file is None:
            return None
        base = (base_file.pick(ref.offset, ref.length) if ref.hint else
                base_file.pick_similar(ref.data, ref.offset, ref.length))
        if base is not None and not self.planner.may_base_on(base):
            return None
        return base


_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def _read_whole(path: str, dir_fd: int | None, size: int) -> bytes:
    """A small file's bytes with one open, one read and one close.

    The read asks for one byte more than the walk's ``lstat`` saw: a shorter
    read is the end of a regular file, a full one means it grew, and the rest
    is read until the end. (A buffer of the stat's size, not :data:`SMALL_FILE`,
    so a 2 KiB file does not allocate and shrink 1 MiB.)
    """
    fd = os.open(path, _OPEN_FLAGS, dir_fd=dir_fd)
    try:
        want = size + 1
        block = os.read(fd, want)
        if len(block) < want:
            return block
        parts = [block]
        while block:
            block = os.read(fd, SMALL_FILE + 1)
            parts.append(block)
        return b"".join(parts)
    finally:
        os.close(fd)


#: completion callback type for the walker
OnDone = Callable[[PendingFile], None]
