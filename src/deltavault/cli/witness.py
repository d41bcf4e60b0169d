"""``ledger witness-key new``: make the key a witness cosigns checkpoints with."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from deltavault.cli.common import JsonOpt, emit_json
from deltavault.errors import FormatError, UserError

witness_key_app = typer.Typer(help="Witness signing keys (for 'ledger cosign').",
                              no_args_is_help=True, rich_markup_mode=None)


@witness_key_app.command("new")
def witness_key_new(
    name: Annotated[str | None, typer.Option(
        "--name", help="Key name, e.g. witness.example.com (default: HOSTNAME/witness).",
        show_default=False)] = None,
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Where to write the secret signer key (created mode 0600, "
        "never overwritten).")] = Path("witness.key"),
    json_out: JsonOpt = False,
) -> None:
    """Create a witness signing key; print its verifier key (for --require-witness)."""
    import socket

    from deltavault.ledger.witness import new_witness_key

    key_name = name if name is not None else f"{socket.gethostname()}/witness"
    try:
        signer = new_witness_key(key_name)
    except FormatError as exc:
        raise UserError(f"--name {key_name!r}: a key name has no spaces or '+'") from exc
    _write_secret(out, signer.skey() + "\n")
    vkey = signer.verifier.vkey()
    if json_out:
        emit_json({"name": signer.name, "verifier_key": vkey, "signer_key_file": str(out)})
    else:
        typer.echo(vkey)
        typer.echo(f"wrote the secret signer key to {out} (keep it private); the line above "
                   "is the verifier key for --require-witness", err=True)


def _write_secret(path: Path, text: str) -> None:
    """Create ``path`` readable by its owner only; refuse to replace an existing key."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise UserError(f"{path} already exists; not overwriting a key",
                        hint="give another --out") from exc
    except OSError as exc:
        raise UserError(f"cannot create {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
