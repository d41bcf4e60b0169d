"""The one place where a command's outcome becomes an exit code.

Every failure ends here: a :class:`~deltavault.errors.DeltavaultError` (its
family's exit code), a usage error from the option parser (2), an
interruption (130) or an operating-system error on a user's file (1). Each is
one line on stderr and, when the command line asked for ``--json``, one JSON
error document on stdout::

    {"ok": false, "error": "...", "exit_code": 13, "kind": "IntegrityError"}

merged into the report the command had produced, if any (``details``), so a
script reading stdout always gets exactly one document. Commands never call
``sys.exit`` or raise ``typer.Exit`` themselves: an exit code raised past
:func:`deltavault.cli.main.run` by another path was lost once (issue 11).
"""

from __future__ import annotations

import contextlib
import json
import sys
from dataclasses import dataclass
from typing import Any

from deltavault.errors import EXIT_INTERRUPTED, DeltavaultError, UsageError


@dataclass(frozen=True)
class Failure:
    """How a failed command is reported: exit code, error class, one line."""

    exit_code: int
    kind: str
    message: str
    details: dict[str, Any] | None = None
    #: ``message`` is the help text (no arguments given), printed as it is
    help: bool = False

    def document(self) -> dict[str, Any]:
        """The ``--json`` error document (the command's report, if any, included)."""
        doc = dict(self.details or {})
        doc.update(ok=False, error=self.message, exit_code=self.exit_code, kind=self.kind)
        return doc


INTERRUPTED = Failure(EXIT_INTERRUPTED, "Interrupted", "interrupted")


def wants_json(args: list[str]) -> bool:
    """Whether the command line asks for ``--json`` (options end at ``--``)."""
    for arg in args:
        if arg == "--":
            return False
        if arg == "--json":
            return True
    return False


def failure_of(exc: BaseException) -> Failure | None:
    """The report for an exception, or None for a bug (which keeps its traceback)."""
    if isinstance(exc, DeltavaultError):
        return Failure(exc.exit_code, type(exc).__name__, exc.one_line(), exc.details)
    if isinstance(exc, KeyboardInterrupt):
        return INTERRUPTED
    click = _click_exceptions()
    if isinstance(exc, click.UsageError) and type(exc).__name__ == "NoArgsIsHelpError":
        # bare `deltavault` (or a group without a subcommand): its help, exit 2
        return Failure(UsageError.exit_code, "UsageError", exc.format_message(), help=True)
    if isinstance(exc, click.UsageError):
        ctx = getattr(exc, "ctx", None)
        where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        return Failure(UsageError.exit_code, "UsageError", exc.format_message() + where)
    if isinstance(exc, click.ClickException):
        return Failure(exc.exit_code, type(exc).__name__, exc.format_message())
    if isinstance(exc, _abort_types()):
        return INTERRUPTED
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        return Failure(1, type(exc).__name__, f"{exc.strerror or exc}{where}")
    return None


def report(failure: Failure, *, as_json: bool, document_printed: bool) -> int:
    """Print the failure (stderr line; JSON document unless one was printed); its code."""
    if failure is INTERRUPTED:
        sys.stderr.write("deltavault: interrupted\n")
    elif failure.help:
        sys.stderr.write(failure.message + "\n")
    else:
        sys.stderr.write(f"deltavault: error: {failure.message}\n")
    if as_json and not document_printed:
        sys.stdout.write(json.dumps(failure.document(), indent=2, sort_keys=True,
                                    default=str) + "\n")
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError):  # a closed pipe: nothing more to say
            stream.flush()
    return failure.exit_code


def _click_exceptions() -> Any:
    """click's exception module: typer ≥ 0.20 vendors click, older typer uses it."""
    try:
        from typer._click import exceptions  # type: ignore[import-not-found,unused-ignore]
    except ImportError:  # pragma: no cover - older typer
        from click import exceptions  # type: ignore[no-redef,unused-ignore]
    return exceptions


def _abort_types() -> tuple[type[BaseException], ...]:
    import typer

    return (typer.Abort,)
