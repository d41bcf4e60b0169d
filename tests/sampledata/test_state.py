"""The sample trading state is deterministic and each day changes what the benchmark says."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from deltavault import sampledata as sd
from deltavault.sampledata import config, trading

SCALE = 0.01


def tree_digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def day0(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("state") / "s"
    sd.generate(root, scale=SCALE, seed=7)
    return root


@pytest.fixture(scope="module")
def day1(day0: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, sd.ChangeSummary]:
    root = tmp_path_factory.mktemp("state1") / "s"
    shutil.copytree(day0, root)
    return root, sd.mutate(root, day=1, seed=7)


def test_same_seed_same_bytes_other_seed_other_bytes(day0: Path, tmp_path: Path) -> None:
    sd.generate(tmp_path / "a", scale=SCALE, seed=7)
    sd.generate(tmp_path / "b", scale=SCALE, seed=8)
    assert tree_digest(tmp_path / "a") == tree_digest(day0)
    other = tree_digest(tmp_path / "b")
    assert all(other[k] != v for k, v in tree_digest(day0).items() if k.endswith(".npy"))


def test_mutate_is_deterministic(day0: Path, day1: tuple[Path, sd.ChangeSummary],
                                 tmp_path: Path) -> None:
    shutil.copytree(day0, tmp_path / "s")
    summary = sd.mutate(tmp_path / "s", day=1, seed=7)
    assert summary == day1[1]
    assert tree_digest(tmp_path / "s") == tree_digest(day1[0])


def test_layout_and_parts(day0: Path) -> None:
    m = sd.manifest(day0, scale=SCALE, seed=7)
    assert set(m.part_bytes) == set(sd.PARTS)
    assert all(v > 0 for v in m.part_bytes.values())
    # order books are the biggest part, then the model, as at scale 1
    assert m.part_bytes["orderbooks"] > m.part_bytes["model"] > m.part_bytes["tradelog"]
    assert list(day0.glob("orderbooks/*/*.npy"))
    assert list(day0.glob("models/*/layer*.npy"))
    assert list(day0.glob("config/*.toml")) and list(day0.glob("config/*.json"))


def test_size_scales(day0: Path, tmp_path: Path) -> None:
    small = sd.manifest(day0, scale=SCALE, seed=7).total_bytes
    big = sd.generate(tmp_path / "big", scale=SCALE * 4, seed=7).total_bytes
    assert 3.0 < big / small < 5.0
    assert 4 << 20 < small < 8 << 20  # scale 1 is ~600 MiB


def test_books_on_tick_and_uncrossed(day0: Path) -> None:
    instruments = trading.load_instruments(day0)
    for path in day0.glob("orderbooks/*/*.npy"):
        ins = instruments[path.stem]
        book = np.load(path)
        assert book.dtype == np.float64 and book.shape[1:] == (10, 4)
        for col in (0, 2):
            assert np.array_equal(ins.prices(ins.ticks(book[:, :, col])), book[:, :, col])
        assert (book[:, 0, 0] < book[:, 0, 2]).all()
        assert (np.diff(book[:, :, 0], axis=1) < 0).all()


def test_moved_books_every_price_moved_on_tick(day0: Path,
                                               day1: tuple[Path, sd.ChangeSummary]) -> None:
    root, summary = day1
    instruments = trading.load_instruments(root)
    assert summary.books_moved
    for rel in summary.books_moved:
        ins = instruments[Path(rel).stem]
        old, new = np.load(day0 / rel), np.load(root / rel)
        assert old.shape == new.shape
        for col in (0, 2):
            moved = ins.ticks(new[:, :, col]) - ins.ticks(old[:, :, col])
            assert (moved != 0).all() and (np.abs(moved) <= 3).all()
            assert np.array_equal(ins.prices(ins.ticks(new[:, :, col])), new[:, :, col])
    untouched = set(p.relative_to(day0).as_posix() for p in day0.glob("orderbooks/*/*.npy"))
    for rel in untouched - set(summary.books_moved):
        assert (day0 / rel).read_bytes() == (root / rel).read_bytes()


def test_sqlite_few_percent_rows_changed(day0: Path, day1: tuple[Path, sd.ChangeSummary]) -> None:
    root, summary = day1
    db = root / "db" / "positions.sqlite"
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    before = trading.read_positions(day0 / "db" / "positions.sqlite")
    after = trading.read_positions(db)
    changed = sum(1 for k, v in before.items() if after[k] != v)
    inserted = len(after) - len(before)
    assert changed == summary.positions_updated
    assert inserted == summary.positions_inserted > 0
    assert 0.01 < changed / len(before) < 0.06
    assert summary.collateral_updated > 0
    assert not list(root.glob("db/*-wal")) and not list(root.glob("db/*-journal"))


def test_one_or_two_layers_fine_tuned(day0: Path, day1: tuple[Path, sd.ChangeSummary]) -> None:
    root, summary = day1
    assert len(summary.layers_tuned) in (1, 2)
    for path in day0.glob("models/*/*.npy"):
        rel = path.relative_to(day0).as_posix()
        old, new = np.load(path), np.load(root / rel)
        if rel in summary.layers_tuned:
            assert new.dtype == np.float32
            rel_change = np.abs(new / old - 1)
            assert (new != old).all()
            assert rel_change.max() < 2e-4 and np.median(rel_change) > 5e-5
        else:
            assert path.read_bytes() == (root / rel).read_bytes()


def test_trade_log_only_appended(day0: Path, day1: tuple[Path, sd.ChangeSummary]) -> None:
    root, summary = day1
    old = (day0 / "logs" / "trades.jsonl").read_bytes()
    new = (root / "logs" / "trades.jsonl").read_bytes()
    assert new.startswith(old)
    assert new[len(old):].count(b"\n") == summary.trades_appended > 0
    fields = {"instrument", "account", "side", "qty", "px", "fee", "ts", "trade_id"}
    assert set(trading.last_trade(root / "logs" / "trades.jsonl")) == fields


def test_config_one_value_changed(day0: Path, day1: tuple[Path, sd.ChangeSummary]) -> None:
    root, summary = day1
    diffs = []
    for path in sorted(day0.glob("config/*")):
        a = config.flatten(config.load(path))
        b = config.flatten(config.load(root / path.relative_to(day0)))
        assert a.keys() == b.keys()
        diffs += [(path.name, k, a[k], b[k]) for k in a if a[k] != b[k]]
    file, key, old, new = summary.config_change
    assert diffs == [(Path(file).name, key, old, new)]


def test_positions_are_the_fold_of_the_trade_log(day0: Path, tmp_path: Path) -> None:
    root = tmp_path / "s"
    shutil.copytree(day0, root)
    db = root / "db" / "positions.sqlite"
    assert trading.replay_positions(root) == trading.read_positions(db)
    for day in (1, 2, 3):
        sd.mutate(root, day=day, seed=7)
    replayed = trading.replay_positions(root)
    assert replayed == trading.read_positions(db)


def test_part_of() -> None:
    assert sd.part_of("orderbooks/CME/ESH5.npy") == "orderbooks"
    assert sd.part_of("db/positions.sqlite") == "sqlite"
    assert sd.part_of("models/x/layer0.npy") == "model"
    assert sd.part_of("logs/trades.jsonl") == "tradelog"
    assert sd.part_of("config/engine.toml") == "config"


def test_generate_refuses_existing_state(day0: Path) -> None:
    with pytest.raises(FileExistsError):
        sd.generate(day0, scale=SCALE)
