"""``deltavault status`` through the real entry point: groups, checks, exit codes for cron."""

from __future__ import annotations

import time
from pathlib import Path

from deltavault import api
from tests.support.cli import KDF_ARGS, PASSWORD, Cli


def _trees(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "books", tmp_path / "positions"
    for d in (a, b):
        d.mkdir()
        (d / "x.bin").write_bytes(d.name.encode() * 1000)
    return a, b


def test_groups_per_host_and_paths_with_checks(cli: Cli, tmp_path: Path) -> None:
    cli("init", *KDF_ARGS)
    books, positions = _trees(tmp_path)
    first = cli.json("backup", books, "--type", "full", "--host", "alpha")
    cli.json("backup", books, "--host", "alpha")
    (books / "y.bin").write_bytes(b"new" * 500)
    newest = cli.json("backup", books, "--type", "diff", "--host", "alpha")
    cli.json("backup", positions, "--host", "beta")
    status = cli.json("status")
    assert status["ok"] is True and status["max_age_s"] is None
    groups = {(g["host"], tuple(g["paths"])): g for g in status["groups"]}
    assert set(groups) == {("alpha", (str(books),)), ("beta", (str(positions),))}
    alpha = groups[("alpha", (str(books),))]
    assert alpha["snapshots"] == 3
    assert alpha["last"]["id"] == newest["snapshot_id"]
    assert alpha["last"]["type"] == "diff"
    assert alpha["last"]["bytes_added"] == newest["bytes_added"]
    assert 0 <= alpha["age_s"] < 3600 and alpha["stale"] is False
    repo = api.open(cli.repo, PASSWORD.encode())
    assert status["ledger"] == {"size": repo.ledger.size, "root": repo.ledger.root.hex()}
    assert status["check"] == {"last": None, "last_ok": None, "last_ok_read_data": None}

    cli("check", "-q")
    cli("check", "--read-data", "-q")
    checks = cli.json("status")["check"]
    assert checks["last_ok"]["read_data"] is True
    assert checks["last_ok_read_data"] == checks["last_ok"] == checks["last"]
    cli("check", "-q")
    checks = cli.json("status")["check"]
    assert checks["last_ok"]["read_data"] is False
    assert checks["last_ok_read_data"]["index"] < checks["last_ok"]["index"]

    # re-tagging gives the snapshot a new id (a tag event); forgetting one drops it
    retagged = cli.json("tag", newest["snapshot_id"], "--add", "known-good")
    status = cli.json("status")
    alpha = {g["host"]: g for g in status["groups"]}["alpha"]
    new_id = retagged["new_id"]
    assert alpha["last"]["id"] == new_id and alpha["last"]["tags"] == ["known-good"]
    cli("forget", new_id, "-q")
    alpha = {g["host"]: g for g in cli.json("status")["groups"]}["alpha"]
    assert alpha["snapshots"] == 2 and alpha["last"]["id"] != first["snapshot_id"]
    text = cli("status").stdout.decode()
    assert "alpha" in text and "beta" in text and "last check passed" in text


def test_max_age_exit_codes(cli: Cli, tmp_path: Path) -> None:
    cli("init", *KDF_ARGS)
    r = cli("status", "--max-age", "26h", expect=4)  # no snapshot at all is late too
    assert b"no snapshot" in r.stderr
    cli("status")  # without a limit it only reports
    books, _ = _trees(tmp_path)
    cli("backup", books, "-q")
    cli("status", "--max-age", "26h")
    cli("status", "--max-age", "1w2d")
    time.sleep(1.5)
    late = cli("status", "--max-age", "1s", "--json", expect=4)
    assert b"older than 1s" in late.stderr and b"deltavault: error:" in late.stderr
    doc = __import__("json").loads(late.stdout)
    assert doc["ok"] is False and doc["groups"][0]["stale"] is True
    for bad in ("26", "h", "-1h", "0s", "26hours"):
        r = cli("status", "--max-age", bad, expect=2)
        assert b"--max-age" in r.stderr
