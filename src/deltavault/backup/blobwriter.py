"""Deduplicate, encode, encrypt and pack blobs on worker threads.

The backup pipeline hands each chunk to :meth:`BlobWriter.submit`; a pool of
threads hashes it (BLAKE3), skips it if the repository already has it,
compresses it (zstd) and encrypts it (AES-GCM) — all native code that
releases the GIL — and appends it to the open pack. Full packs go to an
uploader thread through a bounded queue. A semaphore bounds the chunks in
flight, so memory stays bounded whatever the input size.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from deltavault.codec.policy import Policy, choose
from deltavault.errors import DeltavaultError
from deltavault.repo.index import BlobLocation, IndexFile
from deltavault.repo.packs import PackBuilder, PackEntry
from deltavault.repo.repository import Repository

#: may an existing stored blob be shared by this snapshot? (delta depth rules)
ReusePolicy = Callable[[BlobLocation], bool]


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
    written_packs: dict[str, list[PackEntry]] = field(default_factory=dict)


class BlobWriter:
    """Thread-safe blob sink for one backup session."""

    def __init__(self, repo: Repository, *, workers: int = 2, max_inflight: int | None = None,
                 codec_policy: Policy = "auto", may_reuse: ReusePolicy | None = None) -> None:
        self.repo = repo
        self.stats = WriteStats()
        self._policy: Policy = codec_policy
        self._may_reuse = may_reuse
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dv-blob")
        self._slots = threading.BoundedSemaphore(max_inflight or workers + 1)
        self._lock = threading.Lock()
        self._claimed: set[bytes] = set()
        self._builder = PackBuilder()
        self._uploads: queue.Queue[PackBuilder | None] = queue.Queue(maxsize=1)
        self._upload_error: BaseException | None = None
        self._uploader = threading.Thread(target=self._upload_loop, name="dv-upload",
                                          daemon=True)
        self._uploader.start()
        self._closed = False

    # --- submission ------------------------------------------------------------

    def submit(self, data: bytes | memoryview, blob_type: int, base: bytes | None = None,
               hint: str | None = None) -> Future[bytes]:
        """Queue a blob; the future yields its id. Blocks when too many are in flight.

        ``base`` names a stored blob this one may be encoded against; ``hint``
        is the element type from the chunker (for the float codecs).
        """
        self._raise_upload_error()
        self._slots.acquire()
        try:
            fut = self._pool.submit(self._process, data, blob_type, base, hint)
        except BaseException:
            self._slots.release()
            raise
        fut.add_done_callback(lambda _f: self._slots.release())
        return fut

    def save_now(self, data: bytes, blob_type: int) -> bytes:
        """Store a blob and return its id (used for trees)."""
        return self.submit(data, blob_type).result()

    def _reusable(self, blob_id: bytes) -> bool:
        loc = self.repo.index.get(blob_id)
        return loc is not None and (self._may_reuse is None or self._may_reuse(loc))

    def _process(self, data: bytes | memoryview, blob_type: int, base: bytes | None,
                 hint: str | None) -> bytes:
        repo = self.repo
        blob_id = repo.crypto.blob_id(data)
        with self._lock:
            if blob_id in self._claimed or self._reusable(blob_id):
                self.stats.blobs_deduplicated += 1
                return blob_id
            self._claimed.add(blob_id)
        base_plain = None
        if base is not None and base != blob_id:
            try:
                base_plain = repo.load_blob(base)
            except DeltavaultError:
                base_plain = None  # an unreadable base only costs the delta
        enc = choose(data, base_plain, hint, self._policy, level=repo.config.compression_level)
        codec, payload = int(enc.codec_id), enc.payload
        base_id = base if (enc.base_used and base_plain is not None) else None
        envelope = repo.crypto.seal_blob(blob_id, payload)
        full: PackBuilder | None = None
        with self._lock:
            self._builder.add(type=blob_type, codec=codec, blob_id=blob_id,
                              raw_length=len(data), envelope=envelope, base=base_id)
            self.stats.blobs_added += 1
            self.stats.bytes_plain_added += len(data)
            self.stats.bytes_stored_added += len(envelope)
            self.stats.delta_blobs += base_id is not None
            if self._builder.size >= repo.config.pack_size:
                full, self._builder = self._builder, PackBuilder()
        if full is not None:
            self._uploads.put(full)
        return blob_id

    # --- packs -----------------------------------------------------------------

    def _upload_loop(self) -> None:
        while True:
            builder = self._uploads.get()
            if builder is None:
                return
            if self._upload_error is not None:
                continue  # drain so producers never block on a dead uploader
            try:
                self._write_pack(builder)
            except BaseException as exc:  # surfaced to the submitting thread
                self._upload_error = exc

    def _write_pack(self, builder: PackBuilder) -> None:
        pack_id, data, entries = builder.finish(self.repo.crypto)
        size = len(data)
        # content-addressed (same bytes if already there); the buffer itself: no 2nd copy
        self.repo.objects.write_pack(pack_id, data)
        del data
        self.repo.index.add(pack_id, entries)
        with self._lock:
            self.stats.packs_written += 1
            self.stats.bytes_packed += size
            self.stats.written_packs[pack_id] = entries

    def _raise_upload_error(self) -> None:
        if self._upload_error is not None:
            err = self._upload_error
            if isinstance(err, DeltavaultError):
                raise err
            raise DeltavaultError(f"writing a pack failed: {err}") from err

    def flush(self) -> IndexFile | None:
        """Wait for every blob, write the last pack; the index file of new packs."""
        self._pool.shutdown(wait=True)
        with self._lock:
            last, self._builder = self._builder, PackBuilder()
        if len(last):
            self._uploads.put(last)
        self._uploads.put(None)
        self._uploader.join()
        self._closed = True
        self._raise_upload_error()
        if not self.stats.written_packs:
            return None
        return IndexFile.from_packs(self.stats.written_packs)

    def abort(self) -> None:
        """Stop without writing more (on error or interrupt)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        if not self._closed:
            self._upload_error = self._upload_error or DeltavaultError("aborted")
            with contextlib.suppress(queue.Full):
                self._uploads.put_nowait(None)
