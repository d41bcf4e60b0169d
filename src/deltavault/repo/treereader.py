"""Tree blobs read ahead on threads while a walk decodes the ones it has.

A walk needs one tree blob per directory: a ranged pack read, AES-GCM, zstd
and the BLAKE3 id check, which run outside the GIL, then the msgpack nodes'
decoding and checks, which hold it. Read one after the other, a walk of
200,000 small files spent a fifth of ``check`` waiting on the first part
(issue 13). Here the walk says which trees it will want next, in the order it
will want them (a directory's subdirectories go ahead of what was already
queued: depth first), and two threads read and authenticate them while the
walk decodes.

Read-ahead is bounded in plaintext bytes, from each blob's raw length in the
index, so a directory of a million entries does not pull many huge trees into
memory at once. A tree the index cannot place exactly once (unknown, stored
twice) is left to the ordinary read when the walk asks for it, which raises
or picks a copy as it always does; so is every tree when the reader is
closed. An error met ahead (a damaged pack) is raised when the walk asks for
that tree, never before.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import TYPE_CHECKING

from deltavault.repo.tree import Tree

if TYPE_CHECKING:
    from deltavault.repo.index import BlobLocation
    from deltavault.repo.repository import Repository

#: plaintext bytes of trees read ahead and not yet taken
READ_AHEAD_BYTES = 32 << 20
_WORKERS = 2


class TreeReader:
    """Decoded trees for one walk, the next ones read ahead (use as a context manager)."""

    def __init__(self, repo: Repository, *, budget: int = READ_AHEAD_BYTES) -> None:
        self.repo = repo
        self._budget = budget
        self._queue: deque[BlobLocation] = deque()
        self._ahead: dict[bytes, tuple[Future[bytes], int]] = {}
        self._held = 0
        self._pool: ThreadPoolExecutor | None = ThreadPoolExecutor(
            _WORKERS, thread_name_prefix="dv-trees")

    def __enter__(self) -> TreeReader:
        return self

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Stop reading ahead; what was read and not taken is dropped."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._queue.clear()
        self._ahead.clear()
        self._held = 0

    def expect(self, tree_ids: Iterable[bytes]) -> None:
        """Trees the walk takes next, in order, before anything expected earlier."""
        ids = [t for t in tree_ids if t not in self._ahead]
        if not ids or self._pool is None:
            return
        located = [loc for loc in self.repo.index.locate_many(ids) if loc is not None]
        self._queue.extendleft(reversed(located))
        self._top_up()

    def skip(self, tree_id: bytes) -> None:
        """The walk will not take this tree after all (it knows its subtree already)."""
        entry = self._ahead.pop(tree_id, None)
        if entry is not None:
            entry[0].cancel()
            self._held -= entry[1]
            self._top_up()

    def tree(self, tree_id: bytes) -> Tree:
        """The decoded tree, read ahead or read now.

        Raises:
            DeltavaultError: the blob cannot be read, authenticated or decoded.
        """
        entry = self._ahead.pop(tree_id, None)
        if entry is None:
            plain = self.repo.load_blob(tree_id, cache=False)
        else:
            self._held -= entry[1]
            self._top_up()
            plain = entry[0].result()
        return Tree.decode(plain)

    def _top_up(self) -> None:
        """Start reads from the front of the queue while they fit the budget (one always)."""
        while self._queue and self._pool is not None:
            loc = self._queue[0]
            if loc.id in self._ahead:
                self._queue.popleft()
                continue
            if self._ahead and self._held + loc.raw_length > self._budget:
                return
            self._queue.popleft()
            future = self._pool.submit(self.repo.read_blob, loc, cache=False)
            self._ahead[loc.id] = (future, loc.raw_length)
            self._held += loc.raw_length
