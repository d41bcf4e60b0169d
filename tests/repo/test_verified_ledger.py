"""Storage attacks on the ledger through the real entry point: exit 13, nothing deleted.

An attacker with write access to the storage and no password rewrites an
entry bundle (snapshot A's event becomes a forget of A), a hash tile or the
checkpoint, rolls the log back or replaces it with a fork. Every command that
acts on the log either gives the correct result (the client had already
verified that part) or stops with exit 13 naming the object; none deletes data.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from deltavault import api
from deltavault.ledger.events import Event
from deltavault.ledger.log import Ledger
from deltavault.ledger.tiles import (
    CHECKPOINT_KEY,
    bundle_key,
    encode_bundle,
    parse_bundle,
    tile_key,
)
from deltavault.repo.ledger_link import load_ledger_key
from deltavault.store.local import LocalStore
from tests.support.cli import PASSWORD, Cli


def data_files(repo: Path) -> set[str]:
    return {str(p.relative_to(repo)) for p in (repo / "data").rglob("*") if p.is_file()}


def rewrite(path: Path, data: bytes) -> None:
    path.chmod(0o644)
    path.write_bytes(data)


def size_of(repo: Path) -> int:
    return int((repo / CHECKPOINT_KEY).read_text().split("\n")[1])


@pytest.fixture
def two_snapshots(cli_repo: Cli, tmp_path: Path) -> tuple[Cli, str, str]:
    for name in ("a", "b"):
        src = tmp_path / f"src-{name}"
        src.mkdir()
        (src / "file").write_bytes(os.urandom(20_000) + name.encode())
        cli_repo("backup", src)
    snaps = cli_repo.json("snapshots")  # this client verifies the log and caches its state
    return cli_repo, snaps[0]["id"], snaps[1]["id"]


def cold(cli: Cli, tmp_path: Path) -> dict[str, str]:
    """The environment of a client that never saw this repository (no cached state)."""
    fresh = tmp_path / f"cold-cache-{len(list(tmp_path.glob('cold-cache-*')))}"
    return cli.env(DELTAVAULT_CACHE_DIR=str(fresh))


def test_rewritten_bundle_cannot_forget_a_snapshot(two_snapshots: tuple[Cli, str, str],
                                                   tmp_path: Path) -> None:
    cli, a, b = two_snapshots
    n = size_of(cli.repo)
    path = cli.repo / bundle_key(0, n)
    entries = parse_bundle(path.read_bytes())
    index = next(i for i, e in enumerate(entries) if a.encode() in e and b'"snapshot"' in e)
    entries[index] = Event.new("forget", snapshots=[a], reason="x").to_bytes()
    rewrite(path, encode_bundle(entries))
    before = data_files(cli.repo)
    for args in (["snapshots"], ["prune"], ["forget", "--keep-last", "1", "--prune"]):
        proc = cli(*args, expect=13, env=cold(cli, tmp_path))
        assert bundle_key(0, n).encode() in proc.stderr, proc.stderr
    assert data_files(cli.repo) == before
    # the client that verified this part of the log before is not fooled either ...
    assert {s["id"] for s in cli.json("snapshots")} == {a, b}
    # ... and never appends on top of the altered bundle (prune records an event)
    src = tmp_path / "src-c"
    src.mkdir()
    (src / "f").write_bytes(b"c")
    for args in (["prune"], ["backup", src]):
        proc = cli(*args, expect=13)
        # refused when the client reads past what it verified, or at the append
        assert bundle_key(0, n).encode() in proc.stderr, proc.stderr
        assert b"does not match" in proc.stderr, proc.stderr
    assert size_of(cli.repo) == n
    assert before <= data_files(cli.repo)


def test_altered_tile_or_checkpoint_is_refused(two_snapshots: tuple[Cli, str, str],
                                               tmp_path: Path) -> None:
    cli, _a, _b = two_snapshots
    n = size_of(cli.repo)
    tile = cli.repo / tile_key(0, 0, n)
    good = tile.read_bytes()
    rewrite(tile, bytes([good[0] ^ 1]) + good[1:])
    proc = cli("snapshots", expect=13, env=cold(cli, tmp_path))
    assert tile_key(0, 0, n).encode() in proc.stderr
    rewrite(tile, good)
    checkpoint = cli.repo / CHECKPOINT_KEY
    note = checkpoint.read_bytes()
    rewrite(checkpoint, note.replace(f"\n{n}\n".encode(), f"\n{n + 1}\n".encode()))
    for env in (None, cold(cli, tmp_path)):
        proc = cli("snapshots", expect=13, env=env)
        assert b"signature" in proc.stderr or b"checkpoint" in proc.stderr


def test_rolled_back_log_is_refused_and_nothing_deleted(cli_repo: Cli, tmp_path: Path) -> None:
    cli = cli_repo
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(os.urandom(10_000))
    cli("backup", src)
    old = (cli.repo / CHECKPOINT_KEY).read_bytes()
    (src / "f").write_bytes(os.urandom(10_000))
    cli("backup", src)
    assert len(cli.json("snapshots")) == 2
    rewrite(cli.repo / CHECKPOINT_KEY, old)  # the second snapshot "never happened"
    before = data_files(cli.repo)
    for args in (["snapshots"], ["prune"], ["forget", "--keep-last", "1"], ["backup", src]):
        proc = cli(*args, expect=13)
        assert b"went back" in proc.stderr and b"rolled back" in proc.stderr, proc.stderr
    assert data_files(cli.repo) == before
    assert (cli.repo / CHECKPOINT_KEY).read_bytes() == old


def test_forked_log_is_refused(cli_repo: Cli, tmp_path: Path) -> None:
    cli = cli_repo
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"one")
    cli("backup", src)
    shutil.copytree(cli.repo / "ledger", tmp_path / "ledger-then")
    (src / "f").write_bytes(b"two")
    cli("backup", src)
    cli("snapshots")
    # an insider with the password re-signs another history from that point on
    shutil.rmtree(cli.repo / "ledger")
    shutil.copytree(tmp_path / "ledger-then", cli.repo / "ledger")
    repo = api.open(cli.repo, PASSWORD.encode())
    store = LocalStore(cli.repo)
    forger = Ledger.open(store, repo.config.ledger_origin,
                         signer=load_ledger_key(store, repo.crypto))
    forger.append([Event.new("check", ok=True, errors=0).to_bytes() for _ in range(3)])
    before = data_files(cli.repo)
    proc = cli("prune", expect=13)
    assert b"not consistent with the checkpoint" in proc.stderr, proc.stderr
    assert data_files(cli.repo) == before


def test_damaged_cache_is_rebuilt_from_the_log(two_snapshots: tuple[Cli, str, str]) -> None:
    cli, a, b = two_snapshots
    [state] = Path(os.environ["DELTAVAULT_CACHE_DIR"]).glob(
        f"{api.open(cli.repo, PASSWORD.encode()).config.id}/ledger-state-*")
    good = state.read_bytes()
    state.write_bytes(good.replace(a.encode(), ("f" * 64).encode()))  # a forged live set
    proc = cli("snapshots", "--json")
    assert b"not usable" in proc.stderr
    assert {s["id"] for s in json.loads(proc.stdout)} == {a, b}
    assert state.read_bytes() != good.replace(a.encode(), ("f" * 64).encode())
    assert b"not usable" not in cli("snapshots").stderr
