"""reconcile finds every planted break, and none in clean data."""

from __future__ import annotations

import csv
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from deltavault import api, sampledata
from deltavault.sources.dsn import redact
from deltavault.trading.books import Book
from deltavault.trading.reconcile import Tolerances, compare
from tests.sources.helpers import cli, make_repo


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path, Path]:
    state = tmp_path / "state"
    sampledata.generate(state, scale=0.003, seed=21)
    repo = tmp_path / "repo"
    api.backup(make_repo(repo), [state], snapshot_type="full")
    db = state / "db" / "positions.sqlite"
    broken = tmp_path / "broken.sqlite"
    shutil.copy(db, broken)
    return repo, db, broken


def plant(db: Path) -> dict[tuple[str, str, str], str]:
    """Missing row, qty mismatch, px drift, collateral drift, haircut drift; the expected breaks."""
    con = sqlite3.connect(db)
    pos = con.execute("SELECT account, instrument FROM positions ORDER BY 1, 2").fetchall()
    col = con.execute("SELECT account, asset FROM collateral ORDER BY 1, 2").fetchall()
    with con:
        con.execute("DELETE FROM positions WHERE account = ? AND instrument = ?", pos[0])
        con.execute("UPDATE positions SET qty = qty + 1 WHERE account = ? AND instrument = ?",
                    pos[1])
        con.execute("UPDATE positions SET avg_px = avg_px * 1.01 WHERE account = ? "
                    "AND instrument = ?", pos[2])
        con.execute("UPDATE collateral SET amount = amount + 500 WHERE account = ? AND asset = ?",
                    col[0])
        con.execute("UPDATE collateral SET haircut = haircut + 0.1 WHERE account = ? "
                    "AND asset = ?", col[1])
        con.execute("INSERT INTO collateral VALUES ('ZZ-NEW', 'USD', 1.0, 0.0, 0)")
    con.close()
    return {("positions", *pos[0]): "missing_right", ("positions", *pos[1]): "qty",
            ("positions", *pos[2]): "avg_px", ("collateral", *col[0]): "amount",
            ("collateral", *col[1]): "haircut", ("collateral", "ZZ-NEW", "USD"): "missing_left"}


def test_clean_sources_agree(setup: tuple[Path, Path, Path]) -> None:
    repo, db, _broken = setup
    res = cli(repo, "reconcile", "--left", "snapshot:latest", "--right", f"sqlite:{db}",
              "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["ok"] and doc["differences"] == 0 and doc["positions_compared"] > 10
    events = json.loads(cli(repo, "ledger", "events", "--json").stdout)
    rec = [e for e in events if e["type"] == "reconcile"]
    assert rec and rec[-1]["ok"] is True and rec[-1]["differences"] == 0


def test_planted_breaks_found(setup: tuple[Path, Path, Path], tmp_path: Path) -> None:
    repo, _db, broken = setup
    expected = plant(broken)
    out_csv = tmp_path / "breaks.csv"
    res = cli(repo, "reconcile", "--left", "snapshot:latest:state/db/positions.sqlite",
              "--right", f"sqlite:{broken}", "--csv", str(out_csv), "--json")
    assert res.exit_code == 1
    assert "6 break(s)" in res.stderr
    doc = json.loads(res.stdout)
    found = {(b["table"], b["account"], b.get("instrument", b.get("asset"))): b["break"]
             for b in doc["breaks"]}
    assert found == expected
    with out_csv.open() as f:
        assert len(list(csv.DictReader(f))) == 6
    table = cli(repo, "reconcile", "--left", "snapshot:latest", "--right", f"sqlite:{broken}")
    assert table.exit_code == 1 and "avg_px" in table.stdout
    events = json.loads(cli(repo, "ledger", "events", "--json").stdout)
    assert [e["differences"] for e in events if e["type"] == "reconcile"][-1] == 6


def test_tolerances() -> None:
    left = Book({("A", "X"): (10.0, 100.0)}, {("A", "USD"): (1000.0, 0.0)})
    right = Book({("A", "X"): (10.0000001, 100.004)}, {("A", "USD"): (1000.2, 0.0)})
    assert len(compare(left, right, Tolerances()).breaks) == 3
    assert compare(left, right, Tolerances(qty=1e-6, px=0.01, amount=0.5)).ok
    nan = Book({("A", "X"): (float("nan"), 1.0)})
    assert compare(nan, nan, Tolerances()).ok


def test_redact() -> None:
    assert redact("postgres:postgresql://u:secret@h/db") == "postgres:postgresql://u:***@h/db"
    assert "secret" not in redact("postgres:host=h password=secret dbname=d")


def test_reconstruct_source(setup: tuple[Path, Path, Path]) -> None:
    repo, db, _broken = setup
    from deltavault.repo.snapshot import now_rfc3339

    res = cli(repo, "reconcile", "--left", f"reconstruct:{now_rfc3339()}", "--right",
              f"sqlite:{db}")
    assert res.exit_code == 0, res.output
