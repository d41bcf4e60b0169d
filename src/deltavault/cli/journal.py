"""Ledger commands beyond verification: key, events, prove, mirror; journal append/show.

The trading system appends its trade, order and config-change records with
``journal append`` (JSON lines on stdin, one checkpoint per batch); a single
record can then be disclosed to a counterparty with ``ledger prove``, which
writes a self-contained C2SP tlog-proof file that ``ledger verify-proof``
checks offline.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from deltavault.cli.common import (
    JsonOpt,
    PasswordFileOpt,
    RepoOpt,
    emit_json,
    open_repo,
    out_console,
    require_repo,
)
from deltavault.cli.ledger import ledger_app
from deltavault.errors import UserError

journal_app = typer.Typer(help="Append and read trade/order/config-change records.",
                          no_args_is_help=True, rich_markup_mode=None)
_BATCH = 1000


@ledger_app.command("key")
def key_command(repo: RepoOpt = "", json_out: JsonOpt = False) -> None:
    """Print the ledger's verifier key (give it to auditors and counterparties)."""
    from deltavault.cli.ledger import config_vkey, open_store

    vkey = config_vkey(open_store(repo))
    if json_out:
        emit_json({"verifier_key": vkey, "origin": vkey.split("+", 1)[0]})
    else:
        typer.echo(vkey)


@ledger_app.command("events")
def events_command(repo: RepoOpt = "", password_file: PasswordFileOpt = None,
                   json_out: JsonOpt = False) -> None:
    """List every event in the log (snapshots, forgets, restores, journal leaves, ...)."""
    from deltavault.ledger.state import events

    r = open_repo(repo, password_file)
    rows = [(i, e.type, e.fields) for i, e in events(r.ledger)]
    if json_out:
        emit_json([{"index": i, "type": t, **f} for i, t, f in rows])
        return
    from rich.table import Table

    table = Table("#", "type", "time", "details")
    for i, t, f in rows:
        details = {k: v for k, v in f.items() if k not in ("time", "summary")}
        table.add_row(str(i), t, str(f.get("time", ""))[:19],
                      json.dumps(details, sort_keys=True)[:100])
    out_console.print(table)


@ledger_app.command("prove")
def prove_command(
    index: Annotated[int, typer.Option("--index", help="Leaf index of a journal record.")],
    out: Annotated[Path | None, typer.Option("--out", "-o",
                                             help="Write the proof file here (else stdout).")]
    = None,
    repo: RepoOpt = "", password_file: PasswordFileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Write a tlog-proof file disclosing one journal record and nothing else."""
    from deltavault.ledger.journal import Journal

    r = open_repo(repo, password_file)
    text = Journal(r.ledger, r.crypto).prove(index)
    if out is not None:
        out.write_text(text)
    if json_out:  # the proof is text: without --out it travels inside the document
        emit_json({"index": index, "path": str(out)} if out is not None
                  else {"index": index, "proof": text})
    elif out is None:
        sys.stdout.write(text)
    else:
        out_console.print(f"wrote proof of entry {index} to {out}")


def mirror_command(
    target: Annotated[str, typer.Argument(help="Directory or store URL to mirror into.")],
    repo: RepoOpt = "",
    json_out: JsonOpt = False,
) -> None:
    """Mirror what an auditor needs (config, ledger/, packlists/) to another place.

    Incremental: write-once objects already there are skipped; the checkpoint
    is replaced last, after every tile and bundle it commits to.
    """
    from deltavault import api

    copied = api.mirror_ledger(require_repo(repo), target)
    dst = api.open_store(target)
    if json_out:
        emit_json({"copied": copied, "target": dst.location()})
    else:
        out_console.print(f"mirrored {copied} new objects to {dst.location()}")


ledger_app.command("mirror")(mirror_command)
ledger_app.command("export")(mirror_command)


@journal_app.command("append")
def journal_append(repo: RepoOpt = "", password_file: PasswordFileOpt = None,
                   json_out: JsonOpt = False) -> None:
    """Append JSON records (one object per line on stdin) to the journal."""
    from deltavault.ledger.journal import Journal

    r = open_repo(repo, password_file)
    journal = Journal(r.ledger, r.crypto)
    indexes: list[int] = []
    batch: list[dict[str, Any]] = []
    for n, line in enumerate(sys.stdin, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise UserError(f"stdin line {n} is not JSON: {exc}") from exc
        if not isinstance(record, dict):
            raise UserError(f"stdin line {n} is not a JSON object")
        batch.append(record)
        if len(batch) >= _BATCH:
            indexes += journal.append(batch)
            batch = []
    if batch:
        indexes += journal.append(batch)
    if json_out:
        emit_json({"appended": len(indexes), "indexes": indexes, "size": r.ledger.size})
    else:
        span = f"{indexes[0]}..{indexes[-1]}" if indexes else "none"
        out_console.print(f"appended {len(indexes)} record(s) (entries {span})")


@journal_app.command("show")
def journal_show(index: Annotated[int, typer.Argument(help="Leaf index.")],
                 repo: RepoOpt = "", password_file: PasswordFileOpt = None,
                 json_out: JsonOpt = False) -> None:
    """Print one journal record (decrypted, commitment checked) as JSON.

    With ``--json`` the record comes wrapped with its index:
    ``{"index": N, "record": {...}}``.
    """
    from deltavault.ledger.journal import Journal

    r = open_repo(repo, password_file)
    record, _salt = Journal(r.ledger, r.crypto).read(index)
    emit_json({"index": index, "record": record} if json_out else record)
