"""prune repacks and reclaims space without losing a blob, a delta base or a pack list's meaning."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from deltavault import api
from deltavault.ops.forget import forget_snapshots
from deltavault.ops.prune import run_prune
from deltavault.ops.view import reachable_blobs
from deltavault.repo.indexset import read_all
from deltavault.repo.repository import Repository
from deltavault.store.local import LocalStore
from deltavault.store.testing import Crash, CrashingStore
from tests.support.cli import PASSWORD
from tests.support.history import History, assert_sound, build_history
from tests.support.trees import manifest


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> History:
    return build_history(tmp_path_factory.mktemp("history"))


@pytest.fixture
def forgotten(template: History, tmp_path: Path) -> History:
    """The history with its 4 oldest snapshots forgotten (not yet pruned)."""
    h = template.copy_to(tmp_path / "repo")
    repo = h.open()
    with repo.lock(exclusive=True):
        forget_snapshots(repo, api.snapshots(repo)[:4], "test")
    return h


def _files(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()
            and "locks" not in p.parts}


def _depths(repo: Repository) -> dict[bytes, int]:
    repo.load_index(force=True)
    needed = reachable_blobs(repo, api.snapshots(repo))
    return {b: repo.depth_of(repo.locate(b)) for b in needed}


def _data_bytes(h: History) -> int:
    return sum(p.stat().st_size for p in (h.repo / "data").rglob("*") if p.is_file())


def test_repack_reclaims_space_and_every_snapshot_restores(forgotten: History,
                                                           tmp_path: Path) -> None:
    repo = forgotten.open()
    before = _depths(repo)
    assert any(d > 0 for d in before.values()), "the history has no delta blobs to keep"
    size_before = _data_bytes(forgotten)
    result = api.prune(repo)
    assert result.packs_repacked > 0 and result.bytes_reclaimed > 0
    assert _data_bytes(forgotten) == size_before - result.bytes_reclaimed
    # every kept pack is at most 5% unused now (what is left is pack headers)
    assert result.unused_after <= 0.05 * (size_before - result.bytes_reclaimed)
    after = _depths(forgotten.open())
    assert after.keys() == before.keys()
    worse = {b for b in after if after[b] > before[b]}
    assert not worse, "a kept blob's delta chain got longer (docs/format.md §7.1)"
    assert assert_sound(forgotten, tmp_path / "out", read_data=True) == 3
    again = api.prune(forgotten.open())  # nothing left to do
    assert again.packs_removed == 0 and again.packs_repacked == 0


def test_dry_run_reports_and_changes_nothing(forgotten: History) -> None:
    files = _files(forgotten.repo)
    dry = api.prune(forgotten.open(), dry_run=True)
    assert _files(forgotten.repo) == files
    assert dry.dry_run and dry.packs_repacked > 0 and dry.bytes_reclaimed > 0
    real = api.prune(forgotten.open())
    assert (real.packs_removed, real.packs_repacked, real.bytes_removed) == \
        (dry.packs_removed, dry.packs_repacked, dry.bytes_removed)
    # the new packs' size is estimated (re-encoded blobs from their chains' roots)
    assert abs(real.bytes_written - dry.bytes_written) <= 0.25 * real.bytes_written + 8192


def test_max_unused_and_max_repack_size(forgotten: History, tmp_path: Path) -> None:
    never = api.prune(forgotten.open(), max_unused=1.0, dry_run=True)
    assert never.packs_repacked == 0
    full = api.prune(forgotten.open(), dry_run=True)
    assert full.packs_repacked >= 2
    budget = full.bytes_repacked - 1  # at least one candidate does not fit
    part = api.prune(forgotten.open(), max_repack_size=budget)
    assert 0 < part.packs_repacked < full.packs_repacked and part.bytes_repacked <= budget
    rest = api.prune(forgotten.open())  # the next run repacks the rest
    assert rest.packs_repacked > 0
    assert_sound(forgotten, tmp_path / "out")


def test_new_index_is_several_bounded_files(forgotten: History, tmp_path: Path) -> None:
    repo = forgotten.open()
    with repo.lock(exclusive=True):
        result = run_prune(repo, max_index_records=10)
    files = read_all(forgotten.open())
    assert len(files) == result.indexes_written > 2
    # one pack's records are never split: a file exceeds the bound by at most one pack
    assert all(len(f.records) <= 10 + int(np.bincount(f.records["pack"]).max())
               for _, f in files)
    packs = [p for _, f in files for p in f.pack_ids]
    assert len(packs) == len(set(packs))
    assert sum(bool(f.supersedes) for _, f in files) == 1  # only the last names the old ones
    assert_sound(forgotten, tmp_path / "out")


def test_a_crash_at_every_write_leaves_a_sound_repository(forgotten: History,
                                                         tmp_path: Path) -> None:
    """Power cut before each store write of a repacking prune; the next prune finishes."""
    probe = forgotten.copy_to(tmp_path / "probe")
    counter = CrashingStore(LocalStore(probe.repo), 1 << 30)
    run_prune(Repository.open(counter, PASSWORD.encode()))
    writes = counter.writes
    assert writes > 10
    interrupted = 0
    for limit in sorted({*range(0, writes, max(1, writes // 12)), writes - 1}):
        trial = forgotten.copy_to(tmp_path / f"crash-{limit}")
        crashing = Repository.open(CrashingStore(LocalStore(trial.repo), limit),
                                   PASSWORD.encode())
        with pytest.raises(Crash):
            run_prune(crashing)
        report = api.check(trial.open())
        assert report.ok, (limit, [p.to_dict() for p in report.problems])
        interrupted += bool(report.interrupted_prunes)
        assert_sound(trial, tmp_path / "out")
        finished = api.prune(trial.open())
        assert finished.finished_runs == report.interrupted_prunes
        after = api.check(trial.open())
        assert after.ok and not after.interrupted_prunes and not after.unreferenced_packs
        assert_sound(trial, tmp_path / "out")
        shutil.rmtree(trial.repo)
    assert interrupted > 0, "no crash landed between the start and the completion event"


def test_a_listed_pack_that_holds_only_a_freed_base_is_deleted(tmp_path: Path) -> None:
    """Re-encoding frees a base whose pack a live pack list names: the pack goes, with its move.

    Day 2 stores its file as a delta on day 1's, so day 2's pack list names
    day 1's pack. Once day 1 is forgotten, prune re-encodes day 2's blob
    self-contained and nothing in day 1's pack is needed: keeping that pack
    (the index no longer names it) left a pack no index names for every
    later ``check`` to report, and its bytes were never reclaimed.
    """
    src = tmp_path / "src"
    src.mkdir()
    data = bytearray(np.random.default_rng(5).bytes(48 * 1024))
    (src / "book.bin").write_bytes(data)
    repo = api.init(tmp_path / "repo", PASSWORD.encode(), pack_size=64 * 1024,
                    kdf_memory_kib=8192, kdf_time_cost=1)
    first = api.backup(repo, [src], snapshot_type="full").snapshot
    data[100:108] = b"modified"
    (src / "book.bin").write_bytes(data)
    second = api.backup(repo, [src]).snapshot
    assert second.summary["delta_blobs"] == 1
    listed = set((tmp_path / "repo" / "packlists" / second.id).read_text().split()[3:])
    first_packs = set((tmp_path / "repo" / "packlists" / first.id).read_text().split()[3:])
    assert first_packs <= listed, "day 2's pack list does not name its base's pack"
    with repo.lock(exclusive=True):
        forget_snapshots(repo, [first], "test")
    result = api.prune(api.open(tmp_path / "repo", PASSWORD.encode()))
    assert result.blobs_reencoded == 1 and result.packs_removed >= len(first_packs)
    h = History(tmp_path / "repo", src, {second.id: manifest(src)})
    report = api.check(h.open(), read_data=True)
    assert report.ok and not report.unreferenced_packs, report.unreferenced_packs
    remaining = {p.name for p in (tmp_path / "repo" / "data").rglob("*") if p.is_file()}
    assert not remaining & first_packs
    assert_sound(h, tmp_path / "out")


def test_a_small_delta_on_a_forgotten_small_delta_stays_a_delta(tmp_path: Path) -> None:
    """Day 2 is a small delta on day 1's small delta on day 0's full copy; day 1 is
    forgotten. Re-encoding day 2 whole would store a full copy to free two small
    deltas, so prune keeps the chain, and the repository does not grow."""
    src = tmp_path / "src"
    src.mkdir()
    data = bytearray(np.random.default_rng(7).bytes(48 * 1024))
    repo = api.init(tmp_path / "repo", PASSWORD.encode(), pack_size=64 * 1024,
                    kdf_memory_kib=8192, kdf_time_cost=1)
    snaps, states = [], {}
    for day in range(3):
        data[100 + 16 * day:108 + 16 * day] = b"day %4d" % day
        (src / "book.bin").write_bytes(data)
        snaps.append(api.backup(repo, [src], snapshot_type="full" if not day else "incr").snapshot)
        states[snaps[-1].id] = manifest(src)
    assert [s.summary["delta_blobs"] for s in snaps[1:]] == [1, 1]
    with repo.lock(exclusive=True):
        forget_snapshots(repo, [snaps[1]], "test")

    def data_bytes() -> int:
        return sum(p.stat().st_size for p in (tmp_path / "repo" / "data").rglob("*") if p.is_file())

    before = data_bytes()
    result = api.prune(api.open(tmp_path / "repo", PASSWORD.encode()))
    assert result.blobs_reencoded == 0
    assert data_bytes() <= before
    del states[snaps[1].id]
    assert_sound(History(tmp_path / "repo", src, states), tmp_path / "out", read_data=True)


def test_a_reencoded_order_book_keeps_its_column_codec(tmp_path: Path) -> None:
    """A column-coded book delta re-encoded alone gets its row length back from its
    payload: without it prune stored the kept book ~2x larger than a fresh backup."""
    from deltavault.codec import CodecId

    rng = np.random.default_rng(11)
    rows, levels = 6000, 10
    mid = np.cumsum(rng.integers(-2, 3, rows)) + 212_950
    cents = np.empty((rows, 4 * levels), dtype=np.int64)  # exact decimals: whole cents
    for lv in range(levels):
        cents[:, 4 * lv], cents[:, 4 * lv + 2] = mid - 1 - lv, mid + 1 + lv
        cents[:, 4 * lv + 1] = rng.integers(1, 120, rows)
        cents[:, 4 * lv + 3] = rng.integers(1, 120, rows)
    src = tmp_path / "src"
    src.mkdir()
    repo = api.init(tmp_path / "repo", PASSWORD.encode(), pack_size=256 * 1024,
                    kdf_memory_kib=8192, kdf_time_cost=1)
    snaps = []
    for day in range(3):
        cents[day::50, ::4] += 1  # some prices tick
        np.save(src / "book.npy", cents / 100)
        snaps.append(api.backup(repo, [src], snapshot_type="full" if not day else "incr").snapshot)
    with repo.lock(exclusive=True):
        forget_snapshots(repo, snaps[:2], "test")
    result = api.prune(api.open(tmp_path / "repo", PASSWORD.encode()))
    assert result.blobs_reencoded >= 1
    fresh = api.init(tmp_path / "fresh", PASSWORD.encode(), kdf_memory_kib=8192, kdf_time_cost=1)
    api.backup(fresh, [src], snapshot_type="full")

    def stored(repo_dir: Path) -> tuple[int, set[int]]:
        opened = api.open(repo_dir, PASSWORD.encode())
        recs = [f.records for _name, f in read_all(opened)]
        return (sum(int(r["length"].sum()) for r in recs),
                {int(c) for r in recs for c in r["codec"]})

    pruned_bytes, pruned_codecs = stored(tmp_path / "repo")
    fresh_bytes, _ = stored(tmp_path / "fresh")
    assert CodecId.DECIMAL_COL in pruned_codecs
    assert pruned_bytes <= 1.1 * fresh_bytes
    assert_sound(History(tmp_path / "repo", src, {snaps[2].id: manifest(src)}), tmp_path / "out")
