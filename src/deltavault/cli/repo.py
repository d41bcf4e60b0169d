"""init, key, unlock, check, stats, maintenance."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

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
    read_password,
    require_repo,
    show_progress,
)
from deltavault.errors import RepositoryError, UserError

key_app = typer.Typer(help="Manage the passwords that open the repository.",
                      no_args_is_help=True, rich_markup_mode=None)


def init(repo: RepoOpt = "", password_file: PasswordFileOpt = None, json_out: JsonOpt = False,
         chunk_avg: Annotated[int, typer.Option(help="FastCDC average chunk size, bytes.")] =
         1024 * 1024,
         compression: Annotated[int, typer.Option(help="zstd level (1-22).")] = 3,
         pack_size_mib: Annotated[int, typer.Option(
             "--pack-size", help="Pack size, MiB (bigger: fewer objects, more memory).")] = 8,
         kdf_memory: Annotated[int | None, typer.Option(
             help="Argon2id memory in KiB (default 65536; minimum 8192).")] = None,
         kdf_time: Annotated[int | None, typer.Option(help="Argon2id passes (default 3).")] =
         None) -> None:
    """Create a new repository."""
    from deltavault import api

    location = require_repo(repo)
    password = read_password(password_file, confirm=True)
    chunker = api.ChunkerParams(min_size=max(64, chunk_avg // 4), avg_size=chunk_avg,
                            max_size=min(chunk_avg * 4, 16 * 1024 * 1024))
    r = api.init(location, password, chunker=chunker, compression_level=compression,
                 pack_size=pack_size_mib * 1024 * 1024, kdf_memory_kib=kdf_memory,
                 kdf_time_cost=kdf_time)
    if json_out:
        emit_json({"id": r.config.id, "location": r.store.location(),
                   "ledger_verifier_key": r.config.ledger_verifier_key})
    else:
        out_console.print(f"created repository {r.config.id[:12]} at {r.store.location()}")


@key_app.command("list")
def key_list(repo: RepoOpt = "", password_file: PasswordFileOpt = None,
             json_out: JsonOpt = False) -> None:
    """List key files."""
    from rich.table import Table

    r = open_repo(repo, password_file)
    keys = [dict(k.summary, current=k.id == r.key_id) for k in r.list_keys()]
    if json_out:
        emit_json(keys)
        return
    table = Table("id", "user", "host", "created", "")
    for k in keys:
        table.add_row(k["id"][:12], k["user"], k["host"], k["created"],
                      "*" if k["current"] else "")
    out_console.print(table)


@key_app.command("add")
def key_add(repo: RepoOpt = "", password_file: PasswordFileOpt = None,
            new_password_file: Annotated[Path | None, typer.Option(
                help="File holding the new password (else a prompt).")] = None,
            json_out: JsonOpt = False) -> None:
    """Add a password that opens the repository."""
    r = open_repo(repo, password_file)
    kid = r.add_key(_new_password(new_password_file))
    emit_json({"added": kid}) if json_out else out_console.print(f"added key {kid[:12]}")


@key_app.command("remove")
def key_remove(key_id: str, repo: RepoOpt = "", password_file: PasswordFileOpt = None,
               json_out: JsonOpt = False) -> None:
    """Remove a key file (not the one in use)."""
    r = open_repo(repo, password_file)
    kid = r.remove_key(key_id)
    emit_json({"removed": kid}) if json_out else out_console.print(f"removed key {kid[:12]}")


@key_app.command("passwd")
def key_passwd(repo: RepoOpt = "", password_file: PasswordFileOpt = None,
               new_password_file: Annotated[Path | None, typer.Option(
                   help="File holding the new password (else a prompt).")] = None,
               json_out: JsonOpt = False) -> None:
    """Change the password: add a new key, then remove the current one."""
    r = open_repo(repo, password_file)
    kid, old = r.change_password(_new_password(new_password_file))
    if json_out:
        emit_json({"added": kid, "removed": old})
    else:
        out_console.print(f"password changed (key {kid[:12]} replaces {old[:12]})")


def _new_password(path: Path | None) -> bytes:
    if path is None:
        return read_password(None, confirm=True)
    return read_password(path)


def unlock(repo: RepoOpt = "", password_file: PasswordFileOpt = None,
           remove_all: Annotated[bool, typer.Option(
               "--remove-all", help="Remove every lock, not only stale ones.")] = False,
           json_out: JsonOpt = False) -> None:
    """Remove stale locks left by crashed processes."""
    from deltavault import api

    r = open_repo(repo, password_file)
    removed, left = api.unlock(r, remove_all=remove_all)
    if json_out:
        emit_json({"removed": [x.describe() for x in removed],
                   "remaining": [x.describe() for x in left]})
        return
    for x in removed:
        out_console.print(f"removed {x.describe()}")
    for x in left:
        out_console.print(f"still held: {x.describe()}")


def check(repo: RepoOpt = "", password_file: PasswordFileOpt = None,
          read_data: Annotated[bool, typer.Option(
              "--read-data", help="Read, decrypt and verify every blob.")] = False,
          subset: Annotated[str | None, typer.Option(
              "--read-data-subset", help="Read only this share of packs, e.g. 10%.")] = None,
          json_out: JsonOpt = False, quiet: QuietOpt = False) -> None:
    """Verify the repository; exit 13 if anything is damaged."""
    from deltavault import api

    share = _parse_share(subset) if subset else None
    r = open_repo(repo, password_file)
    report = api.check(r, read_data=read_data, subset=share,
                       on_progress=_pack_progress() if show_progress(json_out, quiet) else None)
    if json_out:
        if report.ok:
            emit_json(report.to_dict())
    elif not quiet:
        out_console.print(f"checked {report.indexes} index files, {report.packs} packs, "
                          f"{report.snapshots} snapshots"
                          + (f", read {report.packs_read} packs / {report.blobs_verified} blobs"
                             if read_data or share else ""))
        if report.unreferenced_packs:
            out_console.print(f"{len(report.unreferenced_packs)} unreferenced pack(s) "
                              "(left by an interrupted backup or prune; removed by prune)")
        if report.leftover_snapshots:
            out_console.print(f"{len(report.leftover_snapshots)} leftover snapshot object(s) "
                              "no ledger event makes live (removed by prune)")
        if report.interrupted_prunes:
            out_console.print(f"{len(report.interrupted_prunes)} interrupted prune(s) "
                              "(the next prune finishes the job)")
        for flag in report.time_flags:  # a warning: retention ignores the claimed time
            err_console.print(f"[yellow]time flagged[/yellow] {flag}", highlight=False)
        for p in report.problems:
            err_console.print(f"[red]damaged[/red] {p.object}: {p.message}")
            for a in p.affected[:20]:
                err_console.print(f"    affects {a}")
        if report.ok:
            out_console.print("no errors were found")
    if not report.ok:
        raise RepositoryError(f"check found {len(report.problems)} problem(s)",
                              details=report.to_dict())


def _parse_share(text: str) -> float:
    try:
        value = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    except ValueError as exc:
        raise UserError(f"--read-data-subset {text!r}: give a percentage like 10%") from exc
    if not 0 < value <= 1:
        raise UserError("--read-data-subset must be between 0% and 100%")
    return value


def _pack_progress() -> Callable[[int, int], None]:
    def cb(done: int, total: int) -> None:
        err_console.print(f"read {done}/{total} packs", end="\r")
    return cb


def stats(repo: RepoOpt = "", password_file: PasswordFileOpt = None,
          json_out: JsonOpt = False) -> None:
    """Repository totals: snapshots, packs, blobs, stored bytes."""
    from rich.table import Table

    from deltavault import api

    doc = api.stats(open_repo(repo, password_file))
    if json_out:
        emit_json(doc)
        return
    table = Table("", "", show_header=False)
    for k, v in doc.items():
        table.add_row(k.replace("_", " "), human_bytes(v) if k.endswith("bytes")
                      or k == "latest_size" else str(v))
    out_console.print(table)


def maintenance(repo: RepoOpt = "", password_file: PasswordFileOpt = None,
                retention_days: Annotated[int, typer.Option(
                    help="Extend Object Lock retention of everything still needed to this "
                         "many days from now.")] = 0,
                json_out: JsonOpt = False) -> None:
    """Extend S3 Object Lock retention of every object a kept snapshot needs."""
    from deltavault import api

    if retention_days <= 0:
        raise UserError("give --retention-days N (N > 0)")
    count = api.extend_retention(open_repo(repo, password_file), retention_days)
    if json_out:
        emit_json({"objects": count, "retention_days": retention_days})
    else:
        out_console.print(f"retention of {count} objects now ends no earlier than "
                          f"{retention_days} days from now")
