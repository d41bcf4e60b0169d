"""Retention rules read ledger times and leave flagged snapshots alone (pure, no repository)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from deltavault.ledger.events import snapshot_event
from deltavault.ledger.state import LiveSnapshot
from deltavault.ops.retention import RetentionPolicy, apply_policy
from deltavault.repo.snapshot import Snapshot

NOW = datetime(2026, 12, 10, 12, tzinfo=UTC)


def snap(n: int, claimed: datetime) -> Snapshot:
    return Snapshot(time=claimed.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), hostname="h", username="u",
                    paths=["/p"], tree="a" * 64, id=f"{n:064x}")


def live(n: int, ledger: datetime, flag: str = "") -> LiveSnapshot:
    event = snapshot_event(snapshot_id=f"{n:064x}", snapshot_type="full", parent=None,
                           base=None, snapshot_time="2026-12-01T00:00:00Z", hostname="h",
                           tags=[], tree="a" * 64, summary={}, packs_root="b" * 64,
                           packs_count=0)
    return LiveSnapshot(event, n, n + 1, 0, int(ledger.timestamp() * 1_000_000), flag)


def test_buckets_use_the_ledger_time_and_flagged_ones_are_neither_counted_nor_removed() -> None:
    days = [NOW - timedelta(days=d) for d in (3, 2, 1, 0)]
    snaps = [snap(i, t) for i, t in enumerate(days)]
    # a fake claims tomorrow; the ledger saw it today, after the real one: flagged
    snaps.append(snap(9, NOW + timedelta(days=1)))
    times = {s.id: live(i, days[i]) for i, s in enumerate(snaps[:4])}
    times[snaps[4].id] = live(9, NOW + timedelta(minutes=5), "later than first seen")
    kept, removed = apply_policy(snaps, RetentionPolicy(daily=3), times)
    assert {s.id for s in kept} == {s.id for s in snaps[1:]}
    assert [s.id for s in removed] == [snaps[0].id]
    kept, removed = apply_policy(snaps, RetentionPolicy(last=1), times)
    assert {s.id for s in kept} == {snaps[3].id, snaps[4].id}
    # a snapshot whose claim is believed but whose ledger time differs is bucketed by the latter
    moved = {**times, snaps[2].id: live(2, NOW - timedelta(minutes=1))}
    kept, _ = apply_policy(snaps[:4], RetentionPolicy(daily=2), moved)
    assert {s.id for s in kept} == {snaps[3].id, snaps[1].id}  # snaps[2] shares today
