"""Full verification of a stored log: every bundle, every tile, the signatures.

Works without the repository key: it needs only read access to ``ledger/``,
the log's verifier key and, optionally, witness keys and an older checkpoint
the caller trusts. It recomputes every leaf hash from the entry bundles,
every hash tile from the level below, and the root from the tiles, and
compares each with what is stored and signed. Problems are collected, not
raised, so one run reports every discrepancy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from deltavault.errors import FormatError, LedgerError
from deltavault.ledger.log import Ledger
from deltavault.ledger.merkle import leaf_hash, tree_hash, verify_consistency
from deltavault.ledger.note import NoteVerifier, cosignature_time, open_checkpoint
from deltavault.ledger.tiles import (
    CHECKPOINT_KEY,
    PREFIX,
    TILE_WIDTH,
    is_reference,
    tile_key,
    tile_width,
)

TILES_PREFIX = PREFIX + "tile/"


@dataclass
class VerifyResult:
    """What :func:`verify_log` checked and what it found wrong."""

    origin: str = ""
    size: int = 0
    root: str = ""
    signature: bool = False
    witnesses: dict[str, int] = field(default_factory=dict)  # name → cosignature time
    entries_checked: int = 0
    tiles_checked: int = 0
    blobs_checked: int = 0
    consistent_with: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the signature verified and nothing was wrong."""
        return self.signature and not self.problems

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form for ``--json``."""
        return {
            "ok": self.ok,
            "origin": self.origin,
            "size": self.size,
            "root": self.root,
            "signature": self.signature,
            "witnesses": self.witnesses,
            "entries_checked": self.entries_checked,
            "tiles_checked": self.tiles_checked,
            "blobs_checked": self.blobs_checked,
            "consistent_with": self.consistent_with,
            "problems": self.problems,
        }


def check_witnesses(
    ledger: Ledger, witnesses: Sequence[NoteVerifier], required: Sequence[str], result: VerifyResult
) -> None:
    """Record valid cosignatures on the current checkpoint; flag missing required ones."""
    signed = ledger._signed
    if signed is None:
        if required:
            result.problems.append("the log is empty: no checkpoint for witnesses to cosign")
        return
    for w in witnesses:
        for sig in signed.note.signatures:
            if not w.matches(sig):
                continue
            if w.verify(signed.note.text, sig):
                result.witnesses[w.name] = cosignature_time(sig)
            else:
                result.problems.append(f"cosignature of witness {w.name} does not verify")
    for name in required:
        if name not in result.witnesses:
            result.problems.append(f"checkpoint lacks a valid cosignature of witness {name}")


#: receives every entry read (large ones resolved) while the tree is checked
EntryHandler = Callable[[int, list[bytes]], None]


def _check_tree(ledger: Ledger, result: VerifyResult,
                on_progress: Callable[[int, int], None] | None = None,
                on_entries: EntryHandler | None = None) -> None:
    """Recompute level 0 from bundles and every level from the one below."""
    size = ledger.size
    pending: list[list[bytes]] = []  # per tile level: hashes of its current tile
    next_index: list[int] = []  # per tile level: index of its current tile

    def push(level: int, h: bytes) -> None:
        while len(pending) <= level:
            pending.append([])
            next_index.append(0)
        pending[level].append(h)
        if len(pending[level]) == TILE_WIDTH:
            flush(level)

    def flush(level: int) -> None:
        hashes, index = pending[level], next_index[level]
        key = tile_key(level, index, len(hashes))
        try:
            stored = ledger.tiles.tile(level, index, len(hashes))
        except LedgerError as exc:
            result.problems.append(str(exc))
        else:
            result.tiles_checked += 1
            if stored != hashes:
                what = "its entries" if level == 0 else f"the tiles of level {level - 1}"
                result.problems.append(f"hash tile {key} does not match the hashes of {what}")
        pending[level] = []
        if len(hashes) == TILE_WIDTH:
            next_index[level] += 1
            push(level + 1, tree_hash(hashes))

    for b in range((size + TILE_WIDTH - 1) // TILE_WIDTH):
        try:
            bundle = ledger.tiles.bundle(b, tile_width(size, b))
        except LedgerError as exc:
            result.problems.append(str(exc))
            return
        resolved = []
        for raw in bundle:
            entry = raw
            if is_reference(raw):
                try:
                    entry = ledger.tiles.blob(raw)
                    result.blobs_checked += 1
                except (LedgerError, FormatError) as exc:
                    result.problems.append(str(exc))
            resolved.append(entry)
            push(0, leaf_hash(raw))
            result.entries_checked += 1
        if on_entries is not None and not result.problems:
            try:
                on_entries(b * TILE_WIDTH, resolved)
            except (LedgerError, FormatError) as exc:
                result.problems.append(str(exc))
        if on_progress is not None:
            on_progress(result.entries_checked, size)
    for level in range(len(pending)):
        if pending[level]:
            flush(level)


def verify_log(
    ledger: Ledger,
    *,
    witnesses: Sequence[NoteVerifier] = (),
    required_witnesses: Sequence[str] = (),
    old_checkpoint: bytes | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    on_entries: EntryHandler | None = None,
) -> VerifyResult:
    """Verify everything about the log ``ledger`` reads.

    Args:
        ledger: an opened ledger (its verifier key is the trust anchor).
        witnesses: witness cosigner keys (type 0x04) to check.
        required_witnesses: names among ``witnesses`` that must have cosigned.
        old_checkpoint: a signed checkpoint saved earlier; the log must be
            consistent with it.
        on_progress: called with (entries checked, log size) after each
            entry bundle, so a console can show how far a long run is.
        on_entries: called with each bundle's entries as they are read; what
            it derives is only valid if the result is ``ok``.

    Returns:
        The result; ``result.ok`` says whether the log verified.
    """
    # A fresh read-only instance: nothing cached in memory may stand in for
    # what is actually stored.
    ledger = Ledger(ledger.store, ledger.origin, None, ledger.verifier, verify=False)
    result = VerifyResult(origin=ledger.origin)
    try:
        signed = ledger.refresh()
    except (LedgerError, FormatError) as exc:
        result.problems.append(f"checkpoint: {exc}")
        return result
    if signed is None and any(True for _ in ledger.store.list(TILES_PREFIX)):
        # an empty log has no tiles either: tiles without a checkpoint are a deleted history
        result.problems.append(f"{CHECKPOINT_KEY} is missing, but the store holds ledger tiles "
                               "and entries: the log's history was deleted")
        return result
    result.signature = True
    result.size, result.root = ledger.size, ledger.root.hex()
    check_witnesses(ledger, witnesses, required_witnesses, result)
    _check_tree(ledger, result, on_progress, on_entries)
    if not result.problems:
        try:
            if ledger.root_at(ledger.size) != ledger.root:
                result.problems.append("root computed from the tiles differs from the signed root")
        except LedgerError as exc:
            result.problems.append(str(exc))
    if old_checkpoint is not None:
        check_old_checkpoint(ledger, old_checkpoint, result)
    return result


def check_old_checkpoint(ledger: Ledger, data: bytes, result: VerifyResult) -> None:
    """Prove the current log extends a checkpoint saved earlier."""
    try:
        old = open_checkpoint(data, ledger.verifier, ledger.origin).checkpoint
    except (LedgerError, FormatError) as exc:
        result.problems.append(f"old checkpoint: {exc}")
        return
    if old.size > ledger.size:
        result.problems.append(
            f"the log (size {ledger.size}) is smaller than the old checkpoint (size {old.size}):"
            " history was truncated"
        )
        return
    try:
        proof = ledger.consistency_proof(old.size, ledger.size)
        verify_consistency(old.size, ledger.size, old.root, ledger.root, proof.hashes)
    except LedgerError as exc:
        result.problems.append(
            f"the log is not consistent with the old checkpoint of size {old.size}: {exc}"
        )
        return
    result.consistent_with = old.size
