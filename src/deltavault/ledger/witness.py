"""A witness: checks the log only grows, then cosigns its checkpoint.

The witness keeps, in a state directory of its own, the last checkpoint it
cosigned for each origin. Before cosigning a newer one it verifies the log's
signature, a consistency proof from its saved checkpoint and every entry
appended since (against the tiles and the new root), so a log that rewrote
history (even re-signed by an insider with the key) is refused. The
cosignature (c2sp.org/tlog-cosignature, Ed25519 type 0x04) is added to
``ledger/checkpoint`` with the same compare-and-swap writers use.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from deltavault.errors import FormatError, LedgerError, ObjectNotFound, VersionConflict
from deltavault.ledger.frontier import Frontier, read_tails
from deltavault.ledger.log import MAX_ATTEMPTS, Ledger
from deltavault.ledger.note import (
    SIG_COSIGNATURE,
    NoteSigner,
    NoteVerifier,
    add_cosignature,
    open_checkpoint,
    parse_checkpoint,
    parse_note,
)
from deltavault.ledger.storage import TileStore
from deltavault.ledger.tiles import CHECKPOINT_KEY
from deltavault.store.base import Store


@dataclass(frozen=True)
class CosignResult:
    """What the witness saw and signed."""

    origin: str
    old_size: int | None
    size: int
    timestamp: int

    def to_dict(self) -> dict[str, object]:
        return {
            "origin": self.origin,
            "old_size": self.old_size,
            "size": self.size,
            "timestamp": self.timestamp,
        }


def _state_path(state_dir: Path, origin: str) -> Path:
    # Origins are URL-like; a hash makes a safe file name.
    return state_dir / (hashlib.sha256(origin.encode()).hexdigest()[:32] + ".checkpoint")


def _save_state(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def cosign(
    store: Store,
    log_key: NoteVerifier,
    witness: NoteSigner,
    state_dir: Path,
    *,
    now: int | None = None,
) -> CosignResult:
    """Verify the log grew consistently since last time, then cosign its checkpoint.

    Args:
        store: the repository store holding ``ledger/``.
        log_key: the log's verifier key.
        witness: the witness's type-0x04 signer.
        state_dir: the witness's own directory (not in the repository).
        now: POSIX time of the cosignature (default: current time).

    Raises:
        LedgerError: bad signature, rollback or inconsistency (refused).
    """
    if witness.sig_type != SIG_COSIGNATURE:
        raise LedgerError("witness keys must be cosignature (type 0x04) keys")
    for _ in range(MAX_ATTEMPTS):
        try:
            data, version = store.get_versioned(CHECKPOINT_KEY)
        except ObjectNotFound:
            raise LedgerError("the log has no checkpoint yet") from None
        try:
            current = open_checkpoint(data, log_key)
        except FormatError as exc:
            raise LedgerError(f"{CHECKPOINT_KEY} is malformed: {exc}") from exc
        cp = current.checkpoint
        path = _state_path(state_dir, cp.origin)
        old_size: int | None = None
        if path.exists():
            old = open_checkpoint(path.read_bytes(), log_key, cp.origin).checkpoint
            old_size = old.size
            if cp.size < old.size:
                raise LedgerError(
                    f"log {cp.origin} went back from size {old.size} to {cp.size}: refused"
                )
            # The saved checkpoint's tree, re-derived from the tiles and checked
            # against its signed root: only entries past it are read and verified.
            tiles = TileStore(store)
            trusted = Frontier.of(old.size, old.root, read_tails(tiles, old.size))
            ledger = Ledger(store, cp.origin, None, log_key, trusted=trusted)
        else:
            ledger = Ledger(store, cp.origin, None, log_key)  # first sight: all of it
        ledger.refresh()  # consistency proof + every entry past the saved size
        if (ledger.size, ledger.root) != (cp.size, cp.root):
            continue  # the checkpoint moved on meanwhile: read it again
        ts = int(time.time()) if now is None else now
        signed = add_cosignature(current, witness, ts)
        try:
            store.replace(CHECKPOINT_KEY, signed.to_bytes(), version)
        except VersionConflict:
            continue
        _save_state(path, signed.to_bytes())
        return CosignResult(cp.origin, old_size, cp.size, ts)
    raise LedgerError(f"gave up cosigning after {MAX_ATTEMPTS} lost compare-and-swaps")


def last_cosigned(state_dir: Path, origin: str) -> tuple[int, bytes] | None:
    """(size, root) of the last checkpoint this witness cosigned for ``origin``."""
    path = _state_path(state_dir, origin)
    if not path.exists():
        return None
    cp = parse_checkpoint(parse_note(path.read_bytes()).text)
    return cp.size, cp.root


def new_witness_key(name: str) -> NoteSigner:
    """A fresh Ed25519 cosigning key (type 0x04) under ``name``.

    Its ``skey()`` is the witness's secret (``ledger cosign --witness-key``);
    its ``verifier.vkey()`` is what a log's auditors pass to
    ``--require-witness``.

    Raises:
        FormatError: ``name`` is not a valid key name (empty, spaces or ``+``).
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return NoteSigner(name, Ed25519PrivateKey.generate(), SIG_COSIGNATURE)
