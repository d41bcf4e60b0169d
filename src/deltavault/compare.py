"""Compare two directory trees byte for byte (content, type, mode, symlinks).

Used by ``./scripts/demo`` and the tests to prove a restore is exact:
``python -m deltavault.compare A B`` exits 0 when identical, 1 otherwise.
"""

from __future__ import annotations

import filecmp
import os
import stat
import sys
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


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: python -m deltavault.compare DIR_A DIR_B\n")
        return 2
    diffs = differences(Path(argv[0]), Path(argv[1]))
    for d in diffs[:50]:
        sys.stdout.write(d + "\n")
    if diffs:
        sys.stdout.write(f"{len(diffs)} difference(s)\n")
        return 1
    sys.stdout.write(f"identical: {argv[0]} and {argv[1]}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
