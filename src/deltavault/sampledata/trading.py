"""Trades, positions and collateral of the sample trading state.

The trade log and the positions table are generated together so that the
positions are exactly the fold of the trade log with
:func:`deltavault.trading.booking.apply_trade`. That invariant is what a
reconciliation feature checks, so the generator, :func:`replay_positions` and
point-in-time reconstruction share the one booking rule of the trading package.

Prices and quantities are held as integers of a decimal unit and turned into
floats by one division by a power of ten: the float is then the nearest to
the decimal a venue would send, as a real system parsing "123.45" stores it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from deltavault.trading.booking import (
    ASSETS,
    EPOCH,
    SCHEMA,
    Position,
    apply_trade,
    timestamp_of,
)

BASE_TIME_US = (datetime(2024, 1, 2, tzinfo=UTC) - EPOCH) // timedelta(microseconds=1)
DAY_US = 86_400 * 1_000_000
FEE_RATE = 0.0002
@dataclass(frozen=True)
class Instrument:
    """Reference data of one tradable instrument.

    Attributes:
        venue: exchange code, also the order-book directory name.
        symbol: instrument code, unique across venues.
        price_decimals: prices are integers of 10**-price_decimals.
        tick_units: tick size in those units (0.25 = 25 units of 0.01).
        size_decimals: sizes are integers of 10**-size_decimals.
        lot_units: lot size in those units.
        ref_ticks: a reference price in ticks where the random walk starts.
        has_book: whether L2 snapshots of this instrument are kept.
    """

    venue: str
    symbol: str
    price_decimals: int
    tick_units: int
    size_decimals: int
    lot_units: int
    ref_ticks: int
    has_book: bool

    def prices(self, ticks: np.ndarray) -> np.ndarray:
        """Float prices of integer tick counts, nearest to the decimal value."""
        units = ticks.astype(np.int64) * self.tick_units
        return np.asarray(units / (10.0**self.price_decimals), dtype=np.float64)

    def ticks(self, prices: np.ndarray) -> np.ndarray:
        """Integer tick counts of float prices made by :meth:`prices`."""
        units = np.rint(prices * 10.0**self.price_decimals).astype(np.int64)
        return units // self.tick_units

    def sizes(self, lots: np.ndarray) -> np.ndarray:
        """Float sizes of integer lot counts."""
        units = lots.astype(np.int64) * self.lot_units
        return np.asarray(units / (10.0**self.size_decimals), dtype=np.float64)

    def price_of(self, ticks: int) -> float:
        """Scalar :meth:`prices` (the same IEEE division, so the same float)."""
        return (ticks * self.tick_units) / (10.0**self.price_decimals)

    def size_of(self, lots: int) -> float:
        """Scalar :meth:`sizes`."""
        return (lots * self.lot_units) / (10.0**self.size_decimals)

    def to_dict(self) -> dict[str, object]:
        """JSON form, as stored in ``config/instruments.json``."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> Instrument:
        """Inverse of :meth:`to_dict`."""
        return cls(**d)  # type: ignore[arg-type]


def make_trades(
    rng: np.random.Generator,
    pairs: list[tuple[str, Instrument]],
    pair_index: np.ndarray,
    ts_us: np.ndarray,
    first_id: int,
) -> list[dict[str, object]]:
    """Trades on the given (account, instrument) pairs at the given times."""
    n = len(pair_index)
    noise = rng.standard_normal(n) * 0.002
    lots = rng.geometric(0.08, n)
    sides = rng.random(n) < 0.5
    out: list[dict[str, object]] = []
    for i in range(n):
        account, ins = pairs[int(pair_index[i])]
        px = ins.price_of(max(1, round(ins.ref_ticks * (1.0 + float(noise[i])))))
        qty = ins.size_of(int(lots[i]))
        out.append(
            {
                "trade_id": f"T{first_id + i:012d}",
                "ts": timestamp_of(int(ts_us[i])),
                "account": account,
                "instrument": ins.symbol,
                "side": "buy" if sides[i] else "sell",
                "qty": qty,
                "px": px,
                "fee": max(0.01, round(qty * px * FEE_RATE, 2)),
            }
        )
    return out


def append_trades(log: Path, trades: Iterable[dict[str, object]]) -> None:
    """Append trades as JSON lines; the log is only ever appended to."""
    with log.open("a", encoding="utf-8") as f:
        f.writelines(json.dumps(t, separators=(",", ":")) + "\n" for t in trades)


def read_trades(log: Path) -> Iterator[dict[str, object]]:
    """Every trade of the log, in order."""
    with log.open(encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)


def last_trade(log: Path) -> dict[str, object]:
    """The last trade of the log, read from its tail (the log can be large)."""
    with log.open("rb") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(max(0, size - 4096))
        tail = f.read().splitlines()
    return dict(json.loads(tail[-1]))


def fold_trades(
    trades: Iterable[dict[str, object]],
    size_decimals: dict[str, int],
    positions: dict[tuple[str, str], Position] | None = None,
) -> dict[tuple[str, str], Position]:
    """Positions after applying trades, starting from ``positions`` or empty."""
    book = positions if positions is not None else {}
    for t in trades:
        key = (str(t["account"]), str(t["instrument"]))
        pos = book.get(key)
        if pos is None:
            pos = book[key] = Position()
        apply_trade(pos, t, size_decimals[key[1]])
    return book


def replay_positions(root: Path) -> dict[tuple[str, str], Position]:
    """Positions implied by the whole trade log of a state directory."""
    instruments = load_instruments(root)
    decimals = {s: ins.size_decimals for s, ins in instruments.items()}
    return fold_trades(read_trades(root / "logs" / "trades.jsonl"), decimals)


def read_positions(db: Path) -> dict[tuple[str, str], Position]:
    """The positions table as stored."""
    with _connect(db) as con:
        rows = con.execute(
            "SELECT account, instrument, qty, avg_px, realized_pnl, updated_at FROM positions"
        ).fetchall()
    con.close()
    return {(a, i): Position(q, p, r, u) for a, i, q, p, r, u in rows}


def load_instruments(root: Path) -> dict[str, Instrument]:
    """Reference data of every instrument, from ``config/instruments.json``."""
    data = json.loads((root / "config" / "instruments.json").read_text())
    return {d["symbol"]: Instrument.from_dict(d) for d in data["instruments"]}


def create_database(db: Path, positions: dict[tuple[str, str], Position],
                    collateral: list[tuple[str, str, float, float, int]]) -> None:
    """Write a fresh positions/collateral database in primary-key order."""
    db.parent.mkdir(parents=True, exist_ok=True)
    with _connect(db) as con:
        con.executescript(SCHEMA)
        con.executemany(
            "INSERT INTO positions VALUES (?, ?, ?, ?, ?, ?)",
            [(a, i, p.qty, p.avg_px, p.realized_pnl, p.updated_at)
             for (a, i), p in sorted(positions.items())],
        )
        con.executemany("INSERT INTO collateral VALUES (?, ?, ?, ?, ?)", sorted(collateral))
    con.close()


def make_collateral(
    rng: np.random.Generator, accounts: list[str], when_us: int
) -> list[tuple[str, str, float, float, int]]:
    """A few collateral assets per account, amounts rounded to the asset's decimals."""
    names = list(ASSETS)
    rows = []
    for acct in accounts:
        k = int(rng.integers(1, 6))
        for asset in sorted(rng.choice(names, size=k, replace=False)):
            rows.append(_collateral_row(rng, acct, str(asset), when_us))
    return rows


def _collateral_row(
    rng: np.random.Generator, account: str, asset: str, when_us: int
) -> tuple[str, str, float, float, int]:
    haircut, decimals = ASSETS[asset]
    amount = round(float(rng.lognormal(11.0, 1.5)) / (1.0 if decimals < 6 else 20_000.0), decimals)
    return (account, asset, amount, haircut, when_us)


@dataclass(frozen=True)
class DbChange:
    """Row counts touched by one day of change to the database."""

    positions_updated: int
    positions_inserted: int
    collateral_updated: int
    collateral_inserted: int


def apply_day_to_database(
    db: Path,
    rng: np.random.Generator,
    trades: list[dict[str, object]],
    size_decimals: dict[str, int],
    when_us: int,
) -> DbChange:
    """Apply a day's trades and collateral moves to the database, in place.

    Rows are changed with UPDATE in the same file (no rewrite, no VACUUM), as
    a live trading database changes between two backups.
    """
    with _connect(db) as con:
        keys = sorted({(str(t["account"]), str(t["instrument"])) for t in trades})
        current: dict[tuple[str, str], Position] = {}
        for a, i in keys:
            row = con.execute(
                "SELECT qty, avg_px, realized_pnl, updated_at FROM positions "
                "WHERE account = ? AND instrument = ?", (a, i)).fetchone()
            if row is not None:
                current[(a, i)] = Position(*row)
        existing = set(current)
        fold_trades(trades, size_decimals, current)
        upd = [(p.qty, p.avg_px, p.realized_pnl, p.updated_at, a, i)
               for (a, i), p in current.items() if (a, i) in existing]
        ins = [(a, i, p.qty, p.avg_px, p.realized_pnl, p.updated_at)
               for (a, i), p in current.items() if (a, i) not in existing]
        con.executemany("UPDATE positions SET qty = ?, avg_px = ?, realized_pnl = ?, "
                        "updated_at = ? WHERE account = ? AND instrument = ?", upd)
        con.executemany("INSERT INTO positions VALUES (?, ?, ?, ?, ?, ?)", ins)
        c_upd, c_ins = _move_collateral(con, rng, when_us)
    con.close()
    return DbChange(len(upd), len(ins), c_upd, c_ins)


def _move_collateral(con: sqlite3.Connection, rng: np.random.Generator,
                     when_us: int) -> tuple[int, int]:
    """Margin calls and deposits: ~3% of collateral rows move, a few are added."""
    rows = con.execute("SELECT account, asset, amount FROM collateral ORDER BY account, asset")
    table = rows.fetchall()
    n_upd = max(1, round(0.03 * len(table)))
    upd = []
    for j in sorted(rng.choice(len(table), size=n_upd, replace=False)):
        acct, asset, amount = table[int(j)]
        new = round(amount * (1.0 + float(rng.normal(0.0, 0.02))), ASSETS[asset][1])
        upd.append((new, when_us, acct, asset))
    con.executemany("UPDATE collateral SET amount = ?, updated_at = ? "
                    "WHERE account = ? AND asset = ?", upd)
    held = {(a, s) for a, s, _ in table}
    accounts = sorted({a for a, _, _ in table})
    ins = []
    for j in rng.choice(len(accounts), size=max(1, len(accounts) // 200), replace=False):
        asset = str(rng.choice(list(ASSETS)))
        if (accounts[int(j)], asset) not in held:
            held.add((accounts[int(j)], asset))
            ins.append(_collateral_row(rng, accounts[int(j)], asset, when_us))
    con.executemany("INSERT INTO collateral VALUES (?, ?, ?, ?, ?)", ins)
    return len(upd), len(ins)


def _connect(db: Path) -> sqlite3.Connection:
    # A rollback journal (not WAL) so that every change lands in the one file
    # a backup tool sees, and no -wal/-shm files linger in the state tree.
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=DELETE")
    return con
