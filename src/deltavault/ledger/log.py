"""The append-only ledger over a Store: append, read, prove.

Append protocol (docs/ledger.md §5), one checkpoint per call:

1. read ``ledger/checkpoint`` with its version token and verify it;
2. make sure that checkpoint is fully published (repair it from its staged
   batch if its writer died after the swap);
3. build the new tiles and root in memory, write the batch to
   ``ledger/staging/<size>-<root>`` (content-derived, so writers never clash);
4. sign the new checkpoint and ``replace`` it with compare-and-swap; on
   :class:`~deltavault.errors.VersionConflict` go back to 1 on top of the
   winner's checkpoint (bounded retries, jittered backoff);
5. publish tiles and bundles (write-once, edge objects last), drop the staging
   object.

Only step 4 changes what readers see, so a crash anywhere leaves a log that
verifies at the old or the new size.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from deltavault.errors import (
    BackendError,
    FormatError,
    LedgerError,
    ObjectNotFound,
    UserError,
    VersionConflict,
)
from deltavault.ledger.merkle import (
    EMPTY_ROOT,
    ConsistencyProof,
    InclusionProof,
    consistency_proof,
    inclusion_proof,
    verify_consistency,
)
from deltavault.ledger.note import (
    Checkpoint,
    NoteSigner,
    NoteVerifier,
    SignedCheckpoint,
    open_checkpoint,
    parse_vkey,
    sign_checkpoint,
)
from deltavault.ledger.storage import Batch, TileStore, staged_from_batch
from deltavault.ledger.tiles import (
    CHECKPOINT_KEY,
    MAX_ENTRY,
    TILE_WIDTH,
    encode_staging,
    is_reference,
    make_reference,
    parse_staging,
    staging_key,
    tile_width,
)
from deltavault.store.base import Store

MAX_ATTEMPTS = 200


class Ledger:
    """A tlog-tiles Merkle log in a store, signed by one Ed25519 key.

    Thread use: one instance per thread; any number of instances (threads,
    processes, hosts) may append to the same store concurrently.
    """

    def __init__(
        self, store: Store, origin: str, signer: NoteSigner | None, verifier: NoteVerifier
    ) -> None:
        self.store = store
        self.origin = origin
        self.signer = signer
        self.verifier = verifier
        self.tiles = TileStore(store)
        self._signed: SignedCheckpoint | None = None
        self._version: str | None = None
        self._published = 0

    @classmethod
    def open(
        cls,
        store: Store,
        origin: str,
        *,
        signer: Ed25519PrivateKey | None = None,
        verifier: str | None = None,
    ) -> Ledger:
        """Open the log of ``origin`` in ``store``.

        Args:
            store: where ``ledger/`` lives.
            origin: the checkpoint origin line (also the signing key's name).
            signer: the log's private key; without it the log is read-only.
            verifier: the log's verifier key string; derived from ``signer``
                when omitted.

        Raises:
            UserError: neither key given, or they do not belong together.
            LedgerError: the stored checkpoint does not verify.
        """
        note_signer = NoteSigner(origin, signer) if signer is not None else None
        if verifier is not None:
            vkey = parse_vkey(verifier)
            if note_signer is not None and vkey != note_signer.verifier:
                raise UserError("the ledger signing key does not match the verifier key")
        elif note_signer is not None:
            vkey = note_signer.verifier
        else:
            raise UserError("opening a ledger needs its verifier key or its signing key")
        ledger = cls(store, origin, note_signer, vkey)
        ledger.refresh()
        return ledger

    # --- state --------------------------------------------------------------

    def _read_checkpoint(self) -> tuple[SignedCheckpoint | None, str | None]:
        """Read and verify the checkpoint; refuse one that rolls back what we saw."""
        try:
            data, version = self.store.get_versioned(CHECKPOINT_KEY)
        except ObjectNotFound:
            signed, version = None, None
        else:
            try:
                signed = open_checkpoint(data, self.verifier, self.origin)
            except FormatError as exc:
                raise LedgerError(f"{CHECKPOINT_KEY} is malformed: {exc}") from exc
        seen = self._signed.checkpoint if self._signed else None
        if seen is not None:
            if signed is None or signed.checkpoint.size < seen.size:
                raise LedgerError(f"the ledger checkpoint went back from size {seen.size}")
            now = signed.checkpoint
            if now.size == seen.size and now.root != seen.root:
                raise LedgerError(f"fork: two different roots for size {seen.size}")
            if now.size > seen.size and version != self._version:
                self._ensure_published(now)
                proof = consistency_proof(self.tiles.node_reader(now.size), seen.size, now.size)
                verify_consistency(seen.size, now.size, seen.root, now.root, proof)
        return signed, version

    def refresh(self) -> SignedCheckpoint | None:
        """Re-read and verify the checkpoint; make its tiles readable."""
        signed, version = self._read_checkpoint()
        if version != self._version or signed is None:
            if signed is not None:
                self._ensure_published(signed.checkpoint)
            self._signed, self._version = signed, version
        return self._signed

    def checkpoint(self) -> SignedCheckpoint | None:
        """The current signed checkpoint (None for an empty, never-written log)."""
        return self.refresh()

    @property
    def size(self) -> int:
        """Number of entries as of the last refresh or append."""
        return self._signed.checkpoint.size if self._signed else 0

    @property
    def root(self) -> bytes:
        """Root hash as of the last refresh or append."""
        return self._signed.checkpoint.root if self._signed else EMPTY_ROOT

    def _ensure_published(self, cp: Checkpoint) -> None:
        """Make every tile of ``cp`` readable, rebuilding from staging if needed.

        A writer repairs the store; a read-only reader serves the rebuilt
        objects from memory.
        """
        if cp.size <= self._published or self.tiles.is_published(cp.size):
            self._published = max(self._published, cp.size)
            return
        key = staging_key(cp.size, cp.root)
        try:
            staged = parse_staging(self.store.get(key))
        except ObjectNotFound:
            if self.tiles.is_published(cp.size):  # its writer just finished
                return
            raise LedgerError(
                f"checkpoint at size {cp.size} is committed but its tiles and staged batch "
                "are missing"
            ) from None
        except FormatError as exc:
            raise LedgerError(f"{key}: {exc}") from exc
        if staged.new_size != cp.size or staged.root != cp.root:
            raise LedgerError(f"{key} does not describe the checkpoint it is named after")
        if not self.tiles.is_published(staged.base_size):
            raise LedgerError(
                f"tiles of size {staged.base_size} below the staged batch are missing"
            )
        batch = self.tiles.build(staged.base_size, staged.entries)
        if batch.root != cp.root:
            raise LedgerError(f"{key} does not rebuild the signed root of size {cp.size}")
        if self.signer is not None:
            self.tiles.publish(batch)
            self._drop(key)
            self._published = cp.size
        else:
            self.tiles.adopt(batch)

    def _drop(self, key: str) -> None:
        # Best effort: staging objects are garbage once published or lost;
        # append-only and WORM stores keep them, which is harmless.
        with contextlib.suppress(BackendError):
            self.store.delete(key)

    # --- append --------------------------------------------------------------

    def _bundle_entries(self, entries: Sequence[bytes]) -> list[bytes]:
        out = []
        for e in entries:
            if not isinstance(e, bytes | bytearray):
                raise UserError("ledger entries must be bytes")
            if is_reference(e):
                raise UserError("ledger entries must not start with the reserved 00 'dvref1' 00")
            if len(e) > MAX_ENTRY:
                self.tiles.put_blob(bytes(e))
                out.append(make_reference(bytes(e)))
            else:
                out.append(bytes(e))
        return out

    def append(self, entries: Sequence[bytes]) -> list[int]:
        """Append a batch of entries under one new checkpoint.

        Returns:
            The index of each entry, in order.

        Raises:
            UserError: read-only ledger or invalid entries.
            LedgerError: the log does not verify, a fork was detected, or the
                compare-and-swap lost ``MAX_ATTEMPTS`` times.
        """
        if self.signer is None:
            raise UserError("the ledger is open read-only (no signing key)")
        if not entries:
            return []
        bundle_entries = self._bundle_entries(entries)
        for attempt in range(MAX_ATTEMPTS):
            signed, version = self._read_checkpoint()
            base = signed.checkpoint if signed else Checkpoint(self.origin, 0, EMPTY_ROOT)
            self._ensure_published(base)
            batch = self.tiles.build(base.size, bundle_entries)
            new_cp = Checkpoint(self.origin, batch.new_size, batch.root)
            stage = staging_key(batch.new_size, batch.root)
            self.tiles.put_once(stage, encode_staging(staged_from_batch(batch)))
            note = sign_checkpoint(new_cp, self.signer)
            try:
                self._version = self.store.replace(CHECKPOINT_KEY, note.to_bytes(), version)
            except VersionConflict:
                current, current_version = self._read_checkpoint()
                if current is not None and (current.checkpoint.size, current.checkpoint.root) == (
                        new_cp.size, new_cp.root):
                    # Our swap landed but its acknowledgement was lost (a retried
                    # request then saw its own write): the batch is committed.
                    self._version, self._signed = current_version, current
                    self._commit(batch, stage)
                    return list(range(batch.base_size, batch.new_size))
                self._drop(stage)
                time.sleep(random.uniform(0, min(0.05, 0.001 * 2 ** min(attempt, 6))))
                continue
            self._signed = note
            self._commit(batch, stage)
            return list(range(batch.base_size, batch.new_size))
        raise LedgerError(
            f"gave up appending after {MAX_ATTEMPTS} lost compare-and-swaps",
            hint="too many concurrent writers; retry later",
        )

    def _commit(self, batch: Batch, stage: str) -> None:
        self.tiles.publish(batch)
        self._published = batch.new_size
        self._drop(stage)

    # --- reading --------------------------------------------------------------

    def _check_size(self, size: int | None) -> int:
        current = self.size
        if size is None:
            return current
        if not 0 <= size <= current:
            raise UserError(f"tree size {size} is beyond the log's size {current}")
        return size

    def entries(self, start: int, end: int) -> list[bytes]:
        """Entries ``start … end-1`` (large entries resolved and hash-checked)."""
        size = self.size
        if not 0 <= start <= end <= size:
            raise UserError(f"entry range {start}..{end} is outside the log of size {size}")
        out: list[bytes] = []
        pos = start
        while pos < end:
            index = pos // TILE_WIDTH
            bundle = self.tiles.bundle(index, tile_width(size, index))
            stop = min(end, (index + 1) * TILE_WIDTH)
            for raw in bundle[pos - index * TILE_WIDTH : stop - index * TILE_WIDTH]:
                out.append(self.tiles.blob(raw) if is_reference(raw) else raw)
            pos = stop
        return out

    def entry(self, index: int) -> bytes:
        """One entry by index."""
        return self.entries(index, index + 1)[0]

    def leaf(self, index: int) -> bytes:
        """The bundle entry whose hash is leaf ``index`` (a reference for large entries)."""
        size = self.size
        if not 0 <= index < size:
            raise UserError(f"entry {index} is outside the log of size {size}")
        b = index // TILE_WIDTH
        return self.tiles.bundle(b, tile_width(size, b))[index % TILE_WIDTH]

    def root_at(self, size: int) -> bytes:
        """Root hash of the first ``size`` entries, from tiles."""
        return self.tiles.root(self._check_size(size))

    def inclusion_proof(self, index: int, size: int | None = None) -> InclusionProof:
        """Audit path of entry ``index`` in the tree of ``size`` (default: current)."""
        n = self._check_size(size)
        hashes = inclusion_proof(self.tiles.node_reader(n), index, n)
        return InclusionProof(index, n, tuple(hashes))

    def consistency_proof(self, old: int, new: int | None = None) -> ConsistencyProof:
        """Proof that the tree of size ``new`` (default: current) extends size ``old``."""
        n = self._check_size(new)
        if not 0 <= old <= n:
            raise UserError(f"old size {old} is beyond new size {n}")
        return ConsistencyProof(old, n, tuple(consistency_proof(self.tiles.node_reader(n), old, n)))
