"""Which snapshots a retention policy keeps: restic-style ``--keep-*`` rules per group.

The time each rule reads is the snapshot's *ledger time* (docs/ledger.md
§9.3), not the time its client claims: a compromised client with the
password cannot date fake snapshots into the future or the past to push
real ones out of retention (restic issue 22057). A snapshot whose claimed
times do not fit the ledger is *flagged*: no rule counts it (it fills no
bucket and takes no ``--keep-last`` place) and no rule removes it — it stays
until someone who reviewed it forgets it by id.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from deltavault.errors import UserError
from deltavault.ledger.state import LiveSnapshot
from deltavault.repo.snapshot import Snapshot

#: snapshot id → what the verified ledger state says about it
LedgerTimes = Mapping[str, LiveSnapshot]


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


def retention_time(s: Snapshot, times: LedgerTimes | None) -> datetime:
    """The time retention uses: the ledger time, else (no ledger state given) the claim."""
    live = times.get(s.id) if times is not None else None
    return live.ledger_time if live is not None else s.datetime


def is_flagged(s: Snapshot, times: LedgerTimes | None) -> bool:
    """Whether the ledger does not believe the snapshot's claimed times."""
    live = times.get(s.id) if times is not None else None
    return live is not None and bool(live.flag)


def apply_policy(snaps: list[Snapshot], policy: RetentionPolicy,
                 times: LedgerTimes | None = None) -> tuple[list[Snapshot], list[Snapshot]]:
    """Split snapshots (of one group) into kept and removed, newest first rules.

    ``times`` (from :meth:`Repository.live_snapshots`) gives each snapshot's
    ledger time and flag; flagged snapshots are kept and not counted.
    """
    if policy.empty():
        raise UserError("no retention rule given (e.g. --keep-last 7 --keep-daily 30)")
    flagged = [s for s in snaps if is_flagged(s, times)]
    counted = [s for s in snaps if not is_flagged(s, times)]
    when = {s.id: retention_time(s, times) for s in snaps}
    newest_first = sorted(counted, key=lambda s: (when[s.id], s.id), reverse=True)
    keep: set[str] = set()
    keep.update(s.id for s in newest_first[: policy.last])
    keep.update(s.id for s in newest_first if set(policy.tags) & set(s.tags))
    for name in ("hourly", "daily", "weekly", "monthly", "yearly"):
        n = getattr(policy, name)
        seen: set[Any] = set()
        for s in newest_first:
            if len(seen) >= n:
                break
            key = _bucket(name, when[s.id])
            if key not in seen:
                seen.add(key)
                keep.add(s.id)
    kept = [s for s in newest_first if s.id in keep] + flagged
    removed = [s for s in newest_first if s.id not in keep]
    return kept, removed


def group_key(s: Snapshot) -> tuple[str, tuple[str, ...]]:
    """Retention applies per host and set of paths, like restic's default."""
    return s.hostname, tuple(sorted(s.paths))


def select_forgotten(snaps: list[Snapshot], policy: RetentionPolicy,
                     times: LedgerTimes | None = None) -> list[Snapshot]:
    """Every snapshot the policy does not keep, applied per group (host and paths)."""
    groups: dict[tuple[str, tuple[str, ...]], list[Snapshot]] = {}
    for s in snaps:
        groups.setdefault(group_key(s), []).append(s)
    return [s for g in groups.values() for s in apply_policy(g, policy, times)[1]]
