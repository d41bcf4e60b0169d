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
  compression of its earlier chunks on every core;
* once a backup has met :data:`SEALER_AFTER_FILES` **tiny files**, their
  batches go to a sealer process instead (sealer.py: the same reading,
  cutting, encoding and sealing, under its own interpreter lock); its
  answers are packed on its reader thread (:meth:`ContentStore._sealed`).

A :class:`PendingFile` collects its chunks' blob ids; when the last one is
stored it is posted to the walker's completion queue (the walker alone owns
trees, so nothing about directories needs a lock).
"""

from __future__ import annotations

import functools
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from deltavault.backup.blobwriter import BlobWriter, Chunk, Sealed, env_int
from deltavault.backup.planner import BaseFile, DeltaPlanner
from deltavault.backup.sealer import Answer, Sealer, SealerGone, SealerUse
from deltavault.backup.smallfile import OPEN_FLAGS, SMALL_FILE, read_whole
from deltavault.chunk.base import ChunkRef
from deltavault.chunk.files import FileChunker
from deltavault.errors import DeltavaultError
from deltavault.repo.packs import BLOB_DATA
from deltavault.repo.tree import Node

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
#: tiny files a backup stores in process before it starts a sealer process for
#: the rest (sealer.py): its start-up is a few hundred milliseconds of imports
#: (``DELTAVAULT_SEALER_AFTER_FILES``; ``DELTAVAULT_SEALER=0``: never)
SEALER_AFTER_FILES = 2048


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
        self._tiny_files = 0
        self._sealer: Sealer | None = None
        #: what the sealer process did, once it is stopped (None: not started)
        self.sealer_use: SealerUse | None = None
        self._seal_after = env_int("DELTAVAULT_SEALER_AFTER_FILES", SEALER_AFTER_FILES)
        self._may_seal = (writer.workers > 1 and (os.cpu_count() or 1) > 1
                          and os.environ.get("DELTAVAULT_SEALER", "1") != "0")

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
        """Hand the small files gathered so far to a worker, or to the sealer process."""
        if not self._batch:
            return
        batch, nbytes = self._batch, self._batch_bytes
        self._batch, self._batch_bytes = [], 0
        if _tiny(batch):
            if self._may_seal:
                self._tiny_files += len(batch)
                if self._tiny_files >= self._seal_after:
                    self._start_sealer()
            sealer = self._sealer
            if sealer is not None and sealer.ready() and self._sealable(batch):
                self.writer.raise_error()
                self.writer.budget.acquire(nbytes)  # released once the batch is packed
                try:
                    sealer.submit([(os.fsencode(pf.path), pf.node.size) for pf in batch],
                                  functools.partial(self._sealed, batch, nbytes))
                    return
                except SealerGone:
                    self.writer.budget.release(nbytes)
        self.writer.submit(self._small_batch, batch, nbytes)

    def _start_sealer(self) -> None:
        self._may_seal = False  # one try
        try:
            self._sealer = Sealer(self.writer.repo.crypto, self.chunker.config.cdc,
                                  self.writer.policy, self.writer.level)
        except SealerGone:
            self._sealer = None

    def close(self) -> None:
        """No more files: flush the batch and stop the reader once it is done."""
        self.flush_batch()
        self._large.put(None)
        self._reader.join()

    def stop_sealer(self) -> None:
        """Stop the sealer process, once every batch is stored (or the backup failed)."""
        sealer, self._sealer = self._sealer, None
        if sealer is not None:
            self.sealer_use = sealer.close()

    # --- small files, on a worker ----------------------------------------------------

    def _small_batch(self, batch: list[PendingFile]) -> None:
        if _tiny(batch):
            with self._tiny_lane:  # see TINY_FILE
                self._store_small(batch)
        else:
            self._store_small(batch)

    def _sealable(self, batch: list[PendingFile]) -> bool:
        """Files the sealer may take: opened by path, without a delta base."""
        planner = self.planner
        return all(pf.dir_fd is None and (not planner.enabled or planner.file(pf.rel) is None)
                   for pf in batch)

    # --- tiny files, answered by the sealer process (on its reader thread) -----------

    def _sealed(self, batch: list[PendingFile], nbytes: int,
                answers: list[Answer] | DeltavaultError) -> None:
        """Pack a batch the sealer sealed; do it here if the sealer failed."""
        writer = self.writer
        try:
            if writer.failed:
                return  # the backup is being abandoned
            parsed = None
            if not isinstance(answers, DeltavaultError):
                try:  # the whole answer is read before anything of it is acted on
                    parsed = [_parse_answer(a) for a in answers]
                except (IndexError, TypeError, ValueError):
                    parsed = None
            if parsed is None:  # nothing of this batch was stored: do it in process
                with self._tiny_lane:
                    self._store_small(batch)
                return
            read: list[tuple[PendingFile, int, int]] = []
            blobs: list[Sealed] = []
            for pf, (why, chunks, count) in zip(batch, parsed, strict=True):
                if why is not None:
                    pf.error = why
                elif chunks is None:  # SQLite: the stream path knows live databases
                    self._read_file(pf, post=False)
                else:
                    read.append((pf, count, len(chunks)))
                    blobs.extend(chunks)
            self._settle_batch(batch, read, writer.store_sealed(blobs, BLOB_DATA))
        except BaseException as exc:  # surfaced to the walker, as a worker's would be
            writer.fail(exc)
        finally:
            writer.budget.release(nbytes)

    def _store_small(self, batch: list[PendingFile]) -> None:
        read: list[tuple[PendingFile, int, int]] = []
        chunks: list[Chunk] = []
        for pf in batch:
            try:
                data = read_whole(pf.path, pf.dir_fd, pf.node.size)
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
        self._settle_batch(batch, read, self.writer.store_many(chunks, BLOB_DATA))

    def _settle_batch(self, batch: list[PendingFile], read: list[tuple[PendingFile, int, int]],
                      ids: list[bytes]) -> None:
        """Give each file read its blob ids (in order), and post the batch as done."""
        at = 0
        for pf, nbytes, count in read:
            pf.content = list(ids[at:at + count])
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
            fh = open(os.open(pf.path, OPEN_FLAGS, dir_fd=pf.dir_fd),  # noqa: SIM115
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


def _parse_answer(answer: list[Any]) -> tuple[str | None, list[Sealed] | None, int]:
    """One file's answer from the sealer: (why unreadable, its sealed chunks, bytes read)."""
    if answer[0] == 1:
        return str(answer[1]), None, 0
    if answer[0] == 2:
        return None, None, 0
    if answer[0] != 0:
        raise ValueError(f"status {answer[0]!r}")
    chunks = [(bytes(c[0]), int(c[1]), int(c[2]), bytes(c[3])) for c in answer[1]]
    if any(len(c[0]) != BLOB_ID_SIZE for c in chunks):
        raise ValueError("blob id of the wrong size")
    return None, chunks, int(answer[2])


def _tiny(batch: list[PendingFile]) -> bool:
    """Whether a batch's files are tiny on average (see :data:`TINY_FILE`)."""
    return sum(pf.node.size for pf in batch) < TINY_FILE * len(batch)


#: bytes of a blob id (keyed BLAKE3)
BLOB_ID_SIZE = 32


#: completion callback type for the walker
OnDone = Callable[[PendingFile], None]
