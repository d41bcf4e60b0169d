"""Open files of the mount: byte ranges served from verified blobs.

A file is the concatenation of its blobs, exactly as ``restore`` writes it:
blob *i* starts at the sum of the plaintext lengths before it, the file is
``node.size`` long, and bytes no blob covers read as zeros. Opening a file
looks its blobs up in the index once (offsets as a numpy array); a read
bisects into it and fetches only the blobs it touches, through the shared
:class:`~deltavault.mount.cache.ReadCache`.

Sequential reads prefetch the next blob on a small pool, so decryption and
decompression of blob *i+1* overlap the kernel copying blob *i*. At most one
prefetch per open file is in flight, so memory stays bounded by the cache.
"""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import numpy.typing as npt

from deltavault.errors import DeltavaultError
from deltavault.mount.cache import ReadCache
from deltavault.mount.source import RepositorySource
from deltavault.repo.tree import Node


class OpenFile:
    """One open file: its blobs and where each starts."""

    def __init__(self, node: Node, source: RepositorySource, cache: ReadCache,
                 prefetch: ThreadPoolExecutor | None = None) -> None:
        self.node = node
        self.size = node.size
        self._blobs = list(node.content)
        lengths = np.asarray(source.blob_lengths(self._blobs), dtype=np.int64)
        self._starts: npt.NDArray[np.int64] = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=self._starts[1:])
        self._source = source
        self._cache = cache
        self._pool = prefetch
        self._ahead: Future[bytes] | None = None
        self._lock = threading.Lock()

    def _blob(self, i: int) -> bytes:
        blob_id = self._blobs[i]
        return self._cache.get(blob_id, lambda: self._source.read_blob(blob_id))

    def read(self, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes at ``offset`` (fewer only at the end of the file).

        Raises:
            DeltavaultError: a blob it needs is missing, damaged or unreadable.
        """
        end = min(offset + size, self.size)
        if offset >= end:
            return b""
        parts: list[bytes | memoryview] = []
        pos = offset
        i = int(np.searchsorted(self._starts, pos, side="right")) - 1
        while pos < end and i < len(self._blobs):
            start = int(self._starts[i])
            stop = min(end, int(self._starts[i + 1]))
            if stop > pos:
                data = self._blob(i)
                parts.append(memoryview(data)[pos - start : stop - start])
                pos = stop
            i += 1
        if pos < end:  # the blobs are shorter than the recorded size: zeros, as restore
            parts.append(bytes(end - pos))
        # Reading the second half of a blob looks sequential: fetch the next one.
        if 0 < i < len(self._blobs) and 2 * end >= int(self._starts[i - 1] + self._starts[i]):
            self._prefetch(i)
        return b"".join(parts)

    def _prefetch(self, i: int) -> None:
        """Start loading blob ``i`` in the background if nothing else is pending."""
        if self._pool is None or self._blobs[i] in self._cache:
            return
        with self._lock:
            if self._ahead is not None and not self._ahead.done():
                return
            with contextlib.suppress(RuntimeError):  # pool shut down: unmounting
                self._ahead = self._pool.submit(self._quiet_blob, i)

    def _quiet_blob(self, i: int) -> bytes:
        # A failed prefetch is not an error: the read that needs the blob
        # loads it again and reports the failure for its own file.
        try:
            return self._blob(i)
        except DeltavaultError:
            return b""
