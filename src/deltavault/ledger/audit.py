"""Keyless audit: the ledger, every committed snapshot and every pack it needs.

Needs read access to the store and the ledger's verifier key, never the
repository password: snapshots and packs are named by the SHA-256 of their
stored bytes, and pack lists are plaintext (docs/format.md §1, §9). For every
``snapshot`` event it checks that ``snapshots/<id>`` exists and hashes to its
id, that ``packlists/<id>`` parses and its Merkle root equals the event's
``packs_root`` and count, and that every listed pack exists and hashes to
its name.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from deltavault.errors import FormatError, LedgerError, ObjectNotFound
from deltavault.ledger.events import Event
from deltavault.ledger.log import Ledger
from deltavault.ledger.merkle import root_of_entries
from deltavault.ledger.note import parse_vkey
from deltavault.ledger.verify import VerifyResult, verify_log
from deltavault.store.base import Store

PACKLIST_HEADER = b"deltavault packlist v1\n"
MAX_PACKLIST_BYTES = 1 << 30


def parse_packlist(data: bytes) -> list[bytes]:
    """Raw pack ids of a pack list (docs/format.md §9).

    Raises:
        FormatError: bad header, malformed line, unsorted or duplicate ids.
    """
    if len(data) > MAX_PACKLIST_BYTES:
        raise FormatError("pack list is too large")
    if not data.startswith(PACKLIST_HEADER):
        raise FormatError("pack list does not start with 'deltavault packlist v1'")
    body = data[len(PACKLIST_HEADER) :]
    if body and not body.endswith(b"\n"):
        raise FormatError("pack list does not end with a newline")
    ids: list[bytes] = []
    for line in body.split(b"\n")[:-1] if body else []:
        if len(line) != 64 or not all(c in b"0123456789abcdef" for c in line):
            raise FormatError("pack list line is not 64 lowercase hex digits")
        raw = bytes.fromhex(line.decode("ascii"))
        if ids and raw <= ids[-1]:
            raise FormatError("pack list is not sorted ascending without duplicates")
        ids.append(raw)
    return ids


def packs_root(pack_ids: list[bytes]) -> bytes:
    """RFC 6962 root over raw pack ids (SHA-256 of nothing when empty)."""
    return root_of_entries(pack_ids)


def pack_key(pack_id: str) -> str:
    """Store key of a pack: ``data/<first two hex>/<id>``."""
    return f"data/{pack_id[:2]}/{pack_id}"


@dataclass
class AuditReport:
    """Everything the audit checked and every discrepancy it found."""

    ledger: VerifyResult
    origin: str = ""
    events: int = 0
    snapshots_checked: int = 0
    packs_checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.ledger.ok and not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "origin": self.origin, "ledger": self.ledger.to_dict(),
                "events": self.events, "snapshots_checked": self.snapshots_checked,
                "packs_checked": self.packs_checked, "problems": self.problems}  # fmt: skip


def config_origin(store: Store) -> str | None:
    """The ledger origin named in the plaintext ``config``, if readable."""
    try:
        config = json.loads(store.get("config"))
        origin = config["ledger"]["origin"]
    except (ObjectNotFound, ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None
    return origin if isinstance(origin, str) else None


def _hash_matches(store: Store, key: str, expected_hex: str, what: str, out: list[str]) -> bool:
    try:
        data = store.get(key)
    except ObjectNotFound:
        out.append(f"{what} {key} is missing")
        return False
    if hashlib.sha256(data).hexdigest() != expected_hex:
        out.append(f"{what} {key} does not match its SHA-256 name (changed or corrupt)")
        return False
    return True


def _audit_snapshot(store: Store, event: Event, report: AuditReport, seen: set[str]) -> None:
    sid = event.fields["id"]
    report.snapshots_checked += 1
    _hash_matches(store, f"snapshots/{sid}", sid, "snapshot", report.problems)
    try:
        ids = parse_packlist(store.get(f"packlists/{sid}"))
    except ObjectNotFound:
        report.problems.append(f"pack list packlists/{sid} is missing")
        return
    except FormatError as exc:
        report.problems.append(f"pack list packlists/{sid}: {exc}")
        return
    if packs_root(ids).hex() != event.fields["packs_root"]:
        report.problems.append(f"pack list packlists/{sid} does not match the ledger's packs_root")
    if len(ids) != event.fields["packs_count"]:
        report.problems.append(
            f"pack list packlists/{sid} names {len(ids)} packs, the ledger says "
            f"{event.fields['packs_count']}"
        )
    for raw in ids:
        pid = raw.hex()
        if pid in seen:
            continue
        seen.add(pid)
        report.packs_checked += 1
        _hash_matches(store, pack_key(pid), pid, "pack", report.problems)


def audit(store: Store, verifier: str, origin: str | None = None) -> AuditReport:
    """Audit a repository without its key.

    Args:
        store: the repository's store.
        verifier: the ledger's verifier key string.
        origin: expected log origin; default: from ``config``, else the
            checkpoint's own origin line.
    """
    origin = origin or config_origin(store) or checkpoint_origin(store) or ""
    if not origin:
        result = VerifyResult(problems=["the repository has no ledger checkpoint"])
        return AuditReport(result, origin)
    ledger = Ledger(store, origin, None, parse_vkey(verifier))
    result = verify_log(ledger)
    report = AuditReport(result, origin)
    if not result.signature:
        return report
    try:
        ledger.refresh()
    except (FormatError, LedgerError) as exc:
        report.problems.append(f"checkpoint: {exc}")
        return report
    seen: set[str] = set()
    for index in range(ledger.size):
        try:
            event = Event.from_bytes(ledger.entry(index))
        except (FormatError, LedgerError) as exc:
            report.problems.append(f"ledger entry {index}: {exc}")
            continue
        report.events += 1
        if event.type == "snapshot":
            _audit_snapshot(store, event, report, seen)
    return report


def checkpoint_origin(store: Store) -> str | None:
    try:
        first = store.get("ledger/checkpoint").split(b"\n", 1)[0]
        return first.decode("utf-8") or None
    except (ObjectNotFound, UnicodeDecodeError):
        return None
