"""Journal records: commit, read, disclose one, verify offline, refuse tampering."""

from __future__ import annotations

from pathlib import Path

import pytest

from deltavault.errors import IntegrityError, ProofError
from deltavault.ledger.journal import Journal
from deltavault.ledger.log import Ledger
from deltavault.ledger.proof import commitment, parse_proof, verify_proof
from deltavault.ledger.witness import cosign
from deltavault.store.local import LocalStore
from tests.support.ledger import AesGcmSealer

RECORDS = [
    {"kind": "order", "id": "O-1", "qty": 100, "px": "101.25"},
    {"kind": "fill", "id": "F-7", "order": "O-1", "qty": 40},
    {"kind": "config", "key": "risk.limit", "value": "5e6"},
]


def test_append_read_prove_verify(ledger: Ledger, sealer: AesGcmSealer) -> None:
    journal = Journal(ledger, sealer)
    ledger.append([b"unrelated"])
    idx = journal.append(RECORDS)
    assert idx == [1, 2, 3]
    record, salt = journal.read(2)
    assert record == RECORDS[1] and len(salt) == 32
    text = journal.prove(2)
    result = verify_proof(text, ledger.verifier.vkey())
    assert result.record == RECORDS[1]
    assert "record and salt match the journal commitment" in result.checks
    # Only the one record is disclosed.
    disclosed = (parse_proof(text).extra or b"").decode()
    assert "F-7" in disclosed and "risk.limit" not in disclosed and "101.25" not in disclosed
    assert parse_proof(text).index == 2


def test_read_batch_opens_a_batch_once_and_refuses_tampering(
        ledger: Ledger, sealer: AesGcmSealer, store: LocalStore) -> None:
    journal = Journal(ledger, sealer)
    journal.append(RECORDS)
    oid = str(_entry_fields(ledger, 0)["object"])
    batch = journal.read_batch(oid)
    assert [r for r, _salt in batch] == RECORDS
    assert [s for _r, s in batch][1] == journal.read(1)[1]
    assert journal.read_batch(oid, canonical=False) == batch
    assert journal.read_many([2, 0, 2]) == [batch[2], batch[0], batch[2]]
    sealed = store.get(f"journal/{oid}")
    store.delete(f"journal/{oid}")
    store.put(f"journal/{oid}", sealed[:-1] + bytes([sealed[-1] ^ 1]))
    with pytest.raises(IntegrityError, match="SHA-256"):
        journal.read_batch(oid)


def _entry_fields(ledger: Ledger, index: int) -> dict[str, object]:
    import json

    return dict(json.loads(ledger.entry(index)))


def test_tampered_proof_refused(ledger: Ledger, sealer: AesGcmSealer) -> None:
    journal = Journal(ledger, sealer)
    journal.append(RECORDS)
    text = journal.prove(0)
    vkey = ledger.verifier.vkey()
    pf = parse_proof(text)
    from deltavault.ledger.proof import Disclosure, ProofFile

    d = Disclosure.from_bytes(pf.extra or b"")
    changed = Disclosure(d.entry, {**RECORDS[0], "qty": 1000}, d.salt).to_bytes()
    with pytest.raises(ProofError, match="commitment"):
        verify_proof(ProofFile(pf.index, pf.hashes, pf.checkpoint, changed).to_text(), vkey)
    with pytest.raises(ProofError):
        verify_proof(ProofFile(pf.index + 1, pf.hashes, pf.checkpoint, pf.extra).to_text(), vkey)
    with pytest.raises(ProofError):
        verify_proof(text.replace("index 0", "index 1"), vkey)
    with pytest.raises(ProofError):
        verify_proof(text, "other+00000000+AQ" + "A" * 42 + "=")


def test_tampered_journal_object_refused(
    ledger: Ledger, store: LocalStore, sealer: AesGcmSealer
) -> None:
    journal = Journal(ledger, sealer)
    journal.append(RECORDS)
    info = next(iter(store.list("journal/")))
    path = Path(store.location()) / info.key
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="SHA-256"):
        journal.read(0)
    with pytest.raises(IntegrityError):
        Journal(ledger, AesGcmSealer()).read(1)


def test_wrong_key_refused(ledger: Ledger, sealer: AesGcmSealer) -> None:
    Journal(ledger, sealer).append(RECORDS[:1])
    with pytest.raises(IntegrityError):
        Journal(ledger, AesGcmSealer()).read(0)


def test_proof_with_witness(ledger: Ledger, sealer: AesGcmSealer, witness, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    journal = Journal(ledger, sealer)
    journal.append(RECORDS)
    cosign(ledger.store, ledger.verifier, witness, tmp_path / "w", now=1_700_000_000)
    ledger.refresh()
    text = journal.prove(1)
    r = verify_proof(text, ledger.verifier.vkey(), witnesses=[witness.verifier],
                     required_witnesses=[witness.name])  # fmt: skip
    assert r.witnesses == {witness.name: 1_700_000_000}


def test_batch_and_entries_are_the_canonical_forms(ledger: Ledger, sealer: AesGcmSealer) -> None:
    """The batch object and the entries are spliced from templates; they must be
    byte for byte what canonicalising the whole batch and each event writes."""
    from deltavault.ledger.events import Event, canonical_json
    from deltavault.ledger.names import JOURNAL_PREFIX

    records = [*RECORDS, {"px": 100.0, "note": "line\nbreak \u00e9", "n": None}]
    journal = Journal(ledger, sealer)
    idx = journal.append(records, time="2026-12-03T10:00:00.5Z")
    first = Event.from_bytes(ledger.entry(idx[0]))
    oid = first.fields["object"]
    batch = journal.read_batch(oid)  # canonical=True: re-encoded and compared
    assert [r for r, _ in batch] == records
    plaintext = sealer.open(b"dv1:journal", ledger.store.get(JOURNAL_PREFIX + oid))
    items = [{"record": r, "salt": s.hex()} for r, s in batch]
    assert plaintext == canonical_json({"records": items, "v": 1})
    for slot, index in enumerate(idx):
        record, salt = batch[slot]
        expected = Event.new("journal", time="2026-12-03T10:00:00.5Z",
                             commitment=commitment(salt, record).hex(), object=oid, slot=slot)
        assert ledger.entry(index) == expected.to_bytes()


def test_bad_time_refused_before_anything_is_written(ledger: Ledger, sealer: AesGcmSealer) -> None:
    from deltavault.errors import UserError
    from deltavault.ledger.names import JOURNAL_PREFIX

    with pytest.raises(UserError, match="RFC 3339"):
        Journal(ledger, sealer).append(RECORDS, time="yesterday")
    assert ledger.size == 0 and not list(ledger.store.list(JOURNAL_PREFIX))
