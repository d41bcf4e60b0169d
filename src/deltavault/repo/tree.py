"""Tree blobs: one directory's entries (docs/format.md §7).

Names are kept as raw bytes so that file names that are not valid UTF-8
round-trip. Decoding validates every name, because a hostile tree is how a
restore would be tricked into writing outside its target.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from deltavault.errors import FormatError
from deltavault.repo.canonical import pack_msgpack, unpack_msgpack_map

NODE_TYPES = frozenset({"file", "dir", "symlink", "fifo", "chardev", "blockdev", "socket"})
_INT_FIELDS = ("mode", "uid", "gid", "mtime_ns", "ctime_ns", "size", "inode", "dev", "links",
               "rdev")
_KNOWN = frozenset({"name", "type", "content", "subtree", "target", "user", "group", "sparse",
                    *_INT_FIELDS})


def check_name(name: bytes) -> bytes:
    """A name must be one path component: no '/', NUL, '.', '..' or empty."""
    if not name or name in (b".", b"..") or b"/" in name or b"\0" in name or len(name) > 4096:
        raise FormatError(f"tree: unsafe entry name {name!r}")
    return name


@dataclass
class Node:
    """One directory entry with its metadata."""

    name: bytes
    type: str
    mode: int = 0
    uid: int = 0
    gid: int = 0
    user: str = ""
    group: str = ""
    mtime_ns: int = 0
    ctime_ns: int = 0
    size: int = 0
    inode: int = 0
    dev: int = 0
    links: int = 1
    rdev: int = 0
    content: list[bytes] = field(default_factory=list)
    subtree: bytes | None = None
    target: bytes | None = None
    sparse: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def to_map(self) -> dict[str, Any]:
        d: dict[str, Any] = dict(self.extra)
        d.update({"name": self.name, "type": self.type, "mode": self.mode, "uid": self.uid,
                  "gid": self.gid, "mtime_ns": self.mtime_ns, "ctime_ns": self.ctime_ns})
        if self.user:
            d["user"] = self.user
        if self.group:
            d["group"] = self.group
        if self.type == "file":
            d.update({"size": self.size, "content": self.content, "inode": self.inode,
                      "dev": self.dev, "links": self.links})
            if self.sparse:
                d["sparse"] = True
        elif self.type == "dir":
            d["subtree"] = self.subtree
        elif self.type == "symlink":
            d["target"] = self.target
        elif self.type in ("chardev", "blockdev"):
            d["rdev"] = self.rdev
        return d

    @classmethod
    def from_map(cls, d: dict[str, Any]) -> Node:
        # Hot path of every walk (restore, check, ls): one pass, no setattr loop.
        name = d.get("name")
        typ = d.get("type")
        if type(name) is not bytes or type(typ) is not str or typ not in NODE_TYPES:
            raise FormatError("tree: node without a valid name or type")
        check_name(name)
        ints = [d.get(k, 1 if k == "links" else 0) for k in _INT_FIELDS]
        for k, v in zip(_INT_FIELDS, ints, strict=True):
            if type(v) is not int or not -(2**63) <= v < 2**64:
                raise FormatError(f"tree: field {k} of {name!r} is not an integer")
        user, group = d.get("user", ""), d.get("group", "")
        if type(user) is not str:
            raise FormatError(f"tree: field user of {name!r} is not a string")
        if type(group) is not str:
            raise FormatError(f"tree: field group of {name!r} is not a string")
        mode, uid, gid, mtime_ns, ctime_ns, size, inode, dev, links, rdev = ints
        node = cls(name, typ, mode, uid, gid, user, group, mtime_ns, ctime_ns, size, inode,
                   dev, links, rdev)
        if typ == "file":
            content = d.get("content", [])
            if type(content) is not list or not all(
                    type(c) is bytes and len(c) == 32 for c in content):
                raise FormatError(f"tree: content of {name!r} is not a list of blob ids")
            node.content = content
            node.sparse = bool(d.get("sparse", False))
            if size < 0:
                raise FormatError(f"tree: negative size for {name!r}")
        elif typ == "dir":
            sub = d.get("subtree")
            if type(sub) is not bytes or len(sub) != 32:
                raise FormatError(f"tree: directory {name!r} has no subtree id")
            node.subtree = sub
        elif typ == "symlink":
            target = d.get("target")
            if type(target) is not bytes or b"\0" in target:
                raise FormatError(f"tree: symlink {name!r} has no valid target")
            node.target = target
        if not d.keys() <= _KNOWN:
            node.extra = {k: v for k, v in d.items() if k not in _KNOWN}
        return node


@dataclass
class Tree:
    """A directory: nodes sorted by name, names unique."""

    nodes: list[Node] = field(default_factory=list)

    def encode(self) -> bytes:
        nodes = sorted(self.nodes, key=lambda n: n.name)
        return pack_msgpack({"v": 1, "nodes": [n.to_map() for n in nodes]})

    @classmethod
    def decode(cls, data: bytes) -> Tree:
        d = unpack_msgpack_map(data, "tree")
        if d.get("v") != 1 or not isinstance(d.get("nodes"), list):
            raise FormatError("tree: unsupported version or no node list")
        nodes = []
        for raw in d["nodes"]:
            if type(raw) is not dict or not (raw.keys() <= _KNOWN or all(
                    isinstance(k, str) for k in raw)):
                raise FormatError("tree: node is not a map")
            nodes.append(Node.from_map(raw))
        names = [n.name for n in nodes]
        if len(set(names)) != len(names):
            raise FormatError("tree: duplicate entry names")
        return cls(nodes)

    def find(self, name: bytes) -> Node | None:
        """The node with ``name`` (trees are small; linear is fine)."""
        for n in self.nodes:
            if n.name == name:
                return n
        return None
