"""Which packs a snapshot needs, with every directory tree walked once per check.

Daily snapshots of a trading tree share almost every directory with the day
before (and a no-change backup shares all of them), yet ``check`` walked
each snapshot's trees from the root: 100,000 files in two identical
snapshots cost two full walks (issue 13: 8.3 s against restic's 3.0 s,
which reads each tree blob once per check). Here a directory is summarised
once by its tree id, after its whole subtree was read:

* the packs holding every blob below it that is stored in exactly one
  place, delta bases included (most blobs: where they are does not depend on
  the snapshot);
* the blobs stored in several places (a copy kept by an interrupted prune,
  a blob written twice by concurrent backups): which copy a snapshot uses
  depends on its own pack list, so ``check`` resolves those per snapshot.

A summary is kept only for a subtree found complete (every tree decoded,
every blob and base located); a damaged subtree is walked again for each
snapshot that holds it, so each is named in what ``check`` reports.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from deltavault.errors import DeltavaultError, IntegrityError
from deltavault.repo.index import BlobLocation
from deltavault.repo.repository import Repository
from deltavault.repo.snapshot import Snapshot
from deltavault.repo.tree import Node
from deltavault.repo.treereader import TreeReader
from deltavault.repo.walk import walk

#: a delta chain longer than this is a loop in a hostile index, not a chain
_MAX_CHAIN = 10_000


@dataclass(frozen=True, slots=True)
class Summary:
    """What a subtree needs: packs of its singly-stored blobs, and its multiply-stored blobs."""

    packs: frozenset[str]
    multi: frozenset[bytes]


class _Frame:
    __slots__ = ("blobs", "multi", "nodes", "ok", "packs", "parent", "tree")

    def __init__(self, tree: bytes, nodes: Iterator[Node], parent: _Frame | None) -> None:
        self.tree = tree
        self.nodes = nodes
        self.parent = parent
        self.blobs: list[bytes] = [tree]  # the tree blob itself lies in a pack too
        self.packs: set[str] = set()
        self.multi: set[bytes] = set()
        self.ok = True


#: blobs of walked directories located together (one vectorised index search)
_LOCATE_BATCH = 16_384


class TreeSummaries:
    """Summaries of the subtrees seen so far in one check (trees are immutable by id)."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self._memo: dict[bytes, Summary] = {}

    def summarise(self, root: bytes, missing: list[bytes]) -> Summary:
        """The summary of everything below ``root``.

        Blobs (and delta bases) no index knows are appended to ``missing``.
        Trees are read ahead on threads (:class:`TreeReader`); a directory
        walked to its end waits until ~16k blobs of such directories are
        located together, since one index search per directory cost more
        than the search itself (numpy's per-call overhead).

        Raises:
            DeltavaultError: a tree blob cannot be read, authenticated or decoded.
        """
        hit = self._memo.get(root)
        if hit is not None:
            return hit
        walked: list[_Frame] = []
        waiting = 0
        summary: Summary | None = None
        with TreeReader(self.repo) as reader:
            stack = [self._open(reader, root, None)]
            while stack:
                frame = stack[-1]
                node = next(frame.nodes, None)
                if node is None:
                    stack.pop()
                    walked.append(frame)
                    waiting += len(frame.blobs)
                    if waiting >= _LOCATE_BATCH or not stack:
                        summary = self._close(walked, missing)
                        walked, waiting = [], 0
                elif (below := node.tree_below()) is not None:
                    sub = self._memo.get(below)
                    if sub is None:
                        stack.append(self._open(reader, below, frame))
                    else:
                        reader.skip(below)
                        frame.packs |= sub.packs
                        frame.multi |= sub.multi
                else:
                    frame.blobs.extend(node.content)
        assert summary is not None  # the root was walked last
        return summary

    def _open(self, reader: TreeReader, tree: bytes, parent: _Frame | None) -> _Frame:
        nodes = reader.tree(tree).nodes
        reader.expect(t for n in nodes
                      if (t := n.tree_below()) is not None and t not in self._memo)
        return _Frame(tree, iter(nodes), parent)

    def _close(self, walked: list[_Frame], missing: list[bytes]) -> Summary:
        """Locate the walked directories' own blobs and finish their summaries (returns
        the last one's).

        Children were walked before their parents, so each summary is merged
        into its parent before the parent is finished. The packs of blobs
        stored once and self-contained (most) come from one array lookup for
        the batch; deltas and blobs stored several times or nowhere are
        followed one by one.
        """
        packs = iter(self.repo.index.single_packs([b for f in walked for b in f.blobs]))
        summary = Summary(frozenset(), frozenset())
        for frame in walked:
            for blob, pack in zip(frame.blobs, packs, strict=False):
                if pack is not None:
                    frame.packs.add(pack)
                else:
                    self._follow(blob, frame, missing)
            frame.blobs = []
            summary = Summary(frozenset(frame.packs), frozenset(frame.multi))
            if frame.ok:
                self._memo[frame.tree] = summary
            parent = frame.parent
            if parent is not None:
                parent.packs |= summary.packs
                parent.multi |= summary.multi
                parent.ok = parent.ok and frame.ok
        return summary

    def _follow(self, blob: bytes, frame: _Frame, missing: list[bytes]) -> None:
        """A blob that is a delta, stored several times or nowhere: its chain, one by one."""
        index = self.repo.index
        loc: BlobLocation | None = None
        chain = 0
        while True:
            if loc is None:
                locs = index.locations(blob)
                if not locs:
                    missing.append(blob)
                    frame.ok = False
                    return
                if len(locs) > 1:
                    frame.multi.add(blob)
                    return
                loc = locs[0]
            frame.packs.add(loc.pack_id)
            if loc.base is None:
                return
            chain += 1
            if chain > _MAX_CHAIN:
                raise IntegrityError(f"index: the delta chain of blob {blob.hex()} loops")
            blob, loc = loc.base, None


def resolve_multi(repo: Repository, blobs: frozenset[bytes], listed: set[str],
                  missing: list[bytes]) -> set[str]:
    """Packs a snapshot needs for its multiply-stored blobs (and their bases), preferring
    copies its pack list names; returns those it needs that the list does not name."""
    unlisted: set[str] = set()
    seen: set[bytes] = set()
    todo = list(blobs)
    while todo:
        blob = todo.pop()
        if blob in seen:
            continue
        seen.add(blob)
        locs: list[BlobLocation] = repo.index.locations(blob)
        if not locs:
            missing.append(blob)
            continue
        inside = [loc for loc in locs if loc.pack_id in listed]
        loc = inside[0] if inside else locs[0]
        if not inside:
            unlisted.add(loc.pack_id)
        if loc.base is not None:
            todo.append(loc.base)
    return unlisted


def blob_users(repo: Repository, snaps: list[Snapshot], targets: set[bytes]
               ) -> dict[bytes, list[str]]:
    """``snapshot:path`` of every file that needs one of ``targets``, directly or as a
    delta base somewhere in its chain. Walks the snapshots again: only a check that
    found damage asks, so the walk that finds nothing wrong keeps no per-blob lists."""
    base_of = {loc.id: loc.base for loc in repo.index.all_locations() if loc.base is not None}
    reach: dict[bytes, list[bytes]] = {}

    def reached(blob: bytes) -> list[bytes]:
        found = reach.get(blob)
        if found is None:
            found, steps = [], 0
            cur: bytes | None = blob
            while cur is not None and steps <= _MAX_CHAIN:
                if cur in targets:
                    found.append(cur)
                cur, steps = base_of.get(cur), steps + 1
            reach[blob] = found
        return found

    users: dict[bytes, list[str]] = {}
    for snap in snaps:
        try:
            for path, node in walk(repo, bytes.fromhex(snap.tree)):
                for blob in node.content:
                    for target in reached(blob):
                        users.setdefault(target, []).append(f"{snap.id[:12]}:{path}")
        except DeltavaultError:
            continue  # its tree problem is reported on its own
    return users
