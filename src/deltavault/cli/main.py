"""Entry point: the Typer app, and the one place errors become exit codes."""

from __future__ import annotations

import sys

import click
import typer

from deltavault import __version__

try:  # typer >= 0.20 vendors click; its exceptions are not click's
    from typer._click.exceptions import ClickException as _TyperClickException
except ImportError:  # pragma: no cover - older typer uses click itself
    _TyperClickException = click.ClickException  # type: ignore[misc,assignment]
from deltavault.cli import backup_cmds, repo_cmds, restore_cmds, snapshot_cmds
from deltavault.errors import DeltavaultError

app = typer.Typer(
    name="deltavault",
    help="Full, differential and incremental backups of trading state, with a verifiable ledger.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
repo_cmds.register(app)
backup_cmds.register(app)
restore_cmds.register(app)
snapshot_cmds.register(app)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(f"deltavault {__version__}")


def run() -> None:
    """Run the CLI; map every error to one line on stderr and an exit code.

    Exit codes: 0 ok; 1 error; 2 usage; 3 some source files unreadable;
    10 no repository; 11 locked; 12 wrong password; 13 repository damaged
    or inconsistent; 14 storage backend failed; 130 interrupted.
    """
    try:
        app(standalone_mode=False)
    except DeltavaultError as exc:
        sys.stderr.write(f"deltavault: error: {exc.one_line()}\n")
        sys.exit(exc.exit_code)
    except (click.exceptions.Exit, typer.Exit) as exc:
        sys.exit(exc.exit_code)
    except (click.ClickException, _TyperClickException) as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, click.exceptions.Abort, typer.Abort):
        sys.stderr.write("deltavault: interrupted\n")
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(1)


if __name__ == "__main__":
    run()
