"""Which snapshots exist, as the log says, and when the log says they were committed.

The log is the authority on what exists (docs/ledger.md §6): a snapshot
exists from its ``snapshot`` event until a ``forget`` event names it; a
``tag`` event moves it to the re-tagged object's id. :class:`LedgerState` is
that fold, over *verified* entries only, kept small enough to cache: the live
snapshots (with their event, index and ledger time), the tag moves and the
forget decisions. Journal records, the bulk of a busy log, are recognised
from their bytes and skipped without parsing (§9.2).

Ledger time (docs/ledger.md §9.3): an event's claimed ``time`` is clamped
between the ledger times of the events before it (minus a clock-skew
tolerance) and the moment a verifying client or a witness first saw a
checkpoint containing it (plus the tolerance). A snapshot whose claims lie
outside those bounds is *flagged*; retention never trusts its claim.
"""

from __future__ import annotations

import time as _time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from deltavault.errors import FormatError, LedgerError
from deltavault.ledger.events import Event
from deltavault.ledger.log import Ledger
from deltavault.ledger.merkle import EMPTY_ROOT

#: clock skew between hosts and the commit races of concurrent writers
SKEW_US = 5 * 60 * 1_000_000
#: how long before its commit a snapshot may say it started (a long backup)
MAX_LAG_US = 24 * 3600 * 1_000_000
_JOURNAL_HEAD = b'{"commitment":"'
_JOURNAL_TAIL = b'","type":"journal"}'


def parse_us(text: str) -> int:
    """RFC 3339 UTC time → POSIX microseconds.

    Raises:
        FormatError: not a time.
    """
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise FormatError(f"not an RFC 3339 time: {text[:40]!r}") from exc
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return int(t.timestamp()) * 1_000_000 + t.microsecond


def format_us(us: int) -> str:
    """POSIX microseconds → RFC 3339 UTC with microseconds."""
    return datetime.fromtimestamp(us / 1_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def is_journal_record(raw: bytes) -> bool:
    """Whether an entry has the shape of a ``journal`` event (it cannot change the state).

    A canonical JSON object that begins with the key ``commitment`` and ends
    with ``"type":"journal"`` is a journal event if it is an event at all, so
    it can be neither a snapshot, a tag nor a forget.
    """
    return raw.startswith(_JOURNAL_HEAD) and raw.endswith(_JOURNAL_TAIL)


@dataclass(frozen=True)
class LiveSnapshot:
    """A snapshot that exists, with what the log says about it."""

    event: Event  #: the ``snapshot`` event that committed its content
    index: int  #: that event's position in the log
    seen_size: int  #: size of the first verified checkpoint that contained it
    seen_us: int  #: when a verifying client or a witness first saw it (upper bound)
    ledger_us: int  #: its ledger time: the claimed commit time, clamped (§9.3)
    flag: str = ""  #: why its claimed times are not believed ("" when they are)

    @property
    def ledger_time(self) -> datetime:
        return datetime.fromtimestamp(self.ledger_us / 1_000_000, UTC)


@dataclass
class LedgerState:
    """The fold of a verified log prefix of ``size`` entries."""

    size: int = 0
    root: bytes = EMPTY_ROOT
    clock_us: int | None = None  #: greatest ledger time of the events folded so far
    live: dict[str, LiveSnapshot] = field(default_factory=dict)
    moved: dict[str, tuple[str, int]] = field(default_factory=dict)  #: old → (new id, index)
    forgotten: dict[str, int] = field(default_factory=dict)  #: id → index of its forget

    def copy(self) -> LedgerState:
        return replace(self, live=dict(self.live), moved=dict(self.moved),
                       forgotten=dict(self.forgotten))

    def committed(self) -> dict[str, Event]:
        """Snapshot id → the ``snapshot`` event of every snapshot that exists."""
        return {sid: s.event for sid, s in self.live.items()}

    def add(self, start: int, entries: Sequence[bytes], seen_size: int, seen_us: int) -> None:
        """Fold verified entries ``start …`` first seen in a checkpoint of ``seen_size``."""
        if start != self.size:
            raise LedgerError(f"the ledger state is at size {self.size}, not {start}")
        for offset, raw in enumerate(entries):
            if not is_journal_record(raw):
                try:
                    event = Event.from_bytes(raw)
                except FormatError as exc:
                    raise LedgerError(f"ledger entry {start + offset}: {exc}") from exc
                self.apply(start + offset, event, seen_size, seen_us)
        self.size = start + len(entries)

    def apply(self, index: int, event: Event, seen_size: int, seen_us: int) -> None:
        """Fold one event (its time first, then what it does to the live set)."""
        claim = parse_us(event.time)
        lo = None if self.clock_us is None else self.clock_us - SKEW_US
        hi = seen_us + SKEW_US
        ledger_us, flag = claim, ""
        if lo is not None and claim < lo:
            ledger_us = lo
            flag = "its commit time is earlier than the ledger time of an earlier event"
        if ledger_us > hi:
            ledger_us = hi
            flag = "its commit time is later than when a verifier first saw it"
        self.clock_us = ledger_us if self.clock_us is None else max(self.clock_us, ledger_us)
        if event.type == "snapshot":
            flag = flag or _start_flag(event, ledger_us)
            sid = event.fields["id"]
            self.live[sid] = LiveSnapshot(event, index, seen_size, seen_us, ledger_us, flag)
        elif event.type == "tag":
            old, new = event.fields.get("snapshot"), event.fields.get("new_id")
            if isinstance(old, str) and isinstance(new, str) and old in self.live:
                self.live[new] = self.live.pop(old)
                self.moved[old] = (new, index)
        elif event.type == "forget":
            for sid in event.fields.get("snapshots", []):
                if isinstance(sid, str) and self.live.pop(sid, None) is not None:
                    self.forgotten[sid] = index


def _start_flag(event: Event, ledger_us: int) -> str:
    """Why a snapshot's claimed start time does not fit its ledger time ("" if it does)."""
    try:
        start = parse_us(str(event.fields["snapshot_time"]))
    except FormatError:
        return "its snapshot time is not an RFC 3339 time"
    if start > ledger_us + SKEW_US:
        return "it claims to start after its ledger time"
    if start < ledger_us - MAX_LAG_US:
        return "it claims to start more than 24 h before its ledger time"
    return ""


def now_us() -> int:
    """The verifying client's clock, in POSIX microseconds."""
    return _time.time_ns() // 1000


def apply_event(live: dict[str, Event], event: Event) -> None:
    """Track which snapshots exist: committed, re-tagged (new id), forgotten.

    ``live`` maps a snapshot id to the ``snapshot`` event that committed its
    content (a re-tagged snapshot keeps its original event: same tree and
    pack list under a new id).
    """
    if event.type == "snapshot":
        live[event.fields["id"]] = event
    elif event.type == "tag":
        old, new = event.fields.get("snapshot"), event.fields.get("new_id")
        if isinstance(old, str) and isinstance(new, str) and old in live:
            live[new] = live.pop(old)
    elif event.type == "forget":
        for sid in event.fields.get("snapshots", []):
            live.pop(sid, None)


def events(ledger: Ledger, *, journal: bool = True) -> Iterable[tuple[int, Event]]:
    """Every event in the log, with its index (verified reads).

    ``journal=False`` skips journal records unparsed (:func:`is_journal_record`):
    a reader of the repository's own events (moves, prunes) would otherwise
    parse a million records a day of trade journal to find a few dozen.
    """
    size = ledger.size
    step = 4096
    for start in range(0, size, step):
        for offset, raw in enumerate(ledger.entries(start, min(size, start + step))):
            if journal or not is_journal_record(raw):
                yield start + offset, Event.from_bytes(raw)


def fold_log(ledger: Ledger, seen_us: int | None = None) -> LedgerState:
    """The state of a whole log, read with verified random-access reads."""
    state = LedgerState()
    seen = now_us() if seen_us is None else seen_us
    size = ledger.size
    for start in range(0, size, 4096):
        state.add(start, ledger.entries(start, min(size, start + 4096)), size, seen)
    state.root = ledger.root
    return state


def committed_snapshots(ledger: Ledger) -> dict[str, Event]:
    """Snapshot id → the ``snapshot`` event of every snapshot that exists now."""
    return fold_log(ledger).committed()
