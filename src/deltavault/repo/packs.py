"""Pack files: many encrypted blobs plus an encrypted header (docs/format.md §5).

A pack is assembled in memory up to ``pack_size`` and written with one
``put``; its name is the SHA-256 of its bytes, so storage integrity can be
checked without any key.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import tempfile
from dataclasses import dataclass

from deltavault.codec.registry import CODECS_ALLOWING_BASE, CODECS_REQUIRING_BASE, KNOWN_CODECS
from deltavault.errors import FormatError
from deltavault.repo.crypto import AAD_PACK_HEADER, OVERHEAD, Crypto
from deltavault.store.base import file_blocks

BLOB_DATA = 0
BLOB_TREE = 1
PACK_MAGIC = b"DVP1"
HEADER_MAGIC = b"DVH1"
_ENTRY = struct.Struct("<BBII32s32s")
ENTRY_SIZE = _ENTRY.size  # 74
_TRAILER = struct.Struct("<I4s")
TRAILER_SIZE = _TRAILER.size
ZERO_ID = bytes(32)
#: a header claiming more blobs than this is hostile, not a pack we wrote
MAX_BLOBS_PER_PACK = 1 << 20


@dataclass(frozen=True)
class PackEntry:
    """One blob's place in a pack."""

    type: int
    codec: int
    offset: int
    length: int
    raw_length: int
    id: bytes
    base: bytes | None = None


class PackBuilder:
    """Collects encrypted blobs until the pack is big enough to write.

    ``spool``: keep the blobs in an unlinked temporary file instead of memory
    and finish with :meth:`finish_spooled`. A backup has a pack filling while
    a finished one waits for the uploader and another is being written: three
    pack-sized buffers at its peak, a quarter of its memory (issue 14).
    Spooled, they are in the page cache, which the kernel writes back or
    drops; a local repository copies each file to file, and an unlinked file
    leaves nothing behind when the process is killed.
    """

    def __init__(self, *, spool: bool = False) -> None:
        # One growing buffer, not a list joined at the end: the join would
        # hold every pack twice at the moment it is finished.
        self._buf = bytearray()
        self._file: io.BufferedRandom | None = (
            tempfile.TemporaryFile(prefix="deltavault-pack-")  # noqa: SIM115  # closed by finish
            if spool else None)
        self._entries: list[PackEntry] = []
        self.size = 0

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, *, type: int, codec: int, blob_id: bytes, raw_length: int,
            envelope: bytes, base: bytes | None = None) -> PackEntry:
        """Append an already-encrypted blob; returns its entry."""
        entry = PackEntry(type, codec, self.size, len(envelope), raw_length, blob_id, base)
        if self._file is not None:
            self._file.write(envelope)
        else:
            self._buf += envelope
        self._entries.append(entry)
        self.size += len(envelope)
        return entry

    def finish(self, crypto: Crypto) -> tuple[str, bytearray, list[PackEntry]]:
        """The pack id, its bytes and its entries; the builder is spent."""
        if self._file is not None:
            raise ValueError("a spooled builder finishes with finish_spooled")
        header = encode_header(self._entries)
        enc = crypto.seal(AAD_PACK_HEADER, header)
        data, self._buf = self._buf, bytearray()
        data += enc
        data += _TRAILER.pack(len(enc), PACK_MAGIC)
        return hashlib.sha256(data).hexdigest(), data, self._entries

    def finish_spooled(self, crypto: Crypto) -> tuple[str, io.BufferedRandom, int,
                                                      list[PackEntry]]:
        """Like :meth:`finish`, leaving the pack in its spool file: id, file, size, entries.

        The caller stores it (``RepositoryObjects.write_pack_file``) and closes
        the file. The id is hashed from the file a megabyte at a time, so a
        store that copies file to file never has the pack in memory.
        """
        fh = self._file
        if fh is None:
            raise ValueError("finish_spooled needs a builder made with spool=True")
        self._file = None
        try:
            fh.flush()
            # appending the header to a file that lost bytes would leave a hole of zeros
            spooled = os.fstat(fh.fileno()).st_size
            if spooled != self.size:
                raise OSError(f"pack spool file ended at {spooled} of {self.size} bytes")
            enc = crypto.seal(AAD_PACK_HEADER, encode_header(self._entries))
            fh.write(enc)
            fh.write(_TRAILER.pack(len(enc), PACK_MAGIC))
            size = self.size + len(enc) + TRAILER_SIZE
            fh.flush()
            digest = hashlib.sha256()
            for block in file_blocks(fh.fileno(), 0, size):
                digest.update(block)
        except BaseException:
            fh.close()
            raise
        return digest.hexdigest(), fh, size, self._entries

    def discard(self) -> None:
        """Drop what was collected (a failed backup); the spool file goes at once."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._buf = bytearray()


def encode_header(entries: list[PackEntry]) -> bytes:
    """The plaintext header: magic, count, one fixed-size entry per blob."""
    out = [HEADER_MAGIC, struct.pack("<I", len(entries))]
    for e in entries:
        out.append(_ENTRY.pack(e.type, e.codec, e.length, e.raw_length, e.id, e.base or ZERO_ID))
    return b"".join(out)


def decode_header(header: bytes, data_length: int) -> list[PackEntry]:
    """Parse a plaintext header and check its blobs tile ``data_length`` bytes."""
    if len(header) < 8 or header[:4] != HEADER_MAGIC:
        raise FormatError("pack header: bad magic")
    (count,) = struct.unpack_from("<I", header, 4)
    if count > MAX_BLOBS_PER_PACK or len(header) != 8 + count * ENTRY_SIZE:
        raise FormatError("pack header: entry count does not match its length")
    entries: list[PackEntry] = []
    offset = 0
    for i in range(count):
        typ, codec, length, raw_length, bid, base = _ENTRY.unpack_from(header, 8 + i * ENTRY_SIZE)
        if typ not in (BLOB_DATA, BLOB_TREE):
            raise FormatError(f"pack header: blob {i} has unknown type {typ}")
        if codec not in KNOWN_CODECS:
            raise FormatError(f"pack header: blob {i} has unknown codec {codec}")
        has_base = base != ZERO_ID
        if (has_base and codec not in CODECS_ALLOWING_BASE) or (
                not has_base and codec in CODECS_REQUIRING_BASE):
            raise FormatError(f"pack header: blob {i} base does not fit codec {codec}")
        if length < OVERHEAD:
            raise FormatError(f"pack header: blob {i} is shorter than its encryption overhead")
        entries.append(PackEntry(typ, codec, offset, length, raw_length, bid,
                                 base if has_base else None))
        offset += length
    if offset != data_length:
        raise FormatError("pack header: blobs do not cover the pack's data exactly")
    return entries


def split_trailer(pack_size: int, tail: bytes) -> int:
    """From the last 8 bytes of a pack, the length of its encrypted header."""
    if pack_size < TRAILER_SIZE or len(tail) != TRAILER_SIZE:
        raise FormatError("pack: too short to have a trailer")
    hlen, magic = _TRAILER.unpack(tail)
    if magic != PACK_MAGIC:
        raise FormatError("pack: bad trailer magic (not a deltavault pack)")
    if hlen < OVERHEAD or hlen > pack_size - TRAILER_SIZE:
        raise FormatError("pack: header length out of range")
    return int(hlen)


def parse_pack(data: bytes, crypto: Crypto, what: str = "pack") -> list[PackEntry]:
    """All entries of a whole pack held in memory (decrypts the header)."""
    hlen = split_trailer(len(data), data[-TRAILER_SIZE:])
    start = len(data) - TRAILER_SIZE - hlen
    header = crypto.open(AAD_PACK_HEADER, data[start : start + hlen], f"{what} header")
    return decode_header(header, start)
