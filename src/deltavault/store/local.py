"""The embedded default backend: a directory on a local filesystem.

Writes go to ``<root>/tmp/`` first, are fsynced, then published with
``link()`` (``put``: fails if the key exists, so write-once is enforced by
the kernel) or ``rename()`` (``replace``: under an ``flock`` so that the
compare and the swap are one step for every process on this host). After
either, the parent directory is fsynced so the name survives a power cut.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from deltavault.errors import (
    BackendError,
    ObjectExists,
    ObjectNotFound,
    PermissionDenied,
    VersionConflict,
)
from deltavault.store.base import ByteRange, ObjectInfo, Store, check_key, file_blocks

_TMP = "tmp"
_CAS_LOCK = ".cas-lock"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _version(st: os.stat_result) -> str:
    # A replace always renames a new inode into place, so the inode number
    # alone would do; size and mtime guard against inode reuse.
    return f"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}"


def _info(key: str, st: os.stat_result) -> ObjectInfo:
    return ObjectInfo(key, st.st_size, _version(st),
                      datetime.fromtimestamp(st.st_mtime_ns / 1e9, UTC))


class LocalStore(Store):
    """Objects as files below ``root``; keys map to relative paths."""

    #: plain file calls by path: nothing a forked child could share wrongly
    fork_safe = True

    def __init__(self, root: str | os.PathLike[str], *, create: bool = False) -> None:
        self.root = Path(root).absolute()
        if create:
            self.root.mkdir(parents=True, exist_ok=True)
        (self.root / _TMP).mkdir(exist_ok=True) if self.root.is_dir() else None

    def location(self) -> str:
        return str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _write_temp(self, data: bytes | bytearray,
                    fill: Callable[[int], None] | None = None) -> Path:
        """A new temporary file holding ``data`` (or what ``fill`` writes to its fd), synced."""
        tmpdir = self.root / _TMP
        tmpdir.mkdir(parents=True, exist_ok=True)
        tmp = tmpdir / secrets.token_hex(16)
        try:
            with open(tmp, "wb") as fh:
                if fill is None:
                    fh.write(data)
                else:
                    fill(fh.fileno())
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise _translate(exc, "write", str(tmp)) from exc
        return tmp

    def get(self, key: str, byte_range: ByteRange | None = None) -> bytes:
        path = self._path(key)
        try:
            with open(path, "rb") as fh:
                if byte_range is None:
                    return fh.read()
                fh.seek(byte_range.start)
                return fh.read(-1 if byte_range.length is None else byte_range.length)
        except OSError as exc:
            raise _translate(exc, "read", key) from exc

    def get_versioned(self, key: str) -> tuple[bytes, str]:
        path = self._path(key)
        try:
            with open(path, "rb") as fh:
                st = os.fstat(fh.fileno())
                return fh.read(), _version(st)
        except OSError as exc:
            raise _translate(exc, "read", key) from exc

    def put(self, key: str, data: bytes | bytearray) -> None:
        self._path(key)  # a bad key fails before anything is written
        self._publish(key, self._write_temp(data))

    def put_file(self, key: str, fh: BinaryIO, size: int) -> None:
        """Copied file to file by the kernel: the object is never in this process's memory."""
        self._path(key)  # a bad key fails before anything is written
        self._publish(key, self._write_temp(b"", lambda fd: _copy_file(fh, fd, size)))

    def _publish(self, key: str, tmp: Path) -> None:
        """Link a written temporary file in as ``key`` (create-if-absent), then drop it."""
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.link(tmp, path)
        except FileExistsError as exc:
            raise ObjectExists(f"object {key} already exists") from exc
        except OSError as exc:
            raise _translate(exc, "write", key) from exc
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
        _fsync_dir(path.parent)

    def replace(self, key: str, data: bytes, expected_version: str | None) -> str:
        path = self._path(key)
        tmp = self._write_temp(data)
        try:
            with self._cas_lock():
                try:
                    current: str | None = _version(path.stat())
                except FileNotFoundError:
                    current = None
                if current != expected_version:
                    raise VersionConflict(
                        f"object {key} changed since it was read (expected {expected_version},"
                        f" found {current})"
                    )
                path.parent.mkdir(parents=True, exist_ok=True)
                os.rename(tmp, path)
                _fsync_dir(path.parent)
                return _version(path.stat())
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()

    @contextlib.contextmanager
    def _cas_lock(self) -> Iterator[None]:
        fd = os.open(self.root / _CAS_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def stat(self, key: str) -> ObjectInfo:
        try:
            st = self._path(key).stat()
        except OSError as exc:
            raise _translate(exc, "stat", key) from exc
        return _info(key, st)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        # Walk only the directory the prefix names, so listing data/ab does
        # not read the whole repository.
        head, _, _ = prefix.rpartition("/")
        start = self.root / head if head else self.root
        if not start.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(start):
            rel_dir = os.path.relpath(dirpath, self.root)
            if rel_dir == ".":
                dirnames[:] = [d for d in dirnames if d != _TMP]
                rel_dir = ""
            for name in filenames:
                key = f"{rel_dir}/{name}" if rel_dir else name
                if name == _CAS_LOCK or not key.startswith(prefix):
                    continue
                try:
                    st = os.stat(os.path.join(dirpath, name))
                except FileNotFoundError:
                    continue
                yield _info(key, st)

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except OSError as exc:
            raise _translate(exc, "delete", key) from exc


def _translate(exc: OSError, what: str, key: str) -> BackendError:
    """Map an OSError to the store error a caller can act on."""
    if exc.errno == errno.ENOENT or isinstance(exc, FileNotFoundError):
        return ObjectNotFound(f"object {key} not found")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return PermissionDenied(f"permission denied to {what} {key}: {exc.strerror}")
    if exc.errno == errno.ENOSPC:
        return BackendError(f"no space left on device to {what} {key}", hint="free disk space")
    if exc.errno in (errno.EISDIR, errno.ENOTDIR):
        return ObjectNotFound(f"object {key} not found ({exc.strerror})")
    return BackendError(f"cannot {what} {key}: {exc.strerror or exc}")


def _copy_file(src: BinaryIO, dst_fd: int, size: int) -> None:
    """Copy the first ``size`` bytes of ``src`` to ``dst_fd``; a shorter source is an error.

    ``copy_file_range`` keeps the bytes in the kernel; where it is refused
    (another file system on an old kernel, a platform without it) the rest
    goes through one megabyte buffer at a time.
    """
    src.flush()
    src_fd = src.fileno()
    for block in file_blocks(src_fd, _kernel_copy(src_fd, dst_fd, size), size):
        view = memoryview(block)
        while view:
            view = view[os.write(dst_fd, view):]


def _kernel_copy(src_fd: int, dst_fd: int, size: int) -> int:
    """Bytes ``copy_file_range`` copied before it was refused (usually all of them)."""
    done = 0
    while done < size and hasattr(os, "copy_file_range"):
        try:
            n = os.copy_file_range(src_fd, dst_fd, size - done, done)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                raise
            return done
        if not n:
            raise OSError(f"file ended at {done} of {size} bytes")
        done += n
    return done
