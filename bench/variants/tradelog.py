"""A large JSON-lines execution log, appended every day.

One line per fill, in the writer's own key order with decimals as strings
(as FIX-derived logs keep them): nanosecond timestamp, sequence number,
execution/order/client ids, account, venue, symbol, side, quantity, price,
notional, liquidity flag, fee, currency, strategy. ~300 bytes a line.
Timestamps rise through each session (09:30-16:00 UTC on a calendar day);
prices walk per symbol. ``state.json`` beside the log keeps the last sequence
number and session date, as a log shipper's checkpoint would.

One day of change: one more session of fills appended (about 1/20 of the
initial log), and ``state.json`` rewritten.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np

from variants.common import Change, rng, write_json

FIRST_SESSION = date(2026, 1, 5)
HISTORY_SESSIONS = 20
LINE_BYTES = 300
VENUES = ("XNAS", "XNYS", "ARCX", "BATS", "IEXG", "EDGX")
STRATEGIES = ("mm-1", "mm-3", "stat-arb-2", "momo-7", "hedge", "twap-exec")
ACCOUNTS = 240
SYMBOLS = 400


def _universe(seed: int, tag: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    g = rng(seed, tag, "symbols")
    letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    names = sorted({"".join(letters[g.integers(0, 26, int(g.integers(1, 5)))]) + str(i % 10)
                    for i in range(SYMBOLS)})
    base = (g.lognormal(np.log(8000), 1.0, len(names))).astype(np.int64) + 100  # cents
    weight = 1.0 / np.arange(1, len(names) + 1) ** 0.9
    return names, base, weight / weight.sum()


def session_lines(seed: int, tag: str, session: int, n: int, first_seq: int) -> list[str]:
    """The ``n`` fills of session number ``session`` (0 = the first day of history)."""
    names, base, weight = _universe(seed, tag)
    g = rng(seed, tag, "session", session)
    day = FIRST_SESSION + timedelta(days=session)
    t0 = int(datetime(day.year, day.month, day.day, 9, 30, tzinfo=UTC).timestamp()) * 10**9
    ts = t0 + np.sort(g.integers(0, 23_400 * 10**9, n))
    sym = g.choice(len(names), size=n, p=weight)
    steps = g.integers(-3, 4, n)
    order = np.argsort(sym, kind="stable")
    walk = np.cumsum(steps[order])
    starts = np.searchsorted(sym[order], np.arange(len(names)))
    group_base = np.concatenate([[0], walk])[starts][sym[order]]
    px = np.empty(n, dtype=np.int64)
    px[order] = walk - group_base
    px = np.maximum(base[sym] + px + session * 5, 1)
    qty = (g.geometric(0.02, n) * np.where(px > 20_000, 1, 100)).astype(np.int64)
    side = g.integers(0, 2, n)
    liq = g.random(n) < 0.6
    acct = g.integers(0, ACCOUNTS, n)
    venue = g.integers(0, len(VENUES), n)
    strat = g.integers(0, len(STRATEGIES), n)
    oid = g.integers(10**7, 10**8, n)
    ex = g.integers(0, 2**48, n)
    lines = []
    for i in range(n):
        t = int(ts[i])
        stamp = datetime.fromtimestamp(t // 10**9, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        p, q = int(px[i]), int(qty[i])
        notional = p * q
        fee = (-notional // 500) if liq[i] else (notional * 3 // 1000)
        lines.append(
            f'{{"ts":"{stamp}.{t % 10**9:09d}Z","seq":{first_seq + i},'
            f'"exec_id":"X{int(ex[i]):012X}","order_id":"O-{int(oid[i])}",'
            f'"clord_id":"{STRATEGIES[strat[i]]}-{day:%Y%m%d}-{i:07d}",'
            f'"acct":"ACC{int(acct[i]):04d}","venue":"{VENUES[venue[i]]}",'
            f'"sym":"{names[sym[i]]}","side":"{"BUY" if side[i] else "SELL"}",'
            f'"qty":"{q}","px":"{p // 100}.{p % 100:02d}",'
            f'"notional":"{notional // 100}.{notional % 100:02d}",'
            f'"liq":"{"ADD" if liq[i] else "REMOVE"}",'
            f'"fee":"{"-" if fee < 0 else ""}{abs(fee) // 10000}.{abs(fee) % 10000:04d}",'
            f'"ccy":"USD","strategy":"{STRATEGIES[strat[i]]}"}}\n')
    return lines


def lines_per_session(target_bytes: int) -> int:
    return max(50, target_bytes // LINE_BYTES // HISTORY_SESSIONS)


def generate(root: Path, seed: int, *, target_bytes: int, tag: str = "tradelog") -> None:
    """Write ``root/trades.jsonl`` (``HISTORY_SESSIONS`` sessions) and ``root/state.json``."""
    per = lines_per_session(target_bytes)
    root.mkdir(parents=True, exist_ok=True)
    seq = 1
    with (root / "trades.jsonl").open("w", encoding="ascii", newline="\n") as f:
        for s in range(HISTORY_SESSIONS):
            f.writelines(session_lines(seed, tag, s, per, seq))
            seq += per
    write_json(root / "state.json", {"next_seq": seq, "sessions": HISTORY_SESSIONS,
                                     "lines_per_session": per})


def mutate(root: Path, prefix: str, seed: int, day: int, *, tag: str = "tradelog") -> Change:
    """Append the next session to the log."""
    change = Change(day)
    state = json.loads((root / "state.json").read_text())
    per = int(state["lines_per_session"])
    with (root / "trades.jsonl").open("a", encoding="ascii", newline="\n") as f:
        f.writelines(session_lines(seed, tag, state["sessions"], per, state["next_seq"]))
    state.update(next_seq=state["next_seq"] + per, sessions=state["sessions"] + 1)
    write_json(root / "state.json", state)
    change.touch(f"{prefix}trades.jsonl")
    change.touch(f"{prefix}state.json")
    change.count("lines_appended", per)
    return change
