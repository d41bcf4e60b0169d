"""Snapshot metadata and per-snapshot pack lists (docs/format.md §8, §9)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from deltavault.errors import FormatError
from deltavault.ledger.merkle import root_of_entries
from deltavault.repo.canonical import field as req
from deltavault.repo.canonical import optional, pack_msgpack, unpack_msgpack_map

SNAPSHOT_TYPES = ("full", "diff", "incr")
PACKLIST_MAGIC = b"deltavault packlist v1\n"
MAX_PACKLIST_BYTES = 1 << 30
_KNOWN = {"v", "time", "hostname", "username", "paths", "tags", "type", "parent", "base",
          "chain_depth", "tree", "packs_root", "packs_count", "summary", "original", "program"}


def now_rfc3339() -> str:
    """UTC time with microseconds, as stored in snapshots and events."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    """Parse the RFC 3339 times we write (and ones users type)."""
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise FormatError(f"not an RFC 3339 time: {text!r}") from exc
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _hexid(value: Any, what: str, key: str) -> str:
    if not isinstance(value, str) or len(value) != 64 or any(
            c not in "0123456789abcdef" for c in value):
        raise FormatError(f"{what}: {key} is not a 64-digit hex id")
    return value


@dataclass
class Snapshot:
    """What one backup recorded; ``id`` is the SHA-256 of the stored object."""

    time: str
    hostname: str
    username: str
    paths: list[str]
    tree: str
    type: str = "full"
    tags: list[str] = field(default_factory=list)
    parent: str | None = None
    base: str | None = None
    chain_depth: int = 0
    packs_root: str = ""
    packs_count: int = 0
    summary: dict[str, Any] = field(default_factory=dict)
    original: str | None = None
    program: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    id: str = ""

    def to_map(self) -> dict[str, Any]:
        d = dict(self.extra)
        d.update({
            "v": 1, "time": self.time, "hostname": self.hostname, "username": self.username,
            "paths": self.paths, "tags": sorted(set(self.tags)), "type": self.type,
            "parent": self.parent, "base": self.base, "chain_depth": self.chain_depth,
            "tree": self.tree, "packs_root": self.packs_root, "packs_count": self.packs_count,
            "summary": self.summary, "original": self.original, "program": self.program,
        })
        return d

    def encode(self) -> bytes:
        return pack_msgpack(self.to_map())

    @classmethod
    def decode(cls, data: bytes, snapshot_id: str = "") -> Snapshot:
        what = f"snapshot {snapshot_id[:12]}"
        d = unpack_msgpack_map(data, what)
        if d.get("v") != 1:
            raise FormatError(f"{what}: unsupported version")
        paths = req(d, "paths", list, what)
        tags = req(d, "tags", list, what)
        if not all(isinstance(p, str) for p in paths + tags):
            raise FormatError(f"{what}: paths and tags must be strings")
        typ = req(d, "type", str, what)
        if typ not in SNAPSHOT_TYPES:
            raise FormatError(f"{what}: unknown type {typ!r}")
        parent = optional(d, "parent", str, what)
        base = optional(d, "base", str, what)
        original = optional(d, "original", str, what)
        for key, val in (("parent", parent), ("base", base), ("original", original)):
            if val is not None:
                _hexid(val, what, key)
        time = req(d, "time", str, what)
        parse_time(time)
        return cls(
            time=time,
            hostname=req(d, "hostname", str, what),
            username=req(d, "username", str, what),
            paths=paths,
            tree=_hexid(d.get("tree"), what, "tree"),
            type=typ,
            tags=tags,
            parent=parent,
            base=base,
            chain_depth=req(d, "chain_depth", int, what),
            packs_root=str(d.get("packs_root", "")),
            packs_count=int(optional(d, "packs_count", int, what, 0)),
            summary=optional(d, "summary", dict, what, {}),
            original=original,
            program=str(d.get("program", "")),
            extra={k: v for k, v in d.items() if k not in _KNOWN},
            id=snapshot_id,
        )

    @property
    def datetime(self) -> datetime:
        return parse_time(self.time)


# --- pack lists --------------------------------------------------------------


def encode_packlist(pack_ids: set[str] | list[str]) -> bytes:
    """The plaintext pack list: magic line, then sorted hex ids."""
    ids = sorted(set(pack_ids))
    return PACKLIST_MAGIC + b"".join(p.encode("ascii") + b"\n" for p in ids)


def decode_packlist(data: bytes) -> list[str]:
    """Parse a pack list as hostile input: sorted, unique, 64-hex lines."""
    if len(data) > MAX_PACKLIST_BYTES:
        raise FormatError("pack list: too large")
    if not data.startswith(PACKLIST_MAGIC):
        raise FormatError("pack list: bad header line")
    body = data[len(PACKLIST_MAGIC):]
    if body and not body.endswith(b"\n"):
        raise FormatError("pack list: last line is not terminated")
    ids: list[str] = []
    for line in body.split(b"\n")[:-1] if body else []:
        if len(line) != 64 or any(c not in b"0123456789abcdef" for c in line):
            raise FormatError("pack list: line is not a 64-digit lowercase hex id")
        ids.append(line.decode("ascii"))
    if ids != sorted(set(ids)):
        raise FormatError("pack list: ids are not sorted and unique")
    return ids


def packlist_root(pack_ids: list[str]) -> str:
    """Hex Merkle root of a sorted pack list, as in snapshots and ledger events."""
    return root_of_entries([bytes.fromhex(p) for p in sorted(set(pack_ids))]).hex()
