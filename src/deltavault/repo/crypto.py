"""Key derivation, the AEAD envelope and keyed blob ids (docs/format.md §2).

Everything here is a thin, exact use of audited primitives: BLAKE3 in
derive-key and keyed modes, AES-256-GCM from ``cryptography``. Both release
the GIL on large inputs, so the backup pipeline's threads scale to the cores.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

import blake3
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from deltavault.errors import IntegrityError

NONCE_SIZE = 12
TAG_SIZE = 16
OVERHEAD = NONCE_SIZE + TAG_SIZE
KEY_SIZE = 32

AAD_BLOB = b"dv1:blob:"
AAD_PACK_HEADER = b"dv1:packheader"
AAD_INDEX = b"dv1:index"
AAD_SNAPSHOT = b"dv1:snapshot"
AAD_LOCK = b"dv1:lock"
AAD_LEDGER_KEY = b"dv1:ledgerkey"
AAD_JOURNAL = b"dv1:journal"

_CTX_ENC = "deltavault 2026-11 v1 encryption"
_CTX_ID = "deltavault 2026-11 v1 blob id"
_CTX_MAC = "deltavault 2026-11 v1 config mac"
_CTX_CDC = "deltavault 2026-11 v1 chunker seed"


def derive(master: bytes, context: str) -> bytes:
    """BLAKE3 derive-key mode: a 32-byte sub-key of ``master`` for ``context``."""
    return blake3.blake3(master, derive_key_context=context).digest(KEY_SIZE)


def seal_with(aead: AESGCM, aad: bytes, plaintext: bytes | memoryview) -> bytes:
    """Encrypt into the envelope ``nonce ‖ ciphertext ‖ tag``."""
    nonce = os.urandom(NONCE_SIZE)
    return nonce + aead.encrypt(nonce, plaintext, aad)


def open_with(aead: AESGCM, aad: bytes, envelope: bytes | memoryview, what: str) -> bytes:
    """Decrypt an envelope; IntegrityError names ``what`` if it was changed."""
    if len(envelope) < OVERHEAD:
        raise IntegrityError(f"{what}: too short to be encrypted data ({len(envelope)} bytes)")
    view = memoryview(envelope)  # no copies: AES-GCM reads buffers in place
    try:
        return aead.decrypt(view[:NONCE_SIZE], view[NONCE_SIZE:], aad)
    except InvalidTag as exc:
        raise IntegrityError(f"{what}: authentication failed (data was modified)") from exc


@dataclass(frozen=True)
class MasterKey:
    """The repository's master secret and every key derived from it."""

    secret: bytes

    def __post_init__(self) -> None:
        if len(self.secret) != KEY_SIZE:
            raise ValueError("master secret must be 32 bytes")

    @classmethod
    def generate(cls) -> MasterKey:
        """A fresh random master secret (at ``init``)."""
        return cls(os.urandom(KEY_SIZE))


class Crypto:
    """Encrypts objects and blobs and computes blob ids for one repository."""

    def __init__(self, master: MasterKey) -> None:
        self.master = master
        self._aead = AESGCM(derive(master.secret, _CTX_ENC))
        self._id_key = derive(master.secret, _CTX_ID)
        self.mac_key = derive(master.secret, _CTX_MAC)
        seed = struct.unpack("<Q", derive(master.secret, _CTX_CDC)[:8])[0] & (2**63 - 1)
        self.chunker_seed = seed or 1

    def blob_id(self, plaintext: bytes | memoryview) -> bytes:
        """Keyed BLAKE3 of the plaintext: ids leak nothing about content."""
        return blake3.blake3(plaintext, key=self._id_key).digest()

    def seal(self, aad: bytes, plaintext: bytes | memoryview) -> bytes:
        """Encrypt an object or blob payload under ``K_enc``."""
        return seal_with(self._aead, aad, plaintext)

    def open(self, aad: bytes, envelope: bytes | memoryview, what: str = "object") -> bytes:
        """Decrypt and authenticate; IntegrityError if anything changed."""
        return open_with(self._aead, aad, envelope, what)

    def mac(self, data: bytes) -> str:
        """Hex BLAKE3-keyed MAC (for ``config``)."""
        return blake3.blake3(data, key=self.mac_key).hexdigest()

    def seal_blob(self, blob_id: bytes, payload: bytes | memoryview) -> bytes:
        """Encrypt a blob payload bound to its id."""
        return self.seal(AAD_BLOB + blob_id, payload)

    def open_blob(self, blob_id: bytes, envelope: bytes | memoryview) -> bytes:
        """Decrypt a blob payload; fails if it is not the blob with that id."""
        return self.open(AAD_BLOB + blob_id, envelope, f"blob {blob_id.hex()[:16]}")
