"""forget, prune."""

from __future__ import annotations

from typing import Annotated

import typer

from deltavault.cli.common import (
    JsonOpt,
    PasswordFileOpt,
    QuietOpt,
    RepoOpt,
    emit_json,
    human_bytes,
    open_repo,
    out_console,
)

KeepOpt = Annotated[int, typer.Option(min=0)]


def forget(
    snapshot_ids: Annotated[list[str] | None, typer.Argument(help="Snapshots to forget.")] = None,
    keep_last: KeepOpt = 0, keep_hourly: KeepOpt = 0, keep_daily: KeepOpt = 0,
    keep_weekly: KeepOpt = 0, keep_monthly: KeepOpt = 0, keep_yearly: KeepOpt = 0,
    keep_tag: Annotated[list[str] | None, typer.Option(help="Always keep this tag.")] = None,
    prune: Annotated[bool, typer.Option("--prune", help="Run prune afterwards.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only show what would go.")] =
    False,
    repo: RepoOpt = "", password_file: PasswordFileOpt = None,
    json_out: JsonOpt = False, quiet: QuietOpt = False,
) -> None:
    """Forget snapshots by id or by a retention policy (data is freed by prune)."""
    from deltavault import api

    policy = api.RetentionPolicy(keep_last, keep_hourly, keep_daily, keep_weekly,
                                 keep_monthly, keep_yearly, list(keep_tag or []))
    r = open_repo(repo, password_file)
    result = api.forget(r, snapshot_ids or (), policy=policy, dry_run=dry_run, prune=prune)
    removed, pruned = result.forgotten, result.prune
    if json_out:
        emit_json({"forgotten": removed, "dry_run": dry_run,
                   "prune": pruned.to_dict() if pruned else None})
    elif not quiet:
        verb = "would forget" if dry_run else "forgot"
        out_console.print(f"{verb} {len(removed)} snapshot(s): "
                          + ", ".join(i[:12] for i in removed))
        if pruned:
            _print_prune(pruned.packs_removed, pruned.bytes_removed, dry_run)


def prune(repo: RepoOpt = "", password_file: PasswordFileOpt = None,
          dry_run: Annotated[bool, typer.Option("--dry-run", help="Only show what would go.")]
          = False, json_out: JsonOpt = False, quiet: QuietOpt = False) -> None:
    """Delete data no snapshot needs (keeping every delta base still in use)."""
    from deltavault import api

    r = open_repo(repo, password_file)
    result = api.prune(r, dry_run=dry_run)
    if json_out:
        emit_json(result.to_dict())
    elif not quiet:
        _print_prune(result.packs_removed, result.bytes_removed, dry_run)


def _print_prune(packs: int, size: int, dry_run: bool) -> None:
    verb = "would remove" if dry_run else "removed"
    out_console.print(f"prune {verb} {packs} pack(s), {human_bytes(size)}")
