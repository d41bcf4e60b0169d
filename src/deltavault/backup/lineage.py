"""Which earlier snapshots a new one builds on: parent, last full, and the effective type.

docs/format.md §7.1: a ``diff`` is encoded against the last ``full`` of the
same host and paths, an ``incr`` against the previous snapshot; with nothing
to build on, or when a full is due, the backup becomes a ``full``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from deltavault.repo.repository import Repository
from deltavault.repo.snapshot import Snapshot


@dataclass
class Lineage:
    """Earlier snapshots of the same host and paths, for parent and base."""

    parent: Snapshot | None
    last_full: Snapshot | None
    since_full: int = 0


def find_lineage(repo: Repository, hostname: str, paths: list[str]) -> Lineage:
    """The newest snapshot and newest full snapshot of the same host and paths."""
    same = [s for s in repo.snapshots()
            if s.hostname == hostname and sorted(s.paths) == sorted(paths)]
    fulls = [s for s in same if s.type == "full"]
    since = len(same) - 1 - same.index(fulls[-1]) if fulls else 0
    return Lineage(same[-1] if same else None, fulls[-1] if fulls else None, since)


def resolve_type(requested: str, lineage: Lineage, *, full_every: int = 0,
                 full_after_days: float = 0) -> tuple[str, Snapshot | None, int]:
    """Effective type, its delta base snapshot and its chain depth.

    A diff or incr becomes a full one when there is no full snapshot to refer
    to, when ``full_every`` backups were taken since the last full, or when
    the last full is older than ``full_after_days``.
    """
    last = lineage.last_full
    if requested == "full" or last is None or lineage.parent is None:
        return "full", None, 0
    if full_every and lineage.since_full + 1 >= full_every:
        return "full", None, 0
    if full_after_days and datetime.now(UTC) - last.datetime >= timedelta(days=full_after_days):
        return "full", None, 0
    if requested == "diff":
        return "diff", lineage.last_full, 1
    return "incr", lineage.parent, lineage.parent.chain_depth + 1
