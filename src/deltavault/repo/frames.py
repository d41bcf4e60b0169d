"""Length-prefixed msgpack frames between two processes of this program.

Why: the backup's sealer helper and the processes of a split restore talk
to their parent over pipes. A frame is a 4-byte little-endian length and a
msgpack body; the reader treats the other end as untrusted all the same (a
length beyond the caller's limit or an undecodable body is an error, a
stream cut short is the end).
"""

from __future__ import annotations

import os
import struct
from typing import Any

import msgpack

from deltavault.chunk.base import ByteReader, read_exactly
from deltavault.errors import DeltavaultError

_LEN = struct.Struct("<I")


class FrameError(DeltavaultError):
    """A frame that is too long or cannot be decoded."""


def write_frame(fd: int, body: object) -> None:
    """Write one frame to the descriptor ``fd`` (all of it, in as many writes as it takes)."""
    data = msgpack.packb(body, use_bin_type=True)
    view = memoryview(_LEN.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view):]


def read_frame(f: ByteReader, limit: int) -> Any:
    """The next frame's body, or None at the end of the stream (a frame cut short too).

    Raises:
        FrameError: the frame announces more than ``limit`` bytes or is not msgpack.
    """
    head = read_exactly(f, _LEN.size)
    if len(head) < _LEN.size:
        return None
    (n,) = _LEN.unpack(head)
    if n > limit:
        raise FrameError(f"frame of {n} bytes")
    body = read_exactly(f, n)
    if len(body) < n:
        return None
    try:
        return msgpack.unpackb(body, raw=False, use_list=True)
    except (ValueError, msgpack.UnpackException) as exc:
        raise FrameError(f"unreadable frame ({exc})") from exc
