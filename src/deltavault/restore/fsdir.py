"""Directories of a restore target, reached by descriptor and never by path.

Why: a restore writes below a directory that other processes may change
while it runs. Resolving ``target/a/b/f`` by name lets a concurrent rename of
``a`` to a symlink redirect the write anywhere. Here every directory is
reached from its parent's descriptor with ``O_NOFOLLOW | O_DIRECTORY`` and,
when it has to be opened again, checked against the device and inode it had
when we made or first opened it, so a swap is refused instead of followed.
Files, links and nodes are made relative to their directory's descriptor
with ``O_NOFOLLOW | O_EXCL``. No path reaches the kernel, so trees deeper than
``PATH_MAX`` work.

Descriptors are bounded: at most ``max_open`` directories stay open (least
recently used closed first), except those pinned by work in flight. A closed
directory is reopened by walking down from its nearest open ancestor, one
checked component at a time.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import secrets
import stat
import threading
from collections import OrderedDict
from collections.abc import Iterator

from deltavault.errors import DeltavaultError, UnsafePath

O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
O_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
#: prefix of the temporary names a restore writes beside the final ones
TMP_PREFIX = b".deltavault-tmp-"
_RENAME_EXCHANGE = 2


def temp_name() -> bytes:
    """A fresh hidden name for a file or directory being built."""
    return TMP_PREFIX + secrets.token_hex(8).encode()


class Dir:
    """One directory below (or at) the root: its parent, name and identity."""

    __slots__ = ("_fd", "_pins", "ident", "name", "new_owner", "parent", "table")

    def __init__(self, table: DirTable, parent: Dir | None, name: bytes, fd: int,
                 st: os.stat_result) -> None:
        self.table = table
        self.parent = parent
        self.name = name
        self.ident = (st.st_dev, st.st_ino)
        #: owner and group a file created here gets, or None where a default ACL may
        #: also decide its permissions (see :func:`creation_owner`)
        self.new_owner = creation_owner(fd, st)
        self._fd: int | None = fd
        self._pins = 0

    def pin(self) -> int:
        """This directory's descriptor, kept open until :meth:`unpin`."""
        with self.table.lock:
            fd = self.table.open_locked(self)
            self._pins += 1
            return fd

    def unpin(self) -> None:
        """Let the table close the descriptor again when it needs room."""
        with self.table.lock:
            self._pins -= 1
            self.table.trim_locked()

    def fd_pinned(self) -> int:
        """The descriptor of a directory the caller has pinned (no locking)."""
        fd = self._fd
        if fd is None:
            raise DeltavaultError(f"restore: directory {self.path()} is not open")
        return fd

    def parts(self) -> list[bytes]:
        """The names from the root down to this directory (empty for the root)."""
        names: list[bytes] = []
        d: Dir | None = self
        while d is not None and d.parent is not None:
            names.append(d.name)
            d = d.parent
        names.reverse()
        return names

    def path(self) -> str:
        """The path relative to the root, for messages (``.`` for the root)."""
        return os.fsdecode(b"/".join(self.parts())) or "."

    def child_path(self, name: bytes) -> str:
        """The path of an entry of this directory, for messages."""
        base = self.path()
        return os.fsdecode(name) if base == "." else f"{base}/{os.fsdecode(name)}"


class DirTable:
    """The open descriptors of one tree's directories, bounded in number."""

    def __init__(self, max_open: int = 256) -> None:
        self.lock = threading.Lock()
        self._open: OrderedDict[Dir, None] = OrderedDict()
        self._max = max(4, max_open)

    def root(self, path: str | os.PathLike[str]) -> Dir:
        """Open ``path`` (which must be a directory and not a symlink) as the root."""
        try:
            fd = os.open(path, O_DIR)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.islink(path):
                raise UnsafePath(f"restore target {os.fspath(path)} is a symlink") from exc
            raise DeltavaultError(f"cannot open {os.fspath(path)}: {exc.strerror}") from exc
        st = os.fstat(fd)
        d = Dir(self, None, os.fsencode(path), fd, st)
        with self.lock:
            d._pins = 1  # the root stays open for the table's lifetime
            self._open[d] = None
        return d

    def adopt(self, parent: Dir, name: bytes, fd: int) -> Dir:
        """A new :class:`Dir` for a directory just opened below ``parent``."""
        st = os.fstat(fd)
        d = Dir(self, parent, name, fd, st)
        with self.lock:
            self._open[d] = None
            self.trim_locked(keep=d)
        return d

    def open_locked(self, d: Dir) -> int:
        """The descriptor of ``d``, reopening it (and closed ancestors) if needed."""
        if d._fd is not None:
            self._open.move_to_end(d)
            return d._fd
        for child in reversed(self._open):
            # Finishing directories deepest first: the child just finished is open, and
            # ".." (checked against the identity we recorded) is one step, not a walk down.
            if child.parent is d and child._fd is not None:
                d._fd = _reopen(child._fd, d, b"..")
                self._open[d] = None
                self.trim_locked(keep=d)
                return d._fd
        chain: list[Dir] = []
        cur: Dir | None = d
        while cur is not None and cur._fd is None:
            chain.append(cur)
            cur = cur.parent
        if cur is None:
            raise DeltavaultError("restore: the root directory was closed")
        for step in reversed(chain):
            assert step.parent is not None and step.parent._fd is not None
            step._fd = _reopen(step.parent._fd, step)
            self._open[step] = None
        self.trim_locked(keep=d)
        assert d._fd is not None
        return d._fd

    def trim_locked(self, keep: Dir | None = None) -> None:
        """Close the least recently used unpinned descriptors beyond the bound."""
        excess = len(self._open) - self._max
        if excess <= 0:
            return
        for d in list(self._open):
            if excess <= 0:
                break
            if d._pins == 0 and d._fd is not None and d is not keep:
                os.close(d._fd)
                d._fd = None
                del self._open[d]
                excess -= 1

    def close(self) -> None:
        """Close every descriptor (the end of the restore)."""
        with self.lock:
            for d in self._open:
                if d._fd is not None:
                    os.close(d._fd)
                    d._fd = None
            self._open.clear()


def _reopen(from_fd: int, d: Dir, name: bytes | None = None) -> int:
    try:
        fd = os.open(d.name if name is None else name, O_DIR, dir_fd=from_fd)
    except OSError as exc:
        raise UnsafePath(f"{d.path()}: directory was replaced during the restore "
                         f"({exc.strerror})") from exc
    st = os.fstat(fd)
    if (st.st_dev, st.st_ino) != d.ident:
        os.close(fd)
        raise UnsafePath(f"{d.path()}: directory was replaced during the restore")
    return fd


def open_dir(parent: Dir, name: bytes) -> Dir | None:
    """An existing directory ``name`` below ``parent``, or None (absent, a link, a file)."""
    pfd = parent.pin()
    try:
        try:
            fd = os.open(name, O_DIR, dir_fd=pfd)
        except OSError:
            return None
        return parent.table.adopt(parent, name, fd)
    finally:
        parent.unpin()


def make_dir(parent: Dir, name: bytes) -> tuple[Dir, bytes | None, bool]:
    """The directory ``name`` below ``parent``, made if missing; whether it existed.

    A symlink or special file in the way is removed (it holds no data, and a
    symlink must never be followed). A regular file in the way is kept until
    the directory is complete: the directory is built under a temporary name
    and the second element of the result is the name it must replace
    (:func:`swap_in`), so a restore that fails leaves the file as it was.
    """
    pfd = parent.pin()
    try:
        for _attempt in range(3):
            existed = False
            try:
                os.mkdir(name, 0o700, dir_fd=pfd)
            except FileExistsError:
                existed = True
            except FileNotFoundError:
                # the directory we hold was removed (or replaced by a rename over it):
                # nothing below it may be written anywhere else
                raise UnsafePath(f"{parent.path()}: was replaced or removed during "
                                 "the restore") from None
            try:
                fd = os.open(name, O_DIR, dir_fd=pfd)
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT):
                    raise
                try:
                    st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
                except FileNotFoundError:
                    continue  # removed under us: make it again
                if stat.S_ISREG(st.st_mode):
                    tmp = temp_name()
                    os.mkdir(tmp, 0o700, dir_fd=pfd)
                    fd = os.open(tmp, O_DIR, dir_fd=pfd)
                    return parent.table.adopt(parent, tmp, fd), name, False
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name, dir_fd=pfd)
                continue
            st = os.fstat(fd)
            if stat.S_IMODE(st.st_mode) & 0o700 != 0o700 and os.geteuid() != 0:
                # an existing read-only directory: we must be able to write into it;
                # its snapshot mode is applied when it is complete
                os.fchmod(fd, stat.S_IMODE(st.st_mode) | 0o700)
            return parent.table.adopt(parent, name, fd), None, existed
        raise UnsafePath(f"{parent.child_path(name)}: keeps changing during the restore")
    finally:
        parent.unpin()


def swap_in(d: Dir, final: bytes) -> None:
    """Put the directory built under a temporary name in place of the file ``final``."""
    assert d.parent is not None
    pfd = d.parent.pin()
    try:
        exchange_at(pfd, d.name, pfd, final)
        os.unlink(d.name, dir_fd=pfd)  # the replaced file, now under the temporary name
        d.name = final
    finally:
        d.parent.unpin()


def remove_leftovers(d: Dir) -> int:
    """Delete temporary files an interrupted restore left in ``d``; returns how many."""
    fd = d.pin()
    removed = 0
    try:
        with os.scandir(fd) as it:
            names = [os.fsencode(e.name) for e in it if e.name.startswith(
                os.fsdecode(TMP_PREFIX)) and not e.is_dir(follow_symlinks=False)]
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=fd)
                removed += 1
    finally:
        d.unpin()
    return removed


def create_file(dir_fd: int, name: bytes, mode: int = 0o600) -> tuple[int, bytes | None]:
    """Open a new file for ``name``: the name itself if free, else a temporary name.

    Returns the descriptor and the temporary name (None when writing in place
    of nothing). Existing data is never opened for writing: it is replaced by
    :func:`rename_into` once the new content is complete and verified. ``mode``
    (permission bits, filtered by the umask) holds for the file from its
    creation; the descriptor is writable whatever it says.
    """
    try:
        return os.open(name, O_NEW, mode, dir_fd=dir_fd), None
    except FileExistsError:
        pass
    while True:
        tmp = temp_name()
        try:
            return os.open(tmp, O_NEW, mode, dir_fd=dir_fd), tmp
        except FileExistsError:
            continue


def creation_owner(fd: int, st: os.stat_result) -> tuple[int, int] | None:
    """The owner and group of a file this process creates in the directory ``fd``
    (``st``: its status), or None if a default ACL there may set its permissions.

    Why: a restored file whose owner and permission bits are already what the
    kernel gives it at creation needs no ``fchown`` and no ``fchmod`` (two of
    the six calls per small file). A new file is owned by the effective user
    and by the directory's group if the directory is set-group-ID, else by
    the effective group; its permission bits are the requested ones less the
    umask, unless the directory carries a default ACL, which replaces the
    umask. Anything but a clear "no ACL" answer counts as one.
    """
    try:
        os.getxattr(fd, "system.posix_acl_default")
    except OSError as exc:
        if exc.errno not in (errno.ENODATA, errno.EOPNOTSUPP):
            return None
    else:
        return None
    gid = st.st_gid if st.st_mode & stat.S_ISGID else os.getegid()
    return os.geteuid(), gid


def process_umask() -> int | None:
    """This process's umask, read without changing it (Linux ``/proc``); None if unknown.

    ``os.umask`` can only read the mask by setting it, and a file another
    thread creates meanwhile would get the temporary mask.
    """
    try:
        with open("/proc/self/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        return None
    return None


def rename_into(dir_fd: int, tmp: bytes, name: bytes) -> None:
    """Replace ``name`` with the finished ``tmp`` in one step (old or new, never a mix)."""
    try:
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise


def apply_meta(fd: int, mode: int, uid: int, gid: int, mtime_ns: int, owners: bool, *,
               has_mode: bool = False) -> None:
    """Owner, mode and times through an open descriptor (chown first: it clears setuid).

    ``owners`` false: the owner is left as created. ``has_mode``: the file
    already has ``mode`` (created with it, see :func:`creation_owner`).
    """
    # try/except, not contextlib.suppress: this runs once per restored file
    if owners:
        try:  # noqa: SIM105
            os.fchown(fd, uid, gid)
        except OSError:
            pass  # an owner this system cannot give: keep ours, as restic does
    if not has_mode:
        os.fchmod(fd, mode & 0o7777)
    try:  # noqa: SIM105
        os.utime(fd, ns=(mtime_ns, mtime_ns))
    except (OSError, OverflowError, ValueError):
        pass  # a time the file system cannot store


def apply_link_meta(dir_fd: int, name: bytes, uid: int, gid: int, mtime_ns: int,
                    owners: bool) -> None:
    """Owner and times of a symlink or node (not followed)."""
    if owners:
        with contextlib.suppress(OSError):
            os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
    with contextlib.suppress(OSError, OverflowError, ValueError, NotImplementedError):
        os.utime(name, ns=(mtime_ns, mtime_ns), dir_fd=dir_fd, follow_symlinks=False)


def exchange_at(a_dir: int, a: bytes | str, b_dir: int, b: bytes | str) -> None:
    """Swap two names atomically (Linux ``renameat2(RENAME_EXCHANGE)``)."""
    fn = _renameat2()
    if fn(a_dir, os.fsencode(a), b_dir, os.fsencode(b), _RENAME_EXCHANGE) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@functools.cache
def libc() -> ctypes.CDLL:
    """The C library, for calls Python lacks (``renameat2``, ``syncfs``).

    The interpreter's own symbols include it; ``ctypes.util.find_library``
    would run ``ldconfig -p`` in a subprocess for the same answer.
    """
    return ctypes.CDLL(None, use_errno=True)


@functools.cache
def _renameat2():  # type: ignore[no-untyped-def]
    fn = getattr(libc(), "renameat2", None)
    if fn is None:
        raise DeltavaultError("atomic exchange (renameat2) is not available on this system")
    return fn


def iter_tree(root: str | os.PathLike[str]) -> Iterator[os.DirEntry[str]]:
    """Every entry below ``root``, directories before what they hold, by path
    (so within PATH_MAX); iterative, never following a symlink."""
    stack = [os.fspath(root)]
    while stack:
        with os.scandir(stack.pop()) as it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                yield e
