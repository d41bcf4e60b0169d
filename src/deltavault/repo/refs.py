"""How users name snapshots: ``latest``, ``latest~N``, an id or unique prefix, or a tag."""

from __future__ import annotations

from deltavault.errors import SnapshotNotFound
from deltavault.repo.snapshot import Snapshot

_HEX = frozenset("0123456789abcdefABCDEF")


def is_full_id(ref: str) -> bool:
    """Whether ``ref`` is a whole 64-digit snapshot id (no listing needed to resolve it)."""
    return len(ref) == 64 and all(c in _HEX for c in ref)


def resolve(ref: str, snaps: list[Snapshot]) -> Snapshot:
    """The snapshot ``ref`` names among ``snaps`` (oldest first).

    A tag (``tag:NAME``, or any name that is not hex) means the newest
    snapshot carrying it, e.g. ``known-good``.

    Raises:
        SnapshotNotFound: nothing or more than one snapshot matches.
    """
    if not snaps:
        raise SnapshotNotFound("the repository has no snapshots")
    if ref == "latest" or ref.startswith("latest~"):
        back = int(ref[7:]) if ref.startswith("latest~") and ref[7:].isdigit() else 0
        if back >= len(snaps):
            raise SnapshotNotFound(f"no snapshot {ref}: only {len(snaps)} exist")
        return snaps[-1 - back]
    if ref.startswith("tag:") or any(c not in _HEX for c in ref):
        tag = ref.removeprefix("tag:")
        tagged = [s for s in snaps if tag in s.tags]
        if not tagged:
            raise SnapshotNotFound(f"no snapshot matches {ref!r}: it is not an id and "
                                   "no snapshot carries that tag",
                                   hint="list them with 'deltavault snapshots'; tag one "
                                        f"with 'deltavault tag SNAPSHOT --add {tag}'")
        return tagged[-1]
    matches = [s for s in snaps if s.id.startswith(ref.lower())]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise SnapshotNotFound(f"no snapshot matches {ref!r}",
                               hint="list them with 'deltavault snapshots'")
    raise SnapshotNotFound(f"snapshot prefix {ref!r} is ambiguous ({len(matches)} match)")
