"""The virtual tree above the snapshots: which path names which snapshot.

Pure: built from a list of :class:`SnapshotRef` and asked to resolve paths,
so it is tested without FUSE. The tree (docs in README "Mount")::

    /snapshots/<time>/…        every snapshot, by UTC time (2026-11-20T14:03:00Z)
    /ids/<id>/…                by full snapshot id
    /tags/<tag>/<time>/…       snapshots carrying the tag, plus a ``latest`` link
    /hosts/<host>/<time>/…     snapshots of the host, plus a ``latest`` link
    /latest -> snapshots/<time of the newest snapshot>

Two snapshots in the same second get ``<time>-1``, ``<time>-2`` in the order
of (time, id), which is stable as snapshots are added. Tags and host names
are free text; a name that cannot be one path component (``/``, NUL, ``.``,
``..``) is percent-encoded (``%2F``, ``%2E``), and so is ``%`` itself, so the
mapping is one-to-one; an empty name is shown as ``%``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

ROOT_NAMES = ("hosts", "ids", "latest", "snapshots", "tags")
LATEST = "latest"


@dataclass(frozen=True)
class SnapshotRef:
    """What the layout needs to know of one snapshot."""

    id: str
    time: datetime
    hostname: str
    tags: tuple[str, ...]
    tree: str

    @property
    def mtime_ns(self) -> int:
        """The snapshot time as the modification time of its directory."""
        return int(self.time.timestamp()) * 10**9 + self.time.microsecond * 1000


@dataclass(frozen=True)
class VirtualDir:
    """A directory of the virtual tree (not inside any snapshot)."""

    names: tuple[str, ...]
    mtime_ns: int
    #: the names among ``names`` that are symlinks (``latest``)
    links: frozenset[str] = frozenset()


@dataclass(frozen=True)
class VirtualLink:
    """A ``latest`` symlink; ``target`` is relative to the link's directory."""

    target: str
    mtime_ns: int


@dataclass(frozen=True)
class InSnapshot:
    """A path inside a snapshot: ``parts`` below its root (empty: the root itself)."""

    snapshot: SnapshotRef
    parts: tuple[str, ...]


Resolved = VirtualDir | VirtualLink | InSnapshot


def component(name: str) -> str:
    """A free-text name (tag, host) as one safe path component, reversibly."""
    out = name.replace("%", "%25").replace("/", "%2F").replace("\0", "%00")
    if out in (".", ".."):
        return "%2E" * len(out)
    # every encoded "%" is followed by two hex digits, so a lone "%" is free for ""
    return out or "%"


def time_name(t: datetime) -> str:
    """A snapshot's directory name: its UTC time to the second."""
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class _Group:
    """Snapshots of one tag or host: directory name → snapshot, oldest first."""

    members: dict[str, SnapshotRef] = field(default_factory=dict)

    def as_dir(self) -> VirtualDir:
        names = tuple(self.members)
        mtime = max((s.mtime_ns for s in self.members.values()), default=0)
        return VirtualDir((*names, LATEST), mtime, frozenset({LATEST}))


class Layout:
    """The virtual tree for one list of snapshots (rebuilt when the list changes)."""

    def __init__(self, snapshots: Iterable[SnapshotRef], mount_time_ns: int = 0) -> None:
        ordered = sorted(snapshots, key=lambda s: (s.time, s.id))
        self.by_name: dict[str, SnapshotRef] = {}
        self.name_of: dict[str, str] = {}
        seen: dict[str, int] = {}
        for snap in ordered:
            base = time_name(snap.time)
            n = seen.get(base, 0)
            seen[base] = n + 1
            name = base if n == 0 else f"{base}-{n}"
            self.by_name[name] = snap
            self.name_of[snap.id] = name
        self.by_id = {s.id: s for s in ordered}
        self.tags: dict[str, _Group] = {}
        self.hosts: dict[str, _Group] = {}
        for name, snap in self.by_name.items():
            for tag in snap.tags:
                self.tags.setdefault(component(tag), _Group()).members[name] = snap
            self.hosts.setdefault(component(snap.hostname), _Group()).members[name] = snap
        self.newest = ordered[-1] if ordered else None
        self._mtime = self.newest.mtime_ns if self.newest else mount_time_ns

    def __len__(self) -> int:
        return len(self.by_id)

    def resolve(self, parts: Sequence[str]) -> Resolved | None:
        """What ``/a/b/c`` (given as ``["a", "b", "c"]``) is, or None if nothing."""
        if not parts:
            has_latest = self.newest is not None
            names = tuple(n for n in ROOT_NAMES if n != LATEST or has_latest)
            return VirtualDir(names, self._mtime, frozenset({LATEST} if has_latest else ()))
        head, rest = parts[0], tuple(parts[1:])
        if head == LATEST:
            if self.newest is None or rest:
                return None
            return VirtualLink(f"snapshots/{self.name_of[self.newest.id]}", self._mtime)
        if head == "snapshots":
            return self._in_table(self.by_name, rest)
        if head == "ids":
            return self._in_table(self.by_id, rest)
        if head in ("tags", "hosts"):
            groups = self.tags if head == "tags" else self.hosts
            if not rest:
                return VirtualDir(tuple(sorted(groups)), self._mtime)
            group = groups.get(rest[0])
            if group is None:
                return None
            if len(rest) == 1:
                return group.as_dir()
            if rest[1] == LATEST:
                if len(rest) > 2:
                    return None
                newest = next(reversed(group.members))
                return VirtualLink(newest, group.as_dir().mtime_ns)
            return self._in_table(group.members, rest[1:])
        return None

    def _in_table(self, table: dict[str, SnapshotRef], rest: tuple[str, ...]) -> Resolved | None:
        if not rest:
            return VirtualDir(tuple(table), self._mtime)
        snap = table.get(rest[0])
        return InSnapshot(snap, rest[1:]) if snap is not None else None
