"""Which snapshots a retention policy keeps: restic-style ``--keep-*`` rules per group."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from deltavault.errors import UserError
from deltavault.repo.snapshot import Snapshot


@dataclass
class RetentionPolicy:
    """restic-style keep rules; a snapshot kept by any rule is kept."""

    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0
    tags: list[str] = field(default_factory=list)

    def empty(self) -> bool:
        return not (self.last or self.hourly or self.daily or self.weekly or self.monthly
                    or self.yearly or self.tags)


def _bucket(name: str, t: datetime) -> tuple[int, ...]:
    """The calendar bucket of a time for a keep rule."""
    if name == "weekly":
        return tuple(t.isocalendar()[:2])
    fields = {"hourly": 4, "daily": 3, "monthly": 2, "yearly": 1}[name]
    return (t.year, t.month, t.day, t.hour)[:fields]


def apply_policy(snaps: list[Snapshot], policy: RetentionPolicy) -> tuple[list[Snapshot],
                                                                          list[Snapshot]]:
    """Split snapshots (of one group) into kept and removed, newest first rules."""
    if policy.empty():
        raise UserError("no retention rule given (e.g. --keep-last 7 --keep-daily 30)")
    newest_first = sorted(snaps, key=lambda s: s.datetime, reverse=True)
    keep: set[str] = set()
    keep.update(s.id for s in newest_first[: policy.last])
    keep.update(s.id for s in newest_first if set(policy.tags) & set(s.tags))
    for name in ("hourly", "daily", "weekly", "monthly", "yearly"):
        n = getattr(policy, name)
        seen: set[Any] = set()
        for s in newest_first:
            if len(seen) >= n:
                break
            key = _bucket(name, s.datetime)
            if key not in seen:
                seen.add(key)
                keep.add(s.id)
    kept = [s for s in newest_first if s.id in keep]
    removed = [s for s in newest_first if s.id not in keep]
    return kept, removed


def group_key(s: Snapshot) -> tuple[str, tuple[str, ...]]:
    """Retention applies per host and set of paths, like restic's default."""
    return s.hostname, tuple(sorted(s.paths))


def select_forgotten(snaps: list[Snapshot], policy: RetentionPolicy) -> list[Snapshot]:
    """Every snapshot the policy does not keep, applied per group (host and paths)."""
    groups: dict[tuple[str, tuple[str, ...]], list[Snapshot]] = {}
    for s in snaps:
        groups.setdefault(group_key(s), []).append(s)
    return [s for g in groups.values() for s in apply_policy(g, policy)[1]]
