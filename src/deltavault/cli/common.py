"""Options, password handling, output and progress shared by every command."""

from __future__ import annotations

import getpass
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from deltavault import api
from deltavault.errors import UserError

if TYPE_CHECKING:
    from deltavault.api import Repository

RepoOpt = Annotated[str, typer.Option("--repo", "-r", envvar="DELTAVAULT_REPO",
                                      help="Repository location (path or URL).",
                                      show_default=False)]
PasswordFileOpt = Annotated[Path | None, typer.Option(
    "--password-file", "-p", envvar="DELTAVAULT_PASSWORD_FILE",
    help="File whose first line is the password (else $DELTAVAULT_PASSWORD or a prompt).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress or summaries.")]

err_console = Console(stderr=True, highlight=False)
out_console = Console(highlight=False)


def read_password(password_file: Path | None, *, confirm: bool = False) -> bytes:
    """The password from a file, the environment or a TTY prompt — in that order."""
    if password_file is not None:
        try:
            text = password_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise UserError(f"cannot read password file {password_file}: {exc.strerror}") from exc
        pw = text.splitlines()[0] if text else ""
        if not pw:
            raise UserError(f"password file {password_file} is empty")
        return pw.encode("utf-8")
    env = os.environ.get("DELTAVAULT_PASSWORD")
    if env:
        return env.encode("utf-8")
    if not sys.stdin.isatty():
        raise UserError("no password given",
                        hint="use --password-file, DELTAVAULT_PASSWORD_FILE or DELTAVAULT_PASSWORD")
    pw = getpass.getpass("repository password: ")
    if confirm and getpass.getpass("repeat password: ") != pw:
        raise UserError("passwords do not match")
    return pw.encode("utf-8")


def require_repo(repo: str) -> str:
    if not repo:
        raise UserError("no repository given", hint="use --repo or DELTAVAULT_REPO")
    return repo


def open_repo(repo: str, password_file: Path | None) -> Repository:
    """Open the repository named by the common options."""
    return api.open(require_repo(repo), read_password(password_file))


def emit_json(obj: Any) -> None:
    """One JSON document on stdout."""
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


def show_progress(json_out: bool, quiet: bool) -> bool:
    """Progress bars only for a person watching a terminal."""
    return not (json_out or quiet) and err_console.is_terminal


@contextmanager
def byte_progress(enabled: bool, description: str) -> Iterator[Progress | None]:
    """A Rich progress bar (bytes, throughput, ETA) on stderr, or nothing."""
    if not enabled:
        yield None
        return
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                        DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
                        TextColumn("{task.fields[detail]}"), console=err_console,
                        transient=True)
    with progress:
        yield progress


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
