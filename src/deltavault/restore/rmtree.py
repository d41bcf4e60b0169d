"""Delete a directory tree of any depth without following symlinks.

``shutil.rmtree`` recurses once per level (a 10,000-level tree raises
``RecursionError`` on Python 3.11) and keeps a descriptor per level. This
walk is iterative and holds two descriptors: it climbs back with ``..`` and
checks that it arrived in the directory it left (device and inode), so a
directory moved during the removal stops it instead of sending it elsewhere.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

from deltavault.errors import DeltavaultError

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def remove_tree(path: str | os.PathLike[str]) -> None:
    """Remove ``path`` and everything below it (a missing path is fine)."""
    p = Path(os.path.abspath(path))
    top_parent = os.open(p.parent, _O_DIR)
    try:
        try:
            st = os.stat(p.name, dir_fd=top_parent, follow_symlinks=False)
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(st.st_mode):
            os.unlink(p.name, dir_fd=top_parent)
            return
        _remove_below(top_parent, p.name)
        os.rmdir(p.name, dir_fd=top_parent)
    finally:
        os.close(top_parent)


def _remove_below(top_parent: int, top_name: str) -> None:
    fd = _open_child(top_parent, top_name)
    # one level per entry: (identity of the directory, subdirectories still to empty)
    levels: list[tuple[tuple[int, int], list[str]]] = [(_ident(fd), _clear(fd))]
    try:
        while levels:
            _, subdirs = levels[-1]
            if subdirs:
                child = _open_child(fd, subdirs[-1])
                os.close(fd)
                fd = child
                levels.append((_ident(fd), _clear(fd)))
                continue
            levels.pop()
            if not levels:
                break
            up = os.open("..", _O_DIR, dir_fd=fd)
            os.close(fd)
            fd = up
            if _ident(fd) != levels[-1][0]:
                raise DeltavaultError("a directory was moved while it was being removed")
            name = levels[-1][1].pop()
            with contextlib.suppress(FileNotFoundError):
                os.rmdir(name, dir_fd=fd)
    finally:
        os.close(fd)


def _open_child(parent: int, name: str) -> int:
    return os.open(name, _O_DIR, dir_fd=parent)


def _ident(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def _clear(fd: int) -> list[str]:
    """Unlink every non-directory in ``fd``; return the subdirectories."""
    if stat.S_IMODE(os.fstat(fd).st_mode) & 0o700 != 0o700:
        with contextlib.suppress(OSError):
            os.fchmod(fd, 0o700)  # a read-only directory (of a snapshot, say)
    subdirs = []
    for name in os.listdir(fd):
        try:
            os.unlink(name, dir_fd=fd)
        except IsADirectoryError:
            subdirs.append(name)
        except PermissionError as exc:
            if exc.errno != errno.EPERM:  # Linux says EISDIR, some systems EPERM
                raise
            subdirs.append(name)
        except FileNotFoundError:
            pass
    return subdirs
