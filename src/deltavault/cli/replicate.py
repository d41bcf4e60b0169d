"""copy, repair: replicas of a repository on another backend; ``repair index``.

Exit codes (besides the common ones): ``copy`` exits 13 when source objects
failed verification (they were not copied; the rest was); ``repair`` exits
13 when the repository still has problems afterwards; ``repair index`` exits
13 when a pack's header could not be read (the rest is indexed).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer

from deltavault.cli.common import (
    JsonOpt,
    PasswordFileOpt,
    QuietOpt,
    byte_progress,
    emit_json,
    err_console,
    human_bytes,
    open_repo,
    out_console,
    show_progress,
)
from deltavault.errors import RepositoryError, UserError

FromRepoOpt = Annotated[str, typer.Option(
    "--from-repo", envvar="DELTAVAULT_REPO", show_default=False,
    help="Source repository (path or URL); default $DELTAVAULT_REPO.")]


def copy(
    snapshots: Annotated[list[str] | None, typer.Argument(
        help="Snapshots to copy (ids, prefixes, latest); default: everything.")] = None,
    from_repo: FromRepoOpt = "",
    to_repo: Annotated[str, typer.Option(
        "--to-repo", show_default=False,
        help="Destination: an empty location, or a replica made by copy.")] = "",
    password_file: PasswordFileOpt = None,
    json_out: JsonOpt = False, quiet: QuietOpt = False,
) -> None:
    """Copy a repository (or some snapshots) into a byte-identical replica."""
    if not to_repo:
        raise UserError("no destination given", hint="use --to-repo PATH-OR-URL")
    if not from_repo:
        raise UserError("no source given", hint="use --from-repo or DELTAVAULT_REPO")
    src = open_repo(from_repo, password_file)
    from deltavault import api

    with byte_progress(show_progress(json_out, quiet), "copy") as bar:
        on_progress: Callable[[int, int], None] | None = None
        if bar is not None:
            task = bar.add_task("copy", total=None, detail="")

            def on_progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)
        report = api.copy(src, to_repo, snapshots or None, on_progress=on_progress)
    if json_out:
        if report.ok:
            emit_json(report.to_dict())
    elif not quiet:
        what = "a new replica" if report.initialised else "the replica"
        out_console.print(f"copied {report.objects_copied} object(s), "
                          f"{human_bytes(report.bytes_copied)} to {what} at "
                          f"{report.destination} ({report.objects_present} already there, "
                          f"{len(report.snapshots)} snapshot(s), ledger size "
                          f"{report.ledger_size})")
        for key in report.damaged_in_source:
            err_console.print(f"[red]damaged in source, not copied[/red] {key}")
    if not report.ok:
        raise RepositoryError(f"{len(report.damaged_in_source)} source object(s) failed "
                              "verification and were not copied",
                              hint="run 'deltavault check --read-data' on the source",
                              details=report.to_dict())


repair_app = typer.Typer(
    name="repair", rich_markup_mode=None,
    help="Repair a damaged repository from a replica (--from-repo) or rebuild the index from "
         "the pack headers (repair index).")


@repair_app.callback(invoke_without_command=True)
def repair(
    ctx: typer.Context,
    from_repo: Annotated[str, typer.Option(
        "--from-repo", show_default=False,
        help="A replica of this repository made by 'deltavault copy'.")] = "",
    repo: Annotated[str, typer.Option(
        "--repo", "-r", envvar="DELTAVAULT_REPO", show_default=False,
        help="The damaged repository (path or URL).")] = "",
    password_file: PasswordFileOpt = None,
    json_out: JsonOpt = False, quiet: QuietOpt = False,
) -> None:
    """Replace damaged or missing packs, indexes and snapshots from a replica."""
    if ctx.invoked_subcommand is not None:
        return
    if not from_repo:
        raise UserError("no replica given", hint="use --from-repo PATH-OR-URL")
    r = open_repo(repo, password_file)
    from deltavault import api

    report = api.repair(r, from_repo)
    if json_out:
        if report.ok:
            emit_json(report.to_dict())
    elif not quiet:
        out_console.print(f"found {report.problems_before} problem(s); repaired "
                          f"{len(report.repaired)} object(s) from {report.replica}")
        for item in report.repaired:
            out_console.print(f"  repaired {item['key']} (was {item['was']})")
        for item in report.not_repaired:
            err_console.print(f"[red]not repaired[/red] {item['key']}: {item['reason']}")
        if report.ok:
            out_console.print("check --read-data: no errors were found")
    if not report.ok:
        left = len(report.check_after.problems) if report.check_after else 0
        raise RepositoryError(f"repair left {left} problem(s)",
                              hint="see 'deltavault check --read-data'",
                              details=report.to_dict())


@repair_app.command("index")
def repair_index(
    repo: Annotated[str, typer.Option(
        "--repo", "-r", envvar="DELTAVAULT_REPO", show_default=False,
        help="The repository (path or URL).")] = "",
    password_file: PasswordFileOpt = None,
    json_out: JsonOpt = False, quiet: QuietOpt = False,
) -> None:
    """Rebuild the index from the packs' own headers (no replica needed)."""
    r = open_repo(repo, password_file)
    from deltavault import api

    progress = _count_progress("read pack headers") if show_progress(json_out, quiet) else None
    report = api.repair_index(r, on_progress=progress)
    if json_out:
        if report.ok:
            emit_json(report.to_dict())
    elif not quiet:
        out_console.print(f"indexed {report.blobs} blob(s) in {report.packs} pack(s) into "
                          f"{len(report.indexes_written)} index file(s); removed "
                          f"{report.indexes_removed} old index file(s)")
        for item in report.unreadable:
            err_console.print(f"[red]unreadable[/red] {item['pack']}: {item['reason']} "
                              f"(kept {item['kept']})")
    if not report.ok:
        raise RepositoryError(f"{len(report.unreadable)} pack header(s) could not be read",
                              hint="see 'deltavault check --read-data' and 'deltavault repair "
                                   "--from-repo REPLICA'",
                              details=report.to_dict())


def _count_progress(what: str) -> Callable[[int, int], None]:
    def cb(done: int, total: int) -> None:
        err_console.print(f"{what}: {done}/{total}", end="\r")
    return cb

