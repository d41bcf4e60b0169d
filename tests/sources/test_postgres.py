"""backup --postgres / restore --postgres against a real server, including under a writer."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import psycopg
import pytest

from deltavault import sampledata
from deltavault.errors import UserError
from deltavault.sources.postgres import backup_postgres, restore_postgres
from deltavault.sources.sqlite import backup_sqlite
from tests.sources.helpers import cli, make_repo, table_rows
from tests.support.servers import PgServer

SCHEMA = """
CREATE SCHEMA risk;
CREATE TABLE positions (account text, instrument text, qty double precision NOT NULL,
    avg_px double precision NOT NULL, realized_pnl double precision NOT NULL,
    updated_at bigint NOT NULL, PRIMARY KEY (account, instrument));
CREATE TABLE collateral (account text, asset text, amount double precision NOT NULL,
    haircut double precision NOT NULL, updated_at bigint NOT NULL, PRIMARY KEY (account, asset));
CREATE TABLE risk.limits (id serial PRIMARY KEY, name text UNIQUE, lim numeric(20, 6),
    meta jsonb, blob bytea, at timestamptz, note text, x real);
CREATE INDEX limits_at ON risk.limits (at);
"""


def dump(dsn: str) -> dict[str, str]:
    """Every row of each table, as repr (so NaN equals NaN and -0.0 differs from 0.0)."""
    with psycopg.connect(dsn) as c:
        return {t: repr(c.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall())
                for t in ("positions", "collateral", "risk.limits")}


def load_sample(dsn: str, state: Path) -> None:
    rows = {t: table_rows(state / "db" / "positions.sqlite", t)
            for t in ("positions", "collateral")}
    with psycopg.connect(dsn) as c:
        c.execute(SCHEMA)
        with c.cursor() as cur:
            cur.executemany("INSERT INTO positions VALUES (%s, %s, %s, %s, %s, %s)",
                            rows["positions"])
            cur.executemany("INSERT INTO collateral VALUES (%s, %s, %s, %s, %s)",
                            rows["collateral"])
            cur.executemany(
                "INSERT INTO risk.limits (name, lim, meta, blob, at, note, x) "
                "VALUES (%s, %s, %s, %s, now(), %s, %s)",
                [("a", "12.345678", json.dumps({"k": [1, 2]}), b"\x00\xff\n\\", "tab\there",
                  float("nan")),
                 ("b", None, None, None, "line\nbreak", -0.0),
                 ("c", "-1e6", "{}", b"", None, float("inf"))])


def test_round_trip_and_reconcile(pg_server: PgServer, tmp_path: Path) -> None:
    state = tmp_path / "state"
    sampledata.generate(state, scale=0.003, seed=4)
    src = pg_server.create_db()
    load_sample(src, state)
    repo_path = tmp_path / "repo"
    repo = make_repo(repo_path)
    res = cli(repo_path, "backup", "--postgres", src, "--type", "full", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["source"] == f"postgres:127.0.0.1:{pg_server.port}/{src.rsplit('=', 1)[1]}"
    before = dump(src)
    with psycopg.connect(src) as c:
        c.execute("UPDATE positions SET qty = qty + 1 WHERE ctid IN "
                  "(SELECT ctid FROM positions LIMIT 3)")
    second = json.loads(cli(repo_path, "backup", "--postgres", src, "--json").stdout)
    assert second["type"] == "incr"

    dst = pg_server.create_db()
    out = cli(repo_path, "restore", doc["snapshot_id"], "--postgres", dst, "--json")
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["schema_from"] == "pg_dump"
    after = dump(dst)
    assert after == before
    with psycopg.connect(dst) as c:  # constraints, indexes and sequences came back
        assert c.execute("SELECT count(*) FROM pg_indexes WHERE indexname = 'limits_at'"
                         ).fetchone() == (1,)
        assert c.execute("INSERT INTO risk.limits (name) VALUES ('d') RETURNING id"
                         ).fetchone() == (4,)
        with pytest.raises(psycopg.errors.UniqueViolation):
            c.execute("INSERT INTO risk.limits (name) VALUES ('a')")
    again = cli(repo_path, "restore", doc["snapshot_id"], "--postgres", dst)
    assert again.exit_code == 1 and "not empty" in again.stderr

    # reconcile: the snapshot's own positions DB vs the live database
    db = state / "db" / "positions.sqlite"
    with repo.lock():
        backup_sqlite(repo, db)
    clean = cli(repo_path, "reconcile", "--left", f"sqlite:{db}", "--right", f"postgres:{dst}")
    assert clean.exit_code == 0, clean.output
    drift = cli(repo_path, "reconcile", "--left", f"sqlite:{db}", "--right", f"postgres:{src}",
                "--json")
    assert drift.exit_code == 1 and json.loads(drift.stdout)["counts"] == {"qty": 3}


def test_backup_under_writer(pg_server: PgServer, tmp_path: Path) -> None:
    """Transfers keep every balance = 1000 + in − out; a restored state must satisfy it."""
    src = pg_server.create_db()
    n_acct = 2000
    with psycopg.connect(src) as c:
        c.execute("CREATE TABLE bal (id int PRIMARY KEY, amount bigint NOT NULL, pad text)")
        c.execute("INSERT INTO bal SELECT g, 1000, repeat('x', 100) FROM generate_series(0, %s) g",
                  (n_acct - 1,))
        c.execute("CREATE TABLE moves (n bigserial PRIMARY KEY, src int, dst int, q int)")
    stop = threading.Event()
    done = [0]
    failure: list[BaseException] = []

    def writer() -> None:
        try:
            with psycopg.connect(src, autocommit=False) as w:
                k = 0
                while not stop.is_set():
                    k += 1
                    a, b = (k * 7919) % n_acct, (k * 104_729) % n_acct
                    with w.transaction():
                        w.execute("UPDATE bal SET amount = amount - 3 WHERE id = %s", (a,))
                        w.execute("UPDATE bal SET amount = amount + 3 WHERE id = %s", (b,))
                        w.execute("INSERT INTO moves (src, dst, q) VALUES (%s, %s, 3)", (a, b))
                    done[0] = k
        except BaseException as exc:  # surfaced below
            failure.append(exc)

    repo = make_repo(tmp_path / "repo")
    t = threading.Thread(target=writer)
    t.start()
    try:
        while done[0] < 30 and not failure:
            stop.wait(0.01)
        with repo.lock():
            snaps = [backup_postgres(repo, src).snapshot for _ in range(2)]
    finally:
        stop.set()
        t.join()
    assert not failure
    for snap in snaps:
        dst = pg_server.create_db()
        restore_postgres(repo, snap, dst)
        with psycopg.connect(dst) as c:
            moves = c.execute("SELECT src, dst, q FROM moves ORDER BY n").fetchall()
            got = dict(c.execute("SELECT id, amount FROM bal").fetchall())
            seq = c.execute("SELECT last_value FROM moves_n_seq").fetchone()[0]
        expect = dict.fromkeys(range(n_acct), 1000)
        for a, b, q in moves:
            expect[a] -= q
            expect[b] += q
        assert moves and got == expect
        assert seq >= len(moves)


def test_restore_refuses_other_kinds(pg_dsn: str, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    db = tmp_path / "x.sqlite"
    import sqlite3

    sqlite3.connect(db).execute("CREATE TABLE t (a)").connection.commit()
    with repo.lock():
        snap = backup_sqlite(repo, db).snapshot
    with pytest.raises(UserError, match="not a postgres"):
        restore_postgres(repo, snap, pg_dsn)


def test_schema_from_catalog_without_pg_dump(pg_server: PgServer, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    src = pg_server.create_db()
    with psycopg.connect(src) as c:
        c.execute(SCHEMA)
        c.execute("INSERT INTO positions VALUES ('A', 'X', 1.5, 100.25, 0, 1), "
                  "('B', 'Y', -2, 3.5, -1.25, 2)")
        c.execute("INSERT INTO risk.limits (name, lim, x) VALUES ('a', 1.5, -0.0)")
    monkeypatch.setenv("PATH", str(tmp_path))  # no pg_dump on PATH
    repo = make_repo(tmp_path / "repo")
    with repo.lock():
        snap = backup_postgres(repo, src).snapshot
    dst = pg_server.create_db()
    assert restore_postgres(repo, snap, dst).schema_from == "catalog"
    assert dump(dst) == dump(src)
    with psycopg.connect(dst) as c, pytest.raises(psycopg.errors.UniqueViolation):
        c.execute("INSERT INTO positions VALUES ('A', 'X', 0, 0, 0, 0)")
