"""Is the repository being backed up? Facts from the signed ledger, for people and alerts.

One pass over the log (:class:`LedgerFacts`, incremental, so a server can fold
in only the new entries on each scrape) gives every live ``snapshot`` event
(committed and not forgotten, as :func:`~deltavault.ledger.state.apply_event`
decides everywhere) and the ``check`` events. Nothing here needs the
repository key except the snapshot paths: with the key, ``deltavault
status`` groups snapshots by host *and* paths (decrypting the snapshot
objects); without it, ``serve``'s ``/metrics`` groups them by host only,
because snapshot events carry the host but, by design, no file names.

``audit`` cannot appear: it runs without the key, so it cannot sign a
ledger entry and leaves no trace in the repository. What is reported is the
last ``check`` that passed, and the last that passed with ``--read-data``
(which re-hashes every pack as ``audit`` does, and decrypts every blob).
"""

from __future__ import annotations

import json
import threading
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from deltavault.errors import DeltavaultError, FormatError, LedgerError
from deltavault.ledger.events import Event
from deltavault.ledger.log import Ledger
from deltavault.ledger.state import apply_event
from deltavault.ops.prometheus import Gauge
from deltavault.repo.repository import Repository
from deltavault.repo.snapshot import parse_time
from deltavault.store.base import Store

_BATCH = 4096


@dataclass(frozen=True)
class CheckSeen:
    """One ``check`` event: where it is in the log and what it found."""

    index: int
    time: str
    ok: bool
    read_data: bool
    errors: int

    def to_dict(self, now: datetime) -> dict[str, Any]:
        return {"index": self.index, "time": self.time, "ok": self.ok,
                "read_data": self.read_data, "errors": self.errors,
                "age_s": round((now - parse_time(self.time)).total_seconds(), 3)}


@dataclass
class LedgerFacts:
    """What the log says, folded entry by entry (``size`` entries so far)."""

    size: int = 0
    live: dict[str, Event] = field(default_factory=dict)
    #: current tags of each live snapshot (``tag`` events re-tag under a new id)
    tags: dict[str, list[str]] = field(default_factory=dict)
    last_check: CheckSeen | None = None
    last_check_ok: CheckSeen | None = None
    last_check_ok_read_data: CheckSeen | None = None

    def fold(self, index: int, event: Event) -> None:
        """Account for entry ``index`` (entries must come in order)."""
        apply_event(self.live, event)
        f = event.fields
        if event.type == "snapshot":
            self.tags[f["id"]] = sorted(f["tags"])
        elif event.type == "tag" and f.get("snapshot") in self.tags:
            old = set(self.tags.pop(f["snapshot"]))
            new_id = f.get("new_id")
            if isinstance(new_id, str) and new_id in self.live:
                add = {t for t in f["add"] if isinstance(t, str)}
                remove = {t for t in f["remove"] if isinstance(t, str)}
                self.tags[new_id] = sorted((old - remove) | add)
        elif event.type == "forget":
            self.tags = {sid: t for sid, t in self.tags.items() if sid in self.live}
        if event.type == "check":
            seen = CheckSeen(index, event.time, bool(event.fields.get("ok")),
                             event.fields.get("read_data") is True,
                             int(event.fields.get("errors", 0)))
            self.last_check = seen
            if seen.ok:
                self.last_check_ok = seen
                if seen.read_data:
                    self.last_check_ok_read_data = seen
        self.size = index + 1

    def check_dict(self, now: datetime) -> dict[str, Any]:
        """The check facts as JSON (None where never seen)."""
        return {name: seen.to_dict(now) if seen else None for name, seen in (
            ("last", self.last_check), ("last_ok", self.last_check_ok),
            ("last_ok_read_data", self.last_check_ok_read_data))}


def scan(ledger: Ledger, facts: LedgerFacts | None = None) -> LedgerFacts:
    """Fold the entries of ``ledger`` not yet in ``facts`` (all of them by default).

    The caller refreshes ``ledger`` first; its checkpoint was verified (and,
    for a ledger object that saw an older one, proven consistent with it), so
    the entries already folded are a prefix of the ones now signed.

    Raises:
        LedgerError: an entry is not a valid event.
    """
    facts = facts or LedgerFacts()
    size = ledger.size
    for start in range(facts.size, size, _BATCH):
        for offset, raw in enumerate(ledger.entries(start, min(size, start + _BATCH))):
            try:
                event = Event.from_bytes(raw)
            except FormatError as exc:
                raise LedgerError(f"ledger entry {start + offset}: {exc}") from exc
            facts.fold(start + offset, event)
    return facts


# --- per host and paths ---------------------------------------------------------


@dataclass
class GroupStatus:
    """The snapshots of one host (and, with the key, one set of paths)."""

    host: str
    paths: list[str] | None
    snapshots: int
    last_id: str
    last_time: str
    last_type: str
    last_tags: list[str]
    bytes_added: int
    age_s: float = 0.0
    stale: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "paths": self.paths, "snapshots": self.snapshots,
                "age_s": round(self.age_s, 3), "stale": self.stale,
                "last": {"id": self.last_id, "time": self.last_time, "type": self.last_type,
                         "tags": self.last_tags, "bytes_added": self.bytes_added}}


@dataclass
class RepositoryStatus:
    """Everything ``deltavault status`` prints."""

    now: datetime
    ledger_size: int
    ledger_root: str
    facts: LedgerFacts
    groups: list[GroupStatus]
    max_age_s: float | None = None

    @property
    def stale(self) -> list[GroupStatus]:
        """Groups older than ``max_age_s``."""
        return [g for g in self.groups if g.stale]

    @property
    def ok(self) -> bool:
        """No limit set, or every group within it (and at least one group)."""
        return self.max_age_s is None or (bool(self.groups) and not self.stale)

    def to_dict(self) -> dict[str, Any]:
        return {"now": self.now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "ok": self.ok,
                "max_age_s": self.max_age_s,
                "ledger": {"size": self.ledger_size, "root": self.ledger_root},
                "check": self.facts.check_dict(self.now),
                "groups": [g.to_dict() for g in self.groups]}


def _group(host: str, paths: list[str] | None, members: list[tuple[str, Event]],
           facts: LedgerFacts) -> GroupStatus:
    """``members``: (live snapshot id, the event that committed its content)."""
    sid, newest = max(members, key=lambda m: (parse_time(m[1].fields["snapshot_time"]), m[0]))
    added = newest.fields["summary"].get("bytes_added", 0)
    return GroupStatus(host=host, paths=paths, snapshots=len(members), last_id=sid,
                       last_time=newest.fields["snapshot_time"],
                       last_type=newest.fields["snapshot_type"],
                       last_tags=facts.tags.get(sid, []),
                       bytes_added=added if isinstance(added, int) else 0)


def _finish(groups: list[GroupStatus], now: datetime, max_age_s: float | None) -> None:
    for g in groups:
        g.age_s = (now - parse_time(g.last_time)).total_seconds()
        g.stale = max_age_s is not None and g.age_s > max_age_s
    groups.sort(key=lambda g: (g.host, g.paths or []))


def repository_status(repo: Repository, *, max_age_s: float | None = None,
                      now: datetime | None = None) -> RepositoryStatus:
    """Status per host and paths (the snapshot objects are decrypted for their paths)."""
    now = now or datetime.now(UTC)
    ledger = repo.ledger
    ledger.refresh()
    facts = scan(ledger)
    stored = set(repo.snapshot_ids())
    by_group: dict[tuple[str, tuple[str, ...] | None], list[tuple[str, Event]]] = {}
    for sid, event in facts.live.items():
        if sid not in stored:
            continue  # committed but its object is gone: check reports it
        try:
            paths: tuple[str, ...] | None = tuple(sorted(repo.load_snapshot(sid).paths))
        except DeltavaultError as exc:
            # still counts for its host; check names the damage
            warnings.warn(f"snapshot {sid[:12]} is unreadable ({exc}); "
                          "counted for its host without paths", stacklevel=2)
            paths = None
        by_group.setdefault((event.fields["hostname"], paths), []).append((sid, event))
    groups = [_group(host, list(paths) if paths is not None else None, members, facts)
              for (host, paths), members in by_group.items()]
    _finish(groups, now, max_age_s)
    return RepositoryStatus(now, ledger.size, ledger.root.hex(), facts, groups, max_age_s)


def keyless_status(ledger: Ledger, facts: LedgerFacts, *,
                   now: datetime | None = None) -> RepositoryStatus:
    """Status per host from the log alone (no key: paths are not known)."""
    now = now or datetime.now(UTC)
    by_host: dict[str, list[tuple[str, Event]]] = {}
    for sid, event in facts.live.items():
        by_host.setdefault(event.fields["hostname"], []).append((sid, event))
    groups = [_group(host, None, members, facts) for host, members in by_host.items()]
    _finish(groups, now, None)
    return RepositoryStatus(now, ledger.size, ledger.root.hex(), facts, groups)


# --- gauges ---------------------------------------------------------------------


def status_gauges(status: RepositoryStatus) -> list[Gauge]:
    """The repository gauges (``serve``'s ``/metrics``; labels ``host`` and, keyed, ``paths``)."""
    def labels(g: GroupStatus) -> dict[str, str]:
        out = {"host": g.host}
        if g.paths is not None:
            out["paths"] = " ".join(g.paths)
        return out

    count = Gauge("deltavault_snapshots", "Live snapshots (committed, not forgotten).")
    last = Gauge("deltavault_last_snapshot_timestamp_seconds",
                 "Time of the newest snapshot, Unix seconds.")
    kind = Gauge("deltavault_last_snapshot_type",
                 "Type of the newest snapshot: 1 for its type, 0 for the others.")
    added = Gauge("deltavault_last_snapshot_added_bytes",
                  "Bytes the newest snapshot added to the repository.")
    for g in status.groups:
        count.set(g.snapshots, labels(g))
        last.set(parse_time(g.last_time).timestamp(), labels(g))
        for t in ("full", "diff", "incr"):
            kind.set(1 if g.last_type == t else 0, {**labels(g), "type": t})
        added.set(g.bytes_added, labels(g))
    size = Gauge("deltavault_ledger_size", "Entries in the signed ledger checkpoint.")
    size.set(status.ledger_size)
    check = Gauge("deltavault_check_last_success_timestamp_seconds",
                  "Time of the last check that passed (level=read_data: with --read-data).")
    facts = status.facts
    for level, seen in (("structure", facts.last_check_ok),
                        ("read_data", facts.last_check_ok_read_data)):
        if seen is not None:
            check.set(parse_time(seen.time).timestamp(), {"level": level})
    families = [count, last, kind, added, size, check]
    if facts.last_check is not None:
        families.append(Gauge("deltavault_check_last_ok",
                              "1 if the newest check event passed, else 0.")
                        .set(1 if facts.last_check.ok else 0))
    return families


# --- keyless, kept across scrapes --------------------------------------------------


def config_ledger_identity(store: Store) -> tuple[str, str] | None:
    """The ledger origin and verifier key named in the plaintext ``config``.

    Trusting them is enough for a dashboard (the checkpoint must still verify
    under that key); an auditor gets the key out of band (``audit --key``).
    """
    try:
        ledger = json.loads(store.get("config"))["ledger"]
        origin, vkey = ledger["origin"], ledger["verifier_key"]
    except (DeltavaultError, ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None
    if isinstance(origin, str) and isinstance(vkey, str) and origin and vkey:
        return origin, vkey
    return None


class LedgerWatch:
    """Keyless status of a store, folding only new entries on each call (for ``serve``).

    The :class:`Ledger` object is kept, so each new checkpoint is verified
    against the one seen before (a rollback or fork is a
    :class:`~deltavault.errors.LedgerError`, reported as ``verified 0``).
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._ledger: Ledger | None = None
        self._facts = LedgerFacts()
        self._lock = threading.Lock()

    def gauges(self) -> list[Gauge]:
        """The repository gauges, plus ``deltavault_ledger_verified``."""
        verified = Gauge("deltavault_ledger_verified",
                         "1 if the ledger checkpoint verified (signature, no rollback or fork).")
        with self._lock:
            try:
                if self._ledger is None:
                    identity = config_ledger_identity(self.store)
                    if identity is None:
                        return []  # not (yet) a repository: nothing to report
                    self._ledger = Ledger.open(self.store, identity[0], verifier=identity[1])
                else:
                    self._ledger.refresh()
                self._facts = scan(self._ledger, self._facts)
            except DeltavaultError:
                return [verified.set(0)]
            status = keyless_status(self._ledger, self._facts)
        return [verified.set(1), *status_gauges(status)]

