"""The ledger's objects in a :class:`~deltavault.store.base.Store`.

:class:`TileStore` reads tiles and entry bundles (caching them: every one is
write-once, so a cached copy never goes stale), writes them write-once with
fork detection, and builds the tiles of a batch. :class:`Batch` is the pure
result of building one: which objects to write and the new root.

Publication rule (docs/ledger.md §5): position-addressed objects are only
written for a checkpoint that has already won its compare-and-swap, so two
writers can never race for the same tile path. A batch is first *staged*
under a content-derived key; if the writer dies after the swap, whoever reads
the log next rebuilds the missing tiles from the staged batch.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from deltavault.errors import (
    BackendError,
    FormatError,
    LedgerError,
    ObjectExists,
    ObjectNotFound,
    UserError,
)
from deltavault.ledger.frontier import Frontier, leaf_hashes, read_tails, tails_root
from deltavault.ledger.merkle import NodeReader, root_from_reader, tree_hash
from deltavault.ledger.tiles import (
    MAX_ENTRY,
    TILE_HEIGHT,
    TILE_WIDTH,
    StagedBatch,
    blob_key,
    bundle_key,
    edge_tiles,
    encode_bundle,
    encode_tile,
    is_reference,
    level_count,
    make_reference,
    parse_bundle,
    parse_reference,
    parse_staging,
    parse_tile,
    staging_key,
    tile_key,
    tile_width,
)
from deltavault.ledger.tiles import build_tiles as _build_tiles
from deltavault.store.base import Store

_CACHE_LIMIT = 1024  # tiles: 8 KiB each at most
_BUNDLE_CACHE_LIMIT = 64  # bundles: up to 16 MiB each


@dataclass
class Batch:
    """The objects one append writes, and the tree it yields."""

    base_size: int
    new_size: int
    root: bytes
    entries: tuple[bytes, ...]
    tiles: dict[str, bytes] = field(default_factory=dict)
    bundles: dict[str, bytes] = field(default_factory=dict)

    def objects(self) -> list[tuple[str, bytes]]:
        """Every object to publish, the edge objects of the new size last.

        Edge objects last means: if they all exist, the batch is complete.
        """
        edge = set(edge_keys(self.new_size))
        items = [*self.bundles.items(), *self.tiles.items()]
        return [kv for kv in items if kv[0] not in edge] + [kv for kv in items if kv[0] in edge]


def edge_keys(size: int) -> list[str]:
    """Keys of the last entry bundle and the last tile of every level at ``size``."""
    if size == 0:
        return []
    out = [tile_key(level, index, width) for level, index, width in edge_tiles(size)]
    last = (size - 1) // TILE_WIDTH
    out.append(bundle_key(last, tile_width(size, last)))
    return out


class TileStore:
    """Tiles, bundles and blobs of one log in a store, with an immutable cache."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._tiles: dict[str, list[bytes]] = {}
        self._bundles: dict[str, list[bytes]] = {}
        self._adopted: dict[str, list[bytes]] = {}

    # --- reading --------------------------------------------------------------

    def _get(self, key: str, fallback: str | None) -> tuple[bytes, bool]:
        try:
            return self.store.get(key), False
        except ObjectNotFound:
            if fallback is None:
                raise LedgerError(f"ledger object {key} is missing") from None
        try:
            return self.store.get(fallback), True
        except ObjectNotFound:
            raise LedgerError(f"ledger object {key} is missing") from None

    def tile(self, level: int, index: int, width: int, *, remember: bool = True) -> list[bytes]:
        """The ``width`` hashes of tile ``level/index`` (partial falls back to full).

        ``remember=False`` reads past the cache (a one-pass scan must not fill it).
        """
        key = tile_key(level, index, width)
        cached = self._adopted.get(key) or self._tiles.get(key)
        if cached is not None:
            return cached
        full = tile_key(level, index) if width < TILE_WIDTH else None
        data, from_full = self._get(key, full)
        try:
            hashes = parse_tile(data, TILE_WIDTH if from_full else width)[:width]
        except FormatError as exc:
            raise LedgerError(f"{key}: {exc}") from exc
        if remember:
            self._remember(self._tiles, key, hashes)
        return hashes

    def bundle(self, index: int, width: int, *, remember: bool = True) -> list[bytes]:
        """The ``width`` raw entries of bundle ``index`` (references not resolved).

        Unverified: :class:`~deltavault.ledger.log.Ledger` checks bundles
        against the tiles and the signed root before anything acts on them.
        """
        key = bundle_key(index, width)
        cached = self._adopted.get(key) or self._bundles.get(key)
        if cached is not None:
            return cached
        full = bundle_key(index) if width < TILE_WIDTH else None
        data, from_full = self._get(key, full)
        try:
            entries = parse_bundle(data)
        except FormatError as exc:
            raise LedgerError(f"entry bundle {key}: {exc}") from exc
        if len(entries) < width or (not from_full and len(entries) != width):
            raise LedgerError(f"entry bundle {key} holds {len(entries)} entries, expected {width}")
        entries = entries[:width]
        if remember:
            self._remember(self._bundles, key, entries, _BUNDLE_CACHE_LIMIT)
        return entries

    def blob(self, ref: bytes) -> bytes:
        """The real entry a blob reference names, checked against its hash."""
        digest, length = parse_reference(ref)
        key = blob_key(digest)
        try:
            data = self.store.get(key)
        except ObjectNotFound:
            raise LedgerError(f"large entry {key} is missing") from None
        if len(data) != length or hashlib.sha256(data).digest() != digest:
            raise LedgerError(f"large entry {key} does not match its SHA-256 name")
        return data

    def node_reader(self, size: int) -> NodeReader:
        """Hashes of complete subtrees of the tree of ``size`` leaves, from tiles."""

        def read(level: int, index: int) -> bytes:
            tlevel, sub = divmod(level, TILE_HEIGHT)
            first = index << sub
            count = level_count(size, tlevel)
            if first + (1 << sub) > count:
                raise LedgerError(f"node {level}/{index} is not complete at size {size}")
            tindex = first // TILE_WIDTH
            hashes = self.tile(tlevel, tindex, tile_width(count, tindex))
            off = first - tindex * TILE_WIDTH
            return tree_hash(hashes[off : off + (1 << sub)])

        return read

    def root(self, size: int) -> bytes:
        """Root hash of the tree of ``size`` leaves, from tiles."""
        return root_from_reader(self.node_reader(size), size)

    def is_published(self, size: int) -> bool:
        """Whether every edge object of ``size`` exists (hence all of it does)."""
        return all(
            k in self._adopted or k in self._tiles or k in self._bundles or self.store.exists(k)
            for k in edge_keys(size)
        )

    # --- building and writing ----------------------------------------------

    def build(self, frontier: Frontier, entries: Sequence[bytes]) -> tuple[Batch, Frontier]:
        """Tiles, bundles and root after appending bundle ``entries`` to a verified tree.

        The tail tiles come from ``frontier`` (verified against its signed
        root), never from storage; the stored entries of a partial bundle,
        which the new bundle repeats, must hash to the frontier's level-0 tail.

        Raises:
            LedgerError: the stored partial bundle does not match the frontier.
        """
        base_size = frontier.size
        tiles = _build_tiles(base_size, frontier.tails, leaf_hashes(entries))
        batch = Batch(base_size, base_size + len(entries), b"", tuple(entries))
        for t in tiles:
            batch.tiles[t.key] = encode_tile(t.hashes)
        first = base_size // TILE_WIDTH
        tail_n = base_size % TILE_WIDTH
        old = self.bundle(first, tail_n) if tail_n else []
        if tail_n and leaf_hashes(old) != list(frontier.tails.get(0, ())):
            raise LedgerError(f"entry bundle {bundle_key(first, tail_n)} does not match the "
                              "verified hash tile of its entries")
        combined = old + list(entries)
        for off in range(0, len(combined), TILE_WIDTH):
            chunk = combined[off : off + TILE_WIDTH]
            batch.bundles[bundle_key(first + off // TILE_WIDTH, len(chunk))] = encode_bundle(chunk)
        by_position = {(t.level, t.index): t.hashes for t in tiles}
        tails: dict[int, tuple[bytes, ...]] = {}
        level = 0
        while (count := level_count(batch.new_size, level)) > 0:
            if count % TILE_WIDTH:
                tails[level] = by_position.get((level, count // TILE_WIDTH),
                                               tuple(frontier.tails.get(level, ())))
            level += 1
        after = Frontier(batch.new_size, tails_root(batch.new_size, tails), tails)
        batch.root = after.root
        return batch, after

    def adopt(self, batch: Batch) -> None:
        """Serve a batch's objects from memory (published or about to be)."""
        # kept apart from the bounded caches: a read-only reader has no other copy
        for key, data in batch.tiles.items():
            self._adopted[key] = parse_tile(data, len(data) // 32)
        for key, data in batch.bundles.items():
            self._adopted[key] = parse_bundle(data)

    def put_once(self, key: str, data: bytes) -> None:
        """Write-once; an existing identical object is fine, a different one is a fork.

        Raises:
            LedgerError: ``key`` already holds other bytes.
        """
        try:
            self.store.put(key, data)
        except ObjectExists:
            if self.store.get(key) != data:
                raise LedgerError(
                    f"fork: {key} already holds different content than this log commits to",
                    hint="run 'deltavault ledger verify' and compare with a witness checkpoint",
                ) from None

    def publish(self, batch: Batch) -> None:
        """Write a committed batch's tiles and bundles, edge objects last."""
        for key, data in batch.objects():
            self.put_once(key, data)
        for key, data in batch.tiles.items():
            self._remember(self._tiles, key, parse_tile(data, len(data) // 32))
        for key, data in batch.bundles.items():
            self._remember(self._bundles, key, parse_bundle(data), _BUNDLE_CACHE_LIMIT)

    def ensure_published(self, size: int, root: bytes, *, repair: bool) -> bool:
        """Make every tile of the checkpoint (size, root) readable (docs/ledger.md §5).

        If its writer died after the swap, rebuild its tiles from the staged
        batch: a writer (``repair``) publishes them, a read-only reader serves
        them from memory. Returns whether the store now holds them all.

        Raises:
            LedgerError: neither the tiles nor a staged batch that rebuilds
                the signed root are there.
        """
        if self.is_published(size):
            return True
        key = staging_key(size, root)
        try:
            staged = parse_staging(self.store.get(key))
        except ObjectNotFound:
            if self.is_published(size):  # its writer just finished
                return True
            raise LedgerError(f"checkpoint at size {size} is committed but its tiles and "
                              "staged batch are missing") from None
        except FormatError as exc:
            raise LedgerError(f"{key}: {exc}") from exc
        if staged.new_size != size or staged.root != root:
            raise LedgerError(f"{key} does not describe the checkpoint it is named after")
        if not self.is_published(staged.base_size):
            raise LedgerError(f"tiles of size {staged.base_size} below the staged batch are "
                              "missing")
        # Tails as stored: the rebuilt root is compared with the signed one below.
        tails = read_tails(self, staged.base_size)
        below = Frontier(staged.base_size, tails_root(staged.base_size, tails), tails)
        batch, _ = self.build(below, staged.entries)
        if batch.root != root:
            raise LedgerError(f"{key} does not rebuild the signed root of size {size}")
        if not repair:
            self.adopt(batch)
            return False
        self.publish(batch)
        self.drop(key)
        return True

    def drop(self, key: str) -> None:
        """Delete a staging object, best effort.

        Staging objects are garbage once published or lost; append-only and
        WORM stores keep them, which is harmless.
        """
        with contextlib.suppress(BackendError):
            self.store.delete(key)

    def bundle_entries(self, entries: Sequence[bytes]) -> list[bytes]:
        """The bundle entries of real entries: large ones stored as blobs, referenced.

        Raises:
            UserError: an entry is not bytes or starts with the reference magic.
        """
        out = []
        for e in entries:
            if not isinstance(e, bytes | bytearray):
                raise UserError("ledger entries must be bytes")
            if is_reference(e):
                raise UserError("ledger entries must not start with the reserved 00 'dvref1' 00")
            if len(e) > MAX_ENTRY:
                self.put_blob(bytes(e))
                out.append(make_reference(bytes(e)))
            else:
                out.append(bytes(e))
        return out

    def put_blob(self, entry: bytes) -> None:
        """Store an entry too large for a bundle under its SHA-256."""
        if len(entry) <= MAX_ENTRY:
            raise ValueError("small entries go in bundles")
        key = blob_key(hashlib.sha256(entry).digest())
        # Content-addressed: an existing copy is either this one or caught
        # by the hash check on read.
        with contextlib.suppress(ObjectExists):
            self.store.put(key, entry)

    @staticmethod
    def _remember(cache: dict[str, list[bytes]], key: str, value: list[bytes],
                  limit: int = _CACHE_LIMIT) -> None:
        if len(cache) >= limit:
            cache.clear()
        cache[key] = value


def staged_from_batch(batch: Batch) -> StagedBatch:
    """The staging record of a built batch."""
    return StagedBatch(batch.base_size, batch.new_size, batch.root, batch.entries)
