"""C2SP tlog-tiles layout: object keys, tile and entry-bundle codecs, tile maths.

Pure functions only; the store I/O lives in :mod:`deltavault.ledger.storage`.

A tile at level ``L`` and index ``N`` holds up to 256 hashes of tree level
``8·L``: hash ``i`` is the complete subtree of ``256**L`` leaves starting at
leaf ``(256·N + i)·256**L``. For a tree of ``size`` leaves there are
``size >> 8L`` such hashes; the last tile of a level is *partial* (``.p/W``,
``W`` = number of hashes) unless the count is a multiple of 256. Entry
bundles mirror level 0 with entries instead of hashes.

Entries longer than 65535 bytes cannot be length-prefixed with a uint16; they
are stored as a *blob reference* entry (see docs/ledger.md §3.3): the leaf is
the reference itself, so the log stays a plain tlog-tiles log that any
generic verifier can recompute from the bundles.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from deltavault.errors import FormatError
from deltavault.ledger._text import b64decode, parse_decimal
from deltavault.ledger.merkle import HASH_SIZE, tree_hash

PREFIX = "ledger/"
CHECKPOINT_KEY = PREFIX + "checkpoint"
TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
MAX_ENTRY = 0xFFFF

#: A blob reference entry: magic ‖ SHA-256 of the real entry ‖ uint64 BE length.
REF_MAGIC = b"\x00dvref1\x00"
REF_SIZE = len(REF_MAGIC) + HASH_SIZE + 8

_STAGING_MAGIC = b"deltavault ledger staging v1\n"


def encode_index(n: int) -> str:
    """Tile index as path elements: 1234067 → ``x001/x234/067`` (tlog-tiles)."""
    if n < 0:
        raise ValueError(f"negative tile index {n}")
    parts = [f"{n % 1000:03d}"]
    n //= 1000
    while n:
        parts.append(f"x{n % 1000:03d}")
        n //= 1000
    return "/".join(reversed(parts))


def _suffix(width: int) -> str:
    if not 1 <= width <= TILE_WIDTH:
        raise ValueError(f"tile width {width} outside 1..256")
    return "" if width == TILE_WIDTH else f".p/{width}"


def tile_key(level: int, index: int, width: int = TILE_WIDTH) -> str:
    """Key of hash tile ``level/index``; ``width`` < 256 names a partial tile."""
    return f"{PREFIX}tile/{level}/{encode_index(index)}{_suffix(width)}"


def bundle_key(index: int, width: int = TILE_WIDTH) -> str:
    """Key of entry bundle ``index`` (entries ``256·index …``)."""
    return f"{PREFIX}tile/entries/{encode_index(index)}{_suffix(width)}"


def blob_key(digest: bytes) -> str:
    """Key of an entry too large for a bundle, named by its SHA-256."""
    return f"{PREFIX}blob/{digest.hex()}"


def staging_key(size: int, root: bytes) -> str:
    """Key of the staged batch that produced the checkpoint (size, root)."""
    return f"{PREFIX}staging/{size}-{root.hex()}"


# --- tiles -------------------------------------------------------------------


def encode_tile(hashes: Sequence[bytes]) -> bytes:
    """A tile is its hashes concatenated."""
    return b"".join(hashes)


def parse_tile(data: bytes, width: int) -> list[bytes]:
    """Split a tile into ``width`` hashes.

    Raises:
        FormatError: the size is not ``32·width``.
    """
    if len(data) != HASH_SIZE * width:
        raise FormatError(f"tile holds {len(data)} bytes, expected {HASH_SIZE * width}")
    return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


def level_count(size: int, level: int) -> int:
    """How many hashes tile level ``level`` holds for a tree of ``size`` leaves."""
    return size >> (TILE_HEIGHT * level)


def tile_width(count: int, index: int) -> int:
    """Width of tile ``index`` of a level holding ``count`` hashes."""
    return min(TILE_WIDTH, count - index * TILE_WIDTH)


def tail_tiles(size: int) -> list[tuple[int, int, int]]:
    """(level, index, width) of the partial tile of every level, to extend."""
    out = []
    level = 0
    while (count := level_count(size, level)) > 0:
        if count % TILE_WIDTH:
            out.append((level, count // TILE_WIDTH, count % TILE_WIDTH))
        level += 1
    return out


def edge_tiles(size: int) -> list[tuple[int, int, int]]:
    """(level, index, width) of the last tile of every level for ``size``.

    These are published last, so their presence means the whole checkpoint
    is published (docs/ledger.md §5).
    """
    out = []
    level = 0
    while (count := level_count(size, level)) > 0:
        index = (count - 1) // TILE_WIDTH
        out.append((level, index, tile_width(count, index)))
        level += 1
    return out


@dataclass(frozen=True)
class TileData:
    """One tile to write: position, width and its hashes."""

    level: int
    index: int
    hashes: tuple[bytes, ...]

    @property
    def width(self) -> int:
        return len(self.hashes)

    @property
    def key(self) -> str:
        return tile_key(self.level, self.index, self.width)


def build_tiles(
    old_size: int, tails: Mapping[int, Sequence[bytes]], leaf_hashes: Sequence[bytes]
) -> list[TileData]:
    """Every tile that changes when ``leaf_hashes`` are appended.

    Args:
        old_size: tree size before the append.
        tails: per level, the hashes of its partial tile at ``old_size``
            (levels with no partial tile may be absent).
        leaf_hashes: the new leaf hashes.

    Returns:
        The new tiles, lowest level first.
    """
    out: list[TileData] = []
    new = list(leaf_hashes)
    level = 0
    while new:
        old_count = level_count(old_size, level)
        first = old_count // TILE_WIDTH
        tail = list(tails.get(level, ()))
        if len(tail) != old_count % TILE_WIDTH:
            raise FormatError(f"tail tile at level {level} has {len(tail)} hashes")
        combined = tail + new
        up: list[bytes] = []
        for off in range(0, len(combined), TILE_WIDTH):
            chunk = tuple(combined[off : off + TILE_WIDTH])
            out.append(TileData(level, first + off // TILE_WIDTH, chunk))
            if len(chunk) == TILE_WIDTH:
                up.append(tree_hash(chunk))
        new = up
        level += 1
    return out


# --- entry bundles -----------------------------------------------------------


def encode_bundle(entries: Sequence[bytes]) -> bytes:
    """Entries as (uint16 BE length ‖ bytes)…; each must fit in 65535 bytes."""
    out = bytearray()
    for e in entries:
        if len(e) > MAX_ENTRY:
            raise ValueError(f"bundle entry of {len(e)} bytes needs a blob reference")
        out += struct.pack(">H", len(e))
        out += e
    return bytes(out)


def parse_bundle(data: bytes, limit: int = TILE_WIDTH) -> list[bytes]:
    """Decode an entry bundle of at most ``limit`` entries.

    Raises:
        FormatError: truncated or too many entries.
    """
    out: list[bytes] = []
    pos = 0
    while pos < len(data):
        if len(out) >= limit:
            raise FormatError(f"entry bundle holds more than {limit} entries")
        if pos + 2 > len(data):
            raise FormatError("entry bundle ends inside a length prefix")
        (n,) = struct.unpack_from(">H", data, pos)
        pos += 2
        if pos + n > len(data):
            raise FormatError("entry bundle ends inside an entry")
        out.append(bytes(data[pos : pos + n]))
        pos += n
    return out


def is_reference(entry: bytes) -> bool:
    """Whether a bundle entry is a blob reference rather than a real entry."""
    return entry.startswith(REF_MAGIC)


def make_reference(entry: bytes) -> bytes:
    """The bundle entry standing for a real entry longer than 65535 bytes."""
    return REF_MAGIC + hashlib.sha256(entry).digest() + struct.pack(">Q", len(entry))


def parse_reference(ref: bytes) -> tuple[bytes, int]:
    """(SHA-256, length) named by a blob reference entry.

    Raises:
        FormatError: not a well-formed reference.
    """
    if len(ref) != REF_SIZE or not is_reference(ref):
        raise FormatError("malformed blob reference entry")
    digest = ref[len(REF_MAGIC) : len(REF_MAGIC) + HASH_SIZE]
    (length,) = struct.unpack(">Q", ref[-8:])
    if length <= MAX_ENTRY:
        raise FormatError("blob reference for an entry that fits in a bundle")
    return digest, length


# --- staged batches ------------------------------------------------------------


@dataclass(frozen=True)
class StagedBatch:
    """A batch written before the checkpoint CAS, so a crash can be repaired."""

    base_size: int
    new_size: int
    root: bytes
    entries: tuple[bytes, ...]  # bundle entries (references for big ones)


def encode_staging(batch: StagedBatch) -> bytes:
    """Header lines (magic, base size, new size, b64 root), then a bundle body."""
    head = f"{batch.base_size}\n{batch.new_size}\n{base64.b64encode(batch.root).decode()}\n"
    return _STAGING_MAGIC + head.encode() + encode_bundle(batch.entries)


def parse_staging(data: bytes) -> StagedBatch:
    """Decode a staged batch.

    Raises:
        FormatError: malformed or inconsistent.
    """
    if not data.startswith(_STAGING_MAGIC):
        raise FormatError("not a deltavault ledger staging object")
    rest = data[len(_STAGING_MAGIC) :]
    fields = rest.split(b"\n", 3)
    if len(fields) != 4:
        raise FormatError("staging object header is truncated")
    try:
        base = parse_decimal(fields[0].decode("ascii"), "staging base size")
        new = parse_decimal(fields[1].decode("ascii"), "staging new size")
        root = b64decode(fields[2].decode("ascii"), "staging root")
    except UnicodeDecodeError as exc:
        raise FormatError(f"staging object header is not ASCII: {exc}") from exc
    if not 0 <= base < new or len(root) != HASH_SIZE:
        raise FormatError("staging object header is inconsistent")
    entries = parse_bundle(fields[3], limit=new - base)
    if len(entries) != new - base:
        raise FormatError(f"staging object holds {len(entries)} entries, expected {new - base}")
    return StagedBatch(base, new, root, tuple(entries))
