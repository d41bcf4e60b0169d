"""C2SP signed notes, Ed25519 keys, tlog checkpoints and witness cosignatures.

Formats follow c2sp.org/signed-note, c2sp.org/tlog-checkpoint and
c2sp.org/tlog-cosignature (Ed25519, type 0x04) byte for byte, so Go's
``golang.org/x/mod/sumdb/note`` and transparency-dev witnesses interoperate
with our checkpoints. Parsers take hostile bytes and raise only
:class:`~deltavault.errors.FormatError`; signature checks raise
:class:`~deltavault.errors.LedgerError`.
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from deltavault.errors import FormatError, LedgerError
from deltavault.ledger._text import b64decode, b64encode, parse_decimal
from deltavault.ledger.merkle import HASH_SIZE

SIG_ED25519 = 0x01
SIG_COSIGNATURE = 0x04
MAX_NOTE_BYTES = 1 << 20
MAX_SIGNATURES = 100
_DASH = "\u2014 "
_COSIG_HEADER = "cosignature/v1\n"
_BAD_NAME = re.compile(r"[\s+]")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")


def check_key_name(name: str) -> str:
    """Key names are non-empty with no spaces or ``+`` (signed-note §Format)."""
    if not name or _BAD_NAME.search(name) or _CONTROL.search(name):
        raise FormatError(f"invalid key name {name[:60]!r}")
    return name


def key_id(name: str, sig_type: int, public_key: bytes) -> bytes:
    """SHA-256(name ‖ 0x0A ‖ type ‖ public key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([sig_type]) + public_key).digest()[:4]


def _raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


# --- notes -------------------------------------------------------------------


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: key name, 4-byte key id, signature bytes."""

    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        """``— <name> <b64(key id ‖ signature)>`` with its newline."""
        return f"{_DASH}{self.name} {b64encode(self.key_id + self.signature)}\n"


@dataclass(frozen=True)
class Note:
    """A note text (ending in a newline) and its signatures."""

    text: str
    signatures: tuple[NoteSignature, ...] = ()

    def to_bytes(self) -> bytes:
        """Text, a blank line, then one line per signature."""
        return (self.text + "\n" + "".join(s.line() for s in self.signatures)).encode()


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise FormatError("note text does not end with a newline")
    if _CONTROL.search(text):
        raise FormatError("note contains a control character")


def parse_note(data: bytes) -> Note:
    """Parse a signed note.

    Raises:
        FormatError: not UTF-8, control characters, no signature, malformed
            signature line, too large.
    """
    if len(data) > MAX_NOTE_BYTES:
        raise FormatError(f"note of {len(data)} bytes is too large")
    try:
        whole = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError("note is not valid UTF-8") from exc
    if _CONTROL.search(whole):
        raise FormatError("note contains a control character")
    split = whole.rfind("\n\n")
    if split < 0:
        raise FormatError("note has no blank line before its signatures")
    text, sigs = whole[: split + 1], whole[split + 2 :]
    if not sigs.endswith("\n"):
        raise FormatError("note does not end with a newline")
    lines = sigs[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise FormatError(f"note has more than {MAX_SIGNATURES} signatures")
    out = []
    for line in lines:
        if not line.startswith(_DASH):
            raise FormatError(f"malformed signature line {line[:60]!r}")
        name, sep, b64 = line[len(_DASH) :].partition(" ")
        if not sep:
            raise FormatError(f"malformed signature line {line[:60]!r}")
        check_key_name(name)
        raw = b64decode(b64, "signature")
        if len(raw) < 5:
            raise FormatError("signature too short")
        out.append(NoteSignature(name, raw[:4], raw[4:]))
    return Note(text, tuple(out))


# --- keys ----------------------------------------------------------------------


def _cosigned_message(text: str, timestamp: int) -> bytes:
    return f"{_COSIG_HEADER}time {timestamp}\n{text}".encode()


@dataclass(frozen=True)
class NoteVerifier:
    """An Ed25519 public key that checks log signatures (0x01) or cosignatures (0x04)."""

    name: str
    public_key: bytes
    sig_type: int = SIG_ED25519

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.sig_type, self.public_key)

    def vkey(self) -> str:
        """``<name>+<hex key id>+<b64(type ‖ public key)>``."""
        material = b64encode(bytes([self.sig_type]) + self.public_key)
        return f"{self.name}+{self.key_id.hex()}+{material}"

    def verify(self, text: str, sig: NoteSignature) -> bool:
        """Whether ``sig`` is a valid signature of this key over ``text``."""
        if sig.name != self.name or sig.key_id != self.key_id:
            return False
        message = text.encode()
        signature = sig.signature
        if self.sig_type == SIG_COSIGNATURE:
            if len(signature) != 8 + 64:
                return False
            (ts,) = struct.unpack(">Q", signature[:8])
            if ts >= 1 << 63:
                return False
            message, signature = _cosigned_message(text, ts), signature[8:]
        if len(signature) != 64:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True

    def matches(self, sig: NoteSignature) -> bool:
        """Whether ``sig`` claims to be from this key (name and id both match)."""
        return sig.name == self.name and sig.key_id == self.key_id


def parse_vkey(vkey: str) -> NoteVerifier:
    """Parse a verifier key string (type 0x01 or 0x04).

    Raises:
        FormatError: malformed, unknown type or key id mismatch.
    """
    name, sep, rest = vkey.strip().partition("+")
    hexid, sep2, material = rest.partition("+")
    if not sep or not sep2:
        raise FormatError("verifier key is not name+id+key")
    check_key_name(name)
    raw = b64decode(material, "verifier key")
    if len(raw) != 33 or raw[0] not in (SIG_ED25519, SIG_COSIGNATURE):
        raise FormatError("verifier key is not an Ed25519 key of type 0x01 or 0x04")
    verifier = NoteVerifier(name, raw[1:], raw[0])
    if hexid != verifier.key_id.hex():
        raise FormatError(f"verifier key id {hexid[:16]!r} does not match its key")
    return verifier


@dataclass(frozen=True)
class NoteSigner:
    """An Ed25519 private key under a name; type 0x04 makes cosignatures."""

    name: str
    private_key: Ed25519PrivateKey = field(repr=False)
    sig_type: int = SIG_ED25519

    def __post_init__(self) -> None:
        check_key_name(self.name)

    @property
    def verifier(self) -> NoteVerifier:
        return NoteVerifier(self.name, _raw_public(self.private_key), self.sig_type)

    def skey(self) -> str:
        """``PRIVATE+KEY+<name>+<hex id>+<b64(type ‖ seed)>`` (Go note format)."""
        seed = self.private_key.private_bytes_raw()
        material = b64encode(bytes([self.sig_type]) + seed)
        return f"PRIVATE+KEY+{self.name}+{self.verifier.key_id.hex()}+{material}"

    def sign(self, text: str, timestamp: int | None = None) -> NoteSignature:
        """Sign a note text; cosigners need the POSIX ``timestamp``."""
        _check_text(text)
        if self.sig_type == SIG_COSIGNATURE:
            if timestamp is None or not 0 <= timestamp < 1 << 63:
                raise ValueError("a cosignature needs a timestamp in 0..2**63-1")
            sig = struct.pack(">Q", timestamp) + self.private_key.sign(
                _cosigned_message(text, timestamp)
            )
        else:
            sig = self.private_key.sign(text.encode())
        return NoteSignature(self.name, self.verifier.key_id, sig)


def parse_skey(skey: str) -> NoteSigner:
    """Parse a signer key string.

    Raises:
        FormatError: malformed or key id mismatch.
    """
    parts = skey.strip().split("+", 4)
    if len(parts) != 5 or parts[0] != "PRIVATE" or parts[1] != "KEY":
        raise FormatError("signer key is not PRIVATE+KEY+name+id+key")
    raw = b64decode(parts[4], "signer key")
    if len(raw) != 33 or raw[0] not in (SIG_ED25519, SIG_COSIGNATURE):
        raise FormatError("signer key is not an Ed25519 key of type 0x01 or 0x04")
    signer = NoteSigner(
        check_key_name(parts[2]), Ed25519PrivateKey.from_private_bytes(raw[1:]), raw[0]
    )
    if parts[3] != signer.verifier.key_id.hex():
        raise FormatError("signer key id does not match its key")
    return signer


def cosignature_time(sig: NoteSignature) -> int:
    """The POSIX timestamp of a type-0x04 cosignature."""
    if len(sig.signature) != 72:
        raise FormatError("not a timestamped Ed25519 cosignature")
    return int(struct.unpack(">Q", sig.signature[:8])[0])


def verify_note(note: Note, verifiers: Sequence[NoteVerifier]) -> list[NoteSignature]:
    """Signatures of ``note`` made by ``verifiers``, all checked.

    Unknown keys are ignored (signed-note §Signatures); a known key whose
    signature fails makes the whole note invalid.

    Raises:
        LedgerError: a known signature fails, or none of the keys signed.
    """
    good = []
    for sig in note.signatures:
        for v in verifiers:
            if v.matches(sig):
                if not v.verify(note.text, sig):
                    raise LedgerError(f"signature of {sig.name} on the note does not verify")
                good.append(sig)
    if not good:
        names = ", ".join(v.name for v in verifiers)
        raise LedgerError(f"note is not signed by any trusted key ({names})")
    return good


# --- checkpoints -----------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """The tlog-checkpoint body: origin, tree size, root hash, extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def body(self) -> str:
        """The note text this checkpoint is signed as."""
        ext = "".join(f"{line}\n" for line in self.extensions)
        return f"{self.origin}\n{self.size}\n{b64encode(self.root)}\n{ext}"


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a checkpoint note text.

    Raises:
        FormatError: fewer than three lines, bad size or root, empty lines.
    """
    _check_text(text)
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise FormatError("checkpoint has fewer than three lines")
    origin, size, root = lines[0], lines[1], lines[2]
    if not origin:
        raise FormatError("checkpoint origin is empty")
    hashed = b64decode(root, "checkpoint root hash")
    if len(hashed) != HASH_SIZE:
        raise FormatError("checkpoint root hash is not 32 bytes")
    if any(not line for line in lines[3:]):
        raise FormatError("checkpoint has an empty extension line")
    return Checkpoint(origin, parse_decimal(size, "checkpoint size"), hashed, tuple(lines[3:]))


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint with its note (log signature and any cosignatures)."""

    checkpoint: Checkpoint
    note: Note

    def to_bytes(self) -> bytes:
        return self.note.to_bytes()


def open_checkpoint(
    data: bytes, log_key: NoteVerifier, origin: str | None = None
) -> SignedCheckpoint:
    """Parse a signed checkpoint and verify the log's signature on it.

    Args:
        data: the note bytes.
        log_key: the log's verifier key.
        origin: if given, the origin line must equal it.

    Raises:
        FormatError: malformed.
        LedgerError: not signed by ``log_key`` or wrong origin.
    """
    note = parse_note(data)
    cp = parse_checkpoint(note.text)
    verify_note(note, [log_key])
    if origin is not None and cp.origin != origin:
        raise LedgerError(f"checkpoint is for log {cp.origin!r}, expected {origin!r}")
    return SignedCheckpoint(cp, note)


def sign_checkpoint(cp: Checkpoint, signer: NoteSigner) -> SignedCheckpoint:
    """Sign a checkpoint body as a note."""
    text = cp.body()
    return SignedCheckpoint(cp, Note(text, (signer.sign(text),)))


def add_cosignature(sc: SignedCheckpoint, cosigner: NoteSigner, timestamp: int) -> SignedCheckpoint:
    """The checkpoint with ``cosigner``'s line added (replacing an older one of it)."""
    if cosigner.sig_type != SIG_COSIGNATURE:
        raise ValueError("a witness cosigns with a type 0x04 key")
    vid = cosigner.verifier.key_id
    kept = tuple(s for s in sc.note.signatures if not (s.name == cosigner.name and s.key_id == vid))
    sig = cosigner.sign(sc.note.text, timestamp)
    return SignedCheckpoint(sc.checkpoint, Note(sc.note.text, (*kept, sig)))
