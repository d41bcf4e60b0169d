"""Walk a snapshot's trees (for restore, ls, diff, check, prune).

Every walk is iterative: an explicit stack of one frame per directory level,
so a 10,000-level chain walks without touching Python's recursion limit and
memory grows with the depth and the size of the directories on the current
path, never with the number of files. Paths are built from the current
prefix only (one string, cut back on the way up), so a deep chain does not
keep one copy of every ancestor's path either.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator

from deltavault.errors import UserError
from deltavault.repo.repository import Repository
from deltavault.repo.tree import Node, Tree

_MAGIC = frozenset("*?[")


def load_tree(repo: Repository, tree_id: bytes, *, cache: bool = True) -> Tree:
    """Read, verify and decode one tree blob.

    ``cache=False`` for a walk that reads each tree once (restore): the blob
    cache would otherwise fill with trees nobody asks for again.
    """
    return Tree.decode(repo.load_blob(tree_id, cache=cache))


def node_name(node: Node) -> str:
    """A node's name as ``str`` (names that are not UTF-8 round-trip as surrogates)."""
    return node.name.decode("utf-8", "surrogateescape")


def walk(repo: Repository, tree_id: bytes, prefix: str = "") -> Iterator[tuple[str, Node]]:
    """Depth-first ``(relative path, node)`` pairs, parents before children."""
    stack: list[tuple[Iterator[Node], int]] = [(iter(load_tree(repo, tree_id).nodes),
                                                len(prefix))]
    path = prefix
    while stack:
        nodes, cut = stack[-1]
        node = next(nodes, None)
        if node is None:
            stack.pop()
            if stack:
                path = path[: stack[-1][1]]
            continue
        base = path[:cut]
        here = f"{base}/{node_name(node)}" if base else node_name(node)
        yield here, node
        if (below := node.tree_below()) is not None:
            stack.append((iter(load_tree(repo, below).nodes), len(here)))
            path = here
        else:
            path = base


def find_node(repo: Repository, tree_id: bytes, path: str) -> Node:
    """The node at ``path`` (``a/b/c``) below a root tree."""
    parts = [p for p in path.strip("/").split("/") if p]
    if not parts:
        raise UserError("give a path inside the snapshot")
    current = tree_id
    node: Node | None = None
    for i, part in enumerate(parts):
        node = load_tree(repo, current).find(part.encode("utf-8", "surrogateescape"))
        if node is None:
            raise UserError(f"{'/'.join(parts[: i + 1])}: no such file in the snapshot")
        if i < len(parts) - 1:
            if node.type != "dir" or node.subtree is None:
                raise UserError(f"{'/'.join(parts[: i + 1])}: not a directory")
            current = node.subtree
    assert node is not None
    return node


def matches(path: str, patterns: list[str]) -> bool:
    """Whether ``path`` or one of its parents matches an include pattern."""
    if not patterns:
        return True
    parts = path.split("/")
    for i in range(len(parts), 0, -1):
        sub = "/".join(parts[:i])
        if any(fnmatch.fnmatch(sub, p.strip("/")) for p in patterns):
            return True
    return False


def may_contain(path: str, patterns: list[str]) -> bool:
    """Whether something below directory ``path`` can match one of ``patterns``.

    A walk that restores one file must not read every tree of the snapshot:
    a directory whose path leaves the literal leading components of every
    pattern cannot hold a match (``fnmatch``'s ``*`` also matches ``/``, so
    once a pattern's components hold a wildcard, anything may match).
    """
    if not patterns:
        return True
    parts = path.split("/") if path else []
    for pattern in patterns:
        pparts = pattern.strip("/").split("/")
        literal = 0
        while literal < len(pparts) and not _MAGIC & set(pparts[literal]):
            literal += 1
        n = min(len(parts), literal)
        if parts[:n] != pparts[:n]:
            continue
        if len(parts) < literal or literal < len(pparts):
            return True
    return False
