"""Entry point of the ``deltavault`` console script and of ``python -m deltavault``.

:func:`run` is the one place a command's outcome becomes an exit code (see
:mod:`deltavault.cli.outcome`). It imports nothing heavy before it knows the
command: the Typer app (:mod:`deltavault.cli.app`) registers only the command
being run, whose module imports the engine inside its functions, and
``version`` is answered without Typer at all.
"""

from __future__ import annotations

import sys
import warnings
from typing import NoReturn, TextIO

from deltavault.cli.allocator import tune_allocator
from deltavault.cli.blas import single_threaded_blas
from deltavault.errors import EXIT_INTERRUPTED


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: TextIO | None = None, line: str | None = None) -> None:
    """Warnings as one plain line, like errors (no source file and line)."""
    sys.stderr.write(f"deltavault: warning: {message}\n")


def run(argv: list[str] | None = None) -> NoReturn:
    """Run one command and exit with its documented code (README "Exit codes").

    Exit codes: 0 ok; 1 error; 2 usage; 3 some source files unreadable;
    4 ``status --max-age`` exceeded; 10 no repository; 11 locked; 12 wrong
    password; 13 repository damaged or inconsistent; 14 storage backend
    failed; 130 interrupted.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    warnings.showwarning = _show_warning
    tune_allocator()
    single_threaded_blas()
    from deltavault.cli import outcome

    as_json = outcome.wants_json(args)
    try:
        code = _invoke(args)
    except SystemExit:
        raise
    except BaseException as exc:
        failure = outcome.failure_of(exc)
        if failure is None:  # a bug: keep the traceback
            raise
        code = outcome.report(failure, as_json=as_json, document_printed=_printed())
    else:
        if code == EXIT_INTERRUPTED:  # typer turns KeyboardInterrupt into Exit(130)
            code = outcome.report(outcome.INTERRUPTED, as_json=as_json,
                                  document_printed=_printed())
    sys.exit(code)


def _invoke(args: list[str]) -> int:
    """Parse and run the command; its exit code (0 unless help/usage says otherwise)."""
    if args and args[0] == "version" and set(args[1:]) <= {"--json"}:
        from deltavault.cli.version import print_version

        print_version(as_json="--json" in args)
        return 0
    from deltavault.cli.app import build_app

    app = build_app()
    # standalone_mode=False: errors reach run() as exceptions, and an Exit's code
    # comes back as the return value (it must not be dropped: issue 11).
    rv = app(args=args, prog_name="deltavault", standalone_mode=False)
    return rv if isinstance(rv, int) else 0


def _printed() -> bool:
    """Whether the command already printed its JSON document."""
    common = sys.modules.get("deltavault.cli.common")
    return bool(common is not None and common.json_printed())


if __name__ == "__main__":
    run()
