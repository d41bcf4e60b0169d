"""Events: canonical JSON, validation, unknown fields kept."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deltavault.errors import FormatError, UserError
from deltavault.ledger.events import Event, snapshot_event

H = "ab" * 32


def make_snapshot() -> Event:
    return snapshot_event(
        snapshot_id=H, snapshot_type="incr", parent=H, base=None,
        snapshot_time="2026-11-23T09:00:00.000000Z", hostname="trader-1", tags=["known-good"],
        tree=H, summary={"files_new": 3, "bytes_added": 1024}, packs_root=H, packs_count=2,
        time="2026-11-23T09:00:01.000000Z",
    )  # fmt: skip


def test_snapshot_roundtrip() -> None:
    ev = make_snapshot()
    data = ev.to_bytes()
    assert data.startswith(b'{"base":null,')
    assert Event.from_bytes(data) == Event("snapshot", ev.time, ev.to_dict())


def test_unknown_fields_and_types_kept() -> None:
    data = b'{"future":[1,2],"time":"2026-01-01T00:00:00Z","type":"new-kind"}'
    ev = Event.from_bytes(data)
    assert ev.to_bytes() == data


@pytest.mark.parametrize(
    "data",
    [b"[]", b"{", b'{"type":"tag"}', b'{"time":"2026-01-01T00:00:00Z", "type":"x"}',
     b'{"time":"2026-01-01T00:00:00Z","type":"x","type":"y"}',
     b'{"time":"2026-01-01 00:00:00","type":"x"}', b'{"a":NaN,"time":"2026-01-01T00:00:00Z"}',
     b'{"id":"zz","time":"2026-01-01T00:00:00Z","type":"snapshot"}'],
)  # fmt: skip
def test_bad_events(data: bytes) -> None:
    with pytest.raises(FormatError):
        Event.from_bytes(data)


def test_new_validates() -> None:
    with pytest.raises(UserError):
        Event.new("restore", snapshot="nothex", target="/srv")
    with pytest.raises(UserError):
        snapshot_event(snapshot_id=H, snapshot_type="weekly", parent=None, base=None,
                       snapshot_time="t", hostname="h", tags=[], tree=H, summary={},
                       packs_root=H, packs_count=0)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_event_parser_fuzz(data: bytes) -> None:
    with contextlib.suppress(FormatError):
        Event.from_bytes(data)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 400), st.integers(0, 255))
def test_event_mutations(pos: int, value: int) -> None:
    data = bytearray(make_snapshot().to_bytes())
    data[pos % len(data)] = value
    with contextlib.suppress(FormatError):
        Event.from_bytes(bytes(data))
