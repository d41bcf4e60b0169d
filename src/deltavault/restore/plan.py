"""The streaming restore plan: walk the snapshot and cut the work into bounded batches.

Nothing here materialises the snapshot: the walk keeps one frame per level
of the current path, and a batch holds at most ``max_blobs`` blob writes and
``max_dirs`` directories, so memory is bounded by the depth of the tree and
the work in flight, whatever the number of files. Directories are made when
their first entry is placed (or when they are left, if empty), so a
directory the include patterns skip is neither read nor made, and restoring
one file reads only the trees on its path.

A batch is finished in order: every file of it has been written, then its
hard links, symlinks and special files are made, then the directories the
walk left are given their metadata, deepest first.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from deltavault.repo.repository import Repository
from deltavault.repo.tree import Node
from deltavault.repo.walk import load_tree, matches, may_contain, node_name
from deltavault.restore.files import FileJob
from deltavault.restore.fsdir import Dir, make_dir, open_dir, remove_leftovers

#: a file's blobs are split into slices of at most this many per batch
DEFAULT_MAX_BLOBS = 4096
DEFAULT_MAX_DIRS = 64


@dataclass
class DirDone:
    """A directory the walk has left: its metadata is applied once its batch is done."""

    dir: Dir
    node: Node
    replaces: bytes | None


@dataclass
class Batch:
    """Bounded work: slices of files' blob lists, links, nodes, finished directories."""

    slices: list[tuple[FileJob, int, int, Dir | None]] = field(default_factory=list)
    links: list[tuple[Dir, bytes, FileJob]] = field(default_factory=list)
    others: list[tuple[Dir, bytes, Node]] = field(default_factory=list)
    dirs_done: list[DirDone] = field(default_factory=list)
    pinned: dict[Dir, None] = field(default_factory=dict)
    blobs: int = 0

    def pin(self, d: Dir) -> None:
        """Keep ``d`` open until the batch is finished."""
        if d not in self.pinned:
            d.pin()
            self.pinned[d] = None

    def unpin(self) -> None:
        """Release every directory this batch held open."""
        for d in self.pinned:
            d.unpin()
        self.pinned.clear()


class _Frame:
    __slots__ = ("dir", "included", "live", "node", "nodes", "parent", "path", "pos",
                 "replaces")

    def __init__(self, parent: _Frame | None, node: Node | None, nodes: list[Node],
                 path: str, included: bool) -> None:
        self.parent = parent
        self.node = node
        self.nodes = nodes
        self.pos = 0
        self.path = path
        self.included = included
        self.dir: Dir | None = None
        self.live: Dir | None = None
        self.replaces: bytes | None = None


class Planner:
    """Walks a snapshot's tree below a target and yields :class:`Batch` es."""

    def __init__(self, repo: Repository, tree_id: bytes, root: Dir, *,
                 include: list[str], live_root: Dir | None = None,
                 live_top: bytes | None = None, in_place: bool = True,
                 max_blobs: int = DEFAULT_MAX_BLOBS, max_dirs: int = DEFAULT_MAX_DIRS,
                 roots: Iterable[tuple[Dir, list[Node]]] | None = None) -> None:
        self.repo = repo
        self.tree_id = tree_id
        self.root = root
        self.include = [p.strip("/") for p in include if p.strip("/")]
        self.live_root = live_root
        #: the top-level entry the live tree stands for (None: the live tree is the root)
        self.live_top = live_top
        self.in_place = in_place
        self.max_blobs = max_blobs
        self.max_dirs = max_dirs
        self.dirs = 0
        self.leftovers = 0
        #: instead of the tree ``tree_id``: entries of directories made already, each
        #: walked in turn and left unfinished (a part of a split restore, see split.py)
        self.roots = roots
        #: a split part's hard-linked files: (device, inode), directory, name (the
        #: coordinator links those other parts also hold; None: not collected)
        self.linked: list[tuple[tuple[int, int], Dir, bytes]] | None = (
            [] if roots is not None else None)
        self._first_by_inode: dict[tuple[int, int], FileJob] = {}
        self._batch = Batch()

    def batches(self) -> Iterator[Batch]:
        """Walk the whole tree (or every root given); the last batch may be empty."""
        if self.roots is None:
            top = _Frame(None, None, load_tree(self.repo, self.tree_id, cache=False).nodes,
                         "", not self.include)
            top.dir = self.root
            top.live = self.live_root if self.live_top is None else None
            yield from self._walk(top)
        else:
            for d, nodes in self.roots:
                top = _Frame(None, None, nodes, "", not self.include)
                top.dir = d
                yield from self._walk(top)
        yield self._batch

    def _walk(self, top: _Frame) -> Iterator[Batch]:
        stack = [top]
        include = self.include
        while stack:
            frame = stack[-1]
            nodes, i, n = frame.nodes, frame.pos, len(frame.nodes)
            child: _Frame | None = None
            while i < n:
                node = nodes[i]
                i += 1
                path = ""
                included = frame.included
                if include:
                    path = f"{frame.path}/{node_name(node)}" if frame.path else node_name(node)
                    included = included or matches(path, include)
                sub = node.tree_below()
                if sub is not None:
                    if included or may_contain(path, include):
                        nodes_below = load_tree(self.repo, sub, cache=False).nodes
                        child = _Frame(frame, node, nodes_below, path, included)
                        break
                    continue
                if not included:
                    continue
                d = frame.dir if frame.dir is not None else self._materialise(frame)
                batch = self._batch
                batch.pin(d)
                if node.type != "file":
                    batch.others.append((d, node.name, node))
                elif (node.links > 1 and node.inode) or len(node.content) > (
                        self.max_blobs - batch.blobs):
                    frame.pos = i
                    yield from self._add_file(frame, d, node)
                    continue
                else:  # the common case: a file whose blobs fit in this batch
                    live = frame.live
                    if live is not None:
                        batch.pin(live)
                    batch.slices.append((FileJob(d, node.name, node), 0, len(node.content),
                                         live))
                    batch.blobs += len(node.content)
                if batch.blobs >= self.max_blobs or len(batch.pinned) >= self.max_dirs or (
                        len(batch.slices) + len(batch.others)) >= self.max_blobs:
                    frame.pos = i
                    yield self._cut()
            frame.pos = i
            if child is not None:
                stack.append(child)
                continue
            stack.pop()
            if frame.parent is not None:
                self._leave(frame)
                yield from self._maybe_cut()

    # --- files --------------------------------------------------------------------

    def _add_file(self, frame: _Frame, d: Dir, node: Node) -> Iterator[Batch]:
        """A hard link, or a file whose blobs are spread over several batches."""
        key = (node.dev, node.inode)
        if node.links > 1 and node.inode:
            if self.linked is not None:
                self.linked.append((key, d, node.name))
            first = self._first_by_inode.get(key)
            if first is not None:
                self._batch.links.append((d, node.name, first))
                yield from self._maybe_cut()
                return
        job = FileJob(d, node.name, node)
        if node.links > 1 and node.inode:
            self._first_by_inode[key] = job
        live = frame.live
        start, count = 0, len(node.content)
        while True:
            take = min(count - start, max(1, self.max_blobs - self._batch.blobs))
            self._batch.pin(d)
            if live is not None:
                self._batch.pin(live)
            self._batch.slices.append((job, start, start + take, live))
            self._batch.blobs += take
            start += take
            if start >= count:
                break
            yield self._cut()
        yield from self._maybe_cut()

    # --- directories ----------------------------------------------------------------

    def _materialise(self, frame: _Frame) -> Dir:
        """Make the frame's directory (and any of its parents not made yet)."""
        chain: list[_Frame] = []
        f: _Frame | None = frame
        while f is not None and f.dir is None:
            chain.append(f)
            f = f.parent
        for step in reversed(chain):
            parent = step.parent
            assert parent is not None and parent.dir is not None and step.node is not None
            step.dir, step.replaces, existed = make_dir(parent.dir, step.node.name)
            self.dirs += 1
            if existed and self.in_place:
                self.leftovers += remove_leftovers(step.dir)
            if parent.live is not None:
                step.live = open_dir(parent.live, step.node.name)
            elif parent.parent is None and step.node.name == self.live_top:
                step.live = self.live_root
        assert frame.dir is not None
        return frame.dir

    def _leave(self, frame: _Frame) -> None:
        if frame.dir is None and frame.included:
            self._materialise(frame)  # an empty directory of the snapshot
        if frame.dir is not None:
            assert frame.node is not None
            self._batch.pin(frame.dir)
            self._batch.dirs_done.append(DirDone(frame.dir, frame.node, frame.replaces))

    # --- cutting batches ------------------------------------------------------------

    def _maybe_cut(self) -> Iterator[Batch]:
        b = self._batch
        if b.blobs >= self.max_blobs or len(b.pinned) >= self.max_dirs or (
                len(b.slices) + len(b.others) + len(b.links)) >= self.max_blobs:
            yield self._cut()

    def _cut(self) -> Batch:
        out = self._batch
        self._batch = Batch()
        return out
