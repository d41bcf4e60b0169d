"""The repository's side of the ledger: signing key, private event fields, the verified state.

The ledger's Ed25519 signing key is created by ``init`` and stored encrypted
with the master key (``ledger-key``, docs/format.md §2.3); its verifier key
goes into the plaintext ``config`` so an auditor can find it (but should get
it out of band too). A snapshot exists for readers only once its
``snapshot`` event is in the signed log.

Every repository is opened through a :class:`~deltavault.ledger.client.LedgerClient`
whose verified state is cached in this client's cache directory
(docs/ledger.md §9.2), authenticated with ``K_state`` derived from the
master key. Events pass through :func:`~deltavault.ledger.privacy.protect`
so the fields an auditor does not need are committed, not written in clear.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from deltavault.errors import FormatError, UserError
from deltavault.ledger.client import LedgerClient, StateCache
from deltavault.ledger.events import Event
from deltavault.ledger.log import Ledger
from deltavault.ledger.note import NoteSigner, NoteVerifier, parse_vkey
from deltavault.ledger.privacy import protect
from deltavault.repo.cachedir import repository_cache
from deltavault.repo.crypto import AAD_LEDGER_KEY, Crypto, derive
from deltavault.repo.layout import LEDGER_KEY
from deltavault.store.base import Store

#: BLAKE3 derive-key context of K_state, the MAC key of the cached ledger state
STATE_MAC_CONTEXT = "deltavault 2026-12 v1 ledger state mac"
#: witness verifier keys (type 0x04) whose cosignature times bound ledger times
WITNESS_KEYS_ENV = "DELTAVAULT_WITNESS_KEYS"


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


def witness_keys() -> list[NoteVerifier]:
    """The witnesses this client trusts, from ``$DELTAVAULT_WITNESS_KEYS`` (space separated).

    Raises:
        UserError: a key does not parse.
    """
    out = []
    for text in os.environ.get(WITNESS_KEYS_ENV, "").split():
        try:
            out.append(parse_vkey(text))
        except FormatError as exc:
            raise UserError(f"{WITNESS_KEYS_ENV}: {exc}") from exc
    return out


def state_cache(store: Store, crypto: Crypto, repo_id: str) -> StateCache | None:
    """Where this client keeps the verified ledger state of the repository at ``store``.

    One file per store location: a replica (same repository id, a shorter
    log) must not be held to the source's checkpoint, nor the source to the
    replica's. ``None`` (with a warning) when the cache directory cannot be made.
    """
    try:
        directory = repository_cache(repo_id)
    except UserError as exc:
        warnings.warn(f"{exc}; the ledger is verified in full on every run", stacklevel=3)
        return None
    where = hashlib.sha256(store.location().encode("utf-8", "surrogateescape")).hexdigest()
    return StateCache(directory / f"ledger-state-{where[:16]}",
                      derive(crypto.master.secret, STATE_MAC_CONTEXT))


def ledger_client(store: Store, crypto: Crypto, origin: str, verifier: str,
                  repo_id: str) -> LedgerClient:
    """This client's verified view of the repository's log (cache loaded, not yet refreshed)."""
    return LedgerClient(parse_vkey(verifier), origin, state_cache(store, crypto, repo_id),
                        witness_keys())


def open_ledger(store: Store, crypto: Crypto, origin: str, verifier: str,
                client: LedgerClient | None = None) -> Ledger:
    """The log, able to append (signing key loaded), verified through ``client``."""
    if client is None:
        return Ledger.open(store, origin, signer=load_ledger_key(store, crypto),
                           verifier=verifier)
    return client.open(store, load_ledger_key(store, crypto))


def protect_event(event: Event, crypto: Crypto) -> Event:
    """The event as it is written: private fields committed and sealed (docs/ledger.md §6.2)."""
    return protect(event, crypto)


def make_event(etype: str, crypto: Crypto | None = None, **fields: Any) -> bytes:
    """Canonical bytes of an event of ``etype`` (private fields protected when ``crypto``)."""
    event = Event.new(etype, **fields)
    return (protect(event, crypto) if crypto is not None else event).to_bytes()
