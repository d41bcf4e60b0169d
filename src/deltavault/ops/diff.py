"""Compare two snapshots: added, removed and changed files, and bytes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from deltavault.repo.repository import Repository
from deltavault.repo.snapshot import Snapshot
from deltavault.repo.tree import Node
from deltavault.repo.walk import walk


@dataclass
class DiffResult:
    """What changed from ``a`` to ``b``."""

    added: list[tuple[str, int]] = field(default_factory=list)
    removed: list[tuple[str, int]] = field(default_factory=list)
    changed: list[tuple[str, int, int]] = field(default_factory=list)  # path, old, new size
    metadata_only: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "added": [{"path": p, "size": s} for p, s in self.added],
            "removed": [{"path": p, "size": s} for p, s in self.removed],
            "changed": [{"path": p, "old_size": o, "new_size": n} for p, o, n in self.changed],
            "metadata_only": self.metadata_only,
            "bytes_added": sum(s for _, s in self.added),
            "bytes_removed": sum(s for _, s in self.removed),
            "bytes_changed": sum(n for _, _, n in self.changed),
        }


def _files(repo: Repository, snap: Snapshot) -> dict[str, Node]:
    return {p: n for p, n in walk(repo, bytes.fromhex(snap.tree))}


def diff_snapshots(repo: Repository, a: Snapshot, b: Snapshot) -> DiffResult:
    """Files added, removed, changed (content) or touched (metadata only)."""
    repo.load_index()
    old, new = _files(repo, a), _files(repo, b)
    out = DiffResult()
    for path in sorted(new.keys() - old.keys()):
        out.added.append((path, new[path].size))
    for path in sorted(old.keys() - new.keys()):
        out.removed.append((path, old[path].size))
    for path in sorted(old.keys() & new.keys()):
        o, n = old[path], new[path]
        if o.type != n.type or o.content != n.content or o.target != n.target:
            if o.type == n.type == "dir":
                continue
            out.changed.append((path, o.size, n.size))
        elif (o.mode, o.uid, o.gid, o.mtime_ns) != (n.mode, n.uid, n.gid, n.mtime_ns) \
                and o.type != "dir":
            out.metadata_only.append(path)
    return out
