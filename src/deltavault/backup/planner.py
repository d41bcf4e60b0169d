"""Where deltas come from: the base snapshot's version of each changed file.

Semantics (docs/format.md §4, DESIGN §3, after pgBackRest):

* full — every blob self-contained; dedup only against self-contained blobs.
* diff — a changed chunk may be a delta against the chunk of the **last full**
  snapshot; restore of any chunk reads at most the base plus one delta.
* incr — deltas against the **previous** snapshot; a chain deeper than
  ``max_chain`` is cut by writing a self-contained blob.

The base chunk of a new chunk is the base version's chunk at the same offset
(arrays and SQLite pages are cut on fixed boundaries, so a changed row or
tick lands in the chunk at the same place) or, for content-defined chunks,
the one overlapping it most (appended logs and edited text keep their
offsets up to the edit).
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from deltavault.codec.sketch import SketchIndex, sketch
from deltavault.errors import DeltavaultError
from deltavault.repo.index import BlobLocation
from deltavault.repo.repository import Repository
from deltavault.repo.snapshot import Snapshot
from deltavault.repo.tree import Node, Tree

#: base-snapshot directories kept decoded (the walk visits each once, in order)
_TREE_CACHE = 64


@dataclass
class BaseFile:
    """A file's chunks in the base snapshot: offsets, lengths and blob ids."""

    offsets: list[int]
    lengths: list[int]
    blobs: list[bytes]
    #: reads a base chunk's plaintext (to sketch it); None disables resemblance
    load: Callable[[bytes], bytes] | None = None
    _sketches: SketchIndex | None = None

    def pick_similar(self, data: bytes | memoryview, offset: int, length: int) -> bytes | None:
        """For content-defined chunks: same place if it lines up, else most alike.

        Resemblance (Finesse-style super-features, :mod:`deltavault.codec.sketch`)
        finds the base chunk an insertion or deletion moved; the base version's
        chunks are read and sketched once per file, on first need.
        """
        i = bisect.bisect_right(self.offsets, offset) - 1
        if 0 <= i < len(self.blobs) and self.offsets[i] == offset and self.lengths[i] == length:
            return self.blobs[i]
        if self.load is not None:
            if self._sketches is None:
                self._sketches = SketchIndex()
                for blob, off in zip(self.blobs, self.offsets, strict=True):
                    try:
                        self._sketches.add(blob, sketch(self.load(blob)), off)
                    except DeltavaultError:
                        continue
            found = self._sketches.best(sketch(data), offset)
            if isinstance(found, bytes):
                return found
        return self.pick(offset, length)

    def pick(self, offset: int, length: int) -> bytes | None:
        """The base chunk for a new chunk at ``offset``: same start, else most overlap."""
        if not self.blobs:
            return None
        i = bisect.bisect_right(self.offsets, offset) - 1
        best, best_overlap = None, 0
        for j in (i, i + 1):
            if 0 <= j < len(self.blobs):
                start, end = self.offsets[j], self.offsets[j] + self.lengths[j]
                overlap = min(end, offset + length) - max(start, offset)
                if start == offset and self.lengths[j] == length:
                    return self.blobs[j]
                if overlap > best_overlap:
                    best, best_overlap = self.blobs[j], overlap
        return best


class DeltaPlanner:
    """Per-backup policy: which base a chunk may use, which stored blob may be reused."""

    def __init__(self, repo: Repository, snapshot_type: str, base: Snapshot | None) -> None:
        self.repo = repo
        self.type = snapshot_type
        self.base = base
        # Deepest chain a blob of this snapshot may sit on (0 = self-contained).
        self.max_depth = {"full": 0, "diff": 1}.get(snapshot_type, repo.config.max_chain)
        self._trees: OrderedDict[str, dict[bytes, Node]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """Whether changed chunks may be stored as deltas at all."""
        return self.base is not None and self.max_depth > 0

    def depth(self, blob_id: bytes) -> int:
        """Shortest delta chain under any stored copy of a blob (huge if unknown)."""
        locs = self.repo.index.locations(blob_id)
        if not locs:
            return 1 << 30
        with self._lock:
            return min(self.repo.depth_of(loc) for loc in locs)

    def may_reuse(self, loc: BlobLocation) -> bool:
        """Whether an existing blob may be shared by this snapshot (dedup)."""
        if loc.base is None:
            return True  # the index prefers a self-contained copy: depth 0 fits any rule
        return self.depth(loc.id) <= self.max_depth

    def may_base_on(self, blob_id: bytes) -> bool:
        """Whether a new delta against ``blob_id`` stays within the depth limit."""
        return self.depth(blob_id) + 1 <= self.max_depth

    def file(self, rel: str) -> BaseFile | None:
        """The base snapshot's version of the file at ``rel`` (root-relative path)."""
        if self.base is None or self.max_depth == 0:
            return None
        parent, _, name = rel.rpartition("/")
        nodes = self._dir(parent)
        node = nodes.get(name.encode("utf-8", "surrogateescape")) if nodes else None
        if node is None or node.type != "file" or not node.content:
            return None
        offsets, lengths, offset = [], [], 0
        for blob in node.content:
            locs = self.repo.index.locations(blob)
            if not locs:
                return None
            loc = locs[0]
            offsets.append(offset)
            lengths.append(loc.raw_length)
            offset += loc.raw_length
        return BaseFile(offsets, lengths, list(node.content), load=self._load_uncached)

    def _load_uncached(self, blob_id: bytes) -> bytes:
        """A base chunk to sketch: read, not cached (the chosen base is read again
        right before encoding; sketching every chunk would flush the cache)."""
        return self.repo.load_blob(blob_id, cache=False)

    def _dir(self, rel: str) -> dict[bytes, Node] | None:
        """The base snapshot's directory at ``rel``: resolved iteratively, cached (LRU).

        Iterative so a 10,000-level tree works; bounded so a million
        directories do not all stay decoded in memory.
        """
        with self._lock:
            hit = self._trees.get(rel)
            if hit is not None:
                self._trees.move_to_end(rel)
                return hit or None
        assert self.base is not None
        parts = rel.split("/") if rel else []
        # the deepest cached ancestor, then down one level at a time
        depth = len(parts)
        nodes: dict[bytes, Node] | None = None
        with self._lock:
            while depth > 0:
                cached = self._trees.get("/".join(parts[:depth]))
                if cached is not None:
                    nodes = cached
                    break
                depth -= 1
        if depth == 0:
            nodes = self._load(bytes.fromhex(self.base.tree))
            self._remember("", nodes)
        for i in range(depth, len(parts)):
            node = nodes.get(parts[i].encode("utf-8", "surrogateescape")) if nodes else None
            nodes = self._load(node.subtree if node is not None and node.type == "dir"
                               else None)
            self._remember("/".join(parts[:i + 1]), nodes)
        return nodes or None

    def _load(self, tree_id: bytes | None) -> dict[bytes, Node]:
        if tree_id is None:
            return {}
        try:
            return {n.name: n for n in Tree.decode(self.repo.load_blob(tree_id)).nodes}
        except DeltavaultError:
            return {}  # a damaged base only costs the delta

    def _remember(self, rel: str, nodes: dict[bytes, Node]) -> None:
        with self._lock:
            self._trees[rel] = nodes
            self._trees.move_to_end(rel)
            while len(self._trees) > _TREE_CACHE:
                self._trees.popitem(last=False)
