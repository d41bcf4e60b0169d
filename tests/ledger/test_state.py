"""Ledger time: a claimed time is clamped by the events before it and by when it was first seen."""

from __future__ import annotations

import pytest

from deltavault.ledger.events import Event, snapshot_event
from deltavault.ledger.log import Ledger
from deltavault.ledger.state import (
    SKEW_US,
    LedgerState,
    events,
    format_us,
    is_journal_record,
    parse_us,
)

DAY = 86_400 * 1_000_000
NOW = parse_us("2026-12-10T12:00:00Z")


def snap(n: int, commit: int, start: int | None = None) -> Event:
    return snapshot_event(snapshot_id=f"{n:064x}", snapshot_type="full", parent=None, base=None,
                          snapshot_time=format_us(commit if start is None else start),
                          hostname="h", tags=[], tree="a" * 64, summary={}, packs_root="b" * 64,
                          packs_count=0, time=format_us(commit))


def fold(*events: Event, seen: int = NOW) -> LedgerState:
    state = LedgerState()
    state.add(0, [e.to_bytes() for e in events], len(events), seen)
    return state


def test_honest_history_is_believed() -> None:
    state = fold(snap(1, NOW - 2 * DAY), snap(2, NOW - DAY, NOW - DAY - 3_600_000_000),
                 snap(3, NOW - 60_000_000))
    for n, sid in enumerate(sorted(state.live), start=1):
        live = state.live[sid]
        assert not live.flag, live.flag
        assert live.index == n - 1 and live.seen_size == 3 and live.seen_us == NOW
    assert state.live[f"{1:064x}"].ledger_us == NOW - 2 * DAY


def test_future_claim_is_clamped_to_when_it_was_first_seen() -> None:
    state = fold(snap(1, NOW - DAY), snap(2, parse_us("2099-01-01T00:00:00Z")))
    fake = state.live[f"{2:064x}"]
    assert fake.ledger_us == NOW + SKEW_US and "later than when a verifier" in fake.flag


def test_back_dated_claim_cannot_go_before_an_earlier_event() -> None:
    check = Event.new("check", time=format_us(NOW - 3_600_000_000), ok=True, errors=0)
    state = fold(snap(1, NOW - 2 * DAY), check, snap(2, NOW - 10 * DAY))
    fake = state.live[f"{2:064x}"]
    assert fake.ledger_us == NOW - 3_600_000_000 - SKEW_US
    assert "earlier than the ledger time of an earlier event" in fake.flag
    # a snapshot whose start claim contradicts its own commit is flagged too
    odd = fold(snap(1, NOW - DAY, start=NOW)).live[f"{1:064x}"]
    assert "start after" in odd.flag
    long_ago = fold(snap(1, NOW - DAY, start=NOW - 3 * DAY)).live[f"{1:064x}"]
    assert "24 h" in long_ago.flag


def test_tags_and_forgets_move_the_live_set() -> None:
    a, b = f"{1:064x}", f"{9:064x}"
    state = fold(snap(1, NOW - DAY),
                 Event.new("tag", time=format_us(NOW - 10), snapshot=a, new_id=b, add=[],
                           remove=[]),
                 Event.new("forget", time=format_us(NOW - 5), snapshots=[b], reason=""))
    assert state.live == {} and state.moved == {a: (b, 1)} and state.forgotten == {b: 2}


def test_journal_records_are_recognised_without_parsing() -> None:
    rec = Event.new("journal", commitment="c" * 64, object="d" * 64, slot=3).to_bytes()
    assert is_journal_record(rec)
    assert not is_journal_record(snap(1, NOW).to_bytes())
    assert not is_journal_record(Event.new("check", ok=True, errors=0).to_bytes())


def test_events_without_journal_skips_records_unparsed(ledger: Ledger,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Readers of the repository's own events do not parse the trade journal."""
    journal = [Event.new("journal", commitment=f"{i:064x}", object="d" * 64, slot=i).to_bytes()
               for i in range(5)]
    own = [snap(1, NOW).to_bytes(), Event.new("forget", snapshots=["x"], reason="").to_bytes()]
    ledger.append([journal[0], own[0], *journal[1:4], own[1], journal[4]])
    assert [(i, e.type) for i, e in events(ledger)] == [
        (0, "journal"), (1, "snapshot"), (2, "journal"), (3, "journal"), (4, "journal"),
        (5, "forget"), (6, "journal")]
    parsed: list[bytes] = []
    real = Event.from_bytes
    monkeypatch.setattr(Event, "from_bytes", staticmethod(lambda raw: parsed.append(raw)
                                                         or real(raw)))
    assert [(i, e.type) for i, e in events(ledger, journal=False)] == [(1, "snapshot"),
                                                                        (5, "forget")]
    assert parsed == own
