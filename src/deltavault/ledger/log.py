"""The append-only ledger over a Store: append, read, prove.

Append protocol (docs/ledger.md §5), one checkpoint per call:

1. read ``ledger/checkpoint`` with its version token and verify it (signature,
   consistency with the tree this instance verified, every entry past it);
2. make sure that checkpoint is fully published (repair it from its staged
   batch if its writer died after the swap);
3. build the new tiles and root in memory from the *verified* tail tiles
   (never from stored tiles that were not checked), write the batch to
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

import random
import time
from collections.abc import Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from deltavault.errors import (
    FormatError,
    LedgerError,
    NoCompareAndSwap,
    ObjectNotFound,
    ProofError,
    UserError,
    VersionConflict,
)
from deltavault.ledger.frontier import Follower, Frontier, extend, leaf_hashes
from deltavault.ledger.merkle import (
    EMPTY_ROOT,
    ConsistencyProof,
    InclusionProof,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
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
    TILE_WIDTH,
    bundle_key,
    encode_staging,
    is_reference,
    staging_key,
    tile_key,
    tile_width,
)
from deltavault.store.base import Store

MAX_ATTEMPTS = 200


class Ledger:
    """A tlog-tiles Merkle log in a store, signed by one Ed25519 key.

    Every checkpoint an instance accepts is verified (docs/ledger.md §9.1):
    its signature; consistency with the last checkpoint this instance (or
    the client cache that gave it ``trusted``) verified; and every entry
    past that one, against the hash tiles and the signed root. Entries read
    later at random are checked against their tile and the tile against the
    root. ``verify=False`` checks signatures only, for :func:`verify_log`,
    which does its own, exhaustive walk.

    Thread use: one instance per thread; any number of instances (threads,
    processes, hosts) may append to the same store concurrently.
    """

    def __init__(
        self, store: Store, origin: str, signer: NoteSigner | None, verifier: NoteVerifier,
        *, trusted: Frontier | None = None, follower: Follower | None = None,
        verify: bool = True, floor: Frontier | None = None,
    ) -> None:
        self.store = store
        self.origin = origin
        self.signer = signer
        self.verifier = verifier
        self.tiles = TileStore(store)
        self.follower = follower
        self.verify_entries = verify
        self._signed: SignedCheckpoint | None = None
        self._version: str | None = None
        self._published = 0
        #: the verified tree of the last checkpoint accepted (None: nothing verified yet)
        self._frontier = trusted
        #: a checkpoint verified before whose tree is not at hand: the log must extend it
        self._floor = floor
        self._checked: dict[tuple[int, int], list[bytes]] = {}

    @classmethod
    def open(
        cls,
        store: Store,
        origin: str,
        *,
        signer: Ed25519PrivateKey | None = None,
        verifier: str | None = None,
        trusted: Frontier | None = None,
        follower: Follower | None = None,
    ) -> Ledger:
        """Open the log of ``origin`` in ``store`` and verify it.

        Args:
            store: where ``ledger/`` lives.
            origin: the checkpoint origin line (also the signing key's name).
            signer: the log's private key; without it the log is read-only.
            verifier: the log's verifier key string; derived from ``signer``
                when omitted.
            trusted: a tree this client verified before (its cache); only
                entries past it are read, and the log must extend it.
            follower: folds every verified entry (the client's ledger state).

        Raises:
            UserError: neither key given, or they do not belong together.
            LedgerError: the stored log does not verify.
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
        ledger = cls(store, origin, note_signer, vkey, trusted=trusted, follower=follower)
        ledger.refresh()
        return ledger

    # --- state --------------------------------------------------------------

    def _read_checkpoint(self) -> tuple[SignedCheckpoint | None, str | None]:
        """Read the checkpoint and verify its signature and origin (nothing else)."""
        try:
            data, version = self.store.get_versioned(CHECKPOINT_KEY)
        except ObjectNotFound:
            return None, None
        try:
            return open_checkpoint(data, self.verifier, self.origin), version
        except FormatError as exc:
            raise LedgerError(f"{CHECKPOINT_KEY} is malformed: {exc}") from exc
        except LedgerError as exc:  # a bad signature or origin: say which object
            raise LedgerError(f"{CHECKPOINT_KEY}: {exc}") from exc

    def _accept(self, signed: SignedCheckpoint | None, version: str | None) -> None:
        """Make ``signed`` the current checkpoint once it verifies against what we verified.

        Raises:
            LedgerError: rolled back, forked, inconsistent, or an entry or
                tile past the verified tree does not verify. Nothing is
                accepted then.
        """
        known = self._frontier or self._floor
        if known is None and not self.verify_entries and self._signed is not None:
            known = Frontier(self._signed.checkpoint.size, self._signed.checkpoint.root)
        if signed is None:
            if known is not None and known.size > 0:
                raise LedgerError(f"{CHECKPOINT_KEY} is missing, but this client verified the "
                                  f"log at size {known.size}: history was deleted or rolled back")
            self._signed, self._version = None, version
            if self.verify_entries:
                self._frontier = Frontier.empty()
            return
        cp = signed.checkpoint
        if known is not None:
            if cp.size < known.size:
                raise LedgerError(f"{CHECKPOINT_KEY} went back from size {known.size} (verified "
                                  f"by this client) to {cp.size}: the log was rolled back")
            if cp.size == known.size:
                if cp.root != known.root:
                    raise LedgerError(f"fork: {CHECKPOINT_KEY} has another root for size "
                                      f"{cp.size} than the one this client verified")
                if self._frontier is not None or not self.verify_entries:
                    self._signed, self._version = signed, version  # new cosignatures at most
                    return
        self._ensure_published(cp)
        if known is not None and known.size > 0:
            proof = consistency_proof(self.tiles.node_reader(cp.size), known.size, cp.size)
            try:
                verify_consistency(known.size, cp.size, known.root, cp.root, proof)
            except ProofError as exc:
                raise LedgerError(
                    f"{CHECKPOINT_KEY} (size {cp.size}) is not consistent with the checkpoint of "
                    f"size {known.size} this client verified: the log was rolled back, forked or "
                    f"rewritten ({exc})") from exc
        if self.verify_entries:
            base = self._frontier or Frontier.empty()
            fold = self.follower.follow(signed, base.size) if self.follower else None
            self._frontier = extend(self.tiles, base, cp.size, cp.root, fold)
            self._floor = None
            self._checked.clear()
        self._signed, self._version = signed, version

    def refresh(self) -> SignedCheckpoint | None:
        """Re-read the checkpoint and verify it and every entry past the verified tree."""
        self._accept(*self._read_checkpoint())
        return self._signed

    def checkpoint(self) -> SignedCheckpoint | None:
        """The current signed checkpoint (None for an empty, never-written log)."""
        return self.refresh()

    @property
    def frontier(self) -> Frontier | None:
        """The verified tree of the current checkpoint (None before the first refresh)."""
        return self._frontier

    @property
    def size(self) -> int:
        """Number of entries as of the last refresh or append."""
        return self._signed.checkpoint.size if self._signed else 0

    @property
    def root(self) -> bytes:
        """Root hash as of the last refresh or append."""
        return self._signed.checkpoint.root if self._signed else EMPTY_ROOT

    def _ensure_published(self, cp: Checkpoint) -> None:
        """Make every tile of ``cp`` readable, rebuilding from staging if needed."""
        if cp.size <= self._published:
            return
        if self.tiles.ensure_published(cp.size, cp.root, repair=self.signer is not None):
            self._published = cp.size

    def _drop(self, key: str) -> None:
        self.tiles.drop(key)

    # --- append --------------------------------------------------------------

    def append(self, entries: Sequence[bytes]) -> list[int]:
        """Append a batch of entries under one new checkpoint.

        Returns:
            The index of each entry, in order.

        Raises:
            UserError: read-only ledger or invalid entries.
            NoCompareAndSwap: the store has no atomic compare-and-swap.
            LedgerError: the log does not verify, a fork was detected, or the
                compare-and-swap lost ``MAX_ATTEMPTS`` times.
        """
        if self.signer is None:
            raise UserError("the ledger is open read-only (no signing key)")
        if not entries:
            return []
        if not self.verify_entries:
            raise UserError("this ledger instance verifies signatures only; it cannot append")
        if not self.store.atomic_replace:
            # Two writers could both "win" a non-atomic checkpoint swap and fork
            # the log; refuse before writing anything (docs/backends.md).
            raise NoCompareAndSwap(
                f"refusing to append to the ledger in {self.store.location()}: the store "
                "cannot swap ledger/checkpoint atomically (no conditional writes)")
        bundle_entries = self.tiles.bundle_entries(entries)
        for attempt in range(MAX_ATTEMPTS):
            signed, version = self._read_checkpoint()
            self._accept(signed, version)  # never build on a log that does not verify
            base = self._frontier or Frontier.empty()
            batch, after = self.tiles.build(base, bundle_entries)
            new_cp = Checkpoint(self.origin, batch.new_size, batch.root)
            stage = staging_key(batch.new_size, batch.root)
            self.tiles.put_once(stage, encode_staging(staged_from_batch(batch)))
            note = sign_checkpoint(new_cp, self.signer)
            try:
                version = self.store.replace(CHECKPOINT_KEY, note.to_bytes(), version)
            except VersionConflict:
                current, current_version = self._read_checkpoint()
                if current is not None and (current.checkpoint.size, current.checkpoint.root) == (
                        new_cp.size, new_cp.root):
                    # Our swap landed but its acknowledgement was lost (a retried
                    # request then saw its own write): the batch is committed.
                    self._commit(batch, stage, current, current_version, after, entries)
                    return list(range(batch.base_size, batch.new_size))
                self._drop(stage)
                time.sleep(random.uniform(0, min(0.05, 0.001 * 2 ** min(attempt, 6))))
                continue
            self._commit(batch, stage, note, version, after, entries)
            return list(range(batch.base_size, batch.new_size))
        raise LedgerError(
            f"gave up appending after {MAX_ATTEMPTS} lost compare-and-swaps",
            hint="too many concurrent writers; retry later",
        )

    def _commit(self, batch: Batch, stage: str, signed: SignedCheckpoint, version: str | None,
                after: Frontier, entries: Sequence[bytes]) -> None:
        """Our checkpoint won: publish its objects, adopt it, fold our own entries."""
        self.tiles.publish(batch)
        self._published = batch.new_size
        self._drop(stage)
        # built from the verified tails of the checkpoint below it: verified by construction
        self._signed, self._version, self._frontier = signed, version, after
        self._checked.clear()
        if self.follower is not None:
            fold = self.follower.follow(signed, batch.base_size)
            fold.add(batch.base_size, [bytes(e) for e in entries])
            fold.done(after)

    # --- reading --------------------------------------------------------------

    def _check_size(self, size: int | None) -> int:
        current = self.size
        if size is None:
            return current
        if not 0 <= size <= current:
            raise UserError(f"tree size {size} is beyond the log's size {current}")
        return size

    def _bundle(self, index: int) -> list[bytes]:
        """Bundle ``index`` at the current size, verified: leaf hashes against its
        level-0 tile, and the tile against the signed root (an inclusion proof of
        its first leaf, whose path covers every other hash of the tile).

        Raises:
            LedgerError: the bundle, its tile or the path to the root does not verify.
        """
        size = self.size
        width = tile_width(size, index)
        cached = self._checked.get((index, width))
        if cached is not None:
            return cached
        bundle = self.tiles.bundle(index, width)
        if self.verify_entries:
            if self.tiles.tile(0, index, width) != leaf_hashes(bundle):
                raise LedgerError(f"entry bundle {bundle_key(index, width)} does not match hash "
                                  f"tile {tile_key(0, index, width)}")
            first = index * TILE_WIDTH
            path = inclusion_proof(self.tiles.node_reader(size), first, size)
            try:
                verify_inclusion(first, size, leaf_hash(bundle[0]), path, self.root)
            except ProofError as exc:
                raise LedgerError(f"hash tile {tile_key(0, index, width)} is not part of the "
                                  f"signed tree of size {size}: {exc}") from exc
        if len(self._checked) >= 64:
            self._checked.clear()
        self._checked[(index, width)] = bundle
        return bundle

    def entries(self, start: int, end: int) -> list[bytes]:
        """Entries ``start … end-1``, verified (large entries resolved and hash-checked)."""
        size = self.size
        if not 0 <= start <= end <= size:
            raise UserError(f"entry range {start}..{end} is outside the log of size {size}")
        out: list[bytes] = []
        pos = start
        while pos < end:
            index = pos // TILE_WIDTH
            bundle = self._bundle(index)
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
        return self._bundle(index // TILE_WIDTH)[index % TILE_WIDTH]

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
