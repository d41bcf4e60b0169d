"""backup --sqlite / restore --sqlite-to, including a backup under a busy writer."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

from deltavault import sampledata
from deltavault.sources.sqlite import backup_sqlite, integrity_check, restore_sqlite
from tests.sources.helpers import cli, make_repo, table_rows


def test_cli_round_trip_and_incremental(tmp_path: Path) -> None:
    state = tmp_path / "state"
    sampledata.generate(state, scale=0.003, seed=3)
    db = state / "db" / "positions.sqlite"
    repo_path = tmp_path / "repo"
    make_repo(repo_path)
    first = cli(repo_path, "backup", "--sqlite", str(db), "--type", "full", "--json")
    assert first.exit_code == 0, first.output
    doc = json.loads(first.stdout)
    assert doc["source"] == f"sqlite:{db}" and doc["type"] == "full"
    expected = table_rows(db, "positions"), table_rows(db, "collateral")
    sampledata.mutate(state, day=1, seed=3)
    second = json.loads(cli(repo_path, "backup", "--sqlite", str(db), "--json").stdout)
    assert second["type"] == "incr" and second["parent"] == doc["snapshot_id"]
    assert second["bytes_added"] < db.stat().st_size / 2

    out = tmp_path / "restored.sqlite"
    res = cli(repo_path, "restore", doc["snapshot_id"], "--sqlite-to", str(out))
    assert res.exit_code == 0, res.output
    assert (table_rows(out, "positions"), table_rows(out, "collateral")) == expected
    again = cli(repo_path, "restore", "latest", "--sqlite-to", str(out))
    assert again.exit_code == 1 and "exists" in again.output
    assert cli(repo_path, "restore", "latest", "--sqlite-to", str(out), "--force").exit_code == 0
    assert table_rows(out, "positions") == table_rows(db, "positions")


def test_backup_while_writer_writes(tmp_path: Path) -> None:
    """Transfers keep the sum of balances constant; any restored state must too."""
    db = tmp_path / "live.sqlite"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE bal (id INTEGER PRIMARY KEY, amount INTEGER NOT NULL, pad TEXT)")
    con.executemany("INSERT INTO bal VALUES (?, 1000, ?)", [(i, "x" * 200) for i in range(20_000)])
    con.execute("CREATE TABLE moves (n INTEGER PRIMARY KEY, src INTEGER, dst INTEGER, q INTEGER)")
    con.commit()
    con.close()
    stop = threading.Event()
    done = [0]

    def writer() -> None:
        w = sqlite3.connect(db, timeout=60)
        n = 0
        while not stop.is_set():
            n += 1
            src, dst = (n * 7919) % 20_000, (n * 104_729) % 20_000
            with w:
                w.execute("UPDATE bal SET amount = amount - 3 WHERE id = ?", (src,))
                w.execute("UPDATE bal SET amount = amount + 3 WHERE id = ?", (dst,))
                w.execute("INSERT INTO moves VALUES (?, ?, ?, 3)", (n, src, dst))
            done[0] = n
        w.close()

    repo = make_repo(tmp_path / "repo")
    t = threading.Thread(target=writer)
    t.start()
    try:
        while done[0] < 50:
            stop.wait(0.01)
        snaps = [backup_sqlite(repo, db).snapshot for _ in range(3)]
    finally:
        stop.set()
        t.join()
    assert done[0] > 50
    for i, snap in enumerate(snaps):
        out = tmp_path / f"r{i}.sqlite"
        restore_sqlite(repo, snap, out)
        integrity_check(out)
        c = sqlite3.connect(out)
        total, = c.execute("SELECT sum(amount) FROM bal").fetchone()
        moves, = c.execute("SELECT count(*) FROM moves").fetchone()
        # the state of exactly `moves` committed transfers: replay them
        expect = {i: 1000 for i in range(20_000)}
        for _n, s, d, q in c.execute("SELECT * FROM moves ORDER BY n"):
            expect[s] -= q
            expect[d] += q
        got = dict(c.execute("SELECT id, amount FROM bal").fetchall())
        c.close()
        assert total == 20_000 * 1000 and moves > 0
        assert got == expect
