"""forget, prune."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
from deltavault.errors import UserError

if TYPE_CHECKING:
    from deltavault import api

KeepOpt = Annotated[int, typer.Option(min=0)]
MaxUnusedOpt = Annotated[str, typer.Option(
    "--max-unused", help="Repack a pack when more than this share of it is unused "
                         "(e.g. 5%, 0.05; 100% never repacks).")]
MaxRepackOpt = Annotated[str | None, typer.Option(
    "--max-repack-size", help="Repack at most this much per run (e.g. 500M, 2G).")]

_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_share(text: str) -> float:
    """``5%`` or ``0.05`` → 0.05."""
    try:
        value = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    except ValueError as exc:
        raise UserError(f"--max-unused {text!r}: give a percentage like 5%") from exc
    if not 0 <= value <= 1:
        raise UserError("--max-unused must be between 0% and 100%")
    return value


def parse_size(text: str | None) -> int | None:
    """``500M``, ``2G``, ``1048576`` → bytes (None: no limit)."""
    if text is None:
        return None
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = t[-1:] if t[-1:] in _UNITS else ""
    try:
        value = float(t[: len(t) - len(unit)])
    except ValueError as exc:
        raise UserError(f"--max-repack-size {text!r}: give a size like 500M or 2G") from exc
    if value < 0:
        raise UserError("--max-repack-size must not be negative")
    return int(value * _UNITS[unit])


@contextmanager
def _repack_bar(enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    with byte_progress(enabled, "repack") as progress:
        if progress is None:
            yield None
            return
        task = progress.add_task("repack", total=None, detail="")

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update


def forget(
    snapshot_ids: Annotated[list[str] | None, typer.Argument(help="Snapshots to forget.")] = None,
    keep_last: KeepOpt = 0, keep_hourly: KeepOpt = 0, keep_daily: KeepOpt = 0,
    keep_weekly: KeepOpt = 0, keep_monthly: KeepOpt = 0, keep_yearly: KeepOpt = 0,
    keep_tag: Annotated[list[str] | None, typer.Option(help="Always keep this tag.")] = None,
    prune: Annotated[bool, typer.Option("--prune", help="Run prune afterwards.")] = False,
    max_unused: MaxUnusedOpt = "5%", max_repack_size: MaxRepackOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only show what would go.")] =
    False,
    repo: RepoOpt = "", password_file: PasswordFileOpt = None,
    json_out: JsonOpt = False, quiet: QuietOpt = False,
) -> None:
    """Forget snapshots by id or by a retention policy (data is freed by prune)."""
    from deltavault import api

    policy = api.RetentionPolicy(keep_last, keep_hourly, keep_daily, keep_weekly,
                                 keep_monthly, keep_yearly, list(keep_tag or []))
    share, budget = parse_share(max_unused), parse_size(max_repack_size)
    r = open_repo(repo, password_file)
    with _repack_bar(prune and show_progress(json_out, quiet)) as bar:
        result = api.forget(r, snapshot_ids or (), policy=policy, dry_run=dry_run, prune=prune,
                            max_unused=share, max_repack_size=budget, on_progress=bar)
    removed, pruned = result.forgotten, result.prune
    if json_out:
        emit_json({"forgotten": removed, "dry_run": dry_run,
                   "prune": pruned.to_dict() if pruned else None})
    elif not quiet:
        verb = "would forget" if dry_run else "forgot"
        out_console.print(f"{verb} {len(removed)} snapshot(s): "
                          + ", ".join(i[:12] for i in removed))
        if pruned:
            _print_prune(pruned)


def prune(repo: RepoOpt = "", password_file: PasswordFileOpt = None,
          max_unused: MaxUnusedOpt = "5%", max_repack_size: MaxRepackOpt = None,
          dry_run: Annotated[bool, typer.Option(
              "--dry-run", help="Only report what would be deleted and reclaimed.")] = False,
          json_out: JsonOpt = False, quiet: QuietOpt = False) -> None:
    """Delete data no snapshot needs and repack mostly-unused packs (keeping every delta base)."""
    from deltavault import api

    share, budget = parse_share(max_unused), parse_size(max_repack_size)
    r = open_repo(repo, password_file)
    with _repack_bar(show_progress(json_out, quiet)) as bar:
        result = api.prune(r, dry_run=dry_run, max_unused=share, max_repack_size=budget,
                           on_progress=bar)
    if json_out:
        emit_json(result.to_dict())
    elif not quiet:
        _print_prune(result)


def _print_prune(result: api.PruneResult) -> None:
    would = result.dry_run
    if result.finished_runs:
        out_console.print(f"finished {len(result.finished_runs)} interrupted prune(s)")
    out_console.print(
        f"prune {'would remove' if would else 'removed'} {result.packs_removed} pack(s), "
        f"{human_bytes(result.bytes_removed)}; {'would repack' if would else 'repacked'} "
        f"{result.packs_repacked} pack(s) into {result.packs_written} "
        f"({human_bytes(result.bytes_written)})")
    out_console.print(
        f"{'would reclaim' if would else 'reclaimed'} {human_bytes(result.bytes_reclaimed)}; "
        f"unused space {human_bytes(result.unused_before)} → "
        f"{human_bytes(result.unused_after)} of {human_bytes(result.bytes_before)}")
    if result.snapshots_removed:
        out_console.print(f"{'would remove' if would else 'removed'} "
                          f"{result.snapshots_removed} leftover snapshot object(s)")
    if result.packs_retained or result.snapshots_retained:
        err_console.print(f"{result.packs_retained} pack(s) and {result.snapshots_retained} "
                          "snapshot object(s) are under retention (Object Lock) and stay "
                          "until it ends")

