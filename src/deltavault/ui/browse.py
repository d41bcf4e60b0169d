"""The Snapshot page: browse a snapshot's tree, summarise a file, stream it out verified."""

from __future__ import annotations

import hashlib
import stat as statmod
import threading
from collections import OrderedDict
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from deltavault.errors import UserError
from deltavault.repo.tree import Node
from deltavault.ui.engine import RepositoryView
from deltavault.ui.kinds import data_kind
from deltavault.ui.summaries import Summary, summarize
from deltavault.ui.timeline import row_of

_TYPE_BITS = {"file": statmod.S_IFREG, "dir": statmod.S_IFDIR, "symlink": statmod.S_IFLNK,
              "fifo": statmod.S_IFIFO, "chardev": statmod.S_IFCHR, "blockdev": statmod.S_IFBLK,
              "socket": statmod.S_IFSOCK}
_SUMMARIES: OrderedDict[bytes, Summary] = OrderedDict()
_SUMMARY_LOCK = threading.Lock()
_KEEP_SUMMARIES = 256
#: directory entries shown on one page
DIR_PAGE = 1000


def _mtime(ns: int) -> str:
    try:
        return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return "?"


def crumbs(path: str) -> list[tuple[str, str]]:
    """(name, path) of each directory above and at ``path``."""
    parts = [p for p in path.strip("/").split("/") if p]
    return [(p, "/".join(parts[: i + 1])) for i, p in enumerate(parts)]


def snapshot_context(view: RepositoryView, ref: str, path: str, page: int) -> dict[str, Any]:
    """Template values for one directory of a snapshot."""
    entry = view.snapshot(ref)
    snap = entry.snapshot
    listing = view.list_dir(snap, path)
    pages = max(1, -(-len(listing) // DIR_PAGE))
    page = min(max(page, 1), pages)
    rows = [{"name": d.name, "path": d.path, "type": d.node.type, "size": d.node.size,
             "mode": statmod.filemode(d.node.mode | _TYPE_BITS.get(d.node.type, 0)),
             "mtime": _mtime(d.node.mtime_ns),
             "kind": data_kind(d.path) if d.node.type == "file" else "",
             "target": (d.node.target or b"").decode("utf-8", "replace")}
            for d in listing[(page - 1) * DIR_PAGE: page * DIR_PAGE]]
    return {"snap": row_of(entry), "paths": snap.paths, "path": path.strip("/"),
            "crumbs": crumbs(path), "rows": rows, "page": page, "pages": pages,
            "count": len(listing)}


def file_node(view: RepositoryView, ref: str, path: str) -> tuple[str, Node]:
    """The snapshot id and the node of a regular file."""
    entry = view.snapshot(ref)
    node = view.node(entry.snapshot, path)
    if node.type != "file":
        raise UserError(f"{path.strip('/')} is a {node.type}, not a file")
    return entry.snapshot.id, node


def file_summary(view: RepositoryView, node: Node, path: str) -> Summary:
    """The summary of a file's content, remembered by content (blob ids)."""
    key = hashlib.sha256(path.rsplit(".", 1)[-1].encode() + b"\0" +
                         b"".join(node.content)).digest()
    with _SUMMARY_LOCK:
        hit = _SUMMARIES.get(key)
    if hit is not None:
        return hit
    result = summarize(path, node.size, view.content(node))
    with _SUMMARY_LOCK:
        _SUMMARIES[key] = result
        while len(_SUMMARIES) > _KEEP_SUMMARIES:
            _SUMMARIES.popitem(last=False)
    return result


def file_context(view: RepositoryView, ref: str, path: str) -> dict[str, Any]:
    """Template values for one file: metadata, data kind and summary."""
    entry = view.snapshot(ref)
    _sid, node = file_node(view, entry.snapshot.id, path)
    path = path.strip("/")
    return {"snap": row_of(entry), "path": path, "crumbs": crumbs(path), "node": node,
            "mode": statmod.filemode(node.mode | statmod.S_IFREG),
            "mtime": _mtime(node.mtime_ns), "kind": data_kind(path),
            "blobs": len(node.content), "summary": file_summary(view, node, path)}


def download(view: RepositoryView, ref: str, path: str) -> tuple[str, int, Iterator[bytes]]:
    """(file name, size, verified content) for a download response."""
    _sid, node = file_node(view, ref, path)
    name = path.strip("/").rsplit("/", 1)[-1]
    return name, node.size, view.content(node)
