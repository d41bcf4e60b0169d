"""One restored file from first write to rename: opened once, written by offset, then swapped in.

A file that does not exist yet is created under its own name; an existing
one is never opened for writing: its replacement is written under a
temporary name beside it and renamed over it only when every blob was
verified and written (issue 12). If a blob is damaged or a write fails, the
new copy is removed and the old file stays exactly as it was.

Blobs of one file may arrive from several packs on several threads, so the
first write opens the file and the last one closes it; the counter of
outstanding writes is the only shared state (a lock guards it, except for
single-blob files, which one thread writes from start to end).
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from collections.abc import Callable

from deltavault.repo.tree import Node
from deltavault.restore.fsdir import Dir, apply_meta, create_file, rename_into
from deltavault.restore.lane import Lane

#: how many per-file messages a result keeps (the count is always exact)
MAX_MESSAGES = 100


class FileJob:
    """A file of the snapshot being restored below a directory."""

    __slots__ = ("dir", "error", "fd", "finished", "left", "name", "node", "offset", "tmp")

    def __init__(self, d: Dir, name: bytes, node: Node) -> None:
        self.dir = d
        self.name = name
        self.node = node
        self.fd: int | None = None
        self.tmp: bytes | None = None
        #: blob writes still outstanding (every content entry is one)
        self.left = len(node.content)
        #: where the next resolved blob goes (set while planning, in order)
        self.offset = 0
        self.error: str | None = None
        self.finished = False

    def path(self) -> str:
        """Path below the target, for messages."""
        return self.dir.child_path(self.name)


class FileWriter:
    """Writes blobs into files and finishes them; collects what went wrong."""

    def __init__(self, owners: bool, on_bytes: Callable[[int], None] | None = None) -> None:
        self.owners = owners
        self.lock = threading.Lock()
        self.on_bytes = on_bytes
        self.files = 0
        self.bytes = 0
        self.damaged = 0
        self.failed = 0
        self.messages: list[str] = []

    # --- the data path (worker threads) ------------------------------------------------

    def write(self, job: FileJob, data: bytes | memoryview, offset: int,
              lane: Lane | None = None) -> None:
        """Write one blob's plaintext at ``offset``; the last write finishes the file.

        A caller holding ``lane`` leaves it while a one-blob file is created
        (never while holding :attr:`lock`: another lane holder may wait for it).
        """
        if job.left == 1 and job.fd is None:
            # the only write left (a one-blob file): no other thread touches the job
            if job.error is None:
                try:
                    d = job.dir.fd_pinned()
                    job.fd, job.tmp = (create_file(d, job.name) if lane is None
                                       else lane.outside(create_file, d, job.name))
                    os.pwrite(job.fd, data, offset)
                except OSError as exc:
                    self._set_error(job, f"cannot write: {exc.strerror}", damaged=False)
            job.left = 0
            self._close(job)
            return
        with self.lock:
            if job.fd is None and job.error is None:
                try:
                    self._open(job)
                except OSError as exc:
                    self._set_error_locked(job, f"cannot create: {exc.strerror}", False)
            fd = job.fd
        if fd is not None and job.error is None:
            try:
                os.pwrite(fd, data, offset)
            except OSError as exc:
                self.fail(job, f"cannot write: {exc.strerror}", damaged=False)
        self.skip(job)

    def skip(self, job: FileJob, count: int = 1) -> None:
        """``count`` writes that need no bytes (sparse zeros, or already in place)."""
        with self.lock:
            job.left -= count
            last = job.left == 0
        if last:
            self._close(job)

    def fail(self, job: FileJob, reason: str, *, damaged: bool) -> None:
        """Mark ``job`` as not restorable; its old file (if any) is kept."""
        with self.lock:
            self._set_error_locked(job, reason, damaged)

    def open_now(self, job: FileJob) -> int:
        """The job's descriptor, opening it if this is its first write (reuse path)."""
        with self.lock:
            if job.fd is None:
                self._open(job)
            assert job.fd is not None
            return job.fd

    # --- internals ----------------------------------------------------------------------

    def _open(self, job: FileJob) -> None:
        job.fd, job.tmp = create_file(job.dir.fd_pinned(), job.name)

    def _set_error(self, job: FileJob, reason: str, damaged: bool) -> None:
        with self.lock:
            self._set_error_locked(job, reason, damaged)

    def _set_error_locked(self, job: FileJob, reason: str, damaged: bool) -> None:
        if job.error is not None:
            return
        job.error = reason
        self._count_locked(job.path(), reason, damaged)

    def _count_locked(self, path: str, reason: str, damaged: bool) -> None:
        if damaged:
            self.damaged += 1
        else:
            self.failed += 1
        if len(self.messages) < MAX_MESSAGES:
            self.messages.append(f"{path}: {reason}")

    def report(self, path: str, reason: str) -> None:
        """An entry other than a file's data could not be made (link, node, metadata)."""
        with self.lock:
            self._count_locked(path, reason, False)

    def _close(self, job: FileJob) -> None:
        """All writes are in: set metadata and swap the file in, or throw it away."""
        dir_fd = job.dir.fd_pinned()
        node = job.node
        if job.error is None:
            try:
                if job.fd is None:  # nothing to write (an empty or all-sparse file)
                    self._open(job)
                fd = job.fd
                assert fd is not None
                if node.sparse:
                    os.ftruncate(fd, node.size)
                apply_meta(fd, node.mode, node.uid, node.gid, node.mtime_ns, self.owners)
                job.fd = None
                os.close(fd)
                if job.tmp is not None:
                    rename_into(dir_fd, job.tmp, job.name)
                    job.tmp = None
            except OSError as exc:
                in_the_way = exc.errno in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST)
                reason = "a directory is in the way" if in_the_way else exc.strerror or str(exc)
                self._set_error(job, f"cannot put in place: {reason}", damaged=False)
        if job.error is not None:
            self._discard(job, dir_fd)
        job.finished = True
        if job.error is None:
            self._restored(node.size)

    def adopt(self, job: FileJob) -> None:
        """The file is in place already, data and metadata (a hard link of an identical
        file, rollback's ``--reuse link``): count it restored, write nothing."""
        with self.lock:
            job.left = 0
        job.finished = True
        self._restored(job.node.size)

    def _restored(self, size: int) -> None:
        with self.lock:
            self.files += 1
            self.bytes += size
        if self.on_bytes is not None:
            self.on_bytes(size)

    def _discard(self, job: FileJob, dir_fd: int) -> None:
        if job.fd is not None:
            os.close(job.fd)
            job.fd = None
            # the new copy goes; a file created under the final name was ours alone
            name = job.tmp if job.tmp is not None else job.name
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=dir_fd)
            job.tmp = None

    def abandon(self, job: FileJob) -> None:
        """Throw away a half-written file (the restore is stopping)."""
        if job.fd is not None and not job.finished:
            self._set_error(job, "restore stopped", damaged=False)
            self._discard(job, job.dir.fd_pinned())
