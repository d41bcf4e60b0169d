"""A SQLite positions database with its own schema, and a handful of config files.

``holdings(book, symbol, qty, cost_basis, mark, unrealized, opened_ns,
updated_ns)`` is a ``WITHOUT ROWID`` table keyed by ``(book, symbol)`` on
8 KiB pages; ``cash(book, ccy, balance, updated_ns)`` beside it. One day of
change updates ~5 % of holdings in place (mark and P&L always, quantity
for a third), inserts ~0.5 % and deletes ~0.2 % (closed positions leave free
pages), and moves every cash balance — a rollback-journal database, no VACUUM.

Configs: ``venues.json``, ``limits.json`` and one TOML file per strategy; one
value changes each day and every fifth day a strategy file is added.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np

from variants.common import Change, rng, write_bytes, write_json

ROW_BYTES = 90
DAY_NS = 86_400 * 10**9
T0_NS = 1_772_000_000 * 10**9


def _rows(g: np.random.Generator, keys: list[tuple[str, str]],
          t_ns: int) -> list[tuple[object, ...]]:
    n = len(keys)
    qty = g.integers(-5000, 5000, n) * 10
    cost = np.round(g.lognormal(4.0, 1.0, n), 4)
    mark = np.round(cost * (1 + g.normal(0, 0.02, n)), 4)
    return [(b, s, int(q), float(c), float(m), round(float(q * (m - c)), 2), t_ns, t_ns)
            for (b, s), q, c, m in zip(keys, qty, cost, mark, strict=True)]


def generate(path: Path, seed: int, *, target_bytes: int, tag: str = "positions") -> None:
    """Create the database at ``path`` with about ``target_bytes`` of rows."""
    g = rng(seed, tag, "rows")
    n = max(200, target_bytes // ROW_BYTES)
    books = max(4, int(n ** 0.5 // 4))
    book_ids = g.integers(0, books, n)
    sym_ids = g.permutation(n)
    keys = sorted({(f"BK{int(b):05d}", f"S{int(s):07d}") for b, s in zip(book_ids, sym_ids,
                                                                       strict=True)})
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA page_size=8192")
    con.execute("PRAGMA journal_mode=DELETE")
    con.execute("CREATE TABLE holdings(book TEXT, symbol TEXT, qty INTEGER, cost_basis REAL, "
                "mark REAL, unrealized REAL, opened_ns INTEGER, updated_ns INTEGER, "
                "PRIMARY KEY(book, symbol)) WITHOUT ROWID")
    con.execute("CREATE TABLE cash(book TEXT, ccy TEXT, balance REAL, updated_ns INTEGER, "
                "PRIMARY KEY(book, ccy))")
    con.execute("BEGIN")
    con.executemany("INSERT INTO holdings VALUES (?,?,?,?,?,?,?,?)", _rows(g, keys, T0_NS))
    con.executemany("INSERT INTO cash VALUES (?,?,?,?)",
                    [(f"BK{b:05d}", c, round(float(g.lognormal(14, 1)), 2), T0_NS)
                     for b in range(books) for c in ("USD", "EUR", "JPY", "USDT")])
    con.execute("COMMIT")
    con.close()


def mutate(path: Path, rel: str, seed: int, day: int, *, tag: str = "positions") -> Change:
    """One day of trading on the database."""
    change = Change(day)
    g = rng(seed, tag, "day", day)
    t_ns = T0_NS + day * DAY_NS
    con = sqlite3.connect(path, isolation_level=None)
    keys = con.execute("SELECT book, symbol FROM holdings ORDER BY book, symbol").fetchall()
    n = len(keys)
    upd = np.flatnonzero(g.random(n) < 0.05)
    dele = np.flatnonzero(g.random(n) < 0.002)
    con.execute("BEGIN")
    marks = np.round(g.lognormal(4.0, 1.0, len(upd)), 4)
    trade = g.random(len(upd)) < 0.33
    dq = g.integers(-100, 100, len(upd)) * 10
    con.executemany(
        "UPDATE holdings SET qty = qty + ?, mark = ?, unrealized = round(qty * (? - cost_basis),"
        " 2), updated_ns = ? WHERE book = ? AND symbol = ?",
        [(int(dq[k]) if trade[k] else 0, float(marks[k]), float(marks[k]), t_ns, *keys[i])
         for k, i in enumerate(upd.tolist())])
    con.executemany("DELETE FROM holdings WHERE book = ? AND symbol = ?",
                    [keys[i] for i in dele.tolist()])
    books = sorted({b for b, _ in keys})
    new = max(1, n // 200)
    new_keys = [(books[int(g.integers(len(books)))], f"N{day:03d}{i:06d}") for i in range(new)]
    con.executemany("INSERT OR REPLACE INTO holdings VALUES (?,?,?,?,?,?,?,?)",
                    _rows(g, new_keys, t_ns))
    cash = con.execute("SELECT book, ccy, balance FROM cash ORDER BY book, ccy").fetchall()
    moves = g.normal(0, 1e-3, len(cash))
    con.executemany("UPDATE cash SET balance = ?, updated_ns = ? WHERE book = ? AND ccy = ?",
                    [(round(bal * (1 + float(m)), 2), t_ns, b, c)
                     for (b, c, bal), m in zip(cash, moves, strict=True)])
    con.execute("COMMIT")
    con.close()
    change.touch(rel)
    change.count("holdings_updated", len(upd))
    change.count("holdings_inserted", new)
    change.count("holdings_deleted", len(dele))
    return change


def generate_configs(root: Path, seed: int, *, tag: str = "configs") -> None:
    """Venue list, risk limits and six strategy files."""
    g = rng(seed, tag, "init")
    write_json(root / "venues.json", {"venues": [
        {"mic": m, "gateway": f"10.0.{i}.{10 + i}:9{i:03d}", "throttle_per_s": int(t)}
        for i, (m, t) in enumerate(zip(("XNAS", "XNYS", "XCME", "XEUR", "BNCE"),
                                       g.integers(50, 500, 5), strict=True))]})
    write_json(root / "limits.json", {"gross_usd": 250_000_000, "net_usd": 40_000_000,
                                      "max_order_usd": 2_000_000, "loss_stop_usd": 1_500_000})
    for i in range(6):
        _strategy(root, i, g)


def _strategy(root: Path, i: int, g: np.random.Generator) -> str:
    rel = f"strategies/s{i:03d}.toml"
    text = (f"[strategy]\nname = \"s{i:03d}\"\nenabled = true\n"
            f"max_position = {int(g.integers(100, 10_000))}\n"
            f"edge_bps = {float(np.round(g.uniform(0.5, 8), 2))}\n"
            f"[risk]\nmax_loss = {int(g.integers(10_000, 500_000))}\n")
    write_bytes(root / rel, text.encode())
    return rel


def mutate_configs(root: Path, prefix: str, seed: int, day: int, *, tag: str = "configs") -> Change:
    """Change one limit; every fifth day add a strategy file."""
    change = Change(day)
    g = rng(seed, tag, "day", day)
    limits = json.loads((root / "limits.json").read_text())
    key = sorted(limits)[int(g.integers(len(limits)))]
    limits[key] = int(limits[key] * float(g.choice(np.array([0.9, 1.1]))))
    write_json(root / "limits.json", limits)
    change.touch(f"{prefix}limits.json")
    if day % 5 == 0:
        n = len(list((root / "strategies").glob("*.toml")))
        change.touch(prefix + _strategy(root, n, g))
    return change
