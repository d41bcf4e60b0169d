"""Status facts from the ledger: groups, staleness at a given time, incremental scans."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from deltavault import api
from deltavault.ops.status import LedgerFacts, LedgerWatch, repository_status, scan
from deltavault.repo.repository import Repository
from deltavault.repo.snapshot import parse_time
from deltavault.store.local import LocalStore


def _backup(repo: Repository, root: Path, host: str, **kw: object) -> str:
    root.mkdir(exist_ok=True)
    (root / "f").write_bytes(root.name.encode() * 100 + host.encode())
    return api.backup(repo, [root], hostname=host, **kw).snapshot.id  # type: ignore[arg-type]


def test_stale_is_judged_per_group_at_a_given_time(repo: Repository, tmp_path: Path) -> None:
    old = _backup(repo, tmp_path / "a", "alpha", snapshot_type="full")
    new = _backup(repo, tmp_path / "b", "beta")
    t_old = parse_time(repo.load_snapshot(old).time)
    t_new = parse_time(repo.load_snapshot(new).time)
    now = t_new + timedelta(hours=30)
    limit = ((now - t_old) + (now - t_new)).total_seconds() / 2
    report = repository_status(repo, max_age_s=limit, now=now)
    by_host = {g.host: g for g in report.groups}
    assert by_host["alpha"].stale and not by_host["beta"].stale
    assert not report.ok and [g.host for g in report.stale] == ["alpha"]
    assert by_host["alpha"].age_s == (now - t_old).total_seconds()
    assert by_host["alpha"].last_type == "full" and by_host["beta"].paths == [str(tmp_path / "b")]
    assert repository_status(repo, max_age_s=10 * limit, now=now).ok
    assert repository_status(repo, now=now).ok  # no limit: report only


def test_incremental_scan_equals_a_full_one(repo: Repository, tmp_path: Path) -> None:
    _backup(repo, tmp_path / "a", "alpha")
    partial = scan(repo.ledger)
    before = partial.size
    api.check(repo)
    sid = _backup(repo, tmp_path / "b", "beta")
    repo.ledger.refresh()
    grown = scan(repo.ledger, partial)
    full = scan(repo.ledger)
    assert grown.size == full.size == repo.ledger.size > before
    assert grown.live.keys() == full.live.keys() and sid in full.live
    assert grown.last_check_ok == full.last_check_ok is not None
    assert LedgerFacts().size == 0


def test_keyless_watch_folds_new_entries_and_flags_a_rollback(repo: Repository,
                                                              tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "apirepo")
    _backup(repo, tmp_path / "a", "alpha")
    watch = LedgerWatch(store)
    names = {g.name: g for g in watch.gauges()}
    assert names["deltavault_ledger_verified"].samples == [({}, 1.0)]
    assert names["deltavault_snapshots"].samples == [({"host": "alpha"}, 1.0)]
    checkpoint = (tmp_path / "apirepo" / "ledger" / "checkpoint").read_bytes()
    _backup(repo, tmp_path / "b", "beta")
    names = {g.name: g for g in watch.gauges()}
    assert sorted(names["deltavault_snapshots"].samples, key=str) == [
        ({"host": "alpha"}, 1.0), ({"host": "beta"}, 1.0)]
    assert names["deltavault_ledger_size"].samples == [({}, float(repo.ledger.size))]
    # someone puts the older checkpoint back: the watch saw the newer one
    cp = tmp_path / "apirepo" / "ledger" / "checkpoint"
    cp.chmod(0o644)
    cp.write_bytes(checkpoint)
    assert [(g.name, g.samples) for g in watch.gauges()] == [
        ("deltavault_ledger_verified", [({}, 0.0)])]
    assert LedgerWatch(LocalStore(tmp_path / "empty", create=True)).gauges() == []
