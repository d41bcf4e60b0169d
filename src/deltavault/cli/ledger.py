"""Keyless ledger commands: verify, verify-proof, consistency, cosign, audit.

Thin: parse options, call :mod:`deltavault.ledger`, render with Rich or as
JSON. Every failure is one line on stderr and the exit code of its
:class:`~deltavault.errors.DeltavaultError` class; a log that does not verify
exits with :class:`~deltavault.errors.LedgerError`'s code (13).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.console import Console

from deltavault import api
from deltavault.cli.common import read_password, require_repo
from deltavault.errors import DeltavaultError, LedgerError, UserError
from deltavault.ledger.log import Ledger
from deltavault.ledger.note import parse_skey, parse_vkey
from deltavault.ledger.proof import verify_proof
from deltavault.ledger.verify import VerifyResult, check_old_checkpoint, verify_log
from deltavault.ledger.witness import cosign

if TYPE_CHECKING:
    from deltavault.store.base import Store

ledger_app = typer.Typer(name="ledger", help="Verify and witness the tamper-evident ledger.",
                         no_args_is_help=True)  # fmt: skip
_out = Console()
_err = Console(stderr=True)

RepoOpt = typer.Option("", "--repo", "-r", envvar="DELTAVAULT_REPO",
                       help="Repository location (path or URL).")
KeyOpt = typer.Option(..., "--key", help="The ledger's verifier key (name+id+key).")
OptionalKeyOpt = typer.Option(
    None, "--key", help="The ledger's verifier key; default: the one in the repository's config "
    "(an auditor should pass the key obtained out of band).")
JsonOpt = typer.Option(False, "--json", help="Print a JSON object instead of text.")


def _fail(message: str, code: int) -> NoReturn:
    _err.print(f"deltavault: error: {message}", highlight=False, soft_wrap=True, markup=False)
    raise typer.Exit(code)


def _run(action: Callable[[], None]) -> None:
    try:
        action()
    except DeltavaultError as exc:
        _fail(exc.one_line(), exc.exit_code)
    except OSError as exc:
        _fail(str(exc), 1)


def _open_store(repo: str) -> Store:
    return api.open_store(require_repo(repo))


def _origin(store: Store) -> str:
    origin = api.ledger_origin(store)
    if not origin:
        raise LedgerError("the repository has no ledger checkpoint")
    return origin


def _emit(as_json: bool, data: dict[str, Any], lines: list[str], ok: bool, what: str) -> None:
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
    else:
        for line in lines:
            _out.print(line, highlight=False)
    if not ok:
        problems = data.get("problems") or []
        first = problems[0] if problems else "see above"
        _fail(f"{what} failed: {first}", LedgerError.exit_code)


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

    def action() -> None:
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

    _run(action)


@ledger_app.command("verify-proof")
def verify_proof_command(
    file: Path = typer.Argument(..., help="A .tlog-proof file."),
    key: str = KeyOpt,
    witness: list[str] = typer.Option([], "--witness", help="Witness key that must have cosigned."),
    as_json: bool = JsonOpt,
) -> None:
    """Verify an inclusion proof file offline (and the record it discloses)."""

    def action() -> None:
        witnesses = [parse_vkey(w) for w in witness]
        r = verify_proof(file.read_bytes(), key, witnesses=witnesses,
                         required_witnesses=[w.name for w in witnesses])  # fmt: skip
        lines = [*(f"ok: {c}" for c in r.checks), f"log {r.origin}, size {r.size}, root {r.root}"]
        if r.record is not None:
            lines.append(f"record: {json.dumps(r.record, sort_keys=True)}")
        lines.append("[green]proof verified[/]")
        _emit(as_json, r.to_dict(), lines, True, "proof verification")

    _run(action)


@ledger_app.command("consistency")
def consistency_command(
    old_checkpoint: Path = typer.Argument(..., help="A checkpoint saved earlier."),
    repo: str = RepoOpt,
    key: str | None = OptionalKeyOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Prove the current log extends an old checkpoint (no history rewritten)."""

    def action() -> None:
        _store, ledger = _open_log(repo, key)
        ledger.refresh()

        r = VerifyResult(origin=ledger.origin, size=ledger.size, root=ledger.root.hex(),
                         signature=True)  # fmt: skip
        check_old_checkpoint(ledger, old_checkpoint.read_bytes(), r)
        lines = [f"[red]problem:[/] {p}" for p in r.problems] or [
            f"[green]consistent[/]: size {r.consistent_with} → {r.size}, root {r.root}"
        ]
        _emit(as_json, r.to_dict(), lines, r.ok, "consistency check")

    _run(action)


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

    def action() -> None:
        store = _open_store(repo)
        vkey = key or _config_vkey(store)
        signer = parse_skey(witness_key.read_text())
        r = cosign(store, parse_vkey(vkey), signer, state)
        since = "first sight" if r.old_size is None else f"consistent since size {r.old_size}"
        _emit(as_json, r.to_dict(),
              [f"[green]cosigned[/] {r.origin} at size {r.size} as {signer.name} ({since})"],
              True, "cosign")  # fmt: skip

    _run(action)


def _open_log(repo: str, key: str | None) -> tuple[Store, Ledger]:
    """The store and its ledger, read-only, with the given or the configured key."""
    store = _open_store(repo)
    return store, Ledger(store, _origin(store), None, parse_vkey(key or _config_vkey(store)))


def _config_vkey(store: Store) -> str:
    try:
        return api.ledger_verifier_key(store)
    except DeltavaultError as exc:
        raise UserError("no --key given and config names no ledger verifier key") from exc


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

    def action() -> None:
        store = _open_store(repo)
        password = (read_password(password_file)
                    if password_file is not None or os.environ.get("DELTAVAULT_PASSWORD")
                    else None)
        r = api.audit(store, key or _config_vkey(store), password=password)
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
        _emit(as_json, data, lines, r.ok, "audit")

    _run(action)


def main() -> None:  # pragma: no cover - `python -m deltavault.cli.ledger`
    """Run the sub-app standalone (the lead mounts it in the main CLI)."""
    app = typer.Typer(no_args_is_help=True)
    app.add_typer(ledger_app)
    app.command("audit")(audit_command)
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
