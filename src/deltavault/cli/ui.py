"""``deltavault ui``: the web console for a repository."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deltavault.cli.common import PasswordFileOpt, RepoOpt, open_repo
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
) -> None:
    """Serve the web console: timeline, snapshots, diff, ledger, repository."""
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
    serve_console(open_repo(repo, password_file), host, port, token=token,
                  allow_actions=allow_actions, witnesses=witnesses)
