"""Read a small file whole: one open, one read, one close.

Shared by the backup's in-process small-file path (files.py) and its sealer
process (sealer.py), which must read a file exactly alike.
"""

from __future__ import annotations

import os

#: files up to this size are read whole (one task for many, see files.py)
SMALL_FILE = 1024 * 1024

OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def read_whole(path: str, dir_fd: int | None, size: int) -> bytes:
    """A small file's bytes with one open, one read and one close.

    The read asks for one byte more than the walk's ``lstat`` saw: a shorter
    read is the end of a regular file, a full one means it grew, and the rest
    is read until the end. (A buffer of the stat's size, not :data:`SMALL_FILE`,
    so a 2 KiB file does not allocate and shrink 1 MiB.) ``O_NOFOLLOW``: a file
    replaced by a symbolic link since the walk is not followed.
    """
    fd = os.open(path, OPEN_FLAGS, dir_fd=dir_fd)
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
