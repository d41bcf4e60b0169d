"""Deterministic sample trading state, and days of change applied to it.

One generator serves two masters: ``deltavault demo-data`` and the demo
script use a small scale so that a newcomer sees realistic files, and the
benchmark uses scale 1 (about 600 MiB) so that the figures against restic
and borg come from the kind of state deltavault is built for. The workload
is specified in ``BENCHMARK.md``; this module is its single implementation.

Everything is a pure function of ``(seed, scale)`` for :func:`generate` and
of ``(seed, day)`` plus the current state for :func:`mutate`, so two machines
benchmark the same bytes.

Layout::

    orderbooks/<VENUE>/<INSTRUMENT>.npy   float64 (n, 10, 4): bid px, bid sz, ask px, ask sz
    db/positions.sqlite                   positions + collateral, primary keys
    models/<name>/layer<k>.npy            float32 layers
    logs/trades.jsonl                     one trade per line, append-only
    config/*.json, config/*.toml          reference data, risk limits, venues, engine
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from deltavault.sampledata import arrays, config, trading

MiB = 1 << 20
#: Bytes of each part at scale 1 (the SQLite and log sizes follow from row counts).
BOOK_BYTES = 340 * MiB
MODEL_BYTES = 150 * MiB
POSITIONS_ROWS = 380_000
TRADES = 420_000
#: Share of order-book instruments that get new snapshots each day.
BOOK_SHARE = 0.15
#: Share of positions that trade each day, and share of new (account, instrument) pairs.
TRADED_SHARE = 0.03
NEW_PAIR_SHARE = 0.004
MODELS = {"alpha_transformer": (12, 512, 0.7), "risk_factor_mlp": (4, 256, 0.3)}
PARTS = ("orderbooks", "sqlite", "model", "tradelog", "config")

# (venue, root, price decimals, tick units, size decimals, lot units, reference price)
BOOK_ROOTS = (
    ("CME", "ES", 2, 25, 0, 1, 4800.0),
    ("CME", "NQ", 2, 25, 0, 1, 16800.0),
    ("CME", "CL", 2, 1, 0, 1, 72.5),
    ("CME", "GC", 1, 1, 0, 1, 2050.0),
    ("CBOT", "ZN", 6, 15625, 0, 1, 110.5),
    ("EUREX", "FDAX", 1, 5, 0, 1, 16750.0),
    ("EUREX", "FESX", 0, 1, 0, 1, 4520.0),
    ("EUREX", "FGBL", 2, 1, 0, 1, 136.2),
    ("BINANCE", "BTCUSDT", 2, 1, 5, 1, 43150.0),
    ("BINANCE", "ETHUSDT", 2, 1, 4, 1, 2280.0),
    ("BINANCE", "SOLUSDT", 2, 1, 2, 1, 98.0),
)
FUTURE_MONTHS = "HMUZ"


@dataclass(frozen=True)
class StateManifest:
    """What :func:`generate` wrote.

    Attributes:
        root: the state directory.
        scale: the scale it was generated at (1 ≈ 600 MiB).
        seed: the seed it was generated from.
        part_bytes: bytes on disk per part (orderbooks, sqlite, model, tradelog, config).
        files: number of files written.
    """

    root: Path
    scale: float
    seed: int
    part_bytes: dict[str, int]
    files: int

    @property
    def total_bytes(self) -> int:
        """Bytes of every file of the state."""
        return sum(self.part_bytes.values())

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        d = asdict(self)
        d["root"] = str(self.root)
        d["total_bytes"] = self.total_bytes
        return d


@dataclass(frozen=True)
class ChangeSummary:
    """What one :func:`mutate` day changed, so tests and the benchmark can check it.

    Attributes:
        day: the day applied (1 is the first day after generation).
        changed_files: relative POSIX paths of every file written or appended.
        books_moved: order-book files whose prices all moved.
        positions_updated / positions_inserted: rows of ``positions``.
        collateral_updated / collateral_inserted: rows of ``collateral``.
        layers_tuned: model layer files that were fine-tuned.
        trades_appended: lines appended to the trade log.
        config_change: ``(file, dotted key, old, new)`` of the one config value changed.
    """

    day: int
    changed_files: tuple[str, ...]
    books_moved: tuple[str, ...]
    positions_updated: int
    positions_inserted: int
    collateral_updated: int
    collateral_inserted: int
    layers_tuned: tuple[str, ...]
    trades_appended: int
    config_change: tuple[str, str, object, object]
    extra: dict[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return asdict(self)


def part_of(relpath: str) -> str:
    """The benchmark part a state file belongs to, from its relative path."""
    top = relpath.split("/", 1)[0]
    return {"orderbooks": "orderbooks", "db": "sqlite", "models": "model",
            "logs": "tradelog"}.get(top, "config")


def generate(root: Path, *, scale: float = 0.01, seed: int = 0) -> StateManifest:
    """Create a fresh trading state under ``root`` (which must not hold one yet).

    Args:
        root: directory to fill; created if missing.
        scale: 1 gives about 600 MiB; 0.01 (the default) about 6 MiB.
        seed: the same seed and scale give byte-identical files.

    Returns:
        The manifest of what was written.
    """
    if scale <= 0:
        raise ValueError("scale must be positive")
    if (root / "config" / "instruments.json").exists():
        raise FileExistsError(f"{root} already holds a sample state")
    root.mkdir(parents=True, exist_ok=True)
    instruments = _universe(np.random.default_rng([seed, 1]), scale)
    config.write_reference(root, instruments)
    config.write_settings(root, instruments, np.random.default_rng([seed, 2]))
    _write_books(root, instruments, scale, np.random.default_rng([seed, 3]))
    _write_models(root, scale, np.random.default_rng([seed, 4]))
    _write_trading(root, instruments, scale, np.random.default_rng([seed, 5]))
    return manifest(root, scale=scale, seed=seed)


def manifest(root: Path, *, scale: float, seed: int) -> StateManifest:
    """The manifest of the state currently under ``root``."""
    part_bytes = dict.fromkeys(PARTS, 0)
    files = 0
    for p in sorted(root.rglob("*")):
        if p.is_file():
            part_bytes[part_of(p.relative_to(root).as_posix())] += p.stat().st_size
            files += 1
    return StateManifest(root, scale, seed, part_bytes, files)


def mutate(root: Path, *, day: int, seed: int = 0) -> ChangeSummary:
    """Apply one day of change to a state made by :func:`generate`.

    Days are meant to be applied in order 1, 2, 3...; each is deterministic
    from ``(seed, day)`` and the state it starts from.
    """
    if day < 1:
        raise ValueError("day must be >= 1 (day 0 is generate)")
    instruments = trading.load_instruments(root)
    changed: list[str] = []
    books = _move_books(root, instruments, np.random.default_rng([seed, day, 3]))
    layers = _tune_models(root, np.random.default_rng([seed, day, 4]))
    trades, db = _trade_day(root, instruments, day, np.random.default_rng([seed, day, 5]))
    cfg = config.change_one_value(root, np.random.default_rng([seed, day, 2]))
    changed += books + layers + ["db/positions.sqlite", "logs/trades.jsonl", cfg[0]]
    return ChangeSummary(
        day=day,
        changed_files=tuple(sorted(changed)),
        books_moved=tuple(books),
        positions_updated=db.positions_updated,
        positions_inserted=db.positions_inserted,
        collateral_updated=db.collateral_updated,
        collateral_inserted=db.collateral_inserted,
        layers_tuned=tuple(layers),
        trades_appended=trades,
        config_change=cfg,
    )


# --- generation ---------------------------------------------------------------


def _universe(rng: np.random.Generator, scale: float) -> list[trading.Instrument]:
    """Instruments with books (futures and crypto) plus cash equities without."""
    n_books = min(64, max(6, round(48 * math.sqrt(scale))))
    out = []
    for k in range(n_books):
        venue, root, pd, tick, sd, lot, ref = BOOK_ROOTS[k % len(BOOK_ROOTS)]
        series = k // len(BOOK_ROOTS)
        if venue == "BINANCE":
            symbol = root if series == 0 else f"{root}-PERP" if series == 1 else f"{root}-Q{series}"
        else:
            symbol = f"{root}{FUTURE_MONTHS[series % 4]}{5 + series // 4}"
        ref_px = ref * (1.0 + 0.004 * series)
        ref_ticks = round(ref_px * 10**pd / tick)
        out.append(trading.Instrument(venue, symbol, pd, tick, sd, lot, ref_ticks, True))
    n_equities = max(20, round(1500 * math.sqrt(scale)))
    letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    seen: set[str] = set()
    while len(seen) < n_equities:
        symbol = "".join(rng.choice(letters, size=int(rng.integers(2, 5))))
        if symbol in seen:
            continue
        seen.add(symbol)
        venue = "XNAS" if rng.random() < 0.5 else "XNYS"
        ref_ticks = round(float(rng.lognormal(4.0, 1.0)) * 100) + 100
        out.append(trading.Instrument(venue, symbol, 2, 1, 0, 1, ref_ticks, False))
    return out


def _write_books(root: Path, instruments: list[trading.Instrument], scale: float,
                 rng: np.random.Generator) -> None:
    booked = [i for i in instruments if i.has_book]
    per_file = max(8, round(BOOK_BYTES * scale / len(booked) / arrays.SNAPSHOT_BYTES))
    for ins in booked:
        n = int(per_file * rng.uniform(0.7, 1.3))
        book = arrays.make_book(rng, ins, n)
        arrays.save_array(root / "orderbooks" / ins.venue / f"{ins.symbol}.npy", book)


def _write_models(root: Path, scale: float, rng: np.random.Generator) -> None:
    for name, (n_layers, width, share) in MODELS.items():
        for k, shape in enumerate(arrays.layer_shapes(int(MODEL_BYTES * scale * share),
                                                      n_layers, width)):
            arrays.save_array(root / "models" / name / f"layer{k}.npy",
                              arrays.make_layer(rng, shape))


def _write_trading(root: Path, instruments: list[trading.Instrument], scale: float,
                   rng: np.random.Generator) -> None:
    """Trade history, then positions as its fold, then collateral."""
    n_pairs = max(200, round(POSITIONS_ROWS * scale))
    n_accounts = max(10, round(n_pairs / 40))
    accounts = [f"ACC-{k:06d}" for k in range(n_accounts)]
    grid = len(accounts) * len(instruments)
    cells = np.unique(rng.integers(0, grid, int(n_pairs * 1.3)))
    cells = rng.permutation(cells)[:n_pairs]
    pairs = [(accounts[int(c) // len(instruments)], instruments[int(c) % len(instruments)])
             for c in np.sort(cells)]
    n_trades = max(len(pairs), round(TRADES * scale))
    extra = rng.zipf(1.6, n_trades - len(pairs)) % len(pairs)
    index = rng.permutation(np.concatenate([np.arange(len(pairs)), extra]))
    start = trading.BASE_TIME_US - 30 * trading.DAY_US
    ts = np.sort(rng.integers(start, trading.BASE_TIME_US, len(index)))
    trades = trading.make_trades(rng, pairs, index, ts, first_id=1)
    log = root / "logs" / "trades.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.unlink(missing_ok=True)
    trading.append_trades(log, trades)
    decimals = {i.symbol: i.size_decimals for i in instruments}
    positions = trading.fold_trades(trades, decimals)
    collateral = trading.make_collateral(rng, accounts, trading.BASE_TIME_US)
    trading.create_database(root / "db" / "positions.sqlite", positions, collateral)


# --- one day of change ------------------------------------------------------------


def _move_books(root: Path, instruments: dict[str, trading.Instrument],
                rng: np.random.Generator) -> list[str]:
    files = sorted(p.relative_to(root).as_posix() for p in (root / "orderbooks").rglob("*.npy"))
    n = max(1, round(BOOK_SHARE * len(files)))
    chosen = sorted(files[int(k)] for k in rng.choice(len(files), size=n, replace=False))
    for rel in chosen:
        ins = instruments[Path(rel).stem]
        book = arrays.load_array(root / rel)
        arrays.save_array(root / rel, arrays.move_book(rng, ins, book))
    return chosen


def _tune_models(root: Path, rng: np.random.Generator) -> list[str]:
    files = sorted(p.relative_to(root).as_posix() for p in (root / "models").rglob("*.npy"))
    n = int(rng.integers(1, 3))
    chosen = sorted(files[int(k)] for k in rng.choice(len(files), size=n, replace=False))
    for rel in chosen:
        arrays.save_array(root / rel, arrays.fine_tune(rng, arrays.load_array(root / rel)))
    return chosen


def _trade_day(root: Path, instruments: dict[str, trading.Instrument], day: int,
               rng: np.random.Generator) -> tuple[int, trading.DbChange]:
    """Trades on a few % of existing positions and some new pairs, logged then booked."""
    db = root / "db" / "positions.sqlite"
    existing = sorted(trading.read_positions(db))
    symbols = sorted(instruments)
    accounts = sorted({a for a, _ in existing})
    held = set(existing)
    n_old = max(1, round(TRADED_SHARE * len(existing)))
    keys = [existing[int(k)] for k in rng.choice(len(existing), size=n_old, replace=False)]
    for _ in range(max(1, round(NEW_PAIR_SHARE * len(existing)))):
        key = (accounts[int(rng.integers(len(accounts)))], symbols[int(rng.integers(len(symbols)))])
        if key not in held:
            held.add(key)
            keys.append(key)
    pairs = [(a, instruments[s]) for a, s in keys]
    index = rng.permutation(len(pairs))
    start = trading.BASE_TIME_US + (day - 1) * trading.DAY_US
    ts = np.sort(rng.integers(start + 3_600_000_000 * 8, start + 3_600_000_000 * 17, len(pairs)))
    last_id = int(str(trading.last_trade(root / "logs" / "trades.jsonl")["trade_id"])[1:])
    trades = trading.make_trades(rng, pairs, index, ts, first_id=last_id + 1)
    trading.append_trades(root / "logs" / "trades.jsonl", trades)
    decimals = {s: i.size_decimals for s, i in instruments.items()}
    change = trading.apply_day_to_database(db, rng, trades, decimals, int(ts[-1]))
    return len(trades), change
