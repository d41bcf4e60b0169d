"""Walk a snapshot's trees (for restore, ls, diff, check)."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator

from deltavault.errors import UserError
from deltavault.repo.repository import Repository
from deltavault.repo.tree import Node, Tree


def load_tree(repo: Repository, tree_id: bytes) -> Tree:
    return Tree.decode(repo.load_blob(tree_id))


def walk(repo: Repository, tree_id: bytes, prefix: str = "") -> Iterator[tuple[str, Node]]:
    """Depth-first ``(relative path, node)`` pairs, parents before children."""
    for node in load_tree(repo, tree_id).nodes:
        path = f"{prefix}/{node.name.decode('utf-8', 'surrogateescape')}" if prefix else \
            node.name.decode("utf-8", "surrogateescape")
        yield path, node
        if node.type == "dir" and node.subtree is not None:
            yield from walk(repo, node.subtree, path)


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
