"""tlog-proof files (c2sp.org/tlog-proof@v1) and their offline verification.

A proof file is self-contained: the entry (in the ``extra`` line), its index,
the inclusion path and the signed checkpoint. deltavault's ``extra`` is
canonical JSON ``{"entry": b64, "record": {...}, "salt": hex}``; ``record``
and ``salt`` are present for journal disclosures, so a counterparty can
recompute the salted commitment and then the leaf (docs/ledger.md §8).
The verifier needs only the proof and the log's verifier key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from deltavault.errors import FormatError, LedgerError, ProofError
from deltavault.ledger._text import b64decode, b64encode, parse_decimal, parse_hex32
from deltavault.ledger.events import Event, canonical_json, parse_canonical
from deltavault.ledger.merkle import HASH_SIZE, leaf_hash, verify_inclusion
from deltavault.ledger.note import (
    NoteVerifier,
    cosignature_time,
    open_checkpoint,
    parse_vkey,
)

HEADER = "c2sp.org/tlog-proof@v1"
MAX_PROOF_BYTES = 1 << 22
MAX_PATH = 64


@dataclass(frozen=True)
class ProofFile:
    """The parts of a tlog-proof file."""

    index: int
    hashes: tuple[bytes, ...]
    checkpoint: bytes
    extra: bytes | None = None

    def to_text(self) -> str:
        """The file's text."""
        lines = [HEADER]
        if self.extra is not None:
            lines.append(f"extra {b64encode(self.extra)}")
        lines.append(f"index {self.index}")
        lines.extend(b64encode(h) for h in self.hashes)
        return "\n".join(lines) + "\n\n" + self.checkpoint.decode("utf-8")


def parse_proof(data: bytes | str) -> ProofFile:
    """Parse a proof file.

    Raises:
        FormatError: any deviation from the format.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if len(raw) > MAX_PROOF_BYTES:
        raise FormatError("proof file is too large")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError("proof file is not UTF-8") from exc
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise FormatError("proof file has no blank line before the checkpoint")
    lines = head.split("\n")
    if lines[0] != HEADER:
        raise FormatError(f"proof file does not start with {HEADER}")
    pos, extra = 1, None
    if len(lines) > pos and lines[pos].startswith("extra "):
        extra = b64decode(lines[pos][6:], "proof extra data")
        pos += 1
    if len(lines) <= pos or not lines[pos].startswith("index "):
        raise FormatError("proof file has no index line")
    index = parse_decimal(lines[pos][6:], "proof index")
    hashes = []
    for line in lines[pos + 1 :]:
        h = b64decode(line, "proof hash")
        if len(h) != HASH_SIZE:
            raise FormatError("proof hash is not 32 bytes")
        hashes.append(h)
    if len(hashes) > MAX_PATH:
        raise FormatError("proof path is too long")
    return ProofFile(index, tuple(hashes), note.encode("utf-8"), extra)


@dataclass(frozen=True)
class Disclosure:
    """deltavault's ``extra`` payload: the entry, and for journal proofs the record."""

    entry: bytes
    record: dict[str, Any] | None = None
    salt: bytes | None = None

    def to_bytes(self) -> bytes:
        value: dict[str, Any] = {"entry": b64encode(self.entry)}
        if self.record is not None and self.salt is not None:
            value["record"] = self.record
            value["salt"] = self.salt.hex()
        return canonical_json(value)

    @classmethod
    def from_bytes(cls, data: bytes) -> Disclosure:
        value = parse_canonical(data, "proof extra data")
        entry = value.get("entry")
        if not isinstance(entry, str):
            raise FormatError("proof extra data has no entry")
        record, salt = value.get("record"), value.get("salt")
        if record is None and salt is None:
            return cls(b64decode(entry, "disclosed entry"))
        if not isinstance(record, dict) or not isinstance(salt, str):
            raise FormatError("proof extra data has a malformed record or salt")
        return cls(b64decode(entry, "disclosed entry"), record, parse_hex32(salt, "salt"))


def commitment(salt: bytes, record: dict[str, Any]) -> bytes:
    """SHA-256(salt ‖ canonical_json(record)): hides the record, binds it."""
    return commitment_of_canonical(salt, canonical_json(record))


def commitment_of_canonical(salt: bytes, canonical: bytes) -> bytes:
    """:func:`commitment` of a record whose canonical JSON bytes are already at hand."""
    return hashlib.sha256(salt + canonical).digest()


@dataclass
class ProofResult:
    """What :func:`verify_proof` checked (it raises on any failure)."""

    origin: str
    size: int
    root: str
    index: int
    leaf_hash: str
    entry: bytes
    record: dict[str, Any] | None = None
    witnesses: dict[str, int] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": True, "origin": self.origin, "size": self.size, "root": self.root,
            "index": self.index, "leaf_hash": self.leaf_hash,
            "entry": self.entry.decode("utf-8", "replace"), "record": self.record,
            "witnesses": self.witnesses, "checks": self.checks,
        }  # fmt: skip


def verify_proof(
    data: bytes | str,
    log_key: str | NoteVerifier,
    *,
    entry: bytes | None = None,
    witnesses: Sequence[NoteVerifier] = (),
    required_witnesses: Sequence[str] = (),
) -> ProofResult:
    """Verify a proof file offline.

    Args:
        data: the proof file.
        log_key: the log's verifier key (string or parsed).
        entry: the entry the caller expects; default: the one disclosed in
            ``extra``.
        witnesses: witness keys whose cosignatures to check.
        required_witnesses: names that must have cosigned.

    Raises:
        ProofError: the proof does not verify (message says why).
    """
    try:
        key = parse_vkey(log_key) if isinstance(log_key, str) else log_key
        pf = parse_proof(data)
        signed = open_checkpoint(pf.checkpoint, key)
        disclosure = Disclosure.from_bytes(pf.extra) if pf.extra is not None else None
    except (FormatError, LedgerError) as exc:
        raise ProofError(f"proof does not verify: {exc}") from exc
    cp = signed.checkpoint
    checks = [f"checkpoint signed by {key.name}"]
    if disclosure is None and entry is None:
        raise ProofError("proof discloses no entry and none was given to check")
    leaf_entry = entry if entry is not None else disclosure.entry  # type: ignore[union-attr]
    if disclosure is not None and entry is not None and disclosure.entry != entry:
        raise ProofError("the entry disclosed in the proof is not the expected entry")
    record = None
    if disclosure is not None and disclosure.record is not None and disclosure.salt is not None:
        try:
            event = Event.from_bytes(leaf_entry)
        except FormatError as exc:
            raise ProofError(f"disclosed entry is not a ledger event: {exc}") from exc
        if event.type != "journal":
            raise ProofError("a record is disclosed but the entry is not a journal event")
        if commitment(disclosure.salt, disclosure.record).hex() != event.fields["commitment"]:
            raise ProofError("the disclosed record and salt do not match the entry's commitment")
        record = disclosure.record
        checks.append("record and salt match the journal commitment")
    lh = leaf_hash(leaf_entry)
    verify_inclusion(pf.index, cp.size, lh, pf.hashes, cp.root)
    checks.append(f"entry is leaf {pf.index} of the tree of size {cp.size}")
    seen: dict[str, int] = {}
    for w in witnesses:
        for sig in signed.note.signatures:
            if w.matches(sig):
                if not w.verify(signed.note.text, sig):
                    raise ProofError(f"cosignature of witness {w.name} does not verify")
                seen[w.name] = cosignature_time(sig)
                checks.append(f"cosigned by witness {w.name}")
    for name in required_witnesses:
        if name not in seen:
            raise ProofError(f"checkpoint lacks a cosignature of required witness {name}")
    return ProofResult(cp.origin, cp.size, cp.root.hex(), pf.index, lh.hex(), leaf_entry,
                       record, seen, checks)  # fmt: skip
