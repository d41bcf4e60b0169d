"""The verified right edge of the log, and verifying the entries appended past it.

A :class:`Frontier` is a tree size, its signed root and the *tail tiles* at
that size: for every tile level, the hashes of its partial tile. The tail
tiles alone reproduce the root (every complete subtree of the size's binary
decomposition lies inside one of them, docs/ledger.md §9.1), so a frontier
is checked in microseconds and is all a client needs to carry from one run
to the next: appending leaf hashes to it yields the next tree's tiles and
root without reading anything older.

:func:`extend` is the engine's read-verification: it reads the bundles of
the new entries, hashes them, checks each level-0 tile against the leaf
hashes, each higher tile against the tiles below, and finally the root
against the signed checkpoint. Only then is anything folded from them
committed (:class:`Fold`). Reads cover only the tiles past the old size.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from deltavault.errors import FormatError, LedgerError
from deltavault.ledger.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    NodeReader,
    root_from_reader,
    tree_hash,
)
from deltavault.ledger.note import SignedCheckpoint
from deltavault.ledger.tiles import (
    TILE_HEIGHT,
    TILE_WIDTH,
    bundle_key,
    is_reference,
    level_count,
    tile_key,
    tile_width,
)

Tails = Mapping[int, tuple[bytes, ...]]


class Fold(Protocol):
    """Receives verified entries; its result counts only once ``done`` is called."""

    def add(self, start: int, entries: Sequence[bytes]) -> None:
        """Entries ``start …`` in order (large entries already resolved)."""
        ...

    def done(self, frontier: Frontier) -> None:
        """The entries were verified up to the signed root of ``frontier``: commit."""
        ...


class Follower(Protocol):
    """Something that folds the verified entries of each newly accepted checkpoint."""

    def follow(self, signed: SignedCheckpoint, start: int) -> Fold:
        """A fold of the entries ``start …`` of ``signed``'s tree (committed when done)."""
        ...


class TileReader(Protocol):
    """What :func:`extend` reads: tiles, bundles and large entries (a TileStore)."""

    def tile(self, level: int, index: int, width: int) -> list[bytes]: ...

    def bundle(self, index: int, width: int) -> list[bytes]: ...

    def blob(self, ref: bytes) -> bytes: ...


def _check_tails(size: int, tails: Tails) -> None:
    level = 0
    while (count := level_count(size, level)) > 0:
        hashes = tails.get(level, ())
        if len(hashes) != count % TILE_WIDTH:
            raise FormatError(f"tail tile of level {level} holds {len(hashes)} hashes, "
                              f"expected {count % TILE_WIDTH} at size {size}")
        if any(len(h) != HASH_SIZE for h in hashes):
            raise FormatError(f"tail tile of level {level} holds a hash that is not 32 bytes")
        level += 1
    if any(lvl >= level and hashes for lvl, hashes in tails.items()):
        raise FormatError(f"tail tiles above the top level of size {size}")


def tails_reader(size: int, tails: Tails) -> NodeReader:
    """A NodeReader answering from the tail tiles only (enough for the root)."""

    def read(level: int, index: int) -> bytes:
        tlevel, sub = divmod(level, TILE_HEIGHT)
        first = index << sub
        count = level_count(size, tlevel)
        base = count - count % TILE_WIDTH
        hashes = tails.get(tlevel, ())
        if first < base or first + (1 << sub) > count:
            raise LedgerError(f"node {level}/{index} is not inside a tail tile of size {size}")
        return tree_hash(hashes[first - base : first - base + (1 << sub)])

    return read


def tails_root(size: int, tails: Tails) -> bytes:
    """Root hash of the tree of ``size`` leaves, from its tail tiles alone.

    Raises:
        FormatError: the tails do not have the shape ``size`` implies.
    """
    _check_tails(size, tails)
    return root_from_reader(tails_reader(size, tails), size)


@dataclass(frozen=True)
class Frontier:
    """A verified tree: size, root, and the tail tiles that reproduce the root."""

    size: int
    root: bytes
    tails: Tails = field(default_factory=dict)

    @classmethod
    def empty(cls) -> Frontier:
        return cls(0, EMPTY_ROOT, {})

    @classmethod
    def of(cls, size: int, root: bytes, tails: Tails) -> Frontier:
        """A frontier whose tails are checked against ``root`` (the signed one).

        Raises:
            LedgerError: the tails do not reproduce ``root``.
        """
        try:
            computed = tails_root(size, tails)
        except FormatError as exc:
            raise LedgerError(f"tail tiles of size {size}: {exc}") from exc
        if computed != root:
            raise LedgerError(f"the tail tiles of size {size} do not reproduce its signed root")
        return cls(size, root, {lvl: tuple(h) for lvl, h in tails.items() if h})


def read_tails(tiles: TileReader, size: int) -> dict[int, tuple[bytes, ...]]:
    """The tail tiles of ``size`` as stored (unverified: check them with Frontier.of)."""
    out = {}
    level = 0
    while (count := level_count(size, level)) > 0:
        if count % TILE_WIDTH:
            out[level] = tuple(tiles.tile(level, count // TILE_WIDTH, count % TILE_WIDTH))
        level += 1
    return out


class TreeBuilder:
    """Extends a frontier leaf by leaf, handing out each tile as it completes.

    Memory is one partial tile per level, whatever the number of leaves.
    """

    def __init__(self, frontier: Frontier,
                 on_tile: Callable[[int, int, list[bytes]], None] | None = None) -> None:
        self.size = frontier.size
        self.levels: list[list[bytes]] = []
        level = 0
        while level_count(self.size, level) > 0:
            self.levels.append(list(frontier.tails.get(level, ())))
            level += 1
        self.on_tile = on_tile

    def push(self, leaf_hashes: Sequence[bytes]) -> None:
        """Append leaf hashes (level 0), a tile's worth at a time."""
        if not self.levels:
            self.levels.append([])
        i, n = 0, len(leaf_hashes)
        while i < n:
            current = self.levels[0]
            take = min(TILE_WIDTH - len(current), n - i)
            current.extend(leaf_hashes[i : i + take])
            self.size += take
            i += take
            if len(current) == TILE_WIDTH:
                if self.on_tile is not None:
                    self.on_tile(0, self.size // TILE_WIDTH - 1, current)
                self.levels[0] = []
                self._push(1, tree_hash(current))

    def _push(self, level: int, h: bytes) -> None:
        while True:
            while len(self.levels) <= level:
                self.levels.append([])
            hashes = self.levels[level]
            hashes.append(h)
            if len(hashes) < TILE_WIDTH:
                return
            index = level_count(self.size, level) // TILE_WIDTH - 1
            if self.on_tile is not None:
                self.on_tile(level, index, hashes)
            self.levels[level] = []
            h = tree_hash(hashes)
            level += 1

    def level0(self) -> list[bytes]:
        """The hashes of the current partial level-0 tile."""
        return self.levels[0] if self.levels else []

    def frontier(self) -> Frontier:
        """The frontier now (its root computed from the tails)."""
        tails = {lvl: tuple(h) for lvl, h in enumerate(self.levels) if h}
        return Frontier(self.size, tails_root(self.size, tails), tails)


def leaf_hashes(entries: Sequence[bytes]) -> list[bytes]:
    """SHA-256(0x00 ‖ entry) of each entry."""
    sha = hashlib.sha256
    return [sha(b"\x00" + e).digest() for e in entries]


def extend(tiles: TileReader, frontier: Frontier, size: int, root: bytes,
           fold: Fold | None = None) -> Frontier:
    """Verify the entries ``frontier.size … size-1`` against tiles and the signed ``root``.

    Each bundle's leaf hashes must equal its level-0 tile, every tile that
    completes (and every tail tile at ``size``) must equal what the level
    below yields, and the resulting root must equal ``root``. ``fold`` sees
    the entries as they are read and is committed only at the end.

    Raises:
        LedgerError: naming the first object that does not verify.
    """
    if size < frontier.size:
        raise LedgerError(f"cannot extend a tree of size {frontier.size} to size {size}")

    def check_tile(level: int, index: int, hashes: list[bytes]) -> None:
        if level == 0:
            return  # checked per bundle, against the entries
        if tiles.tile(level, index, len(hashes)) != hashes:
            raise LedgerError(f"hash tile {tile_key(level, index, len(hashes))} does not match "
                              f"the tiles of level {level - 1} below it")

    builder = TreeBuilder(frontier, check_tile)
    pos = frontier.size
    while pos < size:
        b = pos // TILE_WIDTH
        width = tile_width(size, b)
        bundle = tiles.bundle(b, width)
        new = bundle[pos - b * TILE_WIDTH :]
        hashes = leaf_hashes(new)
        expected = builder.level0() + hashes
        if tiles.tile(0, b, width) != expected:
            raise LedgerError(f"entry bundle {bundle_key(b, width)} does not match hash tile "
                              f"{tile_key(0, b, width)} (or the entries this client verified)")
        if fold is not None:
            fold.add(pos, [tiles.blob(e) if is_reference(e) else e for e in new])
        builder.push(hashes)
        pos += len(new)
    for level, hashes in enumerate(builder.levels):
        if level and hashes:
            check_tile(level, level_count(size, level) // TILE_WIDTH, hashes)
    result = builder.frontier()
    if result.root != root:
        raise LedgerError(f"the ledger entries {frontier.size}..{size - 1} and their tiles do not "
                          f"reproduce the signed root of size {size}")
    if fold is not None:
        fold.done(result)
    return result
