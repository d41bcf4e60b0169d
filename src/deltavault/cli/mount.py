"""mount: every snapshot as a read-only file system. Thin: parse, open, serve."""

from __future__ import annotations

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
    open_repo,
)
from deltavault.errors import UserError


def mount(
    mountpoint: Annotated[Path, typer.Argument(help="Empty directory to mount on.")],
    repo: RepoOpt = "",
    password_file: PasswordFileOpt = None,
    cache_mib: Annotated[int, typer.Option(
        "--cache-mib", help="Memory for decrypted file data, MiB.")] = 64,
    allow_other: Annotated[bool, typer.Option(
        "--allow-other", help="Let other users in (stored modes and owners are enforced; "
                              "non-root needs user_allow_other in /etc/fuse.conf).")] = False,
    refresh_seconds: Annotated[float, typer.Option(
        "--refresh-seconds", help="How often new and forgotten snapshots are looked for.")]
    = 10.0,
    debug: Annotated[bool, typer.Option("--debug", help="libfuse's request trace.")] = False,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Mount the repository read-only: snapshots/, ids/, tags/, hosts/, latest.

    Runs in the foreground; Ctrl-C or SIGTERM unmounts and exits 0. With
    ``--json``, ``{"mountpoint", "snapshots"}`` as it mounts.
    """
    # deltavault.mount sits beside the server, above the api (docs/architecture.md)
    from deltavault.mount.fs import SnapshotFS
    from deltavault.mount.run import check_mountpoint, serve
    from deltavault.mount.source import RepositorySource

    if cache_mib < 8:
        raise UserError("--cache-mib must be at least 8")
    target = check_mountpoint(mountpoint)
    source = RepositorySource(open_repo(repo, password_file), refresh_s=refresh_seconds)
    fs = SnapshotFS(source, cache_bytes=cache_mib << 20)
    count = len(source.snapshots())
    if json_out:
        emit_json({"mountpoint": str(target), "snapshots": count})
    elif not quiet:
        err_console.print(f"deltavault: mounting {count} snapshot(s) read-only "
                          f"at {target}; Ctrl-C or SIGTERM unmounts", highlight=False)
    serve(fs, target, allow_other=allow_other, debug=debug)
    if not quiet and not json_out:
        err_console.print(f"deltavault: unmounted {target}", highlight=False)
