"""Keyless ledger commands: verify, verify-proof, consistency, cosign, witness-key, audit.

Thin: parse options, call :mod:`deltavault.ledger`, render with Rich or as
JSON. A log, proof or audit that does not verify raises
:class:`~deltavault.errors.LedgerError` (exit 13) with the result as its
``details``; :mod:`deltavault.cli.outcome` turns it into one stderr line and,
with ``--json``, the result document with ``"ok": false``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from deltavault.cli.common import emit_json, out_console, read_password, require_repo
from deltavault.cli.witness import witness_key_app
from deltavault.errors import (
    DeltavaultError,
    IntegrityError,
    LedgerError,
    ObjectNotFound,
    RepositoryNotFound,
    UserError,
)

if TYPE_CHECKING:
    from deltavault.ledger.log import Ledger
    from deltavault.store.base import Store

ledger_app = typer.Typer(name="ledger", help="Verify and witness the tamper-evident ledger.",
                         no_args_is_help=True, rich_markup_mode=None)  # fmt: skip
ledger_app.add_typer(witness_key_app, name="witness-key")

RepoOpt = typer.Option("", "--repo", "-r", envvar="DELTAVAULT_REPO",
                       help="Repository location (path or URL).")
KeyOpt = typer.Option(..., "--key", help="The ledger's verifier key (name+id+key).")
OptionalKeyOpt = typer.Option(
    None, "--key", help="The ledger's verifier key; default: the one in the repository's config "
    "(an auditor should pass the key obtained out of band).")
JsonOpt = typer.Option(False, "--json", help="Print a JSON object instead of text.")


def open_store(repo: str) -> Store:
    """The store of ``--repo`` (no password: ledger commands are keyless)."""
    from deltavault import api

    return api.open_store(require_repo(repo))


def _origin(store: Store) -> str:
    from deltavault import api

    origin = api.ledger_origin(store)
    if not origin:
        config_vkey(store)  # no config either: not a repository (exit 10)
        raise LedgerError("the repository has no ledger checkpoint")
    return origin


def _emit(as_json: bool, data: dict[str, Any], lines: list[str], ok: bool, what: str,
          error: type[DeltavaultError] = LedgerError) -> None:
    """The result as text or JSON; a failed one raises ``error`` carrying it."""
    if not as_json:
        for line in lines:
            out_console.print(line, highlight=False)
    if not ok:
        problems = data.get("problems") or []
        first = problems[0] if problems else "see above"
        raise error(f"{what} failed: {first}", details=data)
    if as_json:
        emit_json(data)


@ledger_app.command("verify")
def verify_command(
    repo: str = RepoOpt,
    key: str | None = OptionalKeyOpt,
    require_witness: list[str] = typer.Option(
        [], "--require-witness", help="Witness verifier key (type 0x04) that must have cosigned."
    ),
    old_checkpoint: Path | None = typer.Option(
        None, "--old-checkpoint", help="A saved checkpoint the log must extend."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Recompute the whole log from its bundles and tiles and check the signatures."""
    from deltavault.ledger.note import parse_vkey
    from deltavault.ledger.verify import verify_log

    _store, ledger = _open_log(repo, key)
    witnesses = [parse_vkey(w) for w in require_witness]
    old = old_checkpoint.read_bytes() if old_checkpoint else None
    names = [w.name for w in witnesses]
    r = verify_log(ledger, witnesses=witnesses, required_witnesses=names, old_checkpoint=old)
    lines = [
        f"log [bold]{r.origin}[/]: size {r.size}, root {r.root}",
        f"signature: {'ok' if r.signature else 'FAILED'}; "
        f"{r.entries_checked} entries, {r.tiles_checked} tiles, "
        f"{r.blobs_checked} blobs checked",
        *(f"cosigned by {n} at {t}" for n, t in r.witnesses.items()),
        *([f"consistent with old checkpoint of size {r.consistent_with}"]
          if r.consistent_with is not None else []),
        *(f"[red]problem:[/] {p}" for p in r.problems),
    ]  # fmt: skip
    if r.ok:
        lines.append("[green]ledger verified[/]")
    _emit(as_json, r.to_dict(), lines, r.ok, "ledger verification")


@ledger_app.command("verify-proof")
def verify_proof_command(
    file: Path = typer.Argument(..., help="A .tlog-proof file."),
    key: str = KeyOpt,
    witness: list[str] = typer.Option([], "--witness", help="Witness key that must have cosigned."),
    as_json: bool = JsonOpt,
) -> None:
    """Verify an inclusion proof file offline (and the record it discloses)."""
    from deltavault.ledger.note import parse_vkey
    from deltavault.ledger.proof import verify_proof

    witnesses = [parse_vkey(w) for w in witness]
    r = verify_proof(file.read_bytes(), key, witnesses=witnesses,
                     required_witnesses=[w.name for w in witnesses])  # fmt: skip
    lines = [*(f"ok: {c}" for c in r.checks), f"log {r.origin}, size {r.size}, root {r.root}"]
    if r.record is not None:
        lines.append(f"record: {json.dumps(r.record, sort_keys=True)}")
    lines.append("[green]proof verified[/]")
    _emit(as_json, r.to_dict(), lines, True, "proof verification")


@ledger_app.command("consistency")
def consistency_command(
    old_checkpoint: Path = typer.Argument(..., help="A checkpoint saved earlier."),
    repo: str = RepoOpt,
    key: str | None = OptionalKeyOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Prove the current log extends an old checkpoint (no history rewritten)."""
    from deltavault.ledger.verify import VerifyResult, check_old_checkpoint

    _store, ledger = _open_log(repo, key)
    ledger.refresh()
    r = VerifyResult(origin=ledger.origin, size=ledger.size, root=ledger.root.hex(),
                     signature=True)  # fmt: skip
    check_old_checkpoint(ledger, old_checkpoint.read_bytes(), r)
    lines = [f"[red]problem:[/] {p}" for p in r.problems] or [
        f"[green]consistent[/]: size {r.consistent_with} → {r.size}, root {r.root}"
    ]
    _emit(as_json, r.to_dict(), lines, r.ok, "consistency check")


@ledger_app.command("cosign")
def cosign_command(
    repo: str = RepoOpt,
    witness_key: Path = typer.Option(
        ..., "--witness-key", help="File with the witness signer key."
    ),
    state: Path = typer.Option(..., "--state", help="The witness's state directory."),
    key: str | None = typer.Option(None, "--key", help="Log verifier key (default: from config)."),
    as_json: bool = JsonOpt,
) -> None:
    """As a witness: check the log grew consistently, then cosign its checkpoint."""
    from deltavault.ledger.note import parse_skey, parse_vkey
    from deltavault.ledger.witness import cosign

    store = open_store(repo)
    vkey = key or config_vkey(store)
    signer = parse_skey(witness_key.read_text())
    r = cosign(store, parse_vkey(vkey), signer, state)
    since = "first sight" if r.old_size is None else f"consistent since size {r.old_size}"
    _emit(as_json, r.to_dict(),
          [f"[green]cosigned[/] {r.origin} at size {r.size} as {signer.name} ({since})"],
          True, "cosign")  # fmt: skip


def _open_log(repo: str, key: str | None) -> tuple[Store, Ledger]:
    """The store and its ledger, read-only, with the given or the configured key."""
    from deltavault.ledger.log import Ledger
    from deltavault.ledger.note import parse_vkey

    store = open_store(repo)
    return store, Ledger(store, _origin(store), None, parse_vkey(key or config_vkey(store)))


def config_vkey(store: Store) -> str:
    """The verifier key the repository's plaintext config names (exit 10 without config)."""
    from deltavault import api

    try:
        vkey = api.ledger_verifier_key(store)
    except ObjectNotFound as exc:
        raise RepositoryNotFound(f"no repository at {store.location()}") from exc
    if not vkey:
        raise UserError("no --key given and config names no ledger verifier key")
    return vkey


AuditPasswordOpt = typer.Option(
    None, "--password-file", "-p", envvar="DELTAVAULT_PASSWORD_FILE",
    help="With the repository password (or $DELTAVAULT_PASSWORD) the audit holds a shared "
    "lock, so a prune cannot delete packs under it; without it no lock is taken.")


def audit_command(
    repo: str = RepoOpt,
    key: str | None = OptionalKeyOpt,
    as_json: bool = JsonOpt,
    password_file: Path | None = AuditPasswordOpt,
) -> None:
    """Keyless audit: the ledger, every committed snapshot and every pack it needs."""
    from deltavault import api

    store = open_store(repo)
    password = (read_password(password_file)
                if password_file is not None or os.environ.get("DELTAVAULT_PASSWORD")
                else None)  # fmt: skip
    r = api.audit(store, key or config_vkey(store), password=password)
    lines = [
        f"ledger {r.origin}: size {r.ledger.size}, "
        f"{'verified' if r.ledger.ok else '[red]NOT verified[/]'}",
        f"{r.events} events, {r.snapshots_checked} snapshots, {r.packs_checked} packs checked",
        *(f"[red]problem:[/] {p}" for p in [*r.ledger.problems, *r.problems]),
        *(f"[yellow]time flagged:[/] {f}" for f in r.time_flags),
    ]
    if r.ok:
        lines.append("[green]audit passed[/]")
    data = r.to_dict()
    data["problems"] = [*r.ledger.problems, *r.problems]
    # a log that does not verify is a ledger failure; a damaged or missing pack is not
    _emit(as_json, data, lines, r.ok, "audit",
          LedgerError if not r.ledger.ok else IntegrityError)
