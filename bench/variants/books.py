"""Level-2 order books as many smallish float64 ``.npy`` files, one per instrument and day.

Layout as real L2 captures store it (LOBSTER and most vendor feeds): one row
per book snapshot, columns interleaved per level ``ask px, ask size, bid px,
bid size, ask px 2, ...`` — so a value's best predictor is the value four
columns (one level) or one row back, not the one before it. Files live at
``<root>/<VENUE>/<SYMBOL>/<YYYY-MM-DD>.npy``; ``<root>/instruments.json`` holds
the reference data (tick, lot, depth) the day's change needs.

Prices are the nearest doubles of decimal tick multiples (as a parser of a
decimal feed produces them); sizes are lot multiples; quotes persist between
snapshots with some probability, as they do in a real book.

One day of change:
- the current session file of ~30 % of instruments grows by 10–30 % more rows
  (a new header and a tail append);
- ~4 % of instruments start a new session file;
- ~2 % of all files get a vendor correction: every price in a window of
  10–30 % of the rows moves by one tick.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from variants.common import Change, load_npy, rng, save_npy, write_json

VENUES = ("XNAS", "XNYS", "ARCX", "XCME", "XEUR", "XLON", "XTKS", "BNCE", "CBSE", "OKXE")
# (tick, decimals of the tick, lot, decimals of the lot, typical price in ticks)
TICKS = ((0.01, 2, 1.0, 0, 15_000), (0.25, 2, 1.0, 0, 18_000), (0.5, 1, 1.0, 0, 9_000),
         (0.015625, 6, 1.0, 0, 7_000), (0.1, 1, 0.001, 3, 600_000), (0.01, 2, 0.01, 2, 300_000),
         (0.0001, 4, 1000.0, 0, 11_000), (5.0, 0, 1.0, 0, 8_000))
DEPTHS = (5, 10, 10, 20)
FIRST_DAY = date(2026, 3, 2)
APPEND_SHARE, SESSION_SHARE, CORRECTION_SHARE = 0.30, 0.04, 0.02


@dataclass(frozen=True)
class Instrument:
    """Reference data of one instrument (kept in ``instruments.json``)."""

    venue: str
    symbol: str
    tick: float
    tick_decimals: int
    lot: float
    lot_decimals: int
    levels: int
    start_ticks: int

    @property
    def dir(self) -> str:
        return f"{self.venue}/{self.symbol}"


def universe(seed: int, n: int, tag: str) -> list[Instrument]:
    """``n`` instruments with varied ticks, lots and depths."""
    g = rng(seed, tag, "universe")
    out = []
    letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    for i in range(n):
        tick, tdec, lot, ldec, typical = TICKS[int(g.integers(len(TICKS)))]
        sym = "".join(letters[g.integers(0, 26, int(g.integers(3, 6)))]) + f"{i:03d}"
        out.append(Instrument(VENUES[int(g.integers(len(VENUES)))], sym, tick, tdec, lot, ldec,
                              DEPTHS[int(g.integers(len(DEPTHS)))],
                              int(typical * g.uniform(0.5, 1.5))))
    return out


def simulate(g: np.random.Generator, ins: Instrument, rows: int, mid: int) -> np.ndarray:
    """``rows`` snapshots starting at mid price ``mid`` (ticks), interleaved columns."""
    lv = ins.levels
    steps = g.choice(np.array([-2, -1, 0, 0, 0, 0, 1, 2]), size=rows)
    mids = np.maximum(mid + np.cumsum(steps), lv * 4 + 10)
    spread = _persist(g, g.choice(np.array([1, 1, 1, 2, 3]), size=(rows, 1)), 0.8)
    gaps = _persist(g, g.choice(np.array([1, 1, 1, 1, 2, 3]), size=(rows, lv)), 0.75)
    gaps[:, 0] = 0
    depth = np.cumsum(gaps, axis=1)
    bid_t = mids[:, None] - depth
    ask_t = mids[:, None] + spread + depth
    lots_a = _persist(g, g.geometric(0.03, size=(rows, lv)), 0.5)
    lots_b = _persist(g, g.geometric(0.03, size=(rows, lv)), 0.5)
    out = np.empty((rows, 4 * lv), dtype=np.float64)
    out[:, 0::4] = np.round(ask_t * ins.tick, ins.tick_decimals)
    out[:, 1::4] = np.round(lots_a * ins.lot, ins.lot_decimals)
    out[:, 2::4] = np.round(bid_t * ins.tick, ins.tick_decimals)
    out[:, 3::4] = np.round(lots_b * ins.lot, ins.lot_decimals)
    return out


def _persist(g: np.random.Generator, fresh: np.ndarray, keep: float) -> np.ndarray:
    """Each cell keeps the value of the row above with probability ``keep``."""
    rows = fresh.shape[0]
    changed = g.random(fresh.shape) >= keep
    changed[0] = True
    idx = np.where(changed, np.arange(rows)[:, None], 0)
    np.maximum.accumulate(idx, axis=0, out=idx)
    return np.take_along_axis(fresh, idx, axis=0)


def last_mid(ins: Instrument, book: np.ndarray) -> int:
    """The mid price (ticks, bid side) of a book's last snapshot, to continue its walk."""
    return int(np.rint(book[-1, 2] / ins.tick))


def _rows(g: np.random.Generator, mean_rows: int) -> int:
    return int(np.clip(g.lognormal(np.log(mean_rows), 0.5), 40, 20 * mean_rows))


def generate(root: Path, seed: int, *, instruments: int, sessions: int, mean_rows: int,
             tag: str = "books") -> None:
    """Write ``sessions`` day files for each of ``instruments`` instruments under ``root``."""
    insts = universe(seed, instruments, tag)
    write_json(root / "instruments.json", {"instruments": [asdict(i) for i in insts]})
    for i, ins in enumerate(insts):
        g = rng(seed, tag, "history", i)
        mid = ins.start_ticks
        for s in range(sessions):
            book = simulate(g, ins, _rows(g, mean_rows), mid)
            save_npy(root / ins.dir / f"{FIRST_DAY + timedelta(days=s)}.npy", book)
            mid = last_mid(ins, book)


def mutate(root: Path, prefix: str, seed: int, day: int, *, mean_rows: int,
           tag: str = "books") -> Change:
    """Apply one day of change (see the module docstring) to the books under ``root``."""
    change = Change(day)
    doc = json.loads((root / "instruments.json").read_text())
    insts = [Instrument(**d) for d in doc["instruments"]]
    g = rng(seed, tag, "day", day)
    for ins in insts:
        sessions = sorted((root / ins.dir).glob("*.npy"))
        current = sessions[-1]
        if g.random() < APPEND_SHARE:
            book = load_npy(current)
            more = simulate(g, ins, max(1, int(len(book) * g.uniform(0.1, 0.3))),
                            last_mid(ins, book))
            save_npy(current, np.concatenate([book, more]))
            change.touch(f"{prefix}{ins.dir}/{current.name}")
            change.count("books_appended")
        if g.random() < SESSION_SHARE:
            book = load_npy(current)
            new_day = date.fromisoformat(current.stem) + timedelta(days=1)
            path = root / ins.dir / f"{new_day}.npy"
            save_npy(path, simulate(g, ins, _rows(g, mean_rows), last_mid(ins, book)))
            change.touch(f"{prefix}{ins.dir}/{path.name}")
            change.count("sessions_added")
    files = sorted(p for p in root.rglob("*.npy"))
    picks = np.flatnonzero(g.random(len(files)) < CORRECTION_SHARE)
    if len(picks) == 0 and files:
        picks = np.array([int(g.integers(len(files)))])
    by_dir = {ins.dir: ins for ins in insts}
    for k in picks.tolist():
        path = files[k]
        ins = by_dir[path.parent.relative_to(root).as_posix()]
        book = load_npy(path)
        n = len(book)
        width = max(1, int(n * g.uniform(0.1, 0.3)))
        start = int(g.integers(0, max(1, n - width + 1)))
        shift = float(g.choice(np.array([-1.0, 1.0]))) * ins.tick
        window = book[start:start + width]
        window[:, 0::2] = np.round(window[:, 0::2] + shift, ins.tick_decimals)
        save_npy(path, book)
        change.touch(f"{prefix}{path.relative_to(root).as_posix()}")
        change.count("books_corrected")
    return change
