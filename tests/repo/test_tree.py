"""Tree blobs (docs/format.md §7): round trips, unknown keys, unsafe names, hostile bytes."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from deltavault.errors import FormatError
from deltavault.repo.tree import NODE_TYPES, Node, Tree
from tests.support.hostile import (
    HOSTILE,
    ROUNDTRIP,
    decode_or_reject,
    maps_like,
    msgpack_values,
    mutations,
)

names = st.binary(min_size=1, max_size=40).filter(
    lambda b: b not in (b".", b"..") and b"/" not in b and b"\0" not in b)
u64 = st.integers(0, 2**64 - 1)
i64 = st.integers(-(2**63), 2**63 - 1)
extra_keys = st.dictionaries(st.text(min_size=1, max_size=8).map(lambda s: "x_" + s),
                             i64 | st.text(max_size=5) | st.binary(max_size=5),
                             max_size=2)


@st.composite
def nodes(draw: st.DrawFn, name: bytes) -> Node:
    typ = draw(st.sampled_from(sorted(NODE_TYPES)))
    n = Node(name=name, type=typ, mode=draw(st.integers(0, 0o7777)), uid=draw(u64),
             gid=draw(u64), user=draw(st.text(max_size=8)), group=draw(st.text(max_size=8)),
             mtime_ns=draw(i64), ctime_ns=draw(i64))
    n.extra = draw(extra_keys)
    if typ == "file":
        n.size = draw(u64)
        n.content = draw(st.lists(st.binary(min_size=32, max_size=32), max_size=4))
        n.inode, n.dev, n.links = draw(u64), draw(u64), draw(st.integers(1, 2**32))
        n.sparse = draw(st.booleans())
    elif typ == "dir":
        n.subtree = draw(st.binary(min_size=32, max_size=32))
    elif typ == "symlink":
        n.target = draw(st.binary(max_size=60).filter(lambda b: b"\0" not in b))
    elif typ in ("chardev", "blockdev"):
        n.rdev = draw(u64)
    return n


@st.composite
def trees(draw: st.DrawFn) -> Tree:
    ns = draw(st.lists(names, max_size=6, unique=True))
    return Tree([draw(nodes(n)) for n in ns])


@given(trees())
@ROUNDTRIP
def test_round_trip_keeps_nodes_and_unknown_keys(t: Tree) -> None:
    back = Tree.decode(t.encode())
    assert back.nodes == sorted(t.nodes, key=lambda n: n.name)
    assert back.encode() == t.encode()


def test_non_utf8_names_round_trip() -> None:
    t = Tree([Node(name=b"\xff\xfe", type="file"), Node(name="日本 é 🎉".encode(), type="fifo")])
    assert [n.name for n in Tree.decode(t.encode()).nodes] == [b"\xe6\x97\xa5\xe6\x9c\xac "
                                                                b"\xc3\xa9 \xf0\x9f\x8e\x89",
                                                                b"\xff\xfe"]


def _raw_tree(*nodes: dict[str, object]) -> bytes:
    return msgpack.packb({"v": 1, "nodes": list(nodes)}, use_bin_type=True)


@pytest.mark.parametrize("name", [b"", b".", b"..", b"../evil", b"a/b", b"/etc", b"a\0b",
                                  b"x" * 4097])
def test_unsafe_names_are_refused(name: bytes) -> None:
    with pytest.raises(FormatError):
        Tree.decode(_raw_tree({"name": name, "type": "file"}))


def test_name_as_str_is_refused() -> None:
    with pytest.raises(FormatError):
        Tree.decode(_raw_tree({"name": "a", "type": "file"}))


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(FormatError):
        Tree.decode(_raw_tree({"name": b"a", "type": "file"}, {"name": b"a", "type": "dir",
                                                              "subtree": b"\0" * 32}))


@pytest.mark.parametrize("node", [
    {"name": b"a", "type": "dir"},
    {"name": b"a", "type": "dir", "subtree": b"short"},
    {"name": b"a", "type": "symlink"},
    {"name": b"a", "type": "symlink", "target": b"a\0b"},
    {"name": b"a", "type": "file", "content": [b"short"]},
    {"name": b"a", "type": "file", "size": -1},
    {"name": b"a", "type": "file", "mode": True},
    {"name": b"a", "type": "file", "mtime_ns": 1.5},
    {"name": b"a", "type": "door"},
    {"name": b"a", "type": "file", "user": 5},
])
def test_malformed_nodes_are_refused(node: dict[str, object]) -> None:
    with pytest.raises(FormatError):
        Tree.decode(_raw_tree(node))


@pytest.mark.parametrize("doc", [{"v": 2, "nodes": []}, {"v": 1}, {"v": 1, "nodes": {}},
                                 {"v": 1, "nodes": [1]}, [1, 2]])
def test_bad_documents_are_refused(doc: object) -> None:
    with pytest.raises(FormatError):
        Tree.decode(msgpack.packb(doc, use_bin_type=True))


VALID = Tree([Node(name=b"f", type="file", size=3, content=[b"\1" * 32]),
              Node(name=b"d", type="dir", subtree=b"\2" * 32),
              Node(name=b"l", type="symlink", target=b"../x")]).encode()


@given(mutations(VALID))
@HOSTILE
def test_hostile_bytes(data: bytes) -> None:
    t = decode_or_reject(Tree.decode, data)
    if t is not None:
        for n in t.nodes:
            assert n.name and b"/" not in n.name and n.name not in (b".", b"..")


@given(st.lists(maps_like({"name": b"n", "type": "file", "content": [b"\0" * 32],
                           "subtree": b"\0" * 32, "target": b"t", "size": 1, "mode": 0o644,
                           "sparse": True, "links": 2}), max_size=3), msgpack_values)
@HOSTILE
def test_hostile_structures(raw_nodes: list[dict[str, object]], v: object) -> None:
    for doc in ({"v": 1, "nodes": raw_nodes}, {"v": v, "nodes": raw_nodes}):
        decode_or_reject(Tree.decode, msgpack.packb(doc, use_bin_type=True))


def test_only_a_directory_with_a_stored_subtree_is_walked_into() -> None:
    """Every walk (restore, check, mount, the storage view) asks ``tree_below``: a
    stored subtree on a file or symlink (hostile or damaged data) is never followed."""
    sub = b"\x01" * 32
    assert Node(name=b"d", type="dir", subtree=sub).tree_below() == sub
    assert Node(name=b"e", type="dir").tree_below() is None  # restored empty
    for kind in ("file", "symlink", "fifo"):
        assert Node(name=b"x", type=kind, subtree=sub).tree_below() is None
