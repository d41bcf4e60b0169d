"""End to end on every backend: init, full + diff backup, restore, check, audit.

Real servers on 127.0.0.1 (SeaweedFS S3, OpenSSH sshd, deltavault's REST
server); repositories are opened from URLs as a user would.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import pytest

from deltavault import api, sampledata
from deltavault.errors import BackendUnavailable, ObjectLocked
from deltavault.ops.audit import audit
from deltavault.ops.forget import forget_snapshots
from deltavault.ops.prune import run_prune
from deltavault.repo.repository import Repository
from deltavault.server import BackgroundServer
from deltavault.store.base import Store
from deltavault.store.local import LocalStore
from deltavault.store.url import open_store as open_url
from deltavault.store.wrappers import StoreWrapper
from tests.support.backends import ADMIN, APPEND, BACKENDS, MakeLocation, tokens
from tests.support.cli import API_PASSWORD, KDF, run_cli, trading_state
from tests.support.servers import free_ports
from tests.support.trees import assert_same_files


def full_and_diff(repo: Repository, src: Path) -> None:
    api.backup(repo, [src], snapshot_type="full", tags=["eod"])
    sampledata.mutate(src, day=1)
    result = api.backup(repo, [src], snapshot_type="diff")
    assert result.snapshot.type == "diff"


@pytest.mark.parametrize("backend_location", BACKENDS, indirect=True)
def test_backup_restore_check_audit(backend_location: MakeLocation, tmp_path: Path) -> None:
    src = trading_state(tmp_path / "state")
    location = backend_location("repo")
    repo = api.init(location, API_PASSWORD, pack_size=1 << 20, **KDF)
    full_and_diff(repo, src)

    reopened = api.open(location, API_PASSWORD)
    assert [s.type for s in api.snapshots(reopened)] == ["full", "diff"]
    api.restore(reopened, "latest", tmp_path / "out")
    assert_same_files(src, tmp_path / "out" / "state")
    report = api.check(reopened, read_data=True)
    assert report.ok, [p.to_dict() for p in report.problems]
    assert report.packs_read == report.packs > 1
    keyless = audit(reopened.store, reopened.config.ledger_verifier_key)
    assert keyless.ok, keyless.problems
    assert keyless.snapshots_checked == 2


# --- append-only REST ---------------------------------------------------------


def test_append_only_rest(tmp_path: Path) -> None:
    src = trading_state(tmp_path / "state")
    root = tmp_path / "server-repo"
    with BackgroundServer(LocalStore(root, create=True), tokens=tokens(),
                          append_only=True) as server:
        url = f"rest:{server.url}"
        repo = api.init(open_url(url, options={"token": APPEND}), API_PASSWORD, **KDF)
        full_and_diff(repo, src)
        assert len(repo.ledger.entries(0, repo.ledger.size)) >= 2  # ledger appends worked
        before = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())

        snaps = api.snapshots(repo)
        with pytest.raises(ObjectLocked, match="append-only"):
            forget_snapshots(repo, snaps[:1], "test")
        with pytest.raises(ObjectLocked, match="append-only"):
            run_prune(repo)
        cli = run_cli("forget", snaps[0].id, "--repo", url,
                      env={"DELTAVAULT_REST_TOKEN": APPEND})
        assert cli.returncode == 14, cli.stderr
        lines = cli.stderr.strip().splitlines()
        assert len(lines) == 1 and "does not allow deletes" in lines[0], cli.stderr
        assert run_cli("prune", "--repo", url,
                       env={"DELTAVAULT_REST_TOKEN": APPEND}).returncode == 14

        after = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
        assert set(before) <= set(after)  # nothing was deleted
        with open_url(url, options={"token": APPEND}) as store:
            assert [s.id for s in api.snapshots(api.open(store, API_PASSWORD))] == \
                [s.id for s in snaps]
        assert api.check(repo).ok
        repo.store.close()  # idle keep-alive connections would delay the server's exit


# --- faults -------------------------------------------------------------------


class StopServerAfterPuts(StoreWrapper):
    """Server-side store that shuts its REST server down after ``n`` pack writes."""

    def __init__(self, inner: Store, n: int) -> None:
        super().__init__(inner)
        self.n = n
        self.server: BackgroundServer | None = None

    def put(self, key: str, data: bytes | bytearray) -> None:
        if self.n <= 0:
            # The server is going down: hold this request until it is gone, so
            # the client sees the connection die, however fast the backup is.
            time.sleep(2)
        self.inner.put(key, data)
        if key.startswith("data/"):
            self.n -= 1
            if self.n == 0 and self.server is not None:
                self.server.server.should_exit = True
                self.server.server.force_exit = True


def test_rest_server_killed_mid_backup(tmp_path: Path) -> None:
    src = trading_state(tmp_path / "state")
    root = tmp_path / "server-repo"
    opts = {"token": ADMIN, "retries": 2, "backoff": 0.05}
    with BackgroundServer(LocalStore(root, create=True), tokens=tokens()) as server:
        repo = api.init(open_url(f"rest:{server.url}", options=opts), API_PASSWORD,
                        pack_size=1 << 18, **KDF)
    dying = StopServerAfterPuts(LocalStore(root), 3)
    with BackgroundServer(dying, tokens=tokens()) as server:
        dying.server = server
        repo = api.open(open_url(f"rest:{server.url}", options=opts), API_PASSWORD)
        with pytest.raises(BackendUnavailable):
            api.backup(repo, [src], snapshot_type="full")
    packs_written = len(list(LocalStore(root).list("data/")))
    assert packs_written >= 3

    with BackgroundServer(LocalStore(root), tokens=tokens()) as server:
        repo = api.open(open_url(f"rest:{server.url}", options=opts), API_PASSWORD)
        assert api.snapshots(repo) == []
        report = api.check(repo)
        assert report.ok, [p.to_dict() for p in report.problems]
        api.backup(repo, [src], snapshot_type="full")
        api.restore(repo, "latest", tmp_path / "out")
        assert_same_files(src, tmp_path / "out" / "state")
        assert api.check(repo, read_data=True).ok


@pytest.mark.parametrize("mode", ["lost-ack", "unavailable"])
def test_faulty_store_mid_backup(tmp_path: Path, mode: str) -> None:
    from deltavault.store.testing import FaultyStore
    from deltavault.store.wrappers import RetryingStore

    src = trading_state(tmp_path / "state", scale=0.004)
    inner = LocalStore(tmp_path / "repo", create=True)
    api.init(inner, API_PASSWORD, pack_size=1 << 18, **KDF)
    faulty = FaultyStore(inner, fail_after=4, mode=mode,  # type: ignore[arg-type]
                         ops=("put", "replace"))
    store = RetryingStore(faulty, attempts=2 if mode == "lost-ack" else 1, backoff=0,
                          sleep=lambda s: None)
    repo = api.open(store, API_PASSWORD)
    with contextlib.suppress(BackendUnavailable):  # lost acks may all be absorbed
        api.backup(repo, [src], snapshot_type="full")
    assert faulty.faults > 0

    repo = api.open(inner, API_PASSWORD)
    assert api.check(repo).ok
    api.backup(repo, [src], snapshot_type="full")
    api.restore(repo, "latest", tmp_path / "out")
    assert_same_files(src, tmp_path / "out" / "state")
    assert api.check(repo, read_data=True).ok


def test_unreachable_endpoint_is_one_line_exit_14(tmp_path: Path) -> None:
    port = free_ports(1)[0]
    result = run_cli("snapshots", "--repo", f"rest:http://127.0.0.1:{port}/",
                     env={"DELTAVAULT_REST_TOKEN": ADMIN})
    assert result.returncode == 14, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach REST server" in lines[0], result.stderr
    s3 = run_cli("snapshots", "--repo", "s3://nobucket/x",
                 env={"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
                      "AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b",
                      "AWS_DEFAULT_REGION": "us-east-1"})
    assert s3.returncode == 14, s3.stderr
    assert len(s3.stderr.strip().splitlines()) == 1, s3.stderr
