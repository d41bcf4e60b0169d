"""The client's cached ledger state: format, MAC, and a decoder that trusts nothing.

One file per repository in the client cache directory (docs/ledger.md §9.2)::

    "deltavault ledger state v1\\n" ‖ hex(HMAC-SHA256(K_state, magic ‖ body)) ‖ "\\n" ‖ body

``body`` is JSON (sorted keys): the signed checkpoint note this state was
derived at, the tail tiles of its tree, and the fold (:class:`LedgerState`).
Whoever has no ``K_state`` (derived from the master key) cannot forge one;
and even a file with a valid MAC is re-checked where it can be — the note's
signature, the tails against the signed root, every event's schema — before
it is used. Anything wrong raises :class:`~deltavault.errors.FormatError`,
and the caller rebuilds the state from the log.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deltavault.errors import FormatError, LedgerError
from deltavault.ledger.events import Event, load_strict_json, validate
from deltavault.ledger.frontier import Frontier
from deltavault.ledger.merkle import HASH_SIZE
from deltavault.ledger.note import NoteVerifier, SignedCheckpoint, open_checkpoint
from deltavault.ledger.state import LedgerState, LiveSnapshot

MAGIC = b"deltavault ledger state v1\n"
MAX_STATE_BYTES = 1 << 30
_HEX64 = re.compile(r"[0-9a-f]{64}")
_MAX_LEVEL = 8  # 256**8 leaves: far beyond any log


@dataclass
class CachedState:
    """What a cache file holds, every part verified."""

    checkpoint: SignedCheckpoint
    frontier: Frontier
    state: LedgerState


def _int(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 63:
        raise FormatError(f"{what} is not a non-negative integer")
    return value


def _hexid(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise FormatError(f"{what} is not a 64-digit hex id")
    return value


def _dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise FormatError(f"{what} is not an object")
    return value


def encode(cached: CachedState, key: bytes) -> bytes:
    """The file bytes of a state."""
    st = cached.state
    body = {
        "v": 1,
        "checkpoint": base64.b64encode(cached.checkpoint.to_bytes()).decode("ascii"),
        "tails": {str(lvl): base64.b64encode(b"".join(h)).decode("ascii")
                  for lvl, h in cached.frontier.tails.items()},
        "clock_us": st.clock_us,
        "live": {sid: {"event": s.event.to_dict(), "index": s.index, "seen_size": s.seen_size,
                       "seen_us": s.seen_us, "ledger_us": s.ledger_us, "flag": s.flag}
                 for sid, s in st.live.items()},
        "moved": {old: [new, index] for old, (new, index) in st.moved.items()},
        "forgotten": dict(st.forgotten),
    }
    raw = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    mac = hmac.new(key, MAGIC + raw, hashlib.sha256).hexdigest().encode()
    return MAGIC + mac + b"\n" + raw


def split(data: bytes, key: bytes) -> bytes:
    """The body of a cache file whose MAC verifies.

    Raises:
        FormatError: wrong magic, malformed or wrong MAC.
    """
    if len(data) > MAX_STATE_BYTES:
        raise FormatError("ledger state file is too large")
    if not data.startswith(MAGIC):
        raise FormatError("not a deltavault ledger state file")
    mac, sep, body = data[len(MAGIC):].partition(b"\n")
    if not sep or len(mac) != 64:
        raise FormatError("ledger state file has no MAC line")
    expected = hmac.new(key, MAGIC + body, hashlib.sha256).hexdigest().encode()
    if not hmac.compare_digest(mac, expected):
        raise FormatError("ledger state file does not carry this repository's MAC "
                          "(damaged, or written with another key)")
    return body


def parse_body(body: bytes) -> dict[str, Any]:
    """The JSON object of a body (duplicate keys, NaN and deep nesting refused)."""
    doc = _dict(load_strict_json(body, "ledger state"), "ledger state")
    if doc.get("v") != 1:
        raise FormatError("ledger state has an unknown version")
    return doc


def _tails(value: Any) -> dict[int, tuple[bytes, ...]]:
    out: dict[int, tuple[bytes, ...]] = {}
    for lvl, b64 in _dict(value, "tails").items():
        if not lvl.isdigit() or len(lvl) > 1 or int(lvl) >= _MAX_LEVEL or not isinstance(b64, str):
            raise FormatError("ledger state: malformed tail tile")
        try:
            raw = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise FormatError("ledger state: tail tile is not base64") from exc
        if len(raw) % HASH_SIZE or len(raw) >= 256 * HASH_SIZE:
            raise FormatError("ledger state: tail tile has a bad length")
        out[int(lvl)] = tuple(raw[i:i + HASH_SIZE] for i in range(0, len(raw), HASH_SIZE))
    return out


def _event(value: Any, what: str) -> Event:
    fields = _dict(value, what)
    try:
        validate(fields)
    except FormatError as exc:
        raise FormatError(f"{what}: {exc}") from exc
    if fields["type"] != "snapshot":
        raise FormatError(f"{what} is not a snapshot event")
    return Event(fields["type"], fields["time"], fields)


def _live(value: Any, size: int) -> dict[str, LiveSnapshot]:
    out = {}
    for sid, item in _dict(value, "live").items():
        _hexid(sid, "live snapshot id")
        d = _dict(item, f"live snapshot {sid[:12]}")
        index = _int(d.get("index"), "snapshot index")
        seen_size = _int(d.get("seen_size"), "snapshot seen_size")
        flag = d.get("flag")
        if not index < seen_size <= size or not isinstance(flag, str):
            raise FormatError(f"live snapshot {sid[:12]} is inconsistent")
        out[sid] = LiveSnapshot(_event(d.get("event"), f"event of {sid[:12]}"), index, seen_size,
                                _int(d.get("seen_us"), "seen_us"),
                                _int(d.get("ledger_us"), "ledger_us"), flag)
    return out


def decode(data: bytes, key: bytes, verifier: NoteVerifier, origin: str) -> CachedState:
    """Parse and check a cache file.

    Raises:
        FormatError: anything wrong (the caller rebuilds from the log).
    """
    doc = parse_body(split(data, key))
    try:
        note = base64.b64decode(str(doc.get("checkpoint")), validate=True)
        signed = open_checkpoint(note, verifier, origin)
    except (binascii.Error, ValueError, LedgerError) as exc:
        raise FormatError(f"ledger state: its checkpoint does not verify: {exc}") from exc
    cp = signed.checkpoint
    try:
        frontier = Frontier.of(cp.size, cp.root, _tails(doc.get("tails")))
    except LedgerError as exc:
        raise FormatError(f"ledger state: {exc}") from exc
    clock = doc.get("clock_us")
    state = LedgerState(cp.size, cp.root, None if clock is None else _int(clock, "clock_us"),
                        _live(doc.get("live"), cp.size))
    for old, item in _dict(doc.get("moved"), "moved").items():
        if not isinstance(item, list) or len(item) != 2:
            raise FormatError("ledger state: malformed tag move")
        state.moved[_hexid(old, "moved id")] = (_hexid(item[0], "moved id"),
                                                _int(item[1], "tag index"))
    for sid, index in _dict(doc.get("forgotten"), "forgotten").items():
        state.forgotten[_hexid(sid, "forgotten id")] = _int(index, "forget index")
    return CachedState(signed, frontier, state)


def salvage_checkpoint(data: bytes, verifier: NoteVerifier, origin: str) -> SignedCheckpoint | None:
    """The signed checkpoint of a damaged cache file, if it still verifies on its own.

    Its signature makes it trustworthy whatever happened to the MAC: the log
    must still extend it (a rollback floor survives damage to the rest).
    """
    try:
        doc = parse_body(data[len(MAGIC):].partition(b"\n")[2])
        return open_checkpoint(base64.b64decode(str(doc.get("checkpoint")), validate=True),
                               verifier, origin)
    except (FormatError, LedgerError, binascii.Error, ValueError):
        return None


def write_atomically(path: Path, data: bytes) -> None:
    """temp + fsync + rename: a reader sees the old file or the new one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
