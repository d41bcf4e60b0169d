"""Join the names of one hard-linked file that different processes of a split restore wrote.

Why: each part of a split restore (:mod:`~deltavault.restore.procs`) links
the names of a hard-linked file it places to its own first copy; names that
fell to different parts are different files until the coordinator, after
every part is done, replaces the later parts' copies by links to the first
part's, putting each directory's times (and, where a part left it
read-only, its mode) back as they were.
"""

from __future__ import annotations

import os
import stat
from typing import Any

from deltavault.restore.files import FileWriter
from deltavault.restore.fsdir import Dir, open_dir
from deltavault.restore.nodes import place


def join_links(root: Dir, linked: list[list[Any]], writer: FileWriter) -> int:
    """Link the names of one hard-linked file that different parts wrote.

    Each part linked the names it placed to its own first copy. The first
    part's copy is kept; every name another part placed is replaced by a
    link to it, and its directory's times are put back as they were.
    Returns the bytes of the copies replaced: the parts counted them as
    restored, where one process counts a link's name as a file but not its
    bytes again.
    """
    replaced = 0
    copies: set[tuple[int, int]] = set()  # a part's copy with two names counted once
    groups: dict[tuple[int, int], list[tuple[int, list[bytes], bytes]]] = {}
    for i, entries in enumerate(linked):
        for dev, ino, parts, name in entries:
            groups.setdefault((dev, ino), []).append((i, parts, name))
    for entries in groups.values():
        first, src_parts, src_name = entries[0]
        others = [(parts, name) for i, parts, name in entries if i != first]
        if not others:
            continue
        src = _reach(root, src_parts)
        for parts, name in others:
            dst = _reach(root, parts)
            if src is None or dst is None:
                writer.report(os.fsdecode(b"/".join([*parts, name])),
                              "cannot link: its directory is gone")
                continue
            copy = _relink(src, src_name, dst, name, writer)
            if copy is not None and (copy.st_dev, copy.st_ino) not in copies:
                copies.add((copy.st_dev, copy.st_ino))
                replaced += copy.st_size
    return replaced


def _reach(root: Dir, parts: list[bytes]) -> Dir | None:
    d: Dir | None = root
    for name in parts:
        if d is None:
            return None
        d = open_dir(d, name)
    return d


def _relink(src: Dir, src_name: bytes, dst: Dir, name: bytes,
            writer: FileWriter) -> os.stat_result | None:
    """Replace ``name`` (a part's own copy) by a link to the kept copy; the part
    counted the name as restored already. Returns the copy replaced, if one was."""
    sfd, dfd = src.pin(), dst.pin()
    replaced = None
    try:
        st = os.fstat(dfd)
        mode = stat.S_IMODE(st.st_mode)
        # a part finished this directory already: it may be read-only to us now
        opened = os.geteuid() != 0 and mode & 0o300 != 0o300
        if opened:
            os.fchmod(dfd, mode | 0o700)
        try:
            copy = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            kept = os.stat(src_name, dir_fd=sfd, follow_symlinks=False)
            place(dfd, name, lambda n: os.link(src_name, n, src_dir_fd=sfd, dst_dir_fd=dfd,
                                               follow_symlinks=False))
            if (copy.st_dev, copy.st_ino) != (kept.st_dev, kept.st_ino):
                replaced = copy
        finally:
            if opened:
                os.fchmod(dfd, mode)
            os.utime(dfd, ns=(st.st_atime_ns, st.st_mtime_ns))
    except OSError as exc:
        writer.report(dst.child_path(name), f"cannot link: {exc.strerror}")
    finally:
        dst.unpin()
        src.unpin()
    return replaced
