"""Seeds, file writing and tree accounting shared by the workload variants.

The variants are deliberately independent of :mod:`deltavault.sampledata`:
speed and size must hold on data the engine was not tuned against, so no
code path of that generator is reused here (BENCHMARK.md, "More than one
workload").
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

MiB = 1 << 20


def rng(seed: int, *tags: object) -> np.random.Generator:
    """An independent PCG64 stream for ``(seed, *tags)``.

    Each part and each day draws from its own stream, so adding a part or a
    draw in one place never shifts the bytes of another.
    """
    digest = hashlib.blake2b(repr(tags).encode(), digest_size=16).digest()
    words = [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, *words])))


def write_bytes(path: Path, data: bytes) -> None:
    """Write a file whole, creating its directory (no temp file: a state tree, not a repo)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        f.write(data)


def save_npy(path: Path, array: np.ndarray) -> None:
    """Write an ``.npy`` file (numpy's own format, version 1.0 header)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        np.lib.format.write_array(f, np.ascontiguousarray(array), version=(1, 0),
                                  allow_pickle=False)


def load_npy(path: Path) -> np.ndarray:
    """Read an ``.npy`` file written by :func:`save_npy`."""
    return np.asarray(np.load(path, allow_pickle=False))


def write_json(path: Path, data: Any) -> None:
    """Pretty JSON with a fixed key order (what the writer gave), newline-terminated."""
    write_bytes(path, (json.dumps(data, indent=2) + "\n").encode())


def scaled(count: float, scale: float, minimum: int) -> int:
    """``count * scale`` rounded, at least ``minimum``."""
    return max(minimum, int(np.rint(count * scale)))


@dataclass
class Change:
    """What one day of change did: the files it wrote and counters per kind."""

    day: int
    changed_files: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def touch(self, rel: str) -> None:
        """Record a written file once."""
        if rel not in self.changed_files:
            self.changed_files.append(rel)

    def count(self, what: str, n: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + n

    def merge(self, other: Change) -> None:
        for rel in other.changed_files:
            self.touch(rel)
        for k, v in other.counts.items():
            self.count(k, v)

    def to_dict(self) -> dict[str, object]:
        return {"day": self.day, "changed_files": sorted(self.changed_files),
                "files_changed": len(self.changed_files), **self.counts}


def tree_manifest(root: Path, part_of: Callable[[str], str], *, name: str, scale: float,
                  seed: int) -> dict[str, Any]:
    """Files and bytes per part of a generated tree."""
    parts: dict[str, int] = {}
    files = 0
    for rel, size in walk_files(root):
        files += 1
        part = part_of(rel)
        parts[part] = parts.get(part, 0) + size
    return {"workload": name, "root": str(root), "scale": scale, "seed": seed, "files": files,
            "part_bytes": parts, "total_bytes": sum(parts.values())}


def walk_files(root: Path) -> Iterable[tuple[str, int]]:
    """``(relative POSIX path, size)`` of every regular file, in sorted order."""
    out: list[tuple[str, int]] = []
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        for f in files:
            p = os.path.join(dirpath, f)
            out.append((os.path.relpath(p, root).replace(os.sep, "/"), os.lstat(p).st_size))
    out.sort()
    return out
