"""PostgreSQL databases: one REPEATABLE READ transaction, one file per table.

Staged layout (the tree of a ``postgres:`` snapshot)::

    postgres/manifest.json     tables (columns, primary key, rows), sequences, time
    postgres/pre-data.sql      schema before data (pg_dump --section=pre-data)
    postgres/post-data.sql     constraints, indexes, triggers (--section=post-data)
    postgres/tables/<schema>.<table>.copy   COPY text format, primary-key order

Everything is read inside one read-only REPEATABLE READ transaction whose
snapshot is exported (``pg_export_snapshot``) and handed to ``pg_dump
--snapshot``, so schema and rows are of the same instant while writers go
on. Rows in primary-key order keep a day's changes local in each file, so
content-defined chunks and the delta codecs store only what changed. Without
``pg_dump`` (or with a server it cannot talk to) the schema is generated from
the catalog: tables, column types, NOT NULL and primary keys.

Restore loads into an *empty* database: pre-data, ``COPY … FROM STDIN`` per
table, post-data, sequence values — in one transaction.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from deltavault.backup.options import BackupResult
from deltavault.errors import UserError
from deltavault.repo.repository import Repository
from deltavault.repo.snapshot import Snapshot
from deltavault.sources.base import (
    SourceOptions,
    backup_staged,
    require_kind,
    restore_into,
    staging_dir,
)
from deltavault.sources.dsn import redact

KIND = "postgres"
_BLOCK = 1 << 20
_TABLES_SQL = """
SELECT n.nspname, c.relname, c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
ORDER BY 1, 2
"""
_COLUMNS_SQL = """
SELECT attname, format_type(atttypid, atttypmod), attnotnull FROM pg_attribute
WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum
"""
_PK_SQL = """
SELECT a.attname FROM pg_index i JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
  ON true JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = %s AND i.indisprimary ORDER BY k.ord
"""
_USER_RELATIONS_SQL = """
SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
"""


def psycopg_module() -> Any:
    try:
        import psycopg
    except ImportError as exc:
        raise UserError("the PostgreSQL source needs psycopg",
                        hint="pip install 'psycopg[binary]'") from exc
    return psycopg


def connect(dsn: str) -> Any:
    """A psycopg connection; a UserError (with the DSN's password redacted) if it fails."""
    psycopg = psycopg_module()
    try:
        return psycopg.connect(dsn, autocommit=True)  # transactions are explicit
    except psycopg.Error as exc:
        raise UserError(f"cannot connect to PostgreSQL {redact(dsn)}: {exc}".strip()) from exc


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def qualified(schema: str, table: str) -> str:
    """``"schema"."table"``, quoted."""
    return f"{_q(schema)}.{_q(table)}"


@dataclass
class TableDump:
    """One table's entry in the manifest."""

    schema: str
    name: str
    file: str
    columns: list[str]
    types: list[str]
    not_null: list[bool]
    primary_key: list[str]
    rows: int


def label_for(conn: Any) -> str:
    """``postgres:<host>:<port>/<dbname>`` (no user, no password)."""
    info = conn.info
    return f"{KIND}:{info.host}:{info.port}/{info.dbname}"


def _pg_dump(dsn: str, snapshot: str, section: str) -> str | None:
    exe = shutil.which("pg_dump")
    if exe is None:
        return None
    proc = subprocess.run([exe, "--schema-only", f"--section={section}", f"--snapshot={snapshot}",
                           "--no-owner", "--no-privileges", "--dbname", dsn],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return None
    return "".join(line + "\n" for line in proc.stdout.splitlines()
                   if not line.startswith("\\"))  # psql meta-commands (\restrict …)


def _generated_schema(tables: list[TableDump], seqs: list[tuple[str, str, Any]]
                      ) -> tuple[str, str]:
    """Tables, NOT NULL, primary keys and sequences (no defaults, indexes or triggers)."""
    pre, post = [], []
    for schema in sorted({t.schema for t in tables} | {s[0] for s in seqs}):
        pre.append(f"CREATE SCHEMA IF NOT EXISTS {_q(schema)};")
    for schema, name, _value in seqs:
        pre.append(f"CREATE SEQUENCE IF NOT EXISTS {qualified(schema, name)};")
    for t in tables:
        cols = ", ".join(f"{_q(c)} {ty}{' NOT NULL' if nn else ''}"
                         for c, ty, nn in zip(t.columns, t.types, t.not_null, strict=True))
        pre.append(f"CREATE TABLE {qualified(t.schema, t.name)} ({cols});")
        if t.primary_key:
            post.append(f"ALTER TABLE {qualified(t.schema, t.name)} ADD PRIMARY KEY "
                        f"({', '.join(_q(c) for c in t.primary_key)});")
    return "\n".join(pre) + "\n", "\n".join(post) + "\n"


def stage_postgres(conn: Any, dsn: str, root: Path) -> dict[str, Any]:
    """Write the staged layout of the connected database below ``root``; returns the manifest."""
    psycopg = psycopg_module()
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    (root / "tables").mkdir(parents=True)
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_export_snapshot(), now()::text, current_setting('server_version')")
        snap_id, now, version = cur.fetchone()
        tables = []
        for schema, name, oid in cur.execute(_TABLES_SQL).fetchall():
            cols = cur.execute(_COLUMNS_SQL, (oid,)).fetchall()
            pk = [r[0] for r in cur.execute(_PK_SQL, (oid,)).fetchall()]
            tables.append(TableDump(schema, name, f"tables/{schema}.{name}.copy",
                                    [c[0] for c in cols], [c[1] for c in cols],
                                    [bool(c[2]) for c in cols], pk, 0))
        seqs = cur.execute("SELECT schemaname, sequencename, last_value FROM pg_sequences "
                           "ORDER BY 1, 2").fetchall()
        pre, post = _pg_dump(dsn, snap_id, "pre-data"), _pg_dump(dsn, snap_id, "post-data")
        schema_from = "pg_dump"
        if pre is None or post is None:
            pre, post = _generated_schema(tables, seqs)
            schema_from = "catalog"
        for t in tables:
            t.rows = _copy_out(cur, t, root / t.file)
    (root / "pre-data.sql").write_text(pre)
    (root / "post-data.sql").write_text(post)
    manifest = {"v": 1, "time": now, "server_version": version, "schema_from": schema_from,
                "tables": [asdict(t) for t in tables],
                "sequences": [{"schema": s, "name": n, "last_value": v} for s, n, v in seqs]}
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def _copy_out(cur: Any, t: TableDump, dest: Path) -> int:
    cols = ", ".join(_q(c) for c in t.columns)
    order = f" ORDER BY {', '.join(_q(c) for c in t.primary_key)}" if t.primary_key else ""
    sql = f"COPY (SELECT {cols} FROM ONLY {qualified(t.schema, t.name)}{order}) TO STDOUT"
    rows = 0
    with dest.open("wb") as f, cur.copy(sql) as copy:
        for block in copy:
            data = bytes(block)
            rows += data.count(b"\n")
            f.write(data)
    return rows


def backup_postgres(repo: Repository, dsn: str, opts: SourceOptions | None = None
                    ) -> BackupResult:
    """Snapshot a live database as of one instant. The caller holds the repository lock."""
    conn = connect(dsn)
    try:
        label = label_for(conn)

        def stage(tmp: Path) -> Path:
            stage_postgres(conn, dsn, tmp / KIND)
            return tmp / KIND

        return backup_staged(repo, label, stage, opts or SourceOptions(), KIND)
    finally:
        conn.close()


@dataclass
class PgRestoreResult:
    """What was loaded."""

    tables: int
    rows: int
    schema_from: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def restore_postgres(repo: Repository, snap: Snapshot, dsn: str) -> PgRestoreResult:
    """Load a ``postgres:`` snapshot into an empty database, in one transaction.

    Raises:
        UserError: the database is not empty or cannot be reached.
    """
    require_kind(snap, KIND)
    with staging_dir("pg-restore") as tmp:
        restore_into(repo, snap, tmp)
        root = tmp / KIND
        manifest = json.loads((root / "manifest.json").read_text())
        conn = connect(dsn)
        try:
            with conn.cursor() as cur:
                if cur.execute(_USER_RELATIONS_SQL).fetchone()[0]:
                    raise UserError(f"database {conn.info.dbname} is not empty",
                                    hint="restore into a freshly created database")
            rows = _load(conn, root, manifest)
        finally:
            conn.close()
    repo.record_best_effort("restore", snapshot=snap.id, target=label_for_dsn(dsn), source=KIND)
    return PgRestoreResult(len(manifest["tables"]), rows, manifest["schema_from"])


def label_for_dsn(dsn: str) -> str:
    """The redacted DSN, for the ledger."""
    return redact(f"{KIND}:{dsn}")


def _load(conn: Any, root: Path, manifest: dict[str, Any]) -> int:
    rows = 0
    with conn.transaction(), conn.cursor() as cur:
        cur.execute((root / "pre-data.sql").read_text())
        for t in manifest["tables"]:
            cols = ", ".join(_q(c) for c in t["columns"])
            with (root / t["file"]).open("rb") as f, \
                    cur.copy(f"COPY {qualified(t['schema'], t['name'])} ({cols}) FROM STDIN") as cp:
                while block := f.read(_BLOCK):
                    cp.write(block)
            rows += t["rows"]
        post = (root / "post-data.sql").read_text()
        if post.strip():
            cur.execute(post)
        for s in manifest["sequences"]:
            if s["last_value"] is not None:
                cur.execute("SELECT setval(%s::regclass, %s, true)",
                            (qualified(s["schema"], s["name"]), s["last_value"]))
        cur.execute("RESET search_path")  # pg_dump's script empties it
    return rows
