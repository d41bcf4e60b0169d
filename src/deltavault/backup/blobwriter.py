"""Deduplicate, encode, encrypt and pack blobs on worker threads; upload packs on another.

The walker and the reader queue *tasks* (a function, its argument and the
bytes it holds) on :meth:`BlobWriter.submit`; a pool of plain threads runs
them. A task calls :meth:`BlobWriter.store` for each chunk: hash it
(BLAKE3), skip it if the repository already has it, compress it (zstd or a
delta codec) and encrypt it (AES-GCM) — native code that releases the GIL —
and append it to the open pack. There is no future and no semaphore per
chunk: one :class:`~deltavault.backup.budget.ByteBudget` bounds the bytes
queued, and results go back through the task's own callback.

Full packs go to an uploader thread. Every ``index_every_packs`` packs (or
``index_every_bytes``) it writes an index file for the packs written so far,
so a backup killed half-way leaves its packs indexed and the next run
deduplicates against them instead of storing them again (docs/format.md §11).
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from deltavault.backup.budget import ByteBudget
from deltavault.codec.policy import Policy, choose
from deltavault.errors import DeltavaultError
from deltavault.repo.index import BlobLocation, IndexFile
from deltavault.repo.indexfile import entry_records
from deltavault.repo.packs import PackBuilder
from deltavault.repo.repository import Repository

#: may an existing stored blob be shared by this snapshot? (delta depth rules)
ReusePolicy = Callable[[BlobLocation], bool]
#: a queued unit of work: function, its argument, bytes it holds
Task = tuple[Callable[[Any], None], Any, int]
#: a chunk for :meth:`BlobWriter.store_many`: its bytes, delta base, chunker hint
Chunk = tuple[bytes | memoryview, bytes | None, str | None]
#: a blob sealed elsewhere (sealer.py): its id, codec, plaintext length, envelope
Sealed = tuple[bytes, int, int, bytes]
#: what :meth:`BlobWriter._claim` decided for a blob
_NEW, _REUSED, _CLAIMED = 0, 1, 2

#: index checkpoint defaults (issue 13): a killed backup loses at most this much
INDEX_EVERY_PACKS = 64
INDEX_EVERY_BYTES = 512 * 1024 * 1024
#: bytes of chunks and small files queued or being encoded, at most: 8 MiB with
#: batches of small files of 1 MiB (files.BATCH_BYTES) is as fast as 16 MiB with
#: batches of 4 MiB on every bench workload and ~10 MiB lower at peak
#: (docs/benchmark.md, "Memory of a backup")
INFLIGHT_BYTES = 8 * 1024 * 1024
#: finished packs handed to the uploader and not yet written, at most (each is
#: spooled to an unlinked temporary file, like the one being filled, and stored
#: from it: docs/benchmark.md, memory)
PACKS_IN_FLIGHT = 1


def env_int(name: str, default: int) -> int:
    """A positive integer from the environment, or ``default`` if unset or invalid."""
    try:
        return max(1, int(os.environ.get(name, "") or default))
    except ValueError:
        return default


@dataclass
class WriteStats:
    """What the writer added to the repository."""

    blobs_added: int = 0
    blobs_deduplicated: int = 0
    bytes_plain_added: int = 0
    bytes_stored_added: int = 0
    packs_written: int = 0
    bytes_packed: int = 0
    delta_blobs: int = 0
    index_files_written: int = 0
    #: seconds the workers together spent waiting for work (the walk behind)
    worker_idle_s: float = 0.0
    #: packs written and not yet named by an index file this writer saved
    written_packs: dict[str, npt.NDArray[np.void]] = field(default_factory=dict)
    #: every pack this writer wrote (ids only; a pack holds thousands of blobs)
    pack_ids: list[str] = field(default_factory=list)


class BlobWriter:
    """Thread-safe blob sink and worker pool for one backup session."""

    def __init__(self, repo: Repository, *, workers: int = 2, inflight_bytes: int | None = None,
                 codec_policy: Policy = "auto", may_reuse: ReusePolicy | None = None,
                 on_reuse: Callable[[bytes], None] | None = None,
                 index_every_packs: int | None = None,
                 index_every_bytes: int | None = None) -> None:
        self.repo = repo
        self.stats = WriteStats()
        self.workers = max(1, workers)
        self._policy: Policy = codec_policy
        self._may_reuse = may_reuse
        self._on_reuse = on_reuse
        self._level = repo.config.compression_level
        self._index_packs = index_every_packs or env_int("DELTAVAULT_INDEX_EVERY_PACKS",
                                                          INDEX_EVERY_PACKS)
        self._index_bytes = index_every_bytes or env_int("DELTAVAULT_INDEX_EVERY_BYTES",
                                                          INDEX_EVERY_BYTES)
        self._unindexed_bytes = 0
        self._lock = threading.Lock()
        #: blobs in the open pack or a pack not yet uploaded: in no index yet
        self._claimed: set[bytes] = set()
        self._builder = PackBuilder(spool=True)
        self._error: BaseException | None = None
        # a few chunks of read-ahead per worker: enough that no worker waits on
        # the reader, little enough for the 100 MiB target (docs/benchmark.md)
        self.budget = ByteBudget(inflight_bytes or env_int("DELTAVAULT_INFLIGHT_BYTES",
                                                            max(INFLIGHT_BYTES,
                                                                4 * workers << 20)))
        self._tasks: queue.SimpleQueue[Task | None] = queue.SimpleQueue()
        self._workers = [threading.Thread(target=self._work_loop, name=f"dv-blob-{i}",
                                          daemon=True) for i in range(max(1, workers))]
        for t in self._workers:
            t.start()
        self._uploads: queue.SimpleQueue[PackBuilder | None] = queue.SimpleQueue()
        self._pack_slots = threading.Semaphore(env_int("DELTAVAULT_PACKS_IN_FLIGHT",
                                                        PACKS_IN_FLIGHT))
        self._uploader = threading.Thread(target=self._upload_loop, name="dv-upload",
                                          daemon=True)
        self._uploader.start()
        self._closed = False

    @property
    def policy(self) -> Policy:
        """The codec policy every blob of this backup is encoded under."""
        return self._policy

    @property
    def level(self) -> int:
        """The repository's zstd level (the policy maps it per kind of chunk)."""
        return self._level

    # --- the pool ----------------------------------------------------------------

    def submit(self, fn: Callable[[Any], None], arg: Any, nbytes: int) -> None:
        """Queue ``fn(arg)`` for a worker; blocks while ``nbytes`` does not fit the budget."""
        self.raise_error()
        self.budget.acquire(nbytes)
        self._tasks.put((fn, arg, nbytes))

    def _work_loop(self) -> None:
        idle = 0.0
        while True:
            t0 = time.monotonic()
            task = self._tasks.get()
            idle += time.monotonic() - t0
            if task is None:
                with self._lock:
                    self.stats.worker_idle_s += idle
                return
            fn, arg, nbytes = task
            try:
                if self._error is None:
                    fn(arg)
            except BaseException as exc:  # surfaced to the submitting thread
                self.fail(exc)
            finally:
                self.budget.release(nbytes)

    def fail(self, exc: BaseException) -> None:
        """Record the first failure and stop every thread from waiting on the budget."""
        with self._lock:
            if self._error is None:
                self._error = exc
        self.budget.break_()

    @property
    def failed(self) -> bool:
        """Whether a worker or the uploader failed (the backup is being abandoned)."""
        return self._error is not None

    def raise_error(self) -> None:
        """Re-raise a worker's or the uploader's failure in the calling thread."""
        err = self._error
        if err is not None:
            if isinstance(err, DeltavaultError):
                raise err
            raise DeltavaultError(f"backup pipeline failed: {err!r}") from err

    # --- blobs -------------------------------------------------------------------

    def store(self, data: bytes | memoryview, blob_type: int, base: bytes | None = None,
              hint: str | None = None, blob_id: bytes | None = None) -> bytes:
        """Store one blob unless the repository has it; returns its id. Any thread.

        ``base`` names a stored blob this one may be encoded against; ``hint``
        is the chunker's element type (codec policy input).
        """
        if blob_id is None:
            blob_id = self.repo.crypto.blob_id(data)
        with self._lock:
            fate = self._claim(blob_id, True)
        self._settle(fate, blob_id, data, blob_type, base, hint)
        return blob_id

    def store_many(self, chunks: Sequence[Chunk], blob_type: int) -> list[bytes]:
        """:meth:`store` for many chunks: one lock and one index search for them all.

        A batch of small files asked the index once a blob, and each search
        released and re-took the GIL: with the walker and a worker contending
        for it, those hand-offs cost a quarter of a backup of 200,000 small
        files (issue 13). The search runs under the writer's lock, as in
        :meth:`store`, so a blob is either claimed here or found in the index.
        """
        crypto = self.repo.crypto
        ids = [crypto.blob_id(c[0]) for c in chunks]
        with self._lock:
            maybe = self.repo.index.maybe_known(ids)
            fates = [self._claim(b, m) for b, m in zip(ids, maybe, strict=True)]
        for fate, b, (data, base, hint) in zip(fates, ids, chunks, strict=True):
            self._settle(fate, b, data, blob_type, base, hint)
        return ids

    def _claim(self, blob_id: bytes, maybe_known: bool) -> int:
        """Under the lock: is the blob new (claimed now), reused or already claimed?"""
        if blob_id in self._claimed:
            self.stats.blobs_deduplicated += 1
            return _CLAIMED
        loc = self.repo.index.get(blob_id) if maybe_known else None
        if loc is not None and (self._may_reuse is None or self._may_reuse(loc)):
            self.stats.blobs_deduplicated += 1
            return _REUSED
        self._claimed.add(blob_id)
        return _NEW

    def _settle(self, fate: int, blob_id: bytes, data: bytes | memoryview, blob_type: int,
                base: bytes | None, hint: str | None) -> None:
        """Outside the lock: note a reused blob, or encode, seal and pack a new one."""
        if fate == _REUSED and self._on_reuse is not None:
            self._on_reuse(blob_id)
        if fate != _NEW:
            return
        repo = self.repo
        base_plain = None
        if base is not None and base != blob_id:
            try:
                base_plain = repo.load_blob(base)
            except DeltavaultError:
                base_plain = None  # an unreadable base only costs the delta
        enc = choose(data, base_plain, hint, self._policy, level=self._level)
        base_id = base if (enc.base_used and base_plain is not None) else None
        if base_id is not None and self._on_reuse is not None:
            self._on_reuse(base_id)  # the snapshot needs the base's pack too
        envelope = repo.crypto.seal_blob(blob_id, enc.payload)
        self._append(blob_type, int(enc.codec_id), blob_id, len(data), envelope, base_id)

    def _append(self, blob_type: int, codec: int, blob_id: bytes, raw_length: int,
                envelope: bytes, base_id: bytes | None) -> None:
        """Add a sealed blob to the open pack; hand the pack on when it is full."""
        full: PackBuilder | None = None
        with self._lock:
            self._builder.add(type=blob_type, codec=codec, blob_id=blob_id,
                              raw_length=raw_length, envelope=envelope, base=base_id)
            s = self.stats
            s.blobs_added += 1
            s.bytes_plain_added += raw_length
            s.bytes_stored_added += len(envelope)
            s.delta_blobs += base_id is not None
            if self._builder.size >= self.repo.config.pack_size:
                full, self._builder = self._builder, PackBuilder(spool=True)
        if full is not None:
            self._queue_pack(full)

    def store_sealed(self, blobs: Sequence[Sealed], blob_type: int) -> list[bytes]:
        """:meth:`store_many` for blobs already encoded and sealed (sealer.py).

        Deduplication is decided here, as for any other blob: a sealed blob
        the repository or this backup already has is dropped.
        """
        ids = [b[0] for b in blobs]
        with self._lock:
            maybe = self.repo.index.maybe_known(ids)
            fates = [self._claim(b, m) for b, m in zip(ids, maybe, strict=True)]
        for fate, (blob_id, codec, raw_length, envelope) in zip(fates, blobs, strict=True):
            if fate == _REUSED and self._on_reuse is not None:
                self._on_reuse(blob_id)
            elif fate == _NEW:
                self._append(blob_type, codec, blob_id, raw_length, envelope, None)
        return ids

    def save_now(self, data: bytes, blob_type: int) -> bytes:
        """Store a blob from the calling thread and return its id."""
        self.raise_error()
        return self.store(data, blob_type)

    # --- packs -------------------------------------------------------------------

    def _queue_pack(self, builder: PackBuilder) -> None:
        # never block forever on an uploader that died, nor hand it more work
        while not self._pack_slots.acquire(timeout=0.5):
            self.raise_error()
        if self._error is not None:
            self._pack_slots.release()
            self.raise_error()
        self._uploads.put(builder)

    def _upload_loop(self) -> None:
        while True:
            builder = self._uploads.get()
            if builder is None:
                return
            try:
                if self._error is None:  # else drain, so producers never block
                    self._write_pack(builder)
                else:
                    builder.discard()
            except BaseException as exc:
                self.fail(exc)
            finally:
                self._pack_slots.release()

    def _write_pack(self, builder: PackBuilder) -> None:
        repo = self.repo
        pack_id, fh, size, entries = builder.finish_spooled(repo.crypto)
        with fh:
            # content-addressed (same bytes if already there); a local repository
            # copies it file to file, other stores read it into memory once
            repo.objects.write_pack_file(pack_id, fh, size)
        repo.index.add(pack_id, entries)
        records = entry_records(entries)
        with self._lock:
            # now in the index: lookups find them there, the claim set shrinks
            self._claimed.difference_update(e.id for e in entries)
            s = self.stats
            s.packs_written += 1
            s.bytes_packed += size
            s.written_packs[pack_id] = records
            s.pack_ids.append(pack_id)
            self._unindexed_bytes += size
            due = (len(s.written_packs) >= self._index_packs
                   or self._unindexed_bytes >= self._index_bytes)
            batch = dict(s.written_packs) if due else None
            if due:
                s.written_packs.clear()
                self._unindexed_bytes = 0
        if batch is not None:
            # a checkpoint: packs → index, so a killed backup's packs are reused
            repo.save_index(IndexFile.from_packs(batch))
            with self._lock:
                self.stats.index_files_written += 1

    def flush(self) -> IndexFile | None:
        """Finish queued work, write the last pack; the index of packs not yet indexed."""
        for _ in self._workers:
            self._tasks.put(None)
        for t in self._workers:
            t.join()
        with self._lock:
            last, self._builder = self._builder, PackBuilder()  # nothing more comes
        if len(last) and self._error is None:
            self._queue_pack(last)
        self._uploads.put(None)
        self._uploader.join()
        self._closed = True
        self.raise_error()
        if not self.stats.written_packs:
            return None
        return IndexFile.from_packs(self.stats.written_packs)

    def abort(self) -> None:
        """Stop without writing more (on error or interrupt)."""
        self.fail(self._error or DeltavaultError("aborted"))
        for _ in self._workers:
            self._tasks.put(None)
        if not self._closed:
            self._closed = True
            self._uploads.put(None)
