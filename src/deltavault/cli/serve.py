"""``deltavault serve``: the REST server for a repository directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deltavault.cli.common import JsonOpt, emit_json, err_console


def serve_command(
    path: Annotated[Path, typer.Option("--path", help="repository directory to serve")],
    listen: Annotated[str, typer.Option("--listen", help="HOST:PORT")] = "127.0.0.1:8000",
    append_only: Annotated[bool, typer.Option(
        "--append-only", help="refuse deletes and overwrites (except ledger/checkpoint CAS "
                              "and locks/)")] = False,
    tokens: Annotated[Path | None, typer.Option(
        "--tokens", help="file of '<read|append|admin> <token> [label]' lines")] = None,
    tls_cert: Annotated[Path | None, typer.Option("--tls-cert", help="PEM certificate")] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="PEM private key")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Serve a repository over HTTP(S) for the rest: backend (--json: a document as it starts)."""
    from deltavault.server import serve
    from deltavault.server.run import parse_listen

    host, port = parse_listen(listen)
    if tokens is None:
        err_console.print("warning: no --tokens file, every client has full access",
                          markup=False)
    if json_out:
        scheme = "https" if tls_cert else "http"
        host = f"[{host}]" if ":" in host else host
        emit_json({"path": str(path), "listen": listen, "append_only": append_only,
                   "tokens": tokens is not None,
                   "url": f"rest:{scheme}://{host}:{port}/"})
    serve(path, listen, append_only=append_only, tokens_file=tokens,
          tls_cert=str(tls_cert) if tls_cert else None,
          tls_key=str(tls_key) if tls_key else None)
