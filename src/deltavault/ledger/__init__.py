"""The tamper-evident ledger: C2SP tlog-tiles Merkle log, signed checkpoints, proofs.

The engine's entry points: :class:`Ledger` (append/read/prove),
:func:`snapshot_event` / :class:`Event` (what to append),
:class:`Journal` with a :class:`Sealer` (trade records), :func:`events` and
:func:`committed_snapshots` (what the log says exists), :func:`verify_log`,
:func:`verify_proof`, :func:`cosign`. The keyless audit of a whole repository
is :func:`deltavault.api.audit`. Format: docs/ledger.md.

The names are loaded on first use (PEP 562): a module that needs only a
constant of :mod:`deltavault.ledger.tiles` does not import the signing and
verifying code (cryptography) with it, which is what lets a command derive
its key before the ledger is loaded (:mod:`deltavault.repo.unlock`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deltavault.ledger.events import Event, snapshot_event
    from deltavault.ledger.journal import Journal, Sealer
    from deltavault.ledger.log import Ledger
    from deltavault.ledger.note import NoteSigner, NoteVerifier, parse_skey, parse_vkey
    from deltavault.ledger.proof import ProofResult, verify_proof
    from deltavault.ledger.state import committed_snapshots, events
    from deltavault.ledger.verify import VerifyResult, verify_log
    from deltavault.ledger.witness import cosign

_WHERE = {
    "Event": "events", "snapshot_event": "events", "Journal": "journal", "Sealer": "journal",
    "Ledger": "log", "NoteSigner": "note", "NoteVerifier": "note", "parse_skey": "note",
    "parse_vkey": "note", "ProofResult": "proof", "verify_proof": "proof",
    "committed_snapshots": "state", "events": "state", "VerifyResult": "verify",
    "verify_log": "verify", "cosign": "witness",
}  # fmt: skip

__all__ = [
    "Event", "Journal", "Ledger", "NoteSigner", "NoteVerifier", "ProofResult", "Sealer",
    "VerifyResult", "committed_snapshots", "cosign", "events", "parse_skey", "parse_vkey",
    "snapshot_event", "verify_log", "verify_proof",
]  # fmt: skip


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'deltavault.ledger' has no attribute {name!r}")
    return getattr(importlib.import_module(f"deltavault.ledger.{module}"), name)
