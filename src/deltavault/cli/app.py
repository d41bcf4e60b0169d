"""The Typer app: the command table, and the options that apply to every command.

Start-up (issue 14: ``deltavault --help`` ≤ 0.3 s; ``snapshots`` and ``ledger
verify`` import neither numpy nor the codecs nor the server): command modules
import only Typer and :mod:`deltavault.cli.common` at module level and the
engine inside their functions, and :class:`LazyGroup` imports and builds only
the command being run, so the other forty cost nothing; ``--help`` reads the
command table.
"""

from __future__ import annotations

import difflib
import importlib
import os
import textwrap
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from deltavault.cli.common import JsonOpt
from deltavault.errors import UsageError

#: command name → ("module:attribute" under deltavault.cli, its one-line summary), in the
#: order ``--help`` lists them; a Typer attribute is a group of subcommands, anything else
#: one command. The summary is what ``--help`` shows without importing the module
#: (tests/cli/test_startup.py checks it against the command's own help).
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("repo:init", "Create a new repository."),
    "backup": ("backup:backup", "Take a snapshot."),
    "snapshots": ("snapshots:snapshots", "List snapshots, oldest first."),
    "ls": ("snapshots:ls", "List the files of a snapshot."),
    "diff": ("snapshots:diff", "Files added, removed and changed between two snapshots."),
    "restore": ("restore:restore", "Restore a snapshot below a directory (or into a database), "
                "verifying every blob."),
    "dump": ("restore:dump", "Write one file of a snapshot to standard output (or --output "
             "FILE)."),
    "rollback": ("restore:rollback", "Put a directory back to a snapshot atomically (build "
                 "beside it, then swap)."),
    "tag": ("snapshots:tag", "Change a snapshot's tags (writes a new snapshot object that "
            "supersedes it)."),
    "check": ("repo:check", "Verify the repository; exit 13 if anything is damaged."),
    "stats": ("repo:stats", "Repository totals: snapshots, packs, blobs, stored bytes."),
    "forget": ("prune:forget", "Forget snapshots by id or by a retention policy (data is freed "
               "by prune)."),
    "prune": ("prune:prune", "Delete data no snapshot needs and repack mostly-unused packs "
              "(keeping every delta base)."),
    # journal.py adds key/events/prove/mirror to ledger_app
    "ledger": ("journal:ledger_app", "Verify and witness the tamper-evident ledger."),
    "journal": ("journal:journal_app", "Append and read trade/order/config-change records."),
    "audit": ("ledger:audit_command", "Keyless audit: the ledger, every committed snapshot and "
              "every pack it needs."),
    "reconstruct": ("sources:reconstruct_command", "Restore the newest snapshot at or before "
                    "--at, then replay proven journal records."),
    "reconcile": ("sources:reconcile_command", "Compare positions and collateral of two "
                  "sources; exit 0 only when there is no break."),
    "copy": ("replicate:copy", "Copy a repository (or some snapshots) into a byte-identical "
             "replica."),
    "repair": ("replicate:repair_app", "Repair a damaged repository from a replica "
               "(--from-repo) or rebuild the index from the pack headers (repair index)."),
    "status": ("status:status", "Newest snapshot per host and paths, its age and type, ledger "
               "size, last check."),
    "maintenance": ("repo:maintenance", "Extend S3 Object Lock retention of every object a kept "
                    "snapshot needs."),
    "mount": ("mount:mount", "Mount the repository read-only: snapshots/, ids/, tags/, hosts/, "
              "latest."),
    "ui": ("ui:ui_command", "Serve the web console: timeline, snapshots, diff, ledger, "
           "repository."),
    "serve": ("serve:serve_command", "Serve a repository over HTTP(S) for the rest: backend "
              "(--json: a document as it starts)."),
    "key": ("repo:key_app", "Manage the passwords that open the repository."),
    "unlock": ("repo:unlock", "Remove stale locks left by crashed processes."),
    "demo-data": ("demo:demo_data", "Make sample trading state: order books, positions DB, "
                  "model, trade log, config."),
    "version": ("app:version_command", "Print the version."),
}

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


def load(name: str) -> Any:
    """The command function or Typer group a table entry names (importing its module)."""
    module, attribute = COMMANDS[name][0].split(":")
    return getattr(importlib.import_module(f"deltavault.cli.{module}"), attribute)


def click_command(name: str) -> Any:
    """The click command (or group) of one table entry, built on first use."""
    target = load(name)
    if isinstance(target, typer.Typer):
        return typer.main.get_group(target)
    single = typer.Typer(add_completion=False, pretty_exceptions_enable=False,
                         rich_markup_mode=None)
    single.command(name)(target)
    return typer.main.get_command(single)


class LazyGroup(TyperGroup):
    """The top-level group: lists the table, builds a command only when it is run.

    Typer builds every command's parameters up front (and its module must be
    imported for that); here ``deltavault backup`` imports and builds only
    ``backup``, and ``--help`` only reads the table.
    """

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in COMMANDS:
            return None
        if cmd_name not in self.commands:
            self.commands[cmd_name] = click_command(cmd_name)
        return self.commands[cmd_name]

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        try:
            return super().resolve_command(ctx, args)
        except Exception as exc:  # click's UsageError: suggest from the table, not loaded ones
            close = difflib.get_close_matches(args[0], COMMANDS) if args else []
            message = getattr(exc, "message", None)
            if close and isinstance(message, str) and "Did you mean" not in message:
                exc.message = (  # type: ignore[attr-defined]
                    f"{message.rstrip('.')}. Did you mean {', '.join(map(repr, close))}?")
            raise

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        limit = formatter.width - 6 - max(map(len, COMMANDS))
        rows = [(name, textwrap.shorten(summary, max(limit, 20), placeholder="..."))
                for name, (_target, summary) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def build_app() -> typer.Typer:
    """The app: global options, and every command of the table, built lazily."""
    app = typer.Typer(
        name="deltavault",
        cls=LazyGroup,
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
    return app
