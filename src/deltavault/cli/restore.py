"""restore, dump, rollback."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from deltavault.cli.common import (
    JsonOpt,
    PasswordFileOpt,
    QuietOpt,
    RepoOpt,
    byte_progress,
    emit_json,
    human_bytes,
    open_repo,
    out_console,
    show_progress,
)
from deltavault.errors import UsageError, UserError

if TYPE_CHECKING:
    from deltavault.api import Repository

SnapshotArg = Annotated[str, typer.Argument(help="Snapshot id, unique prefix, or 'latest'.")]


def restore(
    snapshot: SnapshotArg,
    target: Annotated[Path | None, typer.Option(
        "--target", "-t", help="Directory to restore into.")] = None,
    repo: RepoOpt = "",
    password_file: PasswordFileOpt = None,
    include: Annotated[list[str] | None, typer.Option(
        "--include", "-i", help="Restore only paths matching this glob (repeatable).")] = None,
    sqlite_to: Annotated[Path | None, typer.Option(
        "--sqlite-to", help="Put a sqlite snapshot's database at this path.")] = None,
    postgres: Annotated[str | None, typer.Option(
        "--postgres", help="Load a postgres snapshot into this (empty) database DSN.")] = None,
    redis: Annotated[str | None, typer.Option(
        "--redis", help="Load a redis snapshot into this (empty) Redis URL.")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Replace an existing --sqlite-to file / non-empty Redis db.")] = False,
    processes: Annotated[int, typer.Option(
        "--processes", min=0, max=64, help="Restore in this many processes (0: one per "
        "core, up to 4, for 20,000 files or more in a local repository; 1: one). Local "
        "repositories only; not with --include.")] = 0,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Restore a snapshot below a directory (or into a database), verifying every blob."""
    if target is None:  # live sources: docs/sources.md
        from deltavault.cli.sources import restore_sources

        restore_sources(repo, password_file, snapshot, sqlite_to=sqlite_to, postgres=postgres,
                        redis=redis, force=force, json_out=json_out, quiet=quiet)
        return
    if sqlite_to or postgres or redis:
        raise UserError("give --target or one of --sqlite-to/--postgres/--redis, not both")
    r = open_repo(repo, password_file)  # the key first: Argon2id's memory is freed here
    from deltavault import api

    snap = api.find_snapshot(r, snapshot)
    with byte_progress(show_progress(json_out, quiet), "restore") as bar:
        cb = None
        if bar is not None:
            task = bar.add_task("restore", total=None, detail="")

            def cb(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total or None)  # 0: unknown

        result = api.restore(r, snap.id, target, include=list(include or []), on_progress=cb,
                             processes=processes)
    if json_out:
        emit_json({"snapshot_id": snap.id, "target": str(target), "files": result.files,
                   "dirs": result.dirs, "bytes": result.bytes,
                   "processes": result.processes, "duration_s": result.duration_s})
    elif not quiet:
        out_console.print(f"restored snapshot {snap.id[:12]}: {result.files} files, "
                          f"{human_bytes(result.bytes)} in {result.duration_s:.1f}s to {target}")


def dump(
    snapshot: SnapshotArg,
    path: Annotated[str, typer.Argument(help="Path of a file inside the snapshot.")],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Write the file here instead of standard output "
        "(required with --json).")] = None,
    repo: RepoOpt = "",
    password_file: PasswordFileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Write one file of a snapshot to standard output (or --output FILE)."""
    if json_out and output is None:
        # stdout cannot carry both the file's bytes and the JSON document
        raise UsageError("dump --json needs --output FILE (the JSON document goes to stdout)")
    r = open_repo(repo, password_file)
    from deltavault import api

    snap = api.find_snapshot(r, snapshot)
    if output is None:
        api.dump(r, snap.id, path, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return
    size = _dump_to_file(r, snap.id, path, output)
    if json_out:
        emit_json({"snapshot": snap.id, "path": path, "size": size, "output": str(output)})


def _dump_to_file(r: Repository, snapshot_id: str, path: str, output: Path) -> int:
    """Dump into a temporary file beside ``output``, renamed over it once complete.

    A dump stopped by damaged data leaves no partial file under the name.
    """
    import tempfile

    from deltavault import api

    fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", dir=output.parent or Path("."))
    try:
        with os.fdopen(fd, "wb") as fh:
            size = api.dump(r, snapshot_id, path, fh)
            umask = os.umask(0o022)
            os.umask(umask)
            os.fchmod(fh.fileno(), 0o666 & ~umask)  # as `> FILE` would create it
        os.replace(tmp, output)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return size


def rollback(
    snapshot: Annotated[str | None, typer.Argument(help="Snapshot (or use --tag).")] = None,
    target: Annotated[Path | None, typer.Option(
        "--target", "-t", envvar="DELTAVAULT_ROLLBACK_TARGET",
        help="Live directory to put back (required; or DELTAVAULT_ROLLBACK_TARGET).")] = None,
    tag: Annotated[str | None, typer.Option(help="Newest snapshot with this tag.")] = None,
    discard_previous: Annotated[bool, typer.Option(
        "--discard-previous", help="Delete the replaced tree right after the swap.")] = False,
    keep_previous_hours: Annotated[float, typer.Option(
        "--keep-previous-hours", min=0,
        help="Keep replaced trees this long; a later rollback deletes older ones.")] = 24.0,
    reuse: Annotated[str, typer.Option(
        "--reuse", help="Take unchanged data from the live tree: metadata (trust size, "
        "mtime, ctime, inode; hash the rest), link (as metadata, but hard-link unchanged "
        "files instead of copying them: the replaced tree shares them), content (hash "
        "all), none.")] = "metadata",
    repo: RepoOpt = "",
    password_file: PasswordFileOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Put a directory back to a snapshot atomically (build beside it, then swap).

    Stop every process that has files of the directory open first (find them
    with 'fuser -vm DIR' or 'lsof +D DIR'): they would keep using the old tree.
    """
    if target is None:
        raise UsageError("give --target DIR (the live directory to roll back), "
                         "or set DELTAVAULT_ROLLBACK_TARGET")
    if reuse not in ("metadata", "link", "content", "none"):
        raise UsageError("--reuse takes metadata, link, content or none")
    r = open_repo(repo, password_file)
    from deltavault import api

    result = api.rollback(r, snapshot, tag=tag, target=target,
                          discard_previous=discard_previous,
                          keep_previous_hours=keep_previous_hours, reuse=reuse)
    snap = result.snapshot
    if json_out:
        emit_json({"snapshot_id": snap.id, "target": str(result.target),
                   "previous": str(result.previous) if result.previous else None,
                   "removed_previous": [str(p) for p in result.removed],
                   "files": result.files, "bytes": result.bytes,
                   "reused_files": result.reused_files, "reused_bytes": result.reused_bytes,
                   "duration_s": result.duration_s})
    elif not quiet:
        out_console.print(f"rolled {result.target} back to snapshot {snap.id[:12]} "
                          f"({snap.time[:19]}) in {result.duration_s:.2f}s; "
                          f"{human_bytes(result.reused_bytes)} taken from the live tree")
        if result.previous is not None:
            out_console.print(f"the replaced tree is kept at {result.previous} "
                              f"for {keep_previous_hours:g} h")
