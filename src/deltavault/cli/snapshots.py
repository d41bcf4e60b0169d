"""snapshots, ls, diff, tag."""

from __future__ import annotations

import itertools
import stat as statmod
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from deltavault.cli.common import (
    JsonOpt,
    PasswordFileOpt,
    RepoOpt,
    emit_json,
    human_bytes,
    open_repo,
    out_console,
    print_lines,
)
from deltavault.cli.restore import SnapshotArg
from deltavault.errors import UserError

if TYPE_CHECKING:
    from rich.tree import Tree

    from deltavault.api import Snapshot
    from deltavault.ledger.state import LiveSnapshot


def snapshot_dict(s: Snapshot, live: LiveSnapshot | None = None) -> dict[str, object]:
    """JSON form; ``live`` adds what the ledger says (index, ledger time, time flag)."""
    doc: dict[str, object] = {
        "id": s.id, "short_id": s.id[:12], "time": s.time, "hostname": s.hostname,
        "username": s.username, "paths": s.paths, "tags": s.tags, "type": s.type,
        "parent": s.parent, "base": s.base, "chain_depth": s.chain_depth, "tree": s.tree,
        "packs_root": s.packs_root, "packs_count": s.packs_count, "summary": s.summary}
    if live is not None:
        doc.update(ledger_index=live.index, ledger_time=live.ledger_time.isoformat(),
                   time_flagged=bool(live.flag), time_flag=live.flag or None)
    return doc


def snapshots(repo: RepoOpt = "", password_file: PasswordFileOpt = None,
              tag: Annotated[list[str] | None, typer.Option(
                  "--tag", help="Only snapshots with this tag.")] = None,
              tree: Annotated[bool, typer.Option(
                  "--tree", help="Show each full snapshot with its diffs and incrs.")] = False,
              json_out: JsonOpt = False) -> None:
    """List snapshots, oldest first."""
    from deltavault import api

    r = open_repo(repo, password_file)
    snaps = api.snapshots(r, tags=tag or ())
    live = api.ledger_times(r)
    if json_out:
        emit_json([snapshot_dict(s, live.get(s.id)) for s in snaps])
        return
    if tree:
        out_console.print(snapshot_tree(snaps))
        return
    from rich.table import Table

    table = Table("id", "time", "type", "host", "tags", "paths", "size", "added")
    flagged = [s for s in snaps if s.id in live and live[s.id].flag]
    flagged_ids = {s.id for s in flagged}
    for s in snaps:
        mark = " !" if s.id in flagged_ids else ""
        table.add_row(s.id[:12], s.time[:19].replace("T", " ") + mark,
                      s.type + (f" (depth {s.chain_depth})" if s.chain_depth > 1 else ""),
                      s.hostname, ",".join(s.tags), "\n".join(s.paths),
                      human_bytes(s.summary.get("bytes_total", 0)),
                      human_bytes(s.summary.get("bytes_added", 0)))
    out_console.print(table)
    out_console.print(f"{len(snaps)} snapshot(s)")
    for s in flagged:  # docs/ledger.md §9.3: retention uses the ledger time, not the claim
        out_console.print(f"! {s.id[:12]}: time not believed ({live[s.id].flag}); ledger time "
                          f"{live[s.id].ledger_time.isoformat()[:19]}, not counted by forget "
                          "--keep-*", markup=False)


def snapshot_tree(snaps: list[Snapshot]) -> Tree:
    """Fulls as roots; each diff under its full, each incr under its parent."""
    from rich.tree import Tree

    root = Tree("snapshots")
    branches: dict[str, Tree] = {}
    for s in snaps:
        label = (f"{s.id[:12]} {s.type} {s.time[:19].replace('T', ' ')} "
                 f"+{human_bytes(s.summary.get('bytes_added', 0))}"
                 + (f" [{', '.join(s.tags)}]" if s.tags else ""))
        anchor = s.parent if s.type == "incr" else s.base
        parent = branches.get(anchor or "") if s.type != "full" else None
        branches[s.id] = (parent or root).add(label, highlight=False)
    return root


def ls(snapshot: SnapshotArg,
       path: Annotated[str, typer.Argument(help="Directory inside the snapshot.")] = "",
       repo: RepoOpt = "", password_file: PasswordFileOpt = None,
       json_out: JsonOpt = False) -> None:
    """List the files of a snapshot."""
    from deltavault import api

    r = open_repo(repo, password_file)
    entries = api.ls(r, snapshot, path)
    if json_out:
        emit_json([{"path": p, "type": n.type, "size": n.size, "mode": n.mode,
                    "mtime": _time(n.mtime_ns), "uid": n.uid, "gid": n.gid} for p, n in entries])
        return
    # streamed: memory stays that of the walk, not of the listing
    print_lines(f"{statmod.filemode(n.mode | _TYPE_BITS.get(n.type, 0))} {n.size:>12} "
                f"{_time(n.mtime_ns)[:19]} {p}" for p, n in entries)


_TYPE_BITS = {"file": statmod.S_IFREG, "dir": statmod.S_IFDIR, "symlink": statmod.S_IFLNK,
              "fifo": statmod.S_IFIFO, "chardev": statmod.S_IFCHR, "blockdev": statmod.S_IFBLK,
              "socket": statmod.S_IFSOCK}


def _time(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat()


def diff(a: Annotated[str, typer.Argument(help="Older snapshot.")],
         b: Annotated[str, typer.Argument(help="Newer snapshot.")],
         repo: RepoOpt = "", password_file: PasswordFileOpt = None,
         json_out: JsonOpt = False) -> None:
    """Files added, removed and changed between two snapshots."""
    from deltavault import api

    r = open_repo(repo, password_file)
    sa, sb, result = api.diff(r, a, b)
    doc = result.to_dict()
    if json_out:
        emit_json(dict(doc, a=sa.id, b=sb.id))
        return
    print_lines(itertools.chain(
        (f"+ {p} ({human_bytes(size)})" for p, size in result.added),
        (f"- {p} ({human_bytes(size)})" for p, size in result.removed),
        (f"M {p} ({human_bytes(old)} -> {human_bytes(new)})" for p, old, new in result.changed),
        (f"U {p}" for p in result.metadata_only),
        [f"{len(result.added)} added, {len(result.removed)} removed, "
         f"{len(result.changed)} changed, {len(result.metadata_only)} metadata only"]))


def tag(snapshot: SnapshotArg,
        add: Annotated[list[str] | None, typer.Option("--add", help="Tag to add.")] = None,
        remove: Annotated[list[str] | None, typer.Option("--remove", help="Tag to drop.")]
        = None,
        set_: Annotated[list[str] | None, typer.Option("--set", help="Replace all tags.")]
        = None,
        repo: RepoOpt = "", password_file: PasswordFileOpt = None,
        json_out: JsonOpt = False) -> None:
    """Change a snapshot's tags (writes a new snapshot object that supersedes it)."""
    if not (add or remove or set_):
        raise UserError("give --add, --remove or --set")
    from deltavault import api

    r = open_repo(repo, password_file)
    old, new = api.tag(r, snapshot, add=add or (), remove=remove or (), set_to=set_)
    if json_out:
        emit_json({"old_id": old.id, "new_id": new.id, "tags": new.tags})
    else:
        out_console.print(f"snapshot {old.id[:12]} is now {new.id[:12]} with tags "
                          f"{', '.join(new.tags) or '(none)'}")
