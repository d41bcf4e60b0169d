"""reconstruct: a snapshot plus the proven journal, against positions computed independently."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from deltavault import api, sampledata
from deltavault.errors import RepositoryError, UserError
from deltavault.ledger.journal import Journal
from deltavault.ledger.names import JOURNAL_PREFIX
from deltavault.repo.repository import Repository
from deltavault.repo.snapshot import now_rfc3339
from deltavault.sampledata.trading import read_positions
from deltavault.trading.reconstruct import reconstruct
from tests.sources.helpers import cli, make_repo

SCALE, SEED = 0.005, 11


def independent_positions(trades: list[dict[str, Any]]) -> dict[tuple[str, str], list[float]]:
    """Average-cost positions written from the definition, not from deltavault's code.

    qty: signed sum. avg_px: weighted average of the side that opened the
    position; reset to the trade price when a trade flips the sign.
    realized: closed quantity × (px − avg) × direction, minus fees.
    """
    book: dict[tuple[str, str], list[float]] = {}
    for t in trades:
        qty, avg, pnl = book.get((t["account"], t["instrument"]), [0.0, 0.0, 0.0])
        signed = t["qty"] if t["side"] == "buy" else -t["qty"]
        new = qty + signed
        if qty == 0 or (qty > 0) == (signed > 0):
            avg = (abs(qty) * avg + t["qty"] * t["px"]) / abs(new)
        else:
            closed = min(t["qty"], abs(qty))
            pnl += closed * (t["px"] - avg) * (1 if qty > 0 else -1)
            if abs(new) < 1e-9:
                avg, new = 0.0, 0.0
            elif (new > 0) != (qty > 0):
                avg = t["px"]
        book[(t["account"], t["instrument"])] = [new, avg, pnl - t["fee"]]
    return book


def db_positions(db: Path) -> dict[tuple[str, str], tuple[float, float, float]]:
    con = sqlite3.connect(db)
    rows = con.execute("SELECT account, instrument, qty, avg_px, realized_pnl FROM positions")
    out = {(a, i): (q, p, r) for a, i, q, p, r in rows}
    con.close()
    return out


def read_log(state: Path) -> list[dict[str, Any]]:
    with (state / "logs" / "trades.jsonl").open() as f:
        return [json.loads(line) for line in f]


@pytest.fixture
def world(tmp_path: Path) -> tuple[Repository, Path, list[dict[str, Any]], list[str], int]:
    """A full snapshot of day 0, then day 1's trades journaled in three batches.

    Returns the repo, repo path, the whole trade log, the time after each
    batch, and the number of trades in the snapshot.
    """
    state = tmp_path / "state"
    sampledata.generate(state, scale=SCALE, seed=SEED)
    repo = make_repo(tmp_path / "repo")
    api.backup(repo, [state], snapshot_type="full")
    n0 = len(read_log(state))
    sampledata.mutate(state, day=1, seed=SEED)
    log = read_log(state)
    new = log[n0:]
    assert len(new) >= 30
    journal = Journal(repo.ledger, repo.crypto)
    times = []
    cut = len(new) // 3
    for batch in (new[:cut], new[cut : 2 * cut], new[2 * cut :]):
        journal.append(batch)
        times.append(now_rfc3339())
    # the live database applied every day-1 trade: the last reconstruction must equal it
    (tmp_path / "live.sqlite").write_bytes((state / "db" / "positions.sqlite").read_bytes())
    return repo, tmp_path, log, times, n0


def test_three_points_in_time(world: tuple[Repository, Path, list[dict[str, Any]],
                                           list[str], int]) -> None:
    repo, tmp, log, times, n0 = world
    cut = (len(log) - n0) // 3
    ends = [n0 + cut, n0 + 2 * cut, len(log)]
    for k, (at, end) in enumerate(zip(times, ends, strict=True)):
        result = reconstruct(repo, at, tmp / f"at{k}")
        assert result.applied == end - n0 and result.ignored == 0
        got = db_positions(result.database)
        expect = independent_positions(log[:end])
        assert set(got) == set(expect)
        for key, (q, p, r) in expect.items():
            gq, gp, gr = got[key]
            assert gq == pytest.approx(q, abs=1e-9), key
            assert gp == pytest.approx(p, rel=1e-6, abs=1e-6), key
            assert gr == pytest.approx(r, abs=0.01 * end), key
    live = read_positions(tmp / "live.sqlite")
    assert read_positions(tmp / "at2" / "state" / "db" / "positions.sqlite") == live
    kinds = [e["type"] for e in json.loads(cli(tmp / "repo", "ledger", "events", "--json").stdout)]
    assert kinds.count("reconstruct") == 3


def test_before_first_snapshot_and_nonempty_target(
        world: tuple[Repository, Path, list[dict[str, Any]], list[str], int]) -> None:
    repo, tmp, _log, times, _n0 = world
    with pytest.raises(UserError, match="no snapshot at or before"):
        reconstruct(repo, "2001-01-01T00:00:00Z", tmp / "x")
    (tmp / "busy").mkdir()
    (tmp / "busy" / "f").write_text("x")
    with pytest.raises(UserError, match="not an empty directory"):
        reconstruct(repo, times[0], tmp / "busy")


def test_tampered_journal_object_is_refused(
        world: tuple[Repository, Path, list[dict[str, Any]], list[str], int]) -> None:
    _repo, tmp, _log, times, _n0 = world
    events = json.loads(cli(tmp / "repo", "ledger", "events", "--json").stdout)
    last = [e["object"] for e in events if e["type"] == "journal"][-1]  # the third batch
    victim = next(p for p in (tmp / "repo").rglob("*") if p.name == last and p.is_file())
    assert JOURNAL_PREFIX.strip("/") in str(victim)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))
    res = cli(tmp / "repo", "reconstruct", "--at", times[2], "--target", str(tmp / "t"))
    assert res.exit_code == 13, res.output
    assert "journal object" in res.stderr
    assert not (tmp / "t").exists() or not any((tmp / "t").iterdir())
    # before the tampered batch, nothing needs it: still fine
    ok = cli(tmp / "repo", "reconstruct", "--at", times[0], "--target", str(tmp / "t0"), "--json")
    assert ok.exit_code == 0, ok.output


def test_tampered_ledger_entry_is_refused(
        world: tuple[Repository, Path, list[dict[str, Any]], list[str], int]) -> None:
    repo, tmp, _log, times, _n0 = world
    bundles = [p for p in (tmp / "repo" / "ledger" / "tile" / "entries").rglob("*") if p.is_file()]
    changed = 0
    for b in bundles:
        data = b.read_bytes()
        pos = data.find(b'"commitment":"')
        if pos >= 0:
            i = pos + len(b'"commitment":"')
            flipped = b"1" if data[i : i + 1] != b"1" else b"2"
            b.write_bytes(data[:i] + flipped + data[i + 1 :])
            changed += 1
    assert changed
    fresh = api.open(tmp / "repo", b"sources-test-password")
    with pytest.raises(RepositoryError):
        reconstruct(fresh, times[2], tmp / "t")
    del repo
