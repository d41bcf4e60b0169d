"""The repository's side of the ledger: signing key, events, committed snapshots.

The ledger's Ed25519 signing key is created by ``init`` and stored encrypted
with the master key (``ledger-key``, docs/format.md §2.3); its verifier key
goes into the plaintext ``config`` so an auditor can find it (but should get
it out of band too). A snapshot exists for readers only once its
``snapshot`` event is in the signed log.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from deltavault.errors import FormatError
from deltavault.ledger.events import Event
from deltavault.ledger.log import Ledger
from deltavault.ledger.note import NoteSigner
from deltavault.repo.crypto import AAD_LEDGER_KEY, Crypto
from deltavault.repo.layout import LEDGER_KEY
from deltavault.store.base import Store


def new_ledger_key(store: Store, crypto: Crypto, origin: str) -> str:
    """Create and store the signing key; returns the verifier key string."""
    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    store.put(LEDGER_KEY, crypto.seal(AAD_LEDGER_KEY, raw))
    return NoteSigner(origin, key).verifier.vkey()


def load_ledger_key(store: Store, crypto: Crypto) -> Ed25519PrivateKey:
    """Decrypt the signing key (needs the repository password)."""
    raw = crypto.open(AAD_LEDGER_KEY, store.get(LEDGER_KEY), LEDGER_KEY)
    if len(raw) != 32:
        raise FormatError("ledger-key: not a 32-byte Ed25519 private key")
    return Ed25519PrivateKey.from_private_bytes(raw)


def open_ledger(store: Store, crypto: Crypto, origin: str, verifier: str) -> Ledger:
    """The log, able to append (signing key loaded)."""
    return Ledger.open(store, origin, signer=load_ledger_key(store, crypto), verifier=verifier)


def make_event(etype: str, **fields: Any) -> bytes:
    """Canonical bytes of an event of ``etype``."""
    return Event.new(etype, **fields).to_bytes()
