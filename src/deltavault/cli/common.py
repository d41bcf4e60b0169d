"""Options, password handling, output and progress shared by every command.

Cheap to import (start-up, issue 14): Rich and the engine are imported the
first time a command prints or opens a repository, not when the CLI starts.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from deltavault.errors import UserError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

    from deltavault.api import Repository

RepoOpt = Annotated[str, typer.Option("--repo", "-r", envvar="DELTAVAULT_REPO",
                                      help="Repository location (path or URL).",
                                      show_default=False)]
PasswordFileOpt = Annotated[Path | None, typer.Option(
    "--password-file", "-p", envvar="DELTAVAULT_PASSWORD_FILE",
    help="File whose first line is the password (else $DELTAVAULT_PASSWORD or a prompt).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress or summaries.")]



#: the width tables are laid out in when the output is not a terminal (a log, a pipe)
PIPE_WIDTH = 200


class _LazyConsole:
    """A Rich console made on first use, so that importing Rich is paid only by
    commands that print through it."""

    def __init__(self, *, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    def get(self) -> Console:
        if self._console is None:
            from rich.console import Console

            console = Console(stderr=self._stderr, highlight=False)
            if not console.is_terminal:
                # Rich assumes 80 columns where there is no terminal to measure: a
                # summary line in a log or a pipe was cut in two (a long path, say) and
                # a table squeezed until snapshot ids were cut short. Lines go out
                # whole, and tables get the width they need (up to PIPE_WIDTH) unless
                # $COLUMNS says otherwise.
                console.soft_wrap = True
                if not os.environ.get("COLUMNS"):
                    console.width = PIPE_WIDTH
            self._console = console
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.get(), name)


err_console = _LazyConsole(stderr=True)
out_console = _LazyConsole(stderr=False)
#: C0 controls, DEL and C1 controls, shown escaped: a name must not drive the terminal
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}


def print_lines(lines: Iterable[str]) -> None:
    """Plain listing lines on stdout, control characters (``\\n``, ESC, …) escaped.

    Listings (``ls``, ``diff``) are written here, not through Rich: rendering a
    line through a Rich console cost ~0.2 ms (``ls`` of 4,413 entries: 1.99 s, of
    200,000: 36 s; restic 3.9 s), which at a million files is minutes.
    """
    write = sys.stdout.write
    for line in lines:
        write(line.translate(_CONTROL))
        write("\n")
    sys.stdout.flush()


_json_printed = False


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
    """Open the repository named by the common options.

    The key is derived (Argon2id, 64 MiB by default) here, before the command
    imports its data path (numpy, codecs, pipeline): that memory is returned
    to the system before those imports and buffers add to the peak.
    """
    from deltavault import api

    return api.open(require_repo(repo), read_password(password_file))


def emit_json(obj: Any) -> None:
    """The command's one JSON document on stdout.

    A command that fails after building its report does not print it: it
    raises its error with ``details=report`` and :mod:`deltavault.cli.outcome`
    prints the report as the error document, so stdout holds one document.
    """
    global _json_printed
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()
    _json_printed = True


def json_printed() -> bool:
    """Whether this process printed its JSON document already."""
    return _json_printed


def show_progress(json_out: bool, quiet: bool) -> bool:
    """Progress bars only for a person watching a terminal."""
    return not (json_out or quiet) and sys.stderr.isatty() and bool(err_console.get().is_terminal)


@contextmanager
def byte_progress(enabled: bool, description: str) -> Iterator[Progress | None]:
    """A Rich progress bar (bytes, throughput, ETA) on stderr, or nothing."""
    if not enabled:
        yield None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                        DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
                        TextColumn("{task.fields[detail]}"), console=err_console.get(),
                        transient=True)
    with progress:
        yield progress


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
