"""The tamper-evident ledger: C2SP tlog-tiles Merkle log, signed checkpoints, proofs.

The engine's entry points: :class:`Ledger` (append/read/prove),
:func:`snapshot_event` / :class:`Event` (what to append),
:class:`Journal` with a :class:`Sealer` (trade records), :func:`verify_log`,
:func:`audit`, :func:`verify_proof`, :func:`cosign`. Format: docs/ledger.md.
"""

from deltavault.ledger.events import Event, snapshot_event
from deltavault.ledger.journal import Journal, Sealer
from deltavault.ledger.log import Ledger
from deltavault.ledger.note import NoteSigner, NoteVerifier, parse_skey, parse_vkey
from deltavault.ledger.proof import ProofResult, verify_proof
from deltavault.ledger.verify import VerifyResult, verify_log
from deltavault.ledger.witness import cosign
from deltavault.ops.audit import AuditReport, audit

__all__ = [
    "AuditReport", "Event", "Journal", "Ledger", "NoteSigner", "NoteVerifier", "ProofResult",
    "Sealer", "VerifyResult", "audit", "cosign", "parse_skey", "parse_vkey", "snapshot_event",
    "verify_log", "verify_proof",
]  # fmt: skip
