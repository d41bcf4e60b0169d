"""Sources (backup --sqlite/--postgres/--redis, restore --sqlite-to/--postgres/--redis),
reconstruct and reconcile.

Thin: parse, call :mod:`deltavault.sources`, :mod:`deltavault.trading.reconstruct`
or :mod:`deltavault.trading.reconcile`, render.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from deltavault.cli.common import (
    JsonOpt,
    PasswordFileOpt,
    QuietOpt,
    RepoOpt,
    emit_json,
    err_console,
    human_bytes,
    open_repo,
    out_console,
)
from deltavault.errors import BreaksFound, SourceError, UsageError

if TYPE_CHECKING:
    from deltavault.api import BackupResult
    from deltavault.codec.policy import Policy


def backup_sources(repo: str, password_file: Path | None, *, sqlite: list[Path],
                   postgres: list[str], redis: list[str], snapshot_type: str, tags: list[str],
                   host: str, codec: Policy, json_out: bool, quiet: bool,
                   on_saved: Callable[[str, dict[str, Any]], None] | None = None) -> None:
    """``backup --sqlite/--postgres/--redis``: one snapshot per source."""
    r = open_repo(repo, password_file)  # the key first: Argon2id's memory is freed here
    from deltavault.sources.base import SourceOptions

    opts = SourceOptions(snapshot_type=snapshot_type, tags=tags, hostname=host, codec=codec)
    results: list[tuple[str, BackupResult]] = []
    with r.lock():
        for db in sqlite:
            from deltavault.sources.sqlite import backup_sqlite

            results.append((f"sqlite {db}", backup_sqlite(r, db, opts)))
        for dsn in postgres:
            from deltavault.sources.postgres import backup_postgres

            results.append(("postgres", backup_postgres(r, dsn, opts)))
        for url in redis:
            from deltavault.sources.redis import backup_redis

            results.append(("redis", backup_redis(r, url, opts)))
    docs: list[dict[str, Any]] = []
    for what, res in results:
        snap, s = res.snapshot, res.snapshot.summary
        if on_saved is not None:
            on_saved(snap.type, s)
        docs.append({"source": snap.paths[0], "snapshot_id": snap.id, "type": snap.type,
                     "parent": snap.parent, "tags": snap.tags, "time": snap.time,
                     "bytes_added": s.get("bytes_added", 0), "summary": s,
                     "errors": res.errors})
        if not json_out and not quiet:
            out_console.print(f"{what}: snapshot {snap.id[:12]} ({snap.type}) of "
                              f"{snap.paths[0]}: read {human_bytes(s['bytes_read'])}, added "
                              f"{human_bytes(s['bytes_added'])} in {s['duration_s']:.1f}s")
    errors = [e for _w, res in results for e in res.errors]
    doc: Any = docs[0] if len(docs) == 1 else docs
    if json_out and not errors:
        emit_json(doc)
    for e in errors:
        err_console.print(f"warning: {e}")
    if errors:
        raise SourceError(f"{len(errors)} staged file(s) could not be read",
                          details=doc if isinstance(doc, dict) else {"snapshots": doc})


def restore_sources(repo: str, password_file: Path | None, snapshot: str, *,
                    sqlite_to: Path | None, postgres: str | None, redis: str | None,
                    force: bool, json_out: bool, quiet: bool) -> None:
    """``restore SNAPSHOT --sqlite-to PATH | --postgres DSN | --redis URL``."""
    if sum(x is not None for x in (sqlite_to, postgres, redis)) != 1:
        raise UsageError("give one of --target, --sqlite-to, --postgres or --redis")
    r = open_repo(repo, password_file)
    snap = r.find_snapshot(snapshot)
    doc: dict[str, Any] = {"snapshot_id": snap.id}
    if sqlite_to is not None:
        from deltavault.sources.sqlite import restore_sqlite

        doc["target"] = str(restore_sqlite(r, snap, sqlite_to, force=force))
    elif postgres is not None:
        from deltavault.sources.postgres import restore_postgres

        doc.update(restore_postgres(r, snap, postgres).to_dict())
    elif redis is not None:
        from deltavault.sources.redis import restore_redis

        doc.update(restore_redis(r, snap, redis, force=force).to_dict())
    if json_out:
        emit_json(doc)
    elif not quiet:
        details = ", ".join(f"{k} {v}" for k, v in doc.items() if k != "snapshot_id")
        out_console.print(f"restored snapshot {snap.id[:12]}: {details}")


def reconstruct_command(
    at: Annotated[str, typer.Option(
        "--at", help="Point in time, RFC 3339 (2026-11-20T14:03:00Z).")],
    target: Annotated[Path, typer.Option(
        "--target", "-t", help="Empty directory to rebuild in.")],
    applier: Annotated[str, typer.Option(
        help="'builtin' (trades → positions/collateral) or 'module:function'.")] = "builtin",
    db: Annotated[str | None, typer.Option(
        "--db", help="Database path inside the snapshot (default: found by name).")] = None,
    tag: Annotated[str | None, typer.Option(help="Only snapshots with this tag.")] = None,
    repo: RepoOpt = "",
    password_file: PasswordFileOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Restore the newest snapshot at or before --at, then replay proven journal records."""
    r = open_repo(repo, password_file)  # the key first: Argon2id's memory is freed here
    from deltavault.trading.reconstruct import reconstruct

    result = reconstruct(r, at, target, applier=applier, db=db, tag=tag)
    if json_out:
        emit_json(result.to_dict())
    elif not quiet:
        out_console.print(
            f"reconstructed {result.at} in {result.target}: snapshot {result.snapshot.id[:12]} "
            f"({result.snapshot.time[:19]}) + {result.applied} journal record(s) proven in the "
            f"log of size {result.checkpoint_size} ({result.ignored} ignored)")


SourceOpt = Annotated[str, typer.Option(
    help="snapshot:<id|latest>[:path], sqlite:/path/db, postgres:DSN or reconstruct:<time>.")]


def reconcile_command(
    left: SourceOpt,
    right: SourceOpt,
    qty_tol: Annotated[float, typer.Option(help="Tolerated |qty difference|.")] = 0.0,
    px_tol: Annotated[float, typer.Option(help="Tolerated |avg_px difference|.")] = 0.0,
    amount_tol: Annotated[float, typer.Option(
        help="Tolerated |collateral amount difference|.")] = 0.0,
    haircut_tol: Annotated[float, typer.Option(help="Tolerated |haircut difference|.")] = 0.0,
    csv_file: Annotated[Path | None, typer.Option("--csv", help="Write the breaks as CSV.")]
    = None,
    repo: RepoOpt = "",
    password_file: PasswordFileOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Compare positions and collateral of two sources; exit 0 only when there is no break."""
    from deltavault.trading.reconcile import Tolerances, needs_repository, reconcile

    r = None
    if repo or needs_repository(left) or needs_repository(right):
        r = open_repo(repo, password_file)
    report = reconcile(left, right, Tolerances(qty_tol, px_tol, amount_tol, haircut_tol), r)
    if csv_file is not None:
        csv_file.write_text(report.to_csv())
    if json_out:
        if report.ok:
            emit_json(report.to_dict())
    elif not quiet and report.breaks:
        from rich.table import Table

        table = Table("table", "account", "key", "break", "left", "right", "diff",
                      title=f"{report.left} ↔ {report.right}")
        for b in report.breaks:
            table.add_row(b.table, b.key[0], b.key[1], b.kind, _fmt(b.left), _fmt(b.right),
                          _fmt(b.diff))
        out_console.print(table)
    if report.ok:
        if not json_out and not quiet:
            out_console.print(report.summary())
        return
    raise BreaksFound(report.summary(), details=report.to_dict())


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.10g}"
