"""Copy bytes between two open files without passing them through Python.

A reflink (``FICLONE``: the new file shares the old one's blocks until
either is written, as on Btrfs, XFS and bcachefs) costs nothing whatever the
size; elsewhere ``copy_file_range`` copies inside the kernel, and a plain
read/write loop is the last resort (another file system under the source).
"""

from __future__ import annotations

import errno
import fcntl
import os

FICLONE = 0x40049409
_NO_REFLINK = frozenset({errno.EOPNOTSUPP, errno.EXDEV, errno.EINVAL, errno.ENOTTY,
                         errno.ENOSYS, errno.EPERM, errno.EBADF})
_NO_COPY_RANGE = frozenset({errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL,
                            errno.EBADF, errno.EPERM})
#: devices where FICLONE failed once; asking again would fail the same way
_no_reflink_on: set[int] = set()
_CHUNK = 1 << 20


def clone_file(src: int, dst: int, size: int) -> int:
    """Make ``dst`` a copy of the first ``size`` bytes of ``src``; returns bytes copied."""
    if size <= 0:
        return 0
    dev = os.fstat(dst).st_dev
    if dev not in _no_reflink_on:
        try:
            fcntl.ioctl(dst, FICLONE, src)
        except OSError as exc:
            if exc.errno not in _NO_REFLINK:
                raise
            _no_reflink_on.add(dev)
        else:
            return os.fstat(dst).st_size
    return copy_range(src, dst, 0, size)


def copy_range(src: int, dst: int, offset: int, length: int) -> int:
    """Copy ``length`` bytes at ``offset`` from ``src`` to the same offset of ``dst``."""
    done = 0
    while done < length:
        try:
            n = os.copy_file_range(src, dst, length - done, offset + done, offset + done)
        except OSError as exc:
            if exc.errno not in _NO_COPY_RANGE:
                raise
            return done + _copy_loop(src, dst, offset + done, length - done)
        if n == 0:
            break  # the source is shorter than it was
        done += n
    return done


def _copy_loop(src: int, dst: int, offset: int, length: int) -> int:
    done = 0
    while done < length:
        data = os.pread(src, min(_CHUNK, length - done), offset + done)
        if not data:
            break
        os.pwrite(dst, data, offset + done)
        done += len(data)
    return done
