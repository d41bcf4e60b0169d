"""The live set as the ledger defines it, read completely or refused.

Destructive commands (``forget``, ``prune``, the clean-up of leftovers)
decide what to delete from this view, so every part of it is verified
first (docs/format.md §11): each snapshot the ledger says exists must have
its object (decrypting, matching the event's tree) and its pack list
(parsing, matching the event's ``packs_root``), and the pack lists are
resolved through the moves earlier prunes recorded. ``check`` uses the same
readers to report every problem instead of stopping at the first.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from deltavault.errors import DeltavaultError, IntegrityError, ObjectNotFound, RepositoryError
from deltavault.ledger.events import Event
from deltavault.ledger.packmoves import apply_moves, resolve
from deltavault.ledger.state import events
from deltavault.repo.layout import packlist_key, snapshot_key
from deltavault.repo.repository import Repository
from deltavault.repo.snapshot import Snapshot, packlist_root
from deltavault.repo.tree import Tree

REPLICA_HINT = "restore it with 'deltavault repair --from-repo REPLICA'"


@dataclass
class History:
    """What earlier prunes left in the ledger: pack moves and unfinished runs."""

    moves: dict[str, set[str]] = field(default_factory=dict)
    #: run ids of ``prune-start`` events without their ``prune`` completion
    unfinished: list[str] = field(default_factory=list)


@dataclass
class Damage:
    """One live snapshot's object or pack list that is missing or wrong."""

    snapshot: str
    key: str
    message: str
    #: neither the object nor the pack list is stored (a replica that ``copy`` made of
    #: chosen snapshots has the whole ledger but only their objects)
    absent: bool = False


@dataclass
class LiveView:
    """Every live snapshot, loaded, with its pack list resolved through the moves."""

    committed: dict[str, Event]
    snapshots: dict[str, Snapshot] = field(default_factory=dict)
    packs: dict[str, set[str]] = field(default_factory=dict)
    history: History = field(default_factory=History)
    damaged: list[Damage] = field(default_factory=list)

    def listed(self) -> set[str]:
        """Every pack a live snapshot's (resolved) pack list names: audit checks these."""
        out: set[str] = set()
        for packs in self.packs.values():
            out |= packs
        return out

    def ordered(self) -> list[Snapshot]:
        """The loaded live snapshots, oldest first."""
        return sorted(self.snapshots.values(), key=lambda s: (s.datetime, s.id))


def read_history(repo: Repository) -> History:
    """One pass over the log for the moves and unfinished prunes."""
    history = History()
    started: dict[str, None] = {}
    for _i, event in events(repo.ledger, journal=False):
        apply_moves(history.moves, event)
        run = event.fields.get("run")
        if event.type == "prune-start" and isinstance(run, str):
            started[run] = None
        elif event.type == "prune":
            finished = event.fields.get("finished")
            for done in [run, *(finished if isinstance(finished, list) else [])]:
                if isinstance(done, str):
                    started.pop(done, None)
    history.unfinished = list(started)
    return history


def _inspect(repo: Repository, sid: str, event: Event, view: LiveView) -> None:
    try:
        snap = repo.load_snapshot(sid)
    except ObjectNotFound:
        absent = not repo.objects.exists(packlist_key(sid))
        view.damaged.append(Damage(sid, snapshot_key(sid), "committed snapshot object is "
                                   "missing", absent))
        return
    except RepositoryError as exc:
        view.damaged.append(Damage(sid, snapshot_key(sid), str(exc)))
        return
    if snap.tree != event.fields.get("tree"):
        view.damaged.append(Damage(sid, snapshot_key(sid), "snapshot's tree differs from the "
                                   "one its ledger event committed"))
        return
    try:
        listed = repo.objects.read_packlist(sid)
    except ObjectNotFound:
        view.damaged.append(Damage(sid, packlist_key(sid), "pack list of a committed snapshot "
                                   "is missing"))
        return
    except RepositoryError as exc:
        view.damaged.append(Damage(sid, packlist_key(sid), str(exc)))
        return
    if packlist_root(sorted(listed)) != event.fields.get("packs_root"):
        view.damaged.append(Damage(sid, packlist_key(sid), "pack list does not match the "
                                   "packs_root its ledger event committed"))
        return
    view.snapshots[sid] = snap
    view.packs[sid] = resolve(view.history.moves, listed)


def inspect_live(repo: Repository) -> LiveView:
    """Load every live snapshot and pack list; damage is collected, not raised."""
    view = LiveView(repo.committed(), history=read_history(repo))
    for sid, event in sorted(view.committed.items()):
        _inspect(repo, sid, event, view)
    return view


def verified_live(repo: Repository, what: str, *, tolerate: Iterable[str] = ()) -> LiveView:
    """The live view, or RepositoryError (exit 13) naming the first damaged object.

    Args:
        repo: the repository, opened.
        what: the refusing command, for the message (``prune``, ``forget``).
        tolerate: snapshot ids whose damage is accepted (``forget ID`` of a
            snapshot whose object is lost is how a user accepts that loss).
    """
    view = inspect_live(repo)
    allowed = set(tolerate)
    for damage in view.damaged:
        if damage.snapshot not in allowed:
            raise RepositoryError(
                f"{what} refused: {damage.key}: {damage.message}; nothing was deleted",
                hint=f"{REPLICA_HINT}, or accept the loss with 'deltavault forget "
                     f"{damage.snapshot}'")
    return view


def reachable_blobs(repo: Repository, snaps: Iterable[Snapshot]) -> set[bytes]:
    """Every tree and data blob the snapshots' trees name (delta bases not included).

    Iterative, and each tree is read once however many snapshots share it.

    Raises:
        RepositoryError: a tree cannot be read (names the snapshot and tree).
    """
    needed: set[bytes] = set()
    visited: set[bytes] = set()
    for snap in snaps:
        root = bytes.fromhex(snap.tree)
        needed.add(root)
        stack = [root]
        while stack:
            tid = stack.pop()
            if tid in visited:
                continue
            visited.add(tid)
            try:
                tree = Tree.decode(repo.load_blob(tid))
            except RepositoryError as exc:
                raise IntegrityError(f"snapshot {snap.id[:12]}: tree {tid.hex()[:16]}: "
                                     f"{exc}") from exc
            except ObjectNotFound as exc:
                raise IntegrityError(f"snapshot {snap.id[:12]}: tree {tid.hex()[:16]}: its "
                                     f"pack is missing ({exc})") from exc
            for node in tree.nodes:
                needed.update(node.content)
                if node.subtree is not None:
                    needed.add(node.subtree)
                    if node.type == "dir":
                        stack.append(node.subtree)
    return needed


def users_of(repo: Repository, snaps: Iterable[Snapshot], blob: bytes) -> str:
    """The first snapshot that needs ``blob`` (for an error message), or ''."""
    for snap in snaps:
        try:
            if blob in reachable_blobs(repo, [snap]):
                return snap.id
        except DeltavaultError:
            continue
    return ""
