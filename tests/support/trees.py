"""Compare directory trees in tests: byte for byte, by manifest, or by content only.

``differences`` lists every path that differs in type, mode, symlink target
or bytes; ``manifest`` + ``assert_same_tree`` also compare mtimes and hard
links; ``assert_same_files`` compares only what a replica must keep (bytes).
"""

from __future__ import annotations

import filecmp
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path


def differences(a: Path, b: Path) -> list[str]:
    """Every path under ``a`` or ``b`` that differs in type, mode, target or bytes."""
    out: list[str] = []
    names_a = _listing(a)
    names_b = _listing(b)
    for rel in sorted(names_a.keys() ^ names_b.keys()):
        out.append(f"{rel}: only in {'first' if rel in names_a else 'second'}")
    for rel in sorted(names_a.keys() & names_b.keys()):
        sa, sb = names_a[rel], names_b[rel]
        if stat.S_IFMT(sa.st_mode) != stat.S_IFMT(sb.st_mode):
            out.append(f"{rel}: type differs")
        elif stat.S_IMODE(sa.st_mode) != stat.S_IMODE(sb.st_mode):
            out.append(f"{rel}: mode {oct(sa.st_mode & 0o7777)} != {oct(sb.st_mode & 0o7777)}")
        elif stat.S_ISLNK(sa.st_mode):
            if os.readlink(a / rel) != os.readlink(b / rel):
                out.append(f"{rel}: symlink target differs")
        elif stat.S_ISREG(sa.st_mode) and not filecmp.cmp(a / rel, b / rel, shallow=False):
            out.append(f"{rel}: content differs")
    return out


def _listing(root: Path) -> dict[str, os.stat_result]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = Path(dirpath) / name
            out[str(full.relative_to(root))] = os.lstat(full)
    return out


@dataclass(frozen=True)
class Entry:
    """What a restore must reproduce for one path."""

    kind: str
    mode: int
    mtime_ns: int
    digest: str = ""
    size: int = 0
    target: bytes = b""
    inode_group: int = 0


def manifest(root: Path, *, mtimes: bool = True) -> dict[bytes, Entry]:
    """Every entry below ``root`` (bytes paths) with content hash and metadata.

    Hard links are compared by which paths share an inode, numbered by first
    appearance, since inode numbers differ between the source and a restore.
    """
    out: dict[bytes, Entry] = {}
    groups: dict[tuple[int, int], int] = {}
    base = os.fsencode(root)
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames.sort()
        for name in sorted(dirnames) + sorted(filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, base)
            st = os.lstat(full)
            mt = st.st_mtime_ns if mtimes else 0
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = Entry("symlink", 0, mt, target=os.readlink(full))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = Entry("dir", mode, mt)
            elif stat.S_ISREG(st.st_mode):
                group = 0
                if st.st_nlink > 1:
                    group = groups.setdefault((st.st_dev, st.st_ino), len(groups) + 1)
                out[rel] = Entry("file", mode, mt, file_digest(full), st.st_size,
                                 inode_group=group)
            else:
                out[rel] = Entry("other", mode, mt)
    return out


def file_digest(path: str | bytes | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def assert_same_tree(expected: dict[bytes, Entry], actual: dict[bytes, Entry]) -> None:
    """Equal manifests, with a readable list of differences if not."""
    missing = sorted(expected.keys() - actual.keys())
    extra = sorted(actual.keys() - expected.keys())
    differ = sorted(k for k in expected.keys() & actual.keys() if expected[k] != actual[k])
    details = [f"{k!r}: expected {expected[k]}, got {actual[k]}" for k in differ[:10]]
    assert not (missing or extra or differ), (
        f"missing {missing[:10]}, unexpected {extra[:10]}, different:\n" + "\n".join(details))


def assert_same_files(expected: Path, actual: Path) -> None:
    """Same relative paths with the same bytes (symlinks: same target)."""

    def files(root: Path) -> dict[str, bytes]:
        out = {}
        for dirpath, _dirs, names in os.walk(root):
            for name in names:
                p = Path(dirpath) / name
                out[str(p.relative_to(root))] = (os.readlink(p).encode() if p.is_symlink()
                                                 else p.read_bytes())
        return out

    want, got = files(expected), files(actual)
    assert sorted(want) == sorted(got)
    differing = [k for k in want if want[k] != got[k]]
    assert not differing, differing[:5]


def write_random(path: Path, size: int, seed: int) -> None:
    """Incompressible, reproducible content (numpy's generator is fast)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    with open(path, "wb") as fh:
        left = size
        while left:
            n = min(left, 8 << 20)
            fh.write(rng.bytes(n))
            left -= n


@dataclass(frozen=True)
class Symlink:
    target: str


@dataclass(frozen=True)
class Hardlink:
    to: str
