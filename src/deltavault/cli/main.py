"""Entry point: the Typer app, and the one place errors become exit codes."""

from __future__ import annotations

import sys
import warnings
from typing import TextIO

import typer

from deltavault import __version__
from deltavault.cli import (
    backup,
    demo,
    journal,
    mount,
    prune,
    replicate,
    repo,
    restore,
    snapshots,
    sources,
    status,
)
from deltavault.cli.ledger import audit_command
from deltavault.cli.serve import serve_command
from deltavault.cli.ui import ui_command
from deltavault.errors import DeltavaultError

try:  # newer typer vendors click
    from typer._click.exceptions import (  # type: ignore[import-not-found,unused-ignore]
        ClickException,
    )
except ImportError:  # pragma: no cover - older typer depends on click
    from click import ClickException  # type: ignore[assignment,unused-ignore]

app = typer.Typer(
    name="deltavault",
    help="Full, differential and incremental backups of trading state, with a verifiable ledger.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
repo.register(app)
backup.register(app)
restore.register(app)
snapshots.register(app)
demo.register(app)
prune.register(app)
journal.register(app)
replicate.register(app)
sources.register(app)
mount.register(app)
status.register(app)
app.command("audit")(audit_command)
app.command("serve")(serve_command)
app.command("ui")(ui_command)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(f"deltavault {__version__}")


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: TextIO | None = None, line: str | None = None) -> None:
    """Warnings as one plain line, like errors (no source file and line)."""
    sys.stderr.write(f"deltavault: warning: {message}\n")


def run() -> None:
    """Run the CLI; map every error to one line on stderr and an exit code.

    Exit codes: 0 ok; 1 error; 2 usage; 3 some source files unreadable;
    4 ``status --max-age`` exceeded; 10 no repository; 11 locked; 12 wrong
    password; 13 repository damaged or inconsistent; 14 storage backend
    failed; 130 interrupted.
    """
    warnings.showwarning = _show_warning
    try:
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)  # a typer.Exit(n) raised in a command comes back as a value
    except DeltavaultError as exc:
        sys.stderr.write(f"deltavault: error: {exc.one_line()}\n")
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        sys.stderr.write("deltavault: interrupted\n")
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(1)


if __name__ == "__main__":
    run()
