"""Private event fields: committed with a salted hash, sealed for the password holder."""

from __future__ import annotations

import pytest
from hypothesis import given

from deltavault.errors import IntegrityError
from deltavault.ledger.events import Event, snapshot_event
from deltavault.ledger.privacy import protect, reveal, verify_disclosure
from tests.support.hostile import HOSTILE, decode_or_reject, mutations
from tests.support.ledger import AesGcmSealer


def test_restore_target_is_committed_and_revealable() -> None:
    sealer = AesGcmSealer()
    event = Event.new("restore", snapshot="a" * 64, target="/srv/trading/secret-desk",
                      source="sqlite")
    stored = protect(event, sealer)
    raw = stored.to_bytes()
    assert b"secret-desk" not in raw and b'"source":"sqlite"' in raw
    again = Event.from_bytes(raw)  # still a valid version-1 event
    assert again.fields["target"] == ""
    opened = reveal(again, sealer)
    value, salt = opened["target"]
    assert value == "/srv/trading/secret-desk"
    assert verify_disclosure(again, "target", value, salt)
    assert not verify_disclosure(again, "target", "/srv/other", salt)


def test_reconcile_sources_are_committed_and_snapshot_events_kept_whole() -> None:
    sealer = AesGcmSealer()
    event = Event.new("reconcile", ok=False, differences=2, left="postgresql://risk-db/positions",
                      right="snapshot:abc", counts={"positions": 3})
    raw = protect(event, sealer).to_bytes()
    assert b"risk-db" not in raw and b"left" not in raw.replace(b"left_commitment", b"")
    assert reveal(Event.from_bytes(raw), sealer)["left"][0] == "postgresql://risk-db/positions"
    snap = snapshot_event(snapshot_id="a" * 64, snapshot_type="full", parent=None, base=None,
                          snapshot_time="2026-12-01T00:00:00Z", hostname="desk-7",
                          tags=["known-good"], tree="b" * 64, summary={}, packs_root="c" * 64,
                          packs_count=1)
    # host and tags stay in clear: keyless monitoring groups by host, looks for known-good
    assert protect(snap, sealer) == snap


def test_old_events_and_events_without_private_fields_are_unchanged() -> None:
    sealer = AesGcmSealer()
    old = Event.new("restore", snapshot="a" * 64, target="/old/clear/path")
    assert reveal(old, sealer) == {}
    check = Event.new("check", ok=True, errors=0)
    assert protect(check, sealer) == check


def test_a_wrong_key_or_a_swapped_seal_is_detected() -> None:
    mine, other = AesGcmSealer(), AesGcmSealer()
    a = protect(Event.new("rollback", snapshot="a" * 64, target="/a"), mine)
    b = protect(Event.new("rollback", snapshot="a" * 64, target="/b"), mine)
    with pytest.raises(IntegrityError):
        reveal(a, other)
    swapped = Event("rollback", a.time, {**a.fields, "private": b.fields["private"]})
    with pytest.raises(IntegrityError, match="does not match its commitment"):
        reveal(swapped, mine)


SEALER = AesGcmSealer(b"s" * 32)
SEALED = protect(Event.new("restore", snapshot="a" * 64, target="/t"), SEALER)


@HOSTILE
@given(mutations(str(SEALED.fields["private"]).encode()))
def test_hostile_private_fields_only_raise_integrity_errors(data: bytes) -> None:
    event = Event("restore", SEALED.time,
                  {**SEALED.fields, "private": data.decode("latin-1")})
    decode_or_reject(lambda _: reveal(event, SEALER), data)
