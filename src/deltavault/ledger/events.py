"""Ledger events: typed, canonical JSON (RFC 8785) entries of the log.

Every entry is a JSON object with ``"type"`` and ``"time"`` (RFC 3339 UTC)
and the fields its type requires (docs/ledger.md §6). Unknown fields, and
events of unknown types, are kept intact (python-tuf's rule: an older reader
must not destroy a newer writer's data). Entries must be *canonical*: a
decoder re-encodes and refuses bytes that are not the one canonical
spelling, so an event has exactly one leaf hash.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import rfc8785

from deltavault.errors import FormatError, UserError
from deltavault.ledger import jcs

_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z")
_HEX64 = re.compile(r"[0-9a-f]{64}")
MAX_EVENT_BYTES = 1 << 24

# Required fields per type: name → accepted JSON types. "hex" = 64 hex chars.
_STR, _INT, _DICT, _LIST, _HEX = "str", "int", "dict", "list", "hex"
_OPT_HEX = "hex?"  # hex or null
SCHEMAS: dict[str, dict[str, str]] = {
    "snapshot": {
        "id": _HEX, "snapshot_type": _STR, "parent": _OPT_HEX, "base": _OPT_HEX,
        "snapshot_time": _STR, "hostname": _STR, "tags": _LIST, "tree": _HEX,
        "summary": _DICT, "packs_root": _HEX, "packs_count": _INT,
    },
    "forget": {"snapshots": _LIST, "reason": _STR},
    "prune-start": {"run": _HEX, "packs": _LIST, "indexes": _LIST, "snapshots": _LIST,
                    "moved": _LIST},
    "prune": {"packs_removed": _INT, "bytes_removed": _INT},
    "repair-index": {"packs": _INT, "blobs": _INT, "indexes_written": _INT},
    "restore": {"snapshot": _HEX, "target": _STR},
    "rollback": {"snapshot": _HEX, "target": _STR},
    "tag": {"snapshot": _HEX, "add": _LIST, "remove": _LIST},
    "key-add": {"key_id": _STR},
    "key-remove": {"key_id": _STR},
    "check": {"ok": "bool", "errors": _INT},
    "reconcile": {"ok": "bool", "differences": _INT},
    "journal": {"commitment": _HEX, "object": _HEX, "slot": _INT},
}  # fmt: skip
SNAPSHOT_TYPES = ("full", "diff", "incr")


def now_rfc3339() -> str:
    """Current UTC time, microseconds, ``Z`` suffix."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_json(value: Any) -> bytes:
    """RFC 8785 bytes of ``value``.

    Raises:
        UserError: not representable (NaN, integers beyond ±2**53, non-str keys).
    """
    try:
        return jcs.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError, RecursionError) as exc:
        raise UserError(f"value cannot be canonical JSON: {exc}") from exc


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise FormatError(f"duplicate JSON key {k[:40]!r}")
        out[k] = v
    return out


def _reject_constant(name: str) -> Any:
    raise FormatError(f"JSON constant {name} is not allowed")


def load_strict_json(data: bytes, what: str) -> Any:
    """UTF-8 JSON with duplicate keys, NaN/Infinity and runaway nesting refused.

    Raises:
        FormatError: naming ``what``.
    """
    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=_reject_duplicates,
                          parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise FormatError(f"{what} is not JSON: {exc}") from exc


def parse_canonical(data: bytes, what: str) -> dict[str, Any]:
    """Decode canonical JSON holding an object, refusing any other spelling.

    Raises:
        FormatError: not JSON, not an object, duplicate keys, or not canonical.
    """
    if len(data) > MAX_EVENT_BYTES:
        raise FormatError(f"{what} is too large")
    value = load_strict_json(data, what)
    if not isinstance(value, dict):
        raise FormatError(f"{what} is not a JSON object")
    try:
        canonical = jcs.dumps(value)
    except (rfc8785.CanonicalizationError, ValueError, TypeError, RecursionError) as exc:
        raise FormatError(f"{what} cannot be canonical JSON: {exc}") from exc
    if canonical != data:
        raise FormatError(f"{what} is not in canonical (RFC 8785) form")
    return value


def _check_field(kind: str, value: Any) -> bool:
    if kind == _STR:
        return isinstance(value, str)
    if kind == _INT:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0
    if kind == "bool":
        return isinstance(value, bool)
    if kind == _DICT:
        return isinstance(value, dict)
    if kind == _LIST:
        return isinstance(value, list)
    if kind == _HEX:
        return isinstance(value, str) and bool(_HEX64.fullmatch(value))
    return value is None or (isinstance(value, str) and bool(_HEX64.fullmatch(value)))


def validate(fields: Mapping[str, Any]) -> None:
    """Check ``type``, ``time`` and the type's required fields.

    Raises:
        FormatError: with the first problem found.
    """
    etype, etime = fields.get("type"), fields.get("time")
    if not isinstance(etype, str) or not etype:
        raise FormatError("event has no type")
    if not isinstance(etime, str) or not _TIME.fullmatch(etime):
        raise FormatError(f"event {etype!r} has no RFC 3339 UTC time")
    for name, kind in SCHEMAS.get(etype, {}).items():
        if name not in fields or not _check_field(kind, fields[name]):
            raise FormatError(f"{etype} event: field {name!r} is missing or not {kind}")
    for name, value in fields.items():
        if name.endswith("_commitment") and not _check_field(_HEX, value):
            raise FormatError(f"{etype} event: {name[:40]!r} is not 64 hex digits")
    if etype == "snapshot":
        if fields["snapshot_type"] not in SNAPSHOT_TYPES:
            raise FormatError("snapshot event: snapshot_type must be full, diff or incr")
        if not all(isinstance(t, str) for t in fields["tags"]):
            raise FormatError("snapshot event: tags must be strings")


@dataclass(frozen=True)
class Event:
    """One ledger event: its type, its time and all its fields (unknown ones too)."""

    type: str
    time: str
    fields: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def new(cls, etype: str, /, time: str | None = None, **fields: Any) -> Event:
        """Make and validate an event of ``etype`` (time defaults to now).

        Raises:
            UserError: a required field is missing or has the wrong type.
        """
        data = {**fields, "type": etype, "time": time or now_rfc3339()}
        try:
            validate(data)
        except FormatError as exc:
            raise UserError(str(exc)) from exc
        return cls(etype, data["time"], data)

    def to_dict(self) -> dict[str, Any]:
        """All fields including ``type`` and ``time``."""
        return {**self.fields, "type": self.type, "time": self.time}

    def to_bytes(self) -> bytes:
        """The canonical JSON entry."""
        return canonical_json(self.to_dict())

    @classmethod
    def from_bytes(cls, data: bytes) -> Event:
        """Parse and validate an entry.

        Raises:
            FormatError: anything wrong with it.
        """
        fields = parse_canonical(data, "event")
        validate(fields)
        return cls(fields["type"], fields["time"], fields)


def event_time(time: str | None) -> str:
    """``time`` if it is an RFC 3339 UTC time as events carry it, else now.

    Raises:
        UserError: ``time`` is given and malformed.
    """
    if time is None:
        return now_rfc3339()
    if not _TIME.fullmatch(time):
        raise UserError(f"{time[:40]!r} is not an RFC 3339 UTC time (e.g. 2026-12-03T10:00:00Z)")
    return time


def journal_entries(commitments: list[str], object_id: str, time: str | None = None
                    ) -> list[bytes]:
    """The ledger entries of one journal batch: slot ``i`` commits ``commitments[i]``.

    Byte for byte ``Event.new("journal", ...).to_bytes()`` for each record (the
    fields are hex digits, a count and a validated time, so their canonical
    form is a fixed template), without building and canonicalising an event
    per record: a journal grows by millions of records a day. One time for
    the whole batch (now, unless given).

    Raises:
        UserError: ``time`` is not RFC 3339 UTC, or a field is not 64 hex digits.
    """
    when = event_time(time)
    if not _HEX64.fullmatch(object_id) or not all(_HEX64.fullmatch(c) for c in commitments):
        raise UserError("journal event: an object id or commitment is not 64 hex digits")
    head = b'{"commitment":"'
    tail = b'","object":"%s","slot":%%d,"time":"%s","type":"journal"}' % (
        object_id.encode(), when.encode())
    return [head + c.encode() + tail % i for i, c in enumerate(commitments)]


def snapshot_event(
    *,
    snapshot_id: str,
    snapshot_type: str,
    parent: str | None,
    base: str | None,
    snapshot_time: str,
    hostname: str,
    tags: list[str],
    tree: str,
    summary: Mapping[str, Any],
    packs_root: str,
    packs_count: int,
    time: str | None = None,
    **extra: Any,
) -> Event:
    """The ``snapshot`` event committing a snapshot (docs/ledger.md §6.1)."""
    return Event.new(
        "snapshot",
        time=time,
        id=snapshot_id,
        snapshot_type=snapshot_type,
        parent=parent,
        base=base,
        snapshot_time=snapshot_time,
        hostname=hostname,
        tags=list(tags),
        tree=tree,
        summary=dict(summary),
        packs_root=packs_root,
        packs_count=packs_count,
        **extra,
    )
