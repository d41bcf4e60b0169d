"""Take what the live tree already holds instead of reading it from the repository.

After a day of change most of a live tree still equals the known-good
snapshot, so a rollback builds its side tree from it (issue 14):

* a live file whose size, mtime, ctime and inode are the snapshot's (the
  same test ``backup`` uses to skip unchanged files) is cloned whole —
  reflinked where the file system can, copied in the kernel otherwise —
  and checked again afterwards, so a file written meanwhile is not trusted;
* with ``link`` (``rollback --reuse link``), such a file is hard-linked into
  the side tree instead: nothing is copied, which is what makes a rollback
  on a file system without reflinks (ext4) take seconds instead of the time
  of writing the whole tree again. The new tree and the replaced one then
  share those inodes (until the replaced tree is deleted), so it is opt-in;
* any other live regular file at the same path is read at the snapshot's
  blob offsets and each piece is hashed with the repository's keyed BLAKE3:
  a piece whose hash is the blob id *is* that blob, verified like one read
  from a pack, and is written from memory (an appended log, a database with
  a few changed pages: only the changed pieces are fetched).

Whatever does not match is returned to the caller to fetch from the packs.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading

from deltavault.repo.crypto import Crypto
from deltavault.repo.index import BlobLocation
from deltavault.restore.clone import clone_file
from deltavault.restore.files import FileJob, FileWriter
from deltavault.restore.fsdir import Dir

Piece = tuple[bytes, int, BlobLocation]  # blob id, offset in the file, where it is stored
_O_SRC = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
REUSE_MODES = ("metadata", "link", "content", "none")


class Reuse:
    """Counts what was taken from the live tree; safe to call from many threads."""

    def __init__(self, crypto: Crypto, writer: FileWriter, mode: str = "metadata") -> None:
        if mode not in REUSE_MODES:
            raise ValueError(f"reuse mode {mode!r}")
        self.crypto = crypto
        self.writer = writer
        self.trust_metadata = mode in ("metadata", "link")
        self.link = mode == "link"
        self.files = 0
        self.bytes = 0
        self._lock = threading.Lock()

    def take(self, job: FileJob, live: Dir, first: int, pieces: list[Piece]) -> list[Piece]:
        """Write what the live file can give; returns the pieces still needed."""
        try:
            src = os.open(job.name, _O_SRC, dir_fd=live.fd_pinned())
        except OSError:
            return pieces
        try:
            st = os.fstat(src)
            if not stat.S_ISREG(st.st_mode):
                return pieces
            node = job.node
            whole = first == 0 and len(pieces) == len(node.content) == job.left
            if (self.trust_metadata and whole and st.st_size == node.size
                    and st.st_mtime_ns == node.mtime_ns and st.st_ctime_ns == node.ctime_ns
                    and st.st_ino == node.inode):
                if self.link and self._link(job, live, st):
                    return []
                try:
                    if self._clone(job, src, st):
                        return []
                except OSError:
                    os.ftruncate(self.writer.open_now(job), 0)
            return self._by_content(job, src, st.st_size, pieces)
        finally:
            os.close(src)

    def _link(self, job: FileJob, live: Dir, checked: os.stat_result) -> bool:
        """Hard-link the live file into the side tree, if the name still is that inode.

        The inode's metadata is the snapshot's (its ctime is, and any chmod,
        chown or write moves the ctime), so nothing is applied to it: that
        would touch the live file. False (nothing left behind) when the file
        system refuses links or the name was replaced since it was checked.
        """
        dst = job.dir.fd_pinned()
        try:
            os.link(job.name, job.name, src_dir_fd=live.fd_pinned(), dst_dir_fd=dst,
                    follow_symlinks=False)
        except OSError:
            return False
        try:
            now = os.stat(job.name, dir_fd=dst, follow_symlinks=False)
        except OSError:
            now = None
        if now is None or (now.st_ino, now.st_dev, now.st_size, now.st_mtime_ns) != (
                checked.st_ino, checked.st_dev, checked.st_size, checked.st_mtime_ns):
            with contextlib.suppress(OSError):
                os.unlink(job.name, dir_fd=dst)
            return False
        self._count(checked.st_size, whole=True)
        self.writer.adopt(job)
        return True

    def _clone(self, job: FileJob, src: int, before: os.stat_result) -> bool:
        dst = self.writer.open_now(job)
        copied = clone_file(src, dst, before.st_size)
        after = os.fstat(src)
        if copied != before.st_size or (after.st_size, after.st_mtime_ns, after.st_ctime_ns) != (
                before.st_size, before.st_mtime_ns, before.st_ctime_ns):
            os.ftruncate(dst, 0)  # written while we copied: check it piece by piece instead
            return False
        self._count(before.st_size, whole=True)
        self.writer.skip(job, len(job.node.content))
        return True

    def _by_content(self, job: FileJob, src: int, size: int,
                    pieces: list[Piece]) -> list[Piece]:
        rest: list[Piece] = []
        sparse = job.node.sparse
        matched = 0
        for piece in pieces:
            blob, offset, loc = piece
            n = loc.raw_length
            if offset + n > size or job.error is not None:
                rest.append(piece)
                continue
            try:
                data = os.pread(src, n, offset)
            except OSError:
                data = b""
            if len(data) != n or self.crypto.blob_id(data) != blob:
                rest.append(piece)
                continue
            matched += n
            if sparse and data.count(0) == n:
                self.writer.skip(job)
            else:
                self.writer.write(job, data, offset)
        if matched:
            self._count(matched, whole=not rest and len(pieces) == len(job.node.content))
        return rest

    def _count(self, nbytes: int, *, whole: bool) -> None:
        with self._lock:
            self.bytes += nbytes
            self.files += int(whole)
