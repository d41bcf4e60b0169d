"""A book: the positions and collateral of one source, read the same way from every kind.

``positions`` is keyed by (account, instrument) with qty and avg_px;
``collateral`` by (account, asset) with amount and haircut (the tables of
:data:`deltavault.trading.booking.SCHEMA`). SQLite and PostgreSQL sources run
the same two queries in one read-only transaction.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from deltavault.errors import UserError
from deltavault.sources.postgres import connect, psycopg_module

POSITIONS_SQL = "SELECT account, instrument, qty, avg_px FROM positions"
COLLATERAL_SQL = "SELECT account, asset, amount, haircut FROM collateral"

Key = tuple[str, str]


@dataclass
class Book:
    """Positions ``(account, instrument) -> (qty, avg_px)``, collateral
    ``(account, asset) -> (amount, haircut)``."""

    positions: dict[Key, tuple[float, float]] = field(default_factory=dict)
    collateral: dict[Key, tuple[float, float]] = field(default_factory=dict)


def book_of(positions: Iterable[Sequence[Any]], collateral: Iterable[Sequence[Any]]) -> Book:
    """A book from the rows of :data:`POSITIONS_SQL` and :data:`COLLATERAL_SQL`."""
    return Book({(a, i): (float(q), float(p)) for a, i, q, p in positions},
                {(a, s): (float(m), float(h)) for a, s, m, h in collateral})


def read_sqlite_book(db: str | os.PathLike[str]) -> Book:
    """The book of a SQLite database, read in one transaction, read-only."""
    path = os.path.abspath(db)
    if not os.path.isfile(path):
        raise UserError(f"{db}: no such database file")
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        con.execute("BEGIN")
        pos = con.execute(POSITIONS_SQL).fetchall()
        col = con.execute(COLLATERAL_SQL).fetchall()
    except sqlite3.Error as exc:
        raise UserError(f"{db}: no positions/collateral tables: {exc}") from exc
    finally:
        con.close()
    return book_of(pos, col)


def read_postgres_book(dsn: str) -> Book:
    """The positions/collateral book of a live database, in one REPEATABLE READ transaction."""
    psycopg = psycopg_module()
    conn = connect(dsn)
    try:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        with conn.transaction(), conn.cursor() as cur:
            try:
                pos = cur.execute(POSITIONS_SQL).fetchall()
                col = cur.execute(COLLATERAL_SQL).fetchall()
            except psycopg.Error as exc:
                raise UserError(f"no positions/collateral tables: {exc}") from exc
    finally:
        conn.close()
    return book_of(pos, col)
