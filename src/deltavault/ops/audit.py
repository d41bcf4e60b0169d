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
from deltavault.ledger.note import parse_vkey
from deltavault.ledger.state import apply_event
from deltavault.ledger.tiles import CHECKPOINT_KEY
from deltavault.ledger.verify import VerifyResult, verify_log
from deltavault.repo.layout import pack_key, packlist_key, snapshot_key
from deltavault.repo.objects import RepositoryObjects
from deltavault.repo.snapshot import packlist_root
from deltavault.store.base import Store


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
        config = json.loads(RepositoryObjects(store).read_config())
        origin = config["ledger"]["origin"]
    except (ObjectNotFound, ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None
    return origin if isinstance(origin, str) else None


def _hash_matches(objects: RepositoryObjects, key: str, expected_hex: str, what: str,
                  out: list[str]) -> bool:
    try:
        data = objects.get(key)
    except ObjectNotFound:
        out.append(f"{what} {key} is missing")
        return False
    if hashlib.sha256(data).hexdigest() != expected_hex:
        out.append(f"{what} {key} does not match its SHA-256 name (changed or corrupt)")
        return False
    return True


def _audit_snapshot(objects: RepositoryObjects, sid: str, event: Event, report: AuditReport,
                    seen: set[str]) -> None:
    report.snapshots_checked += 1
    _hash_matches(objects, snapshot_key(sid), sid, "snapshot", report.problems)
    listkey = packlist_key(sid)
    try:
        ids = objects.read_packlist(sid)
    except ObjectNotFound:
        report.problems.append(f"pack list {listkey} is missing")
        return
    except FormatError as exc:
        report.problems.append(f"pack list {listkey}: {exc}")
        return
    if packlist_root(ids) != event.fields["packs_root"]:
        report.problems.append(f"pack list {listkey} does not match the ledger's packs_root")
    if len(ids) != event.fields["packs_count"]:
        report.problems.append(
            f"pack list {listkey} names {len(ids)} packs, the ledger says "
            f"{event.fields['packs_count']}"
        )
    for pid in ids:
        if pid in seen:
            continue
        seen.add(pid)
        report.packs_checked += 1
        _hash_matches(objects, pack_key(pid), pid, "pack", report.problems)


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
    live: dict[str, Event] = {}
    for index in range(ledger.size):
        try:
            event = Event.from_bytes(ledger.entry(index))
        except (FormatError, LedgerError) as exc:
            report.problems.append(f"ledger entry {index}: {exc}")
            continue
        report.events += 1
        apply_event(live, event)
    seen: set[str] = set()
    objects = RepositoryObjects(store)
    for sid, event in live.items():
        _audit_snapshot(objects, sid, event, report, seen)
    return report


def checkpoint_origin(store: Store) -> str | None:
    try:
        first = store.get(CHECKPOINT_KEY).split(b"\n", 1)[0]
        return first.decode("utf-8") or None
    except (ObjectNotFound, UnicodeDecodeError):
        return None
