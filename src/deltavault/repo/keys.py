"""Password key files ``keys/<id>``: the master secret wrapped by Argon2id.

Several key files may open one repository (one per person or host); adding
or removing one never re-encrypts data. Parameters are stored beside the
wrapped secret so they can be raised later without breaking old keys.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from argon2.low_level import Type, hash_secret_raw
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from deltavault.errors import FormatError, IntegrityError
from deltavault.repo.canonical import canonical_json, field, parse_json_object
from deltavault.repo.crypto import KEY_SIZE, MasterKey, open_with, seal_with

#: keys derived in this process: (parameters, BLAKE2b of the password) → wrapping key.
#: Argon2id costs 64 MiB and ~0.3 s by design; a process that opens the same
#: repository again (the web console, a script, copy) pays it once.
_DERIVED: dict[tuple[bytes, int, int, int, bytes], bytes] = {}
_DERIVED_MAX = 8
_MAX_MEMORY_KIB = 4 * 1024 * 1024
_MAX_TIME_COST = 64
_MIN_MEMORY_KIB = 8 * 1024


@dataclass(frozen=True)
class KdfParams:
    """Argon2id parameters (RFC 9106); defaults follow its second recommendation."""

    salt: bytes
    time_cost: int = 3
    memory_kib: int = 64 * 1024
    parallelism: int = 2

    @classmethod
    def fresh(cls, *, memory_kib: int | None = None, time_cost: int | None = None) -> KdfParams:
        """New parameters with a random salt."""
        return cls(salt=os.urandom(16), time_cost=time_cost or 3,
                   memory_kib=memory_kib or 64 * 1024, parallelism=2)

    def check(self) -> None:
        """Refuse parameters that are unsafe or would exhaust the machine."""
        if not _MIN_MEMORY_KIB <= self.memory_kib <= _MAX_MEMORY_KIB:
            raise FormatError(f"key file: Argon2 memory {self.memory_kib} KiB out of range")
        if not 1 <= self.time_cost <= _MAX_TIME_COST:
            raise FormatError(f"key file: Argon2 time cost {self.time_cost} out of range")
        if not 1 <= self.parallelism <= 64 or not 8 <= len(self.salt) <= 64:
            raise FormatError("key file: Argon2 parallelism or salt out of range")

    def derive(self, password: bytes) -> bytes:
        """The wrapping key from a password (derived once per process and parameters)."""
        self.check()
        memo = (self.salt, self.time_cost, self.memory_kib, self.parallelism,
                hashlib.blake2b(password, digest_size=32).digest())
        key = _DERIVED.get(memo)
        if key is None:
            key = bytes(hash_secret_raw(password, self.salt, self.time_cost, self.memory_kib,
                                        self.parallelism, KEY_SIZE, Type.ID))
            if len(_DERIVED) >= _DERIVED_MAX:
                _DERIVED.pop(next(iter(_DERIVED)))
            _DERIVED[memo] = key
        return key

    def to_dict(self) -> dict[str, Any]:
        return {
            "algorithm": "argon2id",
            "memory_kib": self.memory_kib,
            "parallelism": self.parallelism,
            "salt": base64.b64encode(self.salt).decode(),
            "time_cost": self.time_cost,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> KdfParams:
        what = "key file kdf"
        if field(d, "algorithm", str, what) != "argon2id":
            raise FormatError(f"{what}: unsupported algorithm")
        try:
            salt = base64.b64decode(field(d, "salt", str, what), validate=True)
        except ValueError as exc:
            raise FormatError(f"{what}: salt is not base64") from exc
        params = cls(
            salt=salt,
            time_cost=field(d, "time_cost", int, what),
            memory_kib=field(d, "memory_kib", int, what),
            parallelism=field(d, "parallelism", int, what),
        )
        params.check()
        return params


@dataclass(frozen=True)
class KeyFile:
    """A parsed key file; ``raw`` keeps unknown fields for re-encoding."""

    id: str
    kdf: KdfParams
    data: bytes
    created: str
    host: str
    user: str
    raw: dict[str, Any]

    @property
    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "created": self.created, "host": self.host, "user": self.user}


def _aad(repo_id: str) -> bytes:
    return b"dv1:key:" + repo_id.encode("ascii")


def make_key_file(master: MasterKey, password: bytes, repo_id: str, kdf: KdfParams) -> bytes:
    """Wrap the master secret for ``password``; returns the key file bytes."""
    wrap = AESGCM(kdf.derive(password))
    doc = {
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "data": base64.b64encode(seal_with(wrap, _aad(repo_id), master.secret)).decode(),
        "host": socket.gethostname(),
        "kdf": kdf.to_dict(),
        "user": _username(),
        "version": 1,
    }
    return canonical_json(doc)


def parse_key_file(data: bytes, key_id: str) -> KeyFile:
    """Parse a key file; FormatError for anything malformed."""
    what = f"key file {key_id[:12]}"
    doc = parse_json_object(data, what)
    if field(doc, "version", int, what) != 1:
        raise FormatError(f"{what}: unsupported version")
    kdf_doc = field(doc, "kdf", dict, what)
    try:
        wrapped = base64.b64decode(field(doc, "data", str, what), validate=True)
    except ValueError as exc:
        raise FormatError(f"{what}: data is not base64") from exc
    return KeyFile(
        id=key_id,
        kdf=KdfParams.from_dict(kdf_doc),
        data=wrapped,
        created=str(doc.get("created", "")),
        host=str(doc.get("host", "")),
        user=str(doc.get("user", "")),
        raw=doc,
    )


def unwrap(key: KeyFile, password: bytes, repo_id: str) -> MasterKey | None:
    """The master key if ``password`` opens this key file, else None."""
    wrap = AESGCM(key.kdf.derive(password))
    try:
        secret = open_with(wrap, _aad(repo_id), key.data, "key")
    except IntegrityError:
        return None
    if len(secret) != KEY_SIZE:
        raise FormatError(f"key file {key.id[:12]}: wrapped secret has the wrong size")
    return MasterKey(secret)


def key_id_of(data: bytes) -> str:
    """Key files are named by the SHA-256 of their bytes."""
    return hashlib.sha256(data).hexdigest()


def _username() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
