"""The console's read access to the ledger: an incremental event index, journal, proofs.

One of the two modules of the console that call the engine (with
:mod:`deltavault.ui.engine`). The log is opened read-only with the verifier
key from the (MAC-checked) config, as ``ledger verify`` does; every refresh
verifies the new signed checkpoint and its consistency with the last one
seen (:meth:`Ledger.refresh`), so the index only ever grows on a log that
extends what was indexed. Each entry is parsed once: a log of 100,000
journal records is not re-read per page load. The index is a few flat
arrays (type code, time, journal object and slot per entry), not a list
of event objects.
"""

from __future__ import annotations

import json
import threading
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from deltavault.errors import FormatError, UserError
from deltavault.ledger.events import Event
from deltavault.ledger.journal import Journal, Sealer
from deltavault.ledger.log import Ledger
from deltavault.ledger.note import NoteVerifier, cosignature_time, parse_vkey
from deltavault.ledger.proof import verify_proof
from deltavault.ledger.state import apply_event
from deltavault.ledger.verify import VerifyResult, verify_log
from deltavault.store.base import Store

_STEP = 4096
INVALID = "(invalid entry)"


def parse_time_us(text: str) -> int:
    """RFC 3339 (or a browser's ``datetime-local``, taken as UTC) → µs since the epoch."""
    try:
        t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise UserError(f"not a time: {text[:40]!r} (use 2026-11-20T14:03:00Z)") from exc
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return int(t.timestamp() * 1_000_000)


@dataclass(frozen=True)
class Cosignature:
    """A signature line on the checkpoint other than the log's own."""

    name: str
    key_id: str
    timestamp: int | None  # POSIX seconds, for timestamped (witness) cosignatures
    verified: bool | None  # None: no key for it was given to the console


@dataclass(frozen=True)
class CheckpointView:
    """The current signed checkpoint as the console shows it."""

    origin: str
    size: int
    root: str
    signature_ok: bool
    cosignatures: list[Cosignature]


@dataclass(frozen=True)
class JournalHit:
    """A journal record (its commitment checked) and its leaf index."""

    index: int
    record: dict[str, Any]


@dataclass
class JournalSearch:
    """One page of a journal search and where the next one starts."""

    hits: list[JournalHit] = field(default_factory=list)
    scanned_records: int = 0
    next_cursor: int | None = None  # object position to continue from (None: done)


class LedgerIndex:
    """Every entry's type and time (and journal position), kept in step with the log."""

    def __init__(self, store: Store, origin: str, verifier_key: str, sealer: Sealer, *,
                 witnesses: Sequence[NoteVerifier] = ()) -> None:
        self.witnesses = list(witnesses)
        self._verifier = parse_vkey(verifier_key)
        self.ledger = Ledger(store, origin, None, self._verifier)
        self.journal = Journal(self.ledger, sealer)
        self._lock = threading.RLock()
        self.size = 0
        self.types: list[str] = []
        self._type_code: dict[str, int] = {}
        self._codes = array("B")
        self._times = array("q")
        self._jobj = array("i")
        self._jslot = array("i")
        self.objects: list[str] = []
        self._object_pos: dict[str, int] = {}
        self.live: dict[str, Event] = {}
        self.committed_at: dict[str, int] = {}
        self.last_verify: tuple[float, VerifyResult] | None = None

    # --- keeping up with the log --------------------------------------------------

    def refresh(self) -> int:
        """Verify the current checkpoint and index the entries added since; the new size."""
        with self._lock:
            self.ledger.refresh()
            size = self.ledger.size
            for start in range(self.size, size, _STEP):
                end = min(size, start + _STEP)
                for offset, raw in enumerate(self.ledger.entries(start, end)):
                    self._add(start + offset, raw)
                self.size = end
            return self.size

    def _code(self, etype: str) -> int:
        code = self._type_code.get(etype)
        if code is None:
            if len(self.types) >= 255:
                etype, code = INVALID, self._code(INVALID)
                return code
            code = self._type_code[etype] = len(self.types)
            self.types.append(etype)
        return code

    def _add(self, index: int, raw: bytes) -> None:
        etype, time_us, obj, slot = INVALID, 0, -1, -1
        try:
            fields = json.loads(raw)
            if isinstance(fields, dict) and fields.get("type") == "journal":
                # The bulk of a busy log: only what the index needs is read here;
                # the record itself is parsed and checked when it is shown.
                oid, slot = str(fields["object"]), int(fields["slot"])
                time_us = parse_time_us(str(fields["time"]))
                obj = self._object_pos.setdefault(oid, len(self.objects))
                if obj == len(self.objects):
                    self.objects.append(oid)
                etype = "journal"
            else:
                event = Event.from_bytes(raw)
                etype, time_us = event.type, parse_time_us(event.time)
                before = set(self.live)
                apply_event(self.live, event)
                for sid in set(self.live) - before:
                    self.committed_at[sid] = index
        except (ValueError, KeyError, TypeError, FormatError, UserError, RecursionError):
            etype, obj, slot = INVALID, -1, -1
        self._codes.append(self._code(etype))
        self._times.append(time_us)
        self._jobj.append(obj)
        self._jslot.append(slot)

    # --- checkpoint ---------------------------------------------------------------

    def checkpoint(self) -> CheckpointView | None:
        """The signed checkpoint (its log signature verified by refresh) and cosignatures."""
        with self._lock:
            signed = self.ledger.checkpoint()
        if signed is None:
            return None
        cosigs = []
        for sig in signed.note.signatures:
            if self._verifier.matches(sig):
                continue
            try:
                ts: int | None = cosignature_time(sig)
            except FormatError:
                ts = None
            verified = None
            for w in self.witnesses:
                if w.matches(sig):
                    verified = w.verify(signed.note.text, sig)
            cosigs.append(Cosignature(sig.name, sig.key_id.hex(), ts, verified))
        cp = signed.checkpoint
        return CheckpointView(cp.origin, cp.size, cp.root.hex(), True, cosigs)

    # --- events --------------------------------------------------------------------

    def _arrays(self) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
        n = self.size
        return (np.frombuffer(self._codes, dtype=np.uint8, count=n).copy(),
                np.frombuffer(self._times, dtype=np.int64, count=n).copy())

    def type_counts(self) -> dict[str, int]:
        """Number of entries of each type."""
        with self._lock:
            codes, _ = self._arrays()
        counts = np.bincount(codes, minlength=len(self.types))
        return {t: int(c) for t, c in zip(self.types, counts, strict=False) if c}

    def find_events(self, etype: str = "", since_us: int | None = None,
                    until_us: int | None = None, before: int | None = None,
                    limit: int = 50) -> tuple[list[int], int]:
        """The newest ``limit`` matching indexes below ``before``, and the match count."""
        with self._lock:
            codes, times = self._arrays()
        mask = np.ones(len(codes), dtype=bool)
        if etype:
            code = self._type_code.get(etype)
            if code is None:
                return [], 0
            mask &= codes == code
        if since_us is not None:
            mask &= times >= since_us
        if until_us is not None:
            mask &= times <= until_us
        total = int(mask.sum())
        if before is not None:
            mask[max(0, min(before, len(mask))):] = False
        hits = np.flatnonzero(mask)[-limit:][::-1]
        return [int(i) for i in hits], total

    def entries(self, indexes: Sequence[int]) -> list[tuple[int, Event | None, str]]:
        """(index, event or None, error) for each index, read from the bundles."""
        out: list[tuple[int, Event | None, str]] = []
        with self._lock:
            for i in indexes:
                try:
                    out.append((i, Event.from_bytes(self.ledger.entry(i)), ""))
                except (FormatError, UserError) as exc:
                    out.append((i, None, str(exc)))
        return out

    # --- journal ---------------------------------------------------------------------

    def journal_count(self) -> int:
        """Number of journal records in the log."""
        return self.type_counts().get("journal", 0)

    def record(self, index: int) -> JournalHit:
        """Record ``index``, decrypted and checked against its commitment."""
        if not 0 <= index < self.size:
            raise UserError(f"entry {index} is outside the log of size {self.size}")
        with self._lock:
            record, _salt = self.journal.read(index)
        return JournalHit(index, record)

    def search(self, query: str, cursor: int | None = None, limit: int = 25,
               max_objects: int = 32) -> JournalSearch:
        """Records matching ``field=value`` (or containing a text), newest first.

        Each sealed batch is decrypted once (:meth:`Journal.read_batch`, not
        re-encoded to prove canonical form);
        every hit shown is then read again through :meth:`Journal.read_many`,
        which checks it against its ledger commitment. At most
        ``max_objects`` batches are opened per call; ``next_cursor`` resumes.
        """
        match = _matcher(query)
        with self._lock:
            jobj = np.frombuffer(self._jobj, dtype=np.int32, count=self.size).copy()
            jslot = np.frombuffer(self._jslot, dtype=np.int32, count=self.size).copy()
            objects = list(self.objects)
        pos = len(objects) - 1 if cursor is None else min(cursor, len(objects) - 1)
        out = JournalSearch()
        found: list[int] = []
        opened = 0
        while pos >= 0 and opened < max_objects and len(found) < limit:
            leaves = np.flatnonzero(jobj == pos)
            with self._lock:
                batch = self.journal.read_batch(objects[pos], canonical=False)
            opened += 1
            for leaf in leaves[::-1]:
                slot = int(jslot[leaf])
                if 0 <= slot < len(batch) and match(batch[slot][0]):
                    found.append(int(leaf))
                    if len(found) >= limit:
                        break
            out.scanned_records += len(leaves)
            pos -= 1
        with self._lock:  # every hit shown is checked against its commitment
            records = self.journal.read_many(found)
        out.hits = [JournalHit(i, r) for i, (r, _salt) in zip(found, records, strict=True)]
        out.next_cursor = pos if pos >= 0 else None
        return out

    def prove(self, index: int) -> str:
        """The record's tlog-proof file, verified offline before it is handed out."""
        with self._lock:
            text = self.journal.prove(index)
        verify_proof(text.encode(), self._verifier)  # never hand out a proof that fails
        return text

    # --- verification --------------------------------------------------------------

    def verify(self, on_progress: Callable[[int, int], None] | None = None) -> VerifyResult:
        """``ledger verify``: every bundle, tile and signature, required witnesses too."""
        names = [w.name for w in self.witnesses]
        with self._lock:
            ledger = Ledger(self.ledger.store, self.ledger.origin, None, self._verifier)
        result = verify_log(ledger, witnesses=self.witnesses, required_witnesses=names,
                            on_progress=on_progress)
        self.last_verify = (datetime.now(UTC).timestamp(), result)
        return result

    def check_results(self, limit: int = 20) -> list[tuple[int, Event | None, str]]:
        """The newest ``check`` events."""
        indexes, _total = self.find_events("check", limit=limit)
        return self.entries(indexes)

    def live_snapshots(self) -> dict[str, int]:
        """Snapshot id → index of the event that made it exist (commit or re-tag)."""
        with self._lock:
            return {sid: self.committed_at[sid] for sid in self.live}


def _matcher(query: str) -> Callable[[Any], bool]:
    """``field=value`` compares one top-level field as text; anything else is a substring."""
    query = query.strip()
    if not query:
        raise UserError("give a field=value or a text to search for")
    name, sep, value = query.partition("=")
    if sep and name.strip() and " " not in name.strip():
        key = name.strip()

        def by_field(record: Any) -> bool:
            return isinstance(record, dict) and key in record and _text(record[key]) == value
        return by_field

    def by_text(record: Any) -> bool:
        return query in json.dumps(record, sort_keys=True, ensure_ascii=False)
    return by_text


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def events_text(fields: dict[str, Any], limit: int = 240) -> str:
    """The fields of an event worth a table cell, as short JSON."""
    details = {k: v for k, v in fields.items() if k not in ("type", "time", "summary")}
    text = json.dumps(details, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + "…"
