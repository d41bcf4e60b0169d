"""The virtual tree: names, collisions, tags, hosts, latest links (pure, no FUSE)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from deltavault.mount.layout import (
    InSnapshot,
    Layout,
    SnapshotRef,
    VirtualDir,
    VirtualLink,
    component,
)

T0 = datetime(2026, 11, 20, 14, 3, 0, 250_000, tzinfo=UTC)


def snap(n: int, seconds: float, host: str = "alpha", tags: tuple[str, ...] = ()) -> SnapshotRef:
    return SnapshotRef(id=f"{n:064x}", time=T0 + timedelta(seconds=seconds), hostname=host,
                       tags=tags, tree="ab" * 32)


def test_root_and_names() -> None:
    layout = Layout([snap(2, 60, tags=("known-good",)), snap(1, 0, host="beta")])
    root = layout.resolve([])
    assert isinstance(root, VirtualDir)
    assert root.names == ("hosts", "ids", "latest", "snapshots", "tags")
    assert root.links == frozenset({"latest"})
    snaps = layout.resolve(["snapshots"])
    assert isinstance(snaps, VirtualDir)
    assert snaps.names == ("2026-11-20T14:03:00Z", "2026-11-20T14:04:00Z")
    assert layout.resolve(["latest"]) == VirtualLink("snapshots/2026-11-20T14:04:00Z",
                                                     snap(2, 60).mtime_ns)
    inside = layout.resolve(["ids", f"{1:064x}", "a", "b"])
    assert isinstance(inside, InSnapshot)
    assert inside.snapshot.id == f"{1:064x}" and inside.parts == ("a", "b")
    assert layout.resolve(["snapshots", "2026-11-20T14:03:00Z"]) == InSnapshot(snap(1, 0, "beta"),
                                                                               ())


def test_same_second_gets_a_suffix_in_time_then_id_order() -> None:
    layout = Layout([snap(3, 0.5), snap(1, 0.1), snap(2, 0.1)])
    snaps = layout.resolve(["snapshots"])
    assert isinstance(snaps, VirtualDir)
    assert snaps.names == ("2026-11-20T14:03:00Z", "2026-11-20T14:03:00Z-1",
                           "2026-11-20T14:03:00Z-2")
    assert [layout.by_name[n].id[-1] for n in snaps.names] == ["1", "2", "3"]


def test_tags_and_hosts_with_latest() -> None:
    layout = Layout([snap(1, 0, tags=("known-good", "eod")), snap(2, 5, tags=("eod",)),
                     snap(3, 9, host="beta")])
    tags = layout.resolve(["tags"])
    assert isinstance(tags, VirtualDir) and tags.names == ("eod", "known-good")
    eod = layout.resolve(["tags", "eod"])
    assert isinstance(eod, VirtualDir)
    assert eod.names == ("2026-11-20T14:03:00Z", "2026-11-20T14:03:05Z", "latest")
    assert layout.resolve(["tags", "eod", "latest"]) == VirtualLink(
        "2026-11-20T14:03:05Z", snap(2, 5).mtime_ns)
    assert layout.resolve(["hosts", "beta", "latest"]) == VirtualLink(
        "2026-11-20T14:03:09Z", snap(3, 9).mtime_ns)
    inside = layout.resolve(["hosts", "alpha", "2026-11-20T14:03:05Z", "x"])
    assert isinstance(inside, InSnapshot) and inside.snapshot.id.endswith("2")
    # a snapshot of another host is not under this host
    assert layout.resolve(["hosts", "alpha", "2026-11-20T14:03:09Z"]) is None


def test_unknown_paths_are_none() -> None:
    layout = Layout([snap(1, 0)])
    for parts in (["nope"], ["latest", "x"], ["ids", "0" * 64], ["tags", "none"],
                  ["hosts", "alpha", "latest", "x"], ["snapshots", "2026"]):
        assert layout.resolve(parts) is None, parts


def test_empty_repository_has_no_latest() -> None:
    root = Layout([]).resolve([])
    assert isinstance(root, VirtualDir)
    assert root.names == ("hosts", "ids", "snapshots", "tags")
    assert Layout([]).resolve(["latest"]) is None


def test_hostile_tag_and_host_names_become_one_safe_component() -> None:
    layout = Layout([snap(1, 0, host="../etc", tags=("a/b", "..", "", "%2F"))])
    tags = layout.resolve(["tags"])
    assert isinstance(tags, VirtualDir)
    assert sorted(tags.names) == sorted(["a%2Fb", "%2E%2E", "%", "%252F"])
    hosts = layout.resolve(["hosts"])
    assert isinstance(hosts, VirtualDir) and hosts.names == ("..%2Fetc",)


@given(st.text(), st.text())
def test_component_is_safe_and_one_to_one(a: str, b: str) -> None:
    for name in (a, b):
        c = component(name)
        assert c and "/" not in c and "\0" not in c and c not in (".", "..")
    assert (component(a) == component(b)) == (a == b)
