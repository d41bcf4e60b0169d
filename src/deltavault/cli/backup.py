"""backup."""

from __future__ import annotations

import os
import socket
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
    err_console,
    human_bytes,
    open_repo,
    out_console,
    show_progress,
)
from deltavault.errors import SourceError, UserError

if TYPE_CHECKING:
    from deltavault.api import BackupRun, Progress


def backup(
    paths: Annotated[list[Path] | None, typer.Argument(help="Files and directories.")] = None,
    repo: RepoOpt = "",
    password_file: PasswordFileOpt = None,
    snapshot_type: Annotated[str, typer.Option(
        "--type", help="full, diff (against the last full) or incr (against the previous).")]
    = "incr",
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Label (repeatable).")] = None,
    host: Annotated[str, typer.Option(help="Host name to record.")] = "",
    exclude: Annotated[list[str] | None, typer.Option(
        "--exclude", "-e", help="Glob of names or paths to skip (repeatable).")] = None,
    exclude_file: Annotated[Path | None, typer.Option(
        help="File with one exclude glob per line.")] = None,
    stdin: Annotated[bool, typer.Option("--stdin", help="Back up standard input.")] = False,
    stdin_filename: Annotated[str, typer.Option(help="File name for --stdin.")] = "stdin",
    full_every: Annotated[int, typer.Option(
        envvar="DELTAVAULT_FULL_EVERY",
        help="Take a full backup instead once N backups were taken since the last full.")] = 0,
    full_after_days: Annotated[float, typer.Option(
        envvar="DELTAVAULT_FULL_AFTER_DAYS",
        help="Take a full backup instead when the last full is older than D days.")] = 0,
    codec: Annotated[str, typer.Option(
        help="Codec policy: fast, balanced, max or auto (best size within a CPU budget).")]
    = "auto",
    sqlite: Annotated[list[Path] | None, typer.Option(
        "--sqlite", help="SQLite database to snapshot consistently (repeatable).")] = None,
    postgres: Annotated[list[str] | None, typer.Option(
        "--postgres", help="PostgreSQL DSN to snapshot in one transaction (repeatable).")] = None,
    redis: Annotated[list[str] | None, typer.Option(
        "--redis", help="Redis URL (redis://host:port/db) to snapshot (repeatable).")] = None,
    metrics_file: Annotated[Path | None, typer.Option(
        "--metrics-file", help="Write the run's outcome here for node_exporter's textfile "
                               "collector (Prometheus format; written atomically, also on "
                               "failure).")] = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Take a snapshot. Exit 3 if some files could not be read."""
    from deltavault import api

    labels = _metric_labels(repo, host, paths or [], stdin, stdin_filename, sqlite or [],
                            postgres or [], redis or [])
    with api.backup_metrics(metrics_file, labels) as run:
        _backup(paths, repo, password_file, snapshot_type, tag, host, exclude, exclude_file,
                stdin, stdin_filename, full_every, full_after_days, codec, sqlite, postgres,
                redis, json_out, quiet, run)


def _metric_labels(repo: str, host: str, paths: list[Path], stdin: bool, stdin_filename: str,
                   sqlite: list[Path], postgres: list[str], redis: list[str]) -> dict[str, str]:
    """Labels naming the job from its arguments, so success and failure share one series."""
    from deltavault.sources.dsn import redact

    what = [os.path.abspath(p) for p in paths]
    what += [f"<stdin>/{stdin_filename}"] if stdin else []
    what += [f"sqlite:{os.path.abspath(p)}" for p in sqlite]
    what += [f"postgres:{redact(d)}" for d in postgres] + [f"redis:{redact(u)}" for u in redis]
    return {"repo": redact(repo), "host": host or socket.gethostname(),
            "paths": " ".join(sorted(what))}


def _backup(paths: list[Path] | None, repo: str, password_file: Path | None,
            snapshot_type: str, tag: list[str] | None, host: str, exclude: list[str] | None,
            exclude_file: Path | None, stdin: bool, stdin_filename: str, full_every: int,
            full_after_days: float, codec: str, sqlite: list[Path] | None,
            postgres: list[str] | None, redis: list[str] | None, json_out: bool, quiet: bool,
            run: BackupRun) -> None:
    excludes = list(exclude or [])
    if exclude_file is not None:
        try:
            excludes += [ln.strip() for ln in exclude_file.read_text().splitlines()
                         if ln.strip() and not ln.startswith("#")]
        except OSError as exc:
            raise UserError(f"cannot read {exclude_file}: {exc.strerror}") from exc
    if stdin and paths:
        raise UserError("give either paths or --stdin, not both")
    for p in paths or []:
        if not p.exists() and not p.is_symlink():
            raise UserError(f"{p}: no such file or directory")
    if codec not in ("fast", "balanced", "max", "auto"):
        raise UserError(f"unknown --codec {codec!r} (fast, balanced, max or auto)")
    if sqlite or postgres or redis:  # live sources: docs/sources.md
        if paths or stdin:
            raise UserError("give paths, --stdin or --sqlite/--postgres/--redis, not several")
        from deltavault.cli.sources import backup_sources

        backup_sources(repo, password_file, sqlite=list(sqlite or []),
                       postgres=list(postgres or []), redis=list(redis or []),
                       snapshot_type=snapshot_type, tags=list(tag or []), host=host,
                       codec=codec, json_out=json_out, quiet=quiet,  # type: ignore[arg-type]
                       on_saved=run.saved)
        return
    r = open_repo(repo, password_file)  # the key first: Argon2id's memory is freed here
    from deltavault import api

    with byte_progress(show_progress(json_out, quiet), "backup") as bar:
        on_progress = None
        if bar is not None:
            task = bar.add_task("backup", total=None, detail="")

            def on_progress(p: Progress) -> None:
                bar.update(task, completed=p.bytes_done, total=p.bytes_total,
                           detail=f"{p.files_done} files")

        result = api.backup(r, list(paths or []), snapshot_type=snapshot_type,
                            codec=codec,  # type: ignore[arg-type]
                            full_every=full_every, full_after_days=full_after_days,
                            tags=list(tag or []), hostname=host, excludes=excludes,
                            stdin=sys.stdin.buffer if stdin else None,
                            stdin_filename=stdin_filename, on_progress=on_progress,
                            estimate_totals=bar is not None)
    snap = result.snapshot
    s = snap.summary
    run.saved(snap.type, s)
    doc = {"snapshot_id": snap.id, "type": snap.type, "parent": snap.parent,
           "base": snap.base, "tags": snap.tags, "time": snap.time,
           "bytes_added": s.get("bytes_added", 0), "summary": s, "errors": result.errors}
    if json_out and not result.errors:
        emit_json(doc)
    elif not quiet and not json_out:
        out_console.print(
            f"snapshot {snap.id[:12]} ({snap.type}) saved: {s['files_new']} new, "
            f"{s['files_changed']} changed, {s['files_unmodified']} unmodified files; "
            f"read {human_bytes(s['bytes_read'])}, added {human_bytes(s['bytes_added'])} "
            f"in {s['duration_s']:.1f}s")
    for e in result.errors:
        err_console.print(f"warning: {e}")
    if result.errors:
        raise SourceError(f"{len(result.errors)} file(s) could not be read; "
                          f"snapshot {snap.id[:12]} is incomplete", details=doc)
