"""Booking rules of the trading domain: positions, average-cost trades, collateral assets.

One implementation of the accounting rule, shared by point-in-time
reconstruction (replaying proven journal records onto a restored positions
database) and by the sample-data generator (whose positions table must be
exactly the fold of its trade log).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: collateral assets: (haircut, decimals of the amount)
ASSETS: dict[str, tuple[float, int]] = {
    "USD": (0.0, 2),
    "EUR": (0.02, 2),
    "GBP": (0.02, 2),
    "JPY": (0.03, 0),
    "USDT": (0.05, 6),
    "BTC": (0.20, 8),
    "ETH": (0.25, 8),
    "UST10Y": (0.04, 2),
    "BUND": (0.04, 2),
    "XAU": (0.15, 4),
}

#: the positions and collateral tables a book is read from (reconcile) and
#: trades are booked into (reconstruct)
SCHEMA = """
CREATE TABLE positions (
    account TEXT NOT NULL,
    instrument TEXT NOT NULL,
    qty REAL NOT NULL,
    avg_px REAL NOT NULL,
    realized_pnl REAL NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (account, instrument)
);
CREATE TABLE collateral (
    account TEXT NOT NULL,
    asset TEXT NOT NULL,
    amount REAL NOT NULL,
    haircut REAL NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (account, asset)
);
"""


@dataclass
class Position:
    """One row of ``positions`` without its key."""

    qty: float = 0.0
    avg_px: float = 0.0
    realized_pnl: float = 0.0
    updated_at: int = 0


def apply_trade(pos: Position, trade: dict[str, object], size_decimals: int) -> None:
    """Apply one trade to a position with average-cost accounting.

    Rounding (quantity to the lot decimals, price to 1e-6, P&L to cents) is
    part of the rule, so replaying the log reproduces the stored rows exactly.
    """
    q = float(trade["qty"])  # type: ignore[arg-type]
    px = float(trade["px"])  # type: ignore[arg-type]
    signed = q if trade["side"] == "buy" else -q
    old = pos.qty
    new_qty = round(old + signed, size_decimals)
    if old == 0.0 or (old > 0) == (signed > 0):
        pos.avg_px = round((abs(old) * pos.avg_px + q * px) / abs(new_qty), 6)
    else:
        closed = min(q, abs(old))
        direction = 1.0 if old > 0 else -1.0
        pos.realized_pnl = round(pos.realized_pnl + closed * (px - pos.avg_px) * direction, 2)
        if new_qty == 0.0:
            pos.avg_px = 0.0
        elif (new_qty > 0) != (old > 0):
            pos.avg_px = round(px, 6)
    pos.qty = new_qty
    pos.realized_pnl = round(pos.realized_pnl - float(trade["fee"]), 2)  # type: ignore[arg-type]
    pos.updated_at = microseconds_of(str(trade["ts"]))


def timestamp_of(us: int) -> str:
    """RFC 3339 UTC text (microseconds) of microseconds since the epoch, as journals carry."""
    return (EPOCH + timedelta(microseconds=us)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def microseconds_of(ts: str) -> int:
    """Microseconds since the epoch of a journal timestamp (inverse of :func:`timestamp_of`)."""
    return (datetime.fromisoformat(ts) - EPOCH) // timedelta(microseconds=1)
