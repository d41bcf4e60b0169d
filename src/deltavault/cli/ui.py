"""``deltavault ui``: the web console for a repository."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Annotated

import typer

from deltavault.cli.common import JsonOpt, PasswordFileOpt, RepoOpt, emit_json, open_repo
from deltavault.errors import UserError


def ui_command(
    repo: RepoOpt = "",
    password_file: PasswordFileOpt = None,
    listen: Annotated[str, typer.Option(
        "--listen", help="HOST:PORT to serve on (a non-loopback host needs --token-file).")]
    = "127.0.0.1:8470",
    token_file: Annotated[Path | None, typer.Option(
        "--token-file", help="File whose first line is the access token (16+ characters).")]
    = None,
    allow_actions: Annotated[bool, typer.Option(
        "--allow-actions", help="Allow tagging snapshots and running check from the console.")]
    = False,
    require_witness: Annotated[list[str] | None, typer.Option(
        "--require-witness", help="Witness verifier key whose cosignature Verify requires.")]
    = None,
    json_out: JsonOpt = False,
) -> None:
    """Serve the web console: timeline, snapshots, diff, ledger, repository.

    With ``--json``, ``{"url", "read_only", "token"}`` once the port is bound.
    """
    try:
        from deltavault.server.run import parse_listen
        from deltavault.ui.auth import check_listen, read_token
        from deltavault.ui.server import serve_console
    except ImportError as exc:  # fastapi, uvicorn and jinja2 are the 'server' extra
        raise UserError(f"the console needs the server extra ({exc.name} is missing)",
                        hint="pip install 'deltavault[server]'") from exc
    from deltavault.ledger.note import parse_vkey

    host, port = parse_listen(listen)
    token = read_token(token_file) if token_file is not None else None
    check_listen(host, token)  # before asking for a password
    witnesses = [parse_vkey(w) for w in require_witness or []]

    def announce(line: str) -> None:
        sys.stderr.write(line + "\n")  # the line a person reads, with or without --json
        sys.stderr.flush()
        found = re.search(r"(https?://\S+/)", line)
        if json_out and found:
            emit_json({"url": found.group(1), "read_only": not allow_actions,
                       "token": token is not None})

    serve_console(open_repo(repo, password_file), host, port, token=token,
                  allow_actions=allow_actions, witnesses=witnesses, announce=announce)
