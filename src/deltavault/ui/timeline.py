"""The Timeline page: the snapshot chain on a time axis, bytes added, ledger status."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deltavault.repo.snapshot import Snapshot
from deltavault.ui.engine import RepositoryView, SnapshotEntry
from deltavault.ui.svg import TimelinePoint, timeline_svg

#: snapshots per page (newest page first): a page stays small with 100,000 snapshots
PAGE = 100


@dataclass(frozen=True)
class SnapshotRow:
    """One line of the snapshot table."""

    id: str
    time: str
    type: str
    chain_depth: int
    anchor: str | None
    tags: list[str]
    bytes_added: int
    bytes_total: int
    files: int
    committed_at: int
    hostname: str


def anchor_of(s: Snapshot) -> str | None:
    """The snapshot a diff or incr is a delta against (its base full, its parent)."""
    if s.type == "diff":
        return s.base
    if s.type == "incr":
        return s.parent
    return None


def _int(summary: dict[str, Any], key: str) -> int:
    value = summary.get(key, 0)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def row_of(e: SnapshotEntry) -> SnapshotRow:
    s = e.snapshot
    files = sum(_int(s.summary, k) for k in ("files_new", "files_changed", "files_unmodified"))
    return SnapshotRow(s.id, s.time, s.type, s.chain_depth, anchor_of(s), list(s.tags),
                       _int(s.summary, "bytes_added"), _int(s.summary, "bytes_total"), files,
                       e.committed_at, s.hostname)


def timeline_context(view: RepositoryView, page: int) -> dict[str, Any]:
    """Template values for page ``page`` (1 = newest ``PAGE`` snapshots)."""
    entries = view.refresh()
    pages = max(1, -(-len(entries) // PAGE))
    page = min(max(page, 1), pages)
    end = len(entries) - (page - 1) * PAGE
    window = entries[max(0, end - PAGE):end]
    points = [TimelinePoint(e.snapshot.id, e.snapshot.datetime, e.snapshot.type,
                            anchor_of(e.snapshot), tuple(e.snapshot.tags),
                            _int(e.snapshot.summary, "bytes_added"),
                            f"/snapshot/{e.snapshot.id}") for e in window]
    cp = view.ledger.checkpoint()
    return {
        "snapshots": [row_of(e) for e in reversed(window)],
        "total": len(entries),
        "page": page,
        "pages": pages,
        "chart": timeline_svg(points),
        "checkpoint_size": cp.size if cp else 0,
        "unreadable": dict(view.unreadable),
        "tagged": sum(1 for e in entries if "known-good" in e.snapshot.tags),
    }
