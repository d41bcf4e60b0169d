"""Ledger test helpers and fixtures: a store, a log key, a ledger, a witness, a journal sealer."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from deltavault.ledger.log import Ledger
from deltavault.ledger.note import SIG_COSIGNATURE, NoteSigner
from deltavault.store.local import LocalStore

ORIGIN = "deltavault.test/log"


def seeded_key(label: str) -> Ed25519PrivateKey:
    """A deterministic Ed25519 key: seed = SHA-256(label)."""
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(label.encode()).digest())


class AesGcmSealer:
    """The repository's envelope: nonce (12) ‖ AES-256-GCM(ciphertext ‖ tag)."""

    def __init__(self, key: bytes | None = None) -> None:
        self.aead = AESGCM(key or os.urandom(32))

    def seal(self, aad: bytes, plaintext: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self.aead.encrypt(nonce, plaintext, aad)

    def open(self, aad: bytes, data: bytes) -> bytes:
        return self.aead.decrypt(data[:12], data[12:], aad)


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "repo", create=True)


@pytest.fixture
def log_key() -> Ed25519PrivateKey:
    return seeded_key("deltavault ledger test key")


@pytest.fixture
def ledger(store: LocalStore, log_key: Ed25519PrivateKey) -> Ledger:
    return Ledger.open(store, ORIGIN, signer=log_key)


@pytest.fixture
def witness() -> NoteSigner:
    return NoteSigner("witness.test/w1", seeded_key("witness"), SIG_COSIGNATURE)


@pytest.fixture
def sealer() -> AesGcmSealer:
    return AesGcmSealer()
