"""The client's index cache (docs/format.md §13.1): hit, miss, extend, rebuild, never trusted."""

from __future__ import annotations

import itertools
import multiprocessing
import os
import shutil
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import pytest

from deltavault import api
from deltavault.repo import layout
from deltavault.repo.index_cache import FANOUT, MAX_SEGMENTS
from deltavault.repo.repository import Repository
from deltavault.store.testing import FaultyStore
from tests.support.cli import PASSWORD
from tests.support.indexes import (
    assert_absent,
    assert_finds,
    entries,
    host,
    same_host,
)


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return api.init(tmp_path / "repo", PASSWORD.encode(), kdf_memory_kib=8192, kdf_time_cost=1)


def _segment_files(repo: Repository) -> list[Path]:
    return sorted(repo.index_cache().dir.glob("seg-*"))


def test_warm_cache_opens_without_reading_any_index_file(repo: Repository) -> None:
    packs = entries(6, 50, seed=1)
    repo.save_index_files(packs, max_records=100)  # three files, cached as they are written
    # a store whose every read fails: only the listing may be used
    blind = Repository(FaultyStore(repo.store, mode="unavailable", ops=("get",)), repo.config,
                       repo.crypto, repo.key_id)
    blind.load_index()
    assert blind.index_sync is not None and blind.index_sync.fetched == 0
    assert_finds(blind, packs)
    assert blind.index.index_ids == set(repo.objects.index_ids())
    assert len(blind.index) == 300


def test_cold_cache_reads_each_file_once_then_is_warm(repo: Repository, tmp_path: Path) -> None:
    packs = entries(6, 50, seed=2)
    ids = repo.save_index_files(packs, max_records=100)
    other = host(repo, tmp_path / "host2")
    other.load_index()
    assert other.index_sync is not None and other.index_sync.fetched == len(ids) == 3
    assert_finds(other, packs)
    again = host(repo, tmp_path / "host2")
    again.load_index()
    assert again.index_sync is not None and again.index_sync.fetched == 0
    assert_finds(again, packs)


def test_new_index_files_extend_the_cache(repo: Repository, tmp_path: Path) -> None:
    first = entries(4, 40, seed=3)
    repo.save_index_files(first)
    other = host(repo, tmp_path / "host2")
    other.load_index()
    before = {p.name for p in _segment_files(other)}
    second = entries(1, 10, seed=4)
    repo.save_index_files(second)  # another host writes
    other.load_index(force=True)
    assert other.index_sync is not None and other.index_sync.fetched == 1
    assert_finds(other, first)
    assert_finds(other, second)
    # extended: the old segment is still there, one small segment was added
    assert before < {p.name for p in _segment_files(other)}


def test_vanished_index_file_rebuilds_what_named_it(repo: Repository, tmp_path: Path) -> None:
    a, b, c = entries(2, 30, seed=5), entries(2, 30, seed=6), entries(2, 30, seed=7)
    ids = [repo.save_index_files(x)[0] for x in (a, b, c)]
    other = host(repo, tmp_path / "host2")
    other.load_index()  # one segment built from the three files
    assert len(_segment_files(other)) == 1
    repo.objects.delete_index(ids[2])
    other.load_index(force=True)
    assert other.index_sync is not None and other.index_sync.fetched == 2
    assert_finds(other, a)
    assert_finds(other, b)
    assert_absent(other, c)
    assert other.index.index_ids == set(ids[:2])


def test_superseding_file_retires_the_files_it_replaces(repo: Repository,
                                                        tmp_path: Path) -> None:
    a, b, c = entries(2, 30, seed=8), entries(2, 30, seed=9), entries(2, 30, seed=10)
    ids = [repo.save_index_files(x)[0] for x in (a, b)]
    other = host(repo, tmp_path / "host2")
    other.load_index()
    # a prune that wrote its new index and crashed before deleting the old ones
    merged = {**a, **c}
    new = repo.save_index_files(merged, supersedes=ids)
    assert set(repo.objects.index_ids()) == {*ids, *new}
    other.load_index(force=True)
    assert_finds(other, merged)
    assert_absent(other, b)
    assert other.index.index_ids == set(new)
    # the writer's own cache agrees without reading anything
    mine = same_host(repo)
    mine.load_index()
    assert mine.index_sync is not None and mine.index_sync.fetched == 0
    assert_finds(mine, merged)
    assert_absent(mine, b)


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset % len(data)] ^= 0x40
    path.write_bytes(bytes(data))


DAMAGE = {
    "header byte": lambda p: _flip(p, 20),
    "tail byte (prefixes)": lambda p: _flip(p, -200),
    "mac byte": lambda p: _flip(p, -1),
    "truncated": lambda p: p.write_bytes(p.read_bytes()[:-1]),
    "cut in half": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "extended": lambda p: p.write_bytes(p.read_bytes() + b"\0"),
    "emptied": lambda p: p.write_bytes(b""),
    "deleted": lambda p: p.unlink(),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_segment_is_refused_and_rebuilt(repo: Repository, tmp_path: Path,
                                                damage: str) -> None:
    packs = entries(4, 50, seed=11)
    repo.save_index_files(packs)
    [seg] = _segment_files(repo)
    DAMAGE[damage](seg)
    again = same_host(repo)
    again.load_index()
    assert again.index_sync is not None and again.index_sync.fetched == 1  # read again
    assert_finds(again, packs)
    assert seg.name not in {p.name for p in _segment_files(again)}
    warm = same_host(repo)
    warm.load_index()
    assert warm.index_sync is not None and warm.index_sync.fetched == 0


@pytest.mark.parametrize("damage", ["flipped", "zeroed", "deleted manifest"])
def test_damaged_manifest_rebuilds_the_cache(repo: Repository, damage: str) -> None:
    packs = entries(3, 20, seed=12)
    repo.save_index_files(packs, max_records=20)
    manifest = repo.index_cache().dir / "manifest"
    if damage == "flipped":
        _flip(manifest, 13)
    elif damage == "zeroed":
        manifest.write_bytes(bytes(manifest.stat().st_size))
    else:
        manifest.unlink()
    again = same_host(repo)
    again.load_index()
    assert again.index_sync is not None and again.index_sync.fetched == 3
    assert_finds(again, packs)


def test_record_block_changed_after_open_is_detected_and_rebuilt(repo: Repository) -> None:
    packs = entries(4, 100, seed=13)
    repo.save_index_files(packs)
    again = same_host(repo)
    again.load_index()  # opened and verified: header, prefixes, block hashes
    [seg] = _segment_files(again)
    # change one record's offset (bytes 68-71 of the first record) in place
    with open(seg, "r+b") as f:
        f.seek(64 + 68)
        f.write(b"\xff\xff\xff\x7f")
    assert_finds(again, packs)  # the changed block fails its hash; the segment is rebuilt
    assert again.index_sync is not None and again.index_sync.fetched == 1
    assert seg.name not in {p.name for p in _segment_files(again)}


def test_segment_of_another_repository_is_refused(repo: Repository, tmp_path: Path) -> None:
    packs = entries(2, 20, seed=14)
    repo.save_index_files(packs)
    twin = api.init(tmp_path / "twin", PASSWORD.encode(), kdf_memory_kib=8192, kdf_time_cost=1)
    twin_packs = entries(2, 20, seed=15)
    twin.save_index_files(twin_packs)
    # the twin's cache directory replaced by the first repository's (same file names)
    shutil.rmtree(twin.index_cache().dir)
    shutil.copytree(repo.index_cache().dir, twin.index_cache().dir)
    again = same_host(twin)
    again.load_index()
    assert again.index_sync is not None and again.index_sync.fetched == 1
    assert_finds(again, twin_packs)
    assert_absent(again, packs)


def test_damaged_index_file_is_skipped_with_a_warning(repo: Repository, tmp_path: Path) -> None:
    a, b = entries(2, 20, seed=16), entries(2, 20, seed=17)
    ia = repo.save_index_files(a)[0]
    repo.save_index_files(b)
    path = Path(repo.store.location()) / layout.index_key(ia)
    _flip(path, 100)
    other = host(repo, tmp_path / "host2")
    with pytest.warns(UserWarning, match="skipping damaged index"):
        other.load_index()
    assert_finds(other, b)
    assert_absent(other, a)
    assert len(other.damaged_indexes) == 1 and ia in other.damaged_indexes[0]
    # never cached: the next open tries (and reports) it again
    with pytest.warns(UserWarning, match="skipping damaged index"):
        other.load_index(force=True)


def test_check_reports_a_damaged_index_file_behind_a_warm_cache(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(5):
        (src / f"f{i}").write_bytes(os.urandom(2000 + i))
    repo = api.init(tmp_path / "repo", PASSWORD.encode(), kdf_memory_kib=8192, kdf_time_cost=1)
    api.backup(repo, [src])
    [iid] = repo.objects.index_ids()
    _flip(Path(repo.store.location()) / layout.index_key(iid), 50)
    warm = same_host(repo)
    warm.load_index()  # the cache still holds what the file said when it was verified
    assert warm.index_sync is not None and warm.index_sync.fetched == 0
    report = api.check(warm)
    assert not report.ok
    assert [p.kind for p in report.problems if p.object == layout.index_key(iid)] == ["index"]


def test_many_small_index_files_keep_few_segments(repo: Repository) -> None:
    for i in range(24):
        repo.save_index_files(entries(1, 5 + i, seed=100 + i))
    segs = sorted((s.n for s in repo.index_cache().segments()), reverse=True)
    assert len(segs) <= MAX_SEGMENTS
    # sizes fall geometrically: each is under a quarter of the one above
    assert all(small * FANOUT < big for big, small in itertools.pairwise(segs))
    assert sum(segs) == sum(5 + i for i in range(24))


def _write_and_load(location: str, cache: str, seed: int, rounds: int) -> int:
    """One writer: save index files and reload, as concurrent backups on one host do."""
    os.environ["DELTAVAULT_CACHE_DIR"] = cache
    repo = api.open(location, PASSWORD.encode())
    for r in range(rounds):
        packs = entries(2, 30, seed=seed * 1000 + r)
        repo.save_index_files(packs)
        repo.load_index(force=True)
        assert_finds(repo, packs)
    return rounds


def _check_all_written(repo: Repository, tmp_path: Path, writers: int, rounds: int) -> None:
    written = [entries(2, 30, seed=s * 1000 + r) for s in range(writers) for r in range(rounds)]
    assert len(repo.objects.index_ids()) == writers * rounds
    warm = same_host(repo)
    warm.load_index()
    assert warm.index_sync is not None and warm.index_sync.fetched == 0  # every write cached
    cold = host(repo, tmp_path / "cold")
    cold.load_index()
    assert cold.index_sync is not None and cold.index_sync.fetched == writers * rounds
    for packs in written:
        assert_finds(warm, packs)
        assert_finds(cold, packs)
    assert len(warm.index) == len(cold.index) == writers * rounds * 60


def test_concurrent_writers_in_threads_share_one_cache(repo: Repository, tmp_path: Path) -> None:
    cache = os.environ["DELTAVAULT_CACHE_DIR"]
    with ThreadPoolExecutor(max_workers=4) as pool:
        done = list(pool.map(lambda s: _write_and_load(repo.store.location(), cache, s, 6),
                             range(4)))
    assert done == [6] * 4
    _check_all_written(repo, tmp_path, 4, 6)


def test_concurrent_writer_processes_share_one_cache(repo: Repository, tmp_path: Path) -> None:
    cache = os.environ["DELTAVAULT_CACHE_DIR"]
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=3, mp_context=ctx) as pool:
        futures = [pool.submit(_write_and_load, repo.store.location(), cache, s, 5)
                   for s in range(3)]
        assert [f.result() for f in futures] == [5] * 3
    _check_all_written(repo, tmp_path, 3, 5)


def test_reread_verifies_every_file_again(repo: Repository) -> None:
    a, b = entries(2, 20, seed=18), entries(2, 20, seed=19)
    ia = repo.save_index_files(a)[0]
    repo.save_index_files(b)
    repo.load_index()
    assert repo.index_sync is not None and repo.index_sync.fetched == 0
    _flip(Path(repo.store.location()) / layout.index_key(ia), 100)
    with pytest.warns(UserWarning, match="skipping damaged index"):
        repo.load_index(reread=True)  # what check needs: nothing taken from the cache
    assert repo.index_sync is not None and repo.index_sync.fetched == 2
    assert [iid for iid, _ in repo.index_sync.damaged] == [ia]
    assert_absent(repo, a)
    assert_finds(repo, b)
