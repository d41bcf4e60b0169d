"""Measure backup --postgres on a positions table: full, then a day of 2% changes, then restore.

Not collected by pytest. Run (as root or the postgres user, needs postgresql)::

    PYTHONPATH=src python -m tests.sources.bench_postgres --rows 1000000 --change 0.02
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from deltavault import api
from deltavault.sources.base import SourceOptions
from deltavault.sources.postgres import backup_postgres, restore_postgres
from tests.support.servers import free_ports, pg_bindir, wait_for_port


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--change", type=float, default=0.02)
    args = ap.parse_args()
    bindir = pg_bindir()
    assert bindir is not None, "postgresql not installed"
    root = Path(tempfile.mkdtemp(prefix="dv-pgbench-"))
    prefix = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    port = free_ports(1)[0]
    data, log = root / "data", root / "log"
    subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "postgres",
                    "--auth=trust", "-E", "UTF8", "--locale=C"], check=True, capture_output=True)
    subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o",
                    f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off",
                    "-w", "start"], check=True, capture_output=True)
    wait_for_port(port, None, 60, log)
    base = f"host=127.0.0.1 port={port} user=postgres dbname="
    out: dict[str, object] = {"rows": args.rows, "change": args.change}
    work = Path(tempfile.mkdtemp(prefix="dv-pgbench-repo-"))
    try:
        with psycopg.connect(base + "postgres", autocommit=True) as c:
            c.execute("CREATE DATABASE src")
            c.execute("CREATE DATABASE dst")
        with psycopg.connect(base + "src") as c:
            c.execute("""CREATE TABLE positions (account text, instrument text,
                qty double precision NOT NULL, avg_px double precision NOT NULL,
                realized_pnl double precision NOT NULL, updated_at bigint NOT NULL,
                PRIMARY KEY (account, instrument))""")
            c.execute("""INSERT INTO positions SELECT
                'ACC' || lpad((g / 50)::text, 6, '0'), 'INS' || lpad((g %% 50)::text, 4, '0'),
                round((random() * 2000 - 1000)::numeric, 3), round((random() * 500)::numeric, 6),
                round((random() * 1e5)::numeric, 2), 1700000000000000 + g
                FROM generate_series(0, %s) g""", (args.rows - 1,))
            c.execute("ANALYZE positions")
            out["table_bytes"] = c.execute(
                "SELECT pg_total_relation_size('positions')").fetchone()[0]
        repo = api.init(work / "repo", b"pw", kdf_memory_kib=8192, kdf_time_cost=1)
        t = time.monotonic()
        with repo.lock():
            full = backup_postgres(repo, base + "src").snapshot
        out["full_s"] = round(time.monotonic() - t, 2)
        out["full_bytes_read"] = full.summary["bytes_read"]
        out["full_bytes_added"] = full.summary["bytes_added"]
        with psycopg.connect(base + "src") as c:
            n = c.execute("""UPDATE positions SET qty = qty + 1,
                updated_at = updated_at + 86400000000 WHERE random() < %s""",
                          (args.change,)).rowcount
        out["rows_changed"] = n
        t = time.monotonic()
        with repo.lock():
            snap = backup_postgres(repo, base + "src", SourceOptions(snapshot_type="diff")
                                   ).snapshot
        out["diff_s"] = round(time.monotonic() - t, 2)
        out["diff_bytes_added"] = snap.summary["bytes_added"]
        out["diff_delta_blobs"] = snap.summary["delta_blobs"]
        t = time.monotonic()
        restore_postgres(repo, snap, base + "dst")
        out["restore_s"] = round(time.monotonic() - t, 2)
        with psycopg.connect(base + "dst") as c:
            out["restored_rows"] = c.execute("SELECT count(*) FROM positions").fetchone()[0]
        with psycopg.connect(base + "src") as a, psycopg.connect(base + "dst") as b:
            q = "SELECT md5(string_agg(p::text, ',' ORDER BY account, instrument)) FROM positions p"
            out["identical"] = a.execute(q).fetchone() == b.execute(q).fetchone()
    finally:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                        "stop"], capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
