"""The Typer app: the command table, and the options that apply to every command.

Start-up (issue 14: ``deltavault --help`` ≤ 0.3 s; ``snapshots`` and ``ledger
verify`` import neither numpy nor the codecs nor the server): command modules
import only Typer and :mod:`deltavault.cli.common` at module level and the
engine inside their functions, and :func:`build_app` registers only the
command being run — importing its module and building its parameters — so
the other forty cost nothing. ``--help`` and an unknown command get them all.
"""

from __future__ import annotations

import importlib
import os
from typing import Annotated, Any

import typer

from deltavault.cli.common import JsonOpt
from deltavault.errors import UsageError

#: command name → "module:attribute" under deltavault.cli, in the order ``--help`` lists
#: them; a Typer attribute is a group of subcommands, anything else one command
COMMANDS: dict[str, str] = {
    "init": "repo:init",
    "backup": "backup:backup",
    "snapshots": "snapshots:snapshots",
    "ls": "snapshots:ls",
    "diff": "snapshots:diff",
    "restore": "restore:restore",
    "dump": "restore:dump",
    "rollback": "restore:rollback",
    "tag": "snapshots:tag",
    "check": "repo:check",
    "stats": "repo:stats",
    "forget": "prune:forget",
    "prune": "prune:prune",
    "ledger": "journal:ledger_app",  # journal.py adds key/events/prove/mirror to ledger_app
    "journal": "journal:journal_app",
    "audit": "ledger:audit_command",
    "reconstruct": "sources:reconstruct_command",
    "reconcile": "sources:reconcile_command",
    "copy": "replicate:copy",
    "repair": "replicate:repair",
    "status": "status:status",
    "maintenance": "repo:maintenance",
    "mount": "mount:mount",
    "ui": "ui:ui_command",
    "serve": "serve:serve_command",
    "key": "repo:key_app",
    "unlock": "repo:unlock",
    "demo-data": "demo:demo_data",
    "version": "app:version_command",
}

#: global options that take a value (to find the command name without parsing)
_VALUE_OPTIONS = {"--object-lock-days", "--object-lock-mode"}
_LOCK_MODES = ("compliance", "governance")
_HELP = "Full, differential and incremental backups of trading state, with a verifiable ledger."


def global_options(
    object_lock_days: Annotated[int | None, typer.Option(
        "--object-lock-days", envvar="DELTAVAULT_OBJECT_LOCK_DAYS", show_default=False,
        help="S3: write history objects under Object Lock for N days (any command that "
             "writes; see docs/backends.md).")] = None,
    object_lock_mode: Annotated[str | None, typer.Option(
        "--object-lock-mode", envvar="DELTAVAULT_OBJECT_LOCK_MODE", show_default=False,
        help="S3 Object Lock mode with --object-lock-days: compliance (default) or "
             "governance.")] = None,
) -> None:
    """Full, differential and incremental backups of trading state, with a verifiable ledger."""
    # The store opener (store/url.py) reads these variables for every s3:// location the
    # command opens (copy's destination included): the options and the environment
    # variables are one setting with one validation.
    if object_lock_mode is not None:
        if object_lock_mode not in _LOCK_MODES:
            raise UsageError(f"--object-lock-mode must be compliance or governance, "
                             f"not {object_lock_mode!r}")
        os.environ["DELTAVAULT_OBJECT_LOCK_MODE"] = object_lock_mode
    if object_lock_days is not None:
        if object_lock_days < 1:
            raise UsageError(f"--object-lock-days must be at least 1, not {object_lock_days}")
        os.environ["DELTAVAULT_OBJECT_LOCK_DAYS"] = str(object_lock_days)


def version_command(json_out: JsonOpt = False) -> None:
    """Print the version."""
    from deltavault.cli.version import print_version

    print_version(as_json=json_out)


def command_name(args: list[str]) -> str | None:
    """The command a command line runs, or None when it asks for the overall help."""
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("-h", "--help", "--"):
            return None
        if arg in _VALUE_OPTIONS:
            i += 2
            continue
        if arg.startswith("-"):
            i += 1
            continue
        return arg
    return None


def load(name: str) -> Any:
    """The command function or Typer group a table entry names (importing its module)."""
    module, attribute = COMMANDS[name].split(":")
    return getattr(importlib.import_module(f"deltavault.cli.{module}"), attribute)


def build_app(command: str | None = None) -> typer.Typer:
    """The app with ``command`` only, or with every command (for help and unknown names)."""
    app = typer.Typer(
        name="deltavault",
        help=_HELP,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        # plain help text: Rich's help renderer (markdown, syntax, tables) costs more to
        # import than everything else `deltavault --help` does (issue 14)
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    )
    app.callback()(global_options)
    for name in [command] if command in COMMANDS else COMMANDS:
        target = load(name)
        if isinstance(target, typer.Typer):
            app.add_typer(target, name=name)
        else:
            app.command(name)(target)
    return app
