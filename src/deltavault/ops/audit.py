"""Keyless audit: the ledger, every committed snapshot and every pack it needs.

Needs read access to the store and the ledger's verifier key, never the
repository password: snapshots and packs are named by the SHA-256 of their
stored bytes, and pack lists are plaintext (docs/format.md §1, §9). For every
live snapshot of the verified log it checks that ``snapshots/<id>`` exists
and hashes to its id, that ``packlists/<id>`` parses and its Merkle root
equals the event's ``packs_root`` and count, and that every listed pack
exists and hashes to its name. Snapshots whose claimed times the ledger does
not believe (docs/ledger.md §9.3) are listed as time flags.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from deltavault.errors import FormatError, ObjectNotFound, RepositoryError
from deltavault.ledger.client import witness_time_us
from deltavault.ledger.events import Event
from deltavault.ledger.log import Ledger
from deltavault.ledger.note import NoteVerifier, parse_vkey
from deltavault.ledger.packmoves import apply_moves, resolve
from deltavault.ledger.state import LedgerState, now_us
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
    #: live snapshots whose claimed time the ledger does not believe (a warning)
    time_flags: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.ledger.ok and not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "origin": self.origin, "ledger": self.ledger.to_dict(),
                "events": self.events, "snapshots_checked": self.snapshots_checked,
                "packs_checked": self.packs_checked, "problems": self.problems,
                "time_flags": self.time_flags}  # fmt: skip


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
                    seen: set[str], moves: dict[str, set[str]]) -> None:
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
    for pid in sorted(resolve(moves, ids)):
        if pid in seen:
            continue
        seen.add(pid)
        report.packs_checked += 1
        _hash_matches(objects, pack_key(pid), pid, "pack", report.problems)


def audit(store: Store, verifier: str, origin: str | None = None,
          witnesses: Sequence[NoteVerifier] | None = None) -> AuditReport:
    """Audit a repository without its key.

    Args:
        store: the repository's store.
        verifier: the ledger's verifier key string.
        origin: expected log origin; default: from ``config``, else the
            checkpoint's own origin line.
        witnesses: witness keys whose cosignature times bound ledger times
            (default: ``$DELTAVAULT_WITNESS_KEYS``).
    """
    from deltavault.repo.ledger_link import witness_keys

    origin = origin or config_origin(store) or checkpoint_origin(store) or ""
    if not origin:
        result = VerifyResult(problems=["the repository has no ledger checkpoint"])
        return AuditReport(result, origin)
    ledger = Ledger(store, origin, None, parse_vkey(verifier), verify=False)
    try:
        signed = ledger.refresh()
    except RepositoryError:  # verify_log reports the same failure as a problem
        signed = None
    seen = now_us()
    if signed is not None:
        witnessed = witness_time_us(signed, witness_keys() if witnesses is None else witnesses)
        seen = seen if witnessed is None else min(seen, witnessed)
    state = LedgerState()
    size = ledger.size
    moves: dict[str, set[str]] = {}

    def fold(start: int, entries: list[bytes]) -> None:
        state.add(start, entries, size, seen)
        for raw in entries:  # where prune moved the packs of live pack lists
            if b'"prune-start"' in raw:
                apply_moves(moves, Event.from_bytes(raw))

    result = verify_log(ledger, on_entries=fold if signed is not None else None)
    report = AuditReport(result, origin)
    if not result.ok or signed is None or state.size != size:
        return report  # the fold of a log that does not verify means nothing
    report.events = size
    seen_packs: set[str] = set()
    objects = RepositoryObjects(store)
    for sid, live in state.live.items():
        _audit_snapshot(objects, sid, live.event, report, seen_packs, moves)
        if live.flag:
            report.time_flags.append(f"snapshot {sid[:12]}: {live.flag}")
    return report


def checkpoint_origin(store: Store) -> str | None:
    try:
        first = store.get(CHECKPOINT_KEY).split(b"\n", 1)[0]
        return first.decode("utf-8") or None
    except (ObjectNotFound, UnicodeDecodeError):
        return None
