"""The tamper-evident ledger: C2SP tlog-tiles Merkle log, signed checkpoints, proofs.

The engine's entry points: :class:`Ledger` (append/read/prove),
:func:`snapshot_event` / :class:`Event` (what to append),
:class:`Journal` with a :class:`Sealer` (trade records), :func:`events` and
:func:`committed_snapshots` (what the log says exists), :func:`verify_log`,
:func:`verify_proof`, :func:`cosign`. The keyless audit of a whole repository
is :func:`deltavault.api.audit`. Format: docs/ledger.md.
"""

from deltavault.ledger.events import Event, snapshot_event
from deltavault.ledger.journal import Journal, Sealer
from deltavault.ledger.log import Ledger
from deltavault.ledger.note import NoteSigner, NoteVerifier, parse_skey, parse_vkey
from deltavault.ledger.proof import ProofResult, verify_proof
from deltavault.ledger.state import committed_snapshots, events
from deltavault.ledger.verify import VerifyResult, verify_log
from deltavault.ledger.witness import cosign

__all__ = [
    "Event", "Journal", "Ledger", "NoteSigner", "NoteVerifier", "ProofResult", "Sealer",
    "VerifyResult", "committed_snapshots", "cosign", "events", "parse_skey", "parse_vkey",
    "snapshot_event", "verify_log", "verify_proof",
]  # fmt: skip
