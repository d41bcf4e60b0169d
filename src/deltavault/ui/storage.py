"""Stored against original bytes over time, per data kind: what dedup and deltas saved.

For each snapshot, oldest first: the original bytes are the sizes of its
files (what a plain copy of the state would store that day); the stored
bytes are the stored lengths of the blobs it was the first to reference
(what the repository actually grew by for that kind). A subtree already
visited adds its memoised sizes without being read again — its blobs are
counted already — so the cost follows the changed directories, not the
number of snapshots times the number of files. Blob marks are one byte per
index record (:meth:`MasterIndex.slot`), not a set of ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from deltavault.ui.engine import RepositoryView, SnapshotEntry
from deltavault.ui.kinds import KINDS, data_kind

_K = len(KINDS)
_KIND_POS = {k: i for i, k in enumerate(KINDS)}


@dataclass
class StorageHistory:
    """Per snapshot (oldest first) and per kind: original and newly stored bytes."""

    times: list[datetime] = field(default_factory=list)
    original: list[list[int]] = field(default_factory=list)  # [snapshot][kind]
    stored: list[list[int]] = field(default_factory=list)

    def cumulative(self, kind: str) -> tuple[list[tuple[datetime, float]],
                                             list[tuple[datetime, float]]]:
        """(original, stored) running totals of one kind over time."""
        k = _KIND_POS[kind]
        orig = np.cumsum(np.array([row[k] for row in self.original], dtype=np.int64))
        stor = np.cumsum(np.array([row[k] for row in self.stored], dtype=np.int64))
        return ([(t, float(v)) for t, v in zip(self.times, orig, strict=True)],
                [(t, float(v)) for t, v in zip(self.times, stor, strict=True)])

    def totals(self) -> list[tuple[str, int, int]]:
        """(kind, original bytes summed over snapshots, stored bytes) for kinds present."""
        out = []
        for k, kind in enumerate(KINDS):
            o = sum(row[k] for row in self.original)
            s = sum(row[k] for row in self.stored)
            if o or s:
                out.append((kind, o, s))
        return out


def storage_history(view: RepositoryView, snaps: list[SnapshotEntry]) -> StorageHistory:
    """Walk every snapshot once, reusing each subtree's totals after its first visit."""
    seen = np.zeros(view.index_size(), dtype=bool)
    memo: dict[bytes, tuple[int, ...]] = {}
    out = StorageHistory()
    for entry in snaps:
        stored = [0] * _K
        original = _visit(view, bytes.fromhex(entry.snapshot.tree), "", memo, seen, stored)
        out.times.append(entry.snapshot.datetime)
        out.original.append(list(original))
        out.stored.append(stored)
    return out


def _visit(view: RepositoryView, tree_id: bytes, prefix: str,
           memo: dict[bytes, tuple[int, ...]], seen: np.ndarray,  # type: ignore[type-arg]
           stored: list[int]) -> tuple[int, ...]:
    """Original bytes per kind below a tree; adds first-seen blobs' stored lengths."""
    hit = memo.get(tree_id)
    if hit is not None:
        return hit
    sizes = [0] * _K
    for node in view.tree(tree_id).nodes:
        path = f"{prefix}/{node.name.decode('utf-8', 'replace')}"
        if (below := node.tree_below()) is not None:
            sub = _visit(view, below, path, memo, seen, stored)
            for k in range(_K):
                sizes[k] += sub[k]
        elif node.type == "file":
            k = _KIND_POS[data_kind(path)]
            sizes[k] += node.size
            for blob in node.content:
                pos, length = view.blob_slot(blob)
                if pos >= 0 and not seen[pos]:
                    seen[pos] = True
                    stored[k] += length
    result = tuple(sizes)
    memo[tree_id] = result
    return result
