"""Keyless audit of a fake repository, and the ledger commands run as a user would
(the installed ``deltavault`` script in a subprocess)."""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deltavault.errors import FormatError, LedgerError
from deltavault.ledger.events import Event, snapshot_event
from deltavault.ledger.journal import Journal
from deltavault.ledger.log import Ledger
from deltavault.ledger.note import NoteSigner
from deltavault.ledger.proof import parse_proof
from deltavault.ops.audit import audit
from deltavault.repo.layout import pack_key
from deltavault.repo.snapshot import PACKLIST_MAGIC as PACKLIST_HEADER
from deltavault.repo.snapshot import decode_packlist, packlist_root
from deltavault.store.local import LocalStore
from tests.support.cli import run_cli
from tests.support.ledger import AesGcmSealer


def make_repo(store: LocalStore, ledger: Ledger) -> list[str]:
    """Two packs, a snapshot object, its pack list and its ledger event."""
    packs = [b"pack one bytes", b"pack two bytes"]
    ids = sorted(hashlib.sha256(p).hexdigest() for p in packs)
    for p in packs:
        store.put(pack_key(hashlib.sha256(p).hexdigest()), p)
    snap = b"encrypted snapshot bytes"
    sid = hashlib.sha256(snap).hexdigest()
    store.put(f"snapshots/{sid}", snap)
    store.put(f"packlists/{sid}", PACKLIST_HEADER + "".join(i + "\n" for i in ids).encode())
    root = packlist_root(ids)
    event = snapshot_event(
        snapshot_id=sid, snapshot_type="full", parent=None, base=None,
        snapshot_time="2026-11-23T09:00:00.000000Z", hostname="trader-1", tags=[], tree="00" * 32,
        summary={"files_new": 1}, packs_root=root, packs_count=2,
    )  # fmt: skip
    ledger.append([event.to_bytes(), Event.new("check", ok=True, errors=0).to_bytes()])
    return ids


def test_audit_ok_then_pack_deleted_and_flipped(store: LocalStore, ledger: Ledger) -> None:
    ids = make_repo(store, ledger)
    report = audit(store, ledger.verifier.vkey())
    assert report.ok, report.problems
    assert (report.snapshots_checked, report.packs_checked, report.events) == (1, 2, 2)
    path = Path(store.location()) / pack_key(ids[0])
    path.chmod(0o644)
    path.write_bytes(b"changed")
    store.delete(pack_key(ids[1]))
    report = audit(store, ledger.verifier.vkey())
    assert not report.ok
    text = " ".join(report.problems)
    assert f"pack {pack_key(ids[0])} does not match its SHA-256 name" in text
    assert f"pack {pack_key(ids[1])} is missing" in text


def test_packlist_parser() -> None:
    a, b = "11" * 32, "22" * 32
    assert decode_packlist(PACKLIST_HEADER + f"{a}\n{b}\n".encode()) == [a, b]
    assert packlist_root([]) == hashlib.sha256(b"").hexdigest()
    for bad in [f"{b}\n{a}\n", f"{a}\n{a}\n", f"{a}", "XY\n", ("ab" * 32).upper() + "\n"]:
        with pytest.raises(FormatError):
            decode_packlist(PACKLIST_HEADER + bad.encode())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_packlist_and_proof_fuzz(data: bytes) -> None:
    for parse in (decode_packlist, lambda d: decode_packlist(PACKLIST_HEADER + d), parse_proof):
        with contextlib.suppress(FormatError, LedgerError):
            parse(data)


def test_cli_verify_audit_cosign_proof(
    store: LocalStore, ledger: Ledger, witness: NoteSigner, tmp_path: Path
) -> None:
    make_repo(store, ledger)
    repo, vkey = store.location(), ledger.verifier.vkey()
    r = run_cli("ledger", "verify", "--repo", repo, "--key", vkey, "--json", env={})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["size"] == 2
    r = run_cli("audit", "--repo", repo, "--key", vkey, env={})
    assert r.returncode == 0 and "audit passed" in r.stdout, r.stderr
    # Require a witness that has not cosigned yet: fails with one line.
    wkey = witness.verifier.vkey()
    r = run_cli("ledger", "verify", "--repo", repo, "--key", vkey, "--require-witness", wkey,
                env={})
    assert r.returncode == LedgerError.exit_code
    assert "lacks a valid cosignature of witness" in r.stderr
    keyfile = tmp_path / "witness.key"
    keyfile.write_text(witness.skey())
    r = run_cli("ledger", "cosign", "--repo", repo, "--witness-key", str(keyfile),
                "--state", str(tmp_path / "wstate"), "--key", vkey, env={})  # fmt: skip
    assert r.returncode == 0, r.stderr
    r = run_cli("ledger", "verify", "--repo", repo, "--key", vkey, "--require-witness", wkey,
                env={})
    assert r.returncode == 0, r.stderr
    # Save a checkpoint, append more, check consistency.
    old = tmp_path / "old.checkpoint"
    old.write_bytes(store.get("ledger/checkpoint"))
    journal = Journal(ledger, AesGcmSealer())
    journal.append([{"trade": 1}, {"trade": 2}])
    r = run_cli("ledger", "consistency", str(old), "--repo", repo, "--key", vkey, env={})
    assert r.returncode == 0 and "consistent" in r.stdout, r.stderr
    proof = tmp_path / "r.tlog-proof"
    proof.write_text(journal.prove(3))
    r = run_cli("ledger", "verify-proof", str(proof), "--key", vkey, "--json", env={})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["record"] == {"trade": 2}
    proof.write_text(journal.prove(3).replace("index 3", "index 2"))
    r = run_cli("ledger", "verify-proof", str(proof), "--key", vkey, env={})
    assert r.returncode == LedgerError.exit_code and "error:" in r.stderr
    r = run_cli("ledger", "verify", "--repo", str(tmp_path / "nope"), "--key", vkey, env={})
    assert r.returncode == 10 and "no repository" in r.stderr
