"""End to end on every backend: init, full + diff backup, restore, check, audit.

Real servers on 127.0.0.1 (SeaweedFS S3, OpenSSH sshd, deltavault's REST
server); repositories are opened from URLs as a user would.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from deltavault import api, sampledata
from deltavault.errors import BackendUnavailable, ObjectLocked
from deltavault.ledger.audit import audit
from deltavault.prune import forget_snapshots, run_prune
from deltavault.repo.repository import Repository
from deltavault.server import BackgroundServer, Right, TokenTable
from deltavault.store.base import Store
from deltavault.store.local import LocalStore
from deltavault.store.url import open_store as open_url
from deltavault.store.wrappers import StoreWrapper
from tests.store.conftest import S3Server, SSHServer, free_ports, s3_server, sshd_server

__all__ = ["s3_server", "sshd_server"]  # session fixtures, shared with tests/store

PASSWORD = b"e2e password"
KDF = {"kdf_memory_kib": 8192, "kdf_time_cost": 1}
ADMIN = "e2e-admin-token-0123456789abcdef"
APPEND = "e2e-append-token-0123456789abcdef"
BACKENDS = ["local", "s3", "sftp", "rest"]
E2E_BUCKET = "dv-e2e"
_names = itertools.count()

Location = str | Store
MakeLocation = Callable[[str], Location]


def tokens() -> TokenTable:
    table = TokenTable()
    table.add(ADMIN, Right.ADMIN)
    table.add(APPEND, Right.APPEND)
    return table


@pytest.fixture
def backend_location(request: pytest.FixtureRequest, tmp_path: Path,
                     monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeLocation]:
    """``make(name)`` → a fresh repository location on the backend ``request.param``."""
    kind: str = request.param
    unique = f"e2e{time.monotonic_ns()}"
    with contextlib.ExitStack() as stack:
        if kind == "local":
            def make(name: str) -> Location:
                return str(tmp_path / name)
        elif kind == "s3":
            server: S3Server = request.getfixturevalue("s3_server")
            with contextlib.suppress(Exception):  # already made by another test
                server.client().create_bucket(Bucket=E2E_BUCKET)  # type: ignore[attr-defined]
            for var, value in (("AWS_ENDPOINT_URL", server.endpoint),
                               ("AWS_ACCESS_KEY_ID", server.access_key),
                               ("AWS_SECRET_ACCESS_KEY", server.secret_key),
                               ("AWS_DEFAULT_REGION", "us-east-1")):
                monkeypatch.setenv(var, value)

            def make(name: str) -> Location:
                return f"s3://{E2E_BUCKET}/{unique}/{name}"
        elif kind == "sftp":
            ssh: SSHServer = request.getfixturevalue("sshd_server")

            def make(name: str) -> Location:
                # paramiko needs the test key and known_hosts, which a URL cannot carry
                url = f"sftp://{ssh.user}@{ssh.host}:{ssh.port}{ssh.root}/{unique}/{name}"
                return stack.enter_context(open_url(url, create=True, options={
                    "key_filename": str(ssh.key_file), "known_hosts": str(ssh.known_hosts)}))
        else:
            monkeypatch.setenv("DELTAVAULT_REST_TOKEN", ADMIN)

            def make(name: str) -> Location:
                root = tmp_path / f"rest-{name}"
                srv = stack.enter_context(BackgroundServer(LocalStore(root, create=True),
                                                           tokens=tokens()))
                return f"rest:{srv.url}"
        yield make


def trading_state(root: Path, scale: float = 0.006) -> Path:
    """A few MiB of sample trading state (order books, positions db, models, logs)."""
    sampledata.generate(root, scale=scale)
    return root


def assert_same_tree(expected: Path, actual: Path) -> None:
    def files(root: Path) -> dict[str, bytes]:
        out = {}
        for dirpath, _dirs, names in os.walk(root):
            for name in names:
                p = Path(dirpath) / name
                out[str(p.relative_to(root))] = (os.readlink(p).encode() if p.is_symlink()
                                                 else p.read_bytes())
        return out

    want, got = files(expected), files(actual)
    assert sorted(want) == sorted(got)
    differing = [k for k in want if want[k] != got[k]]
    assert not differing, differing[:5]


def full_and_diff(repo: Repository, src: Path) -> None:
    api.backup(repo, [src], snapshot_type="full", tags=["eod"])
    sampledata.mutate(src, day=1)
    result = api.backup(repo, [src], snapshot_type="diff")
    assert result.snapshot.type == "diff"


@pytest.mark.parametrize("backend_location", BACKENDS, indirect=True)
def test_backup_restore_check_audit(backend_location: MakeLocation, tmp_path: Path) -> None:
    src = trading_state(tmp_path / "state")
    location = backend_location("repo")
    repo = api.init(location, PASSWORD, pack_size=1 << 20, **KDF)
    full_and_diff(repo, src)

    reopened = api.open(location, PASSWORD)
    assert [s.type for s in api.snapshots(reopened)] == ["full", "diff"]
    api.restore(reopened, "latest", tmp_path / "out")
    assert_same_tree(src, tmp_path / "out" / "state")
    report = api.check(reopened, read_data=True)
    assert report.ok, [p.to_dict() for p in report.problems]
    assert report.packs_read == report.packs > 1
    keyless = audit(reopened.store, reopened.config.ledger_verifier_key)
    assert keyless.ok, keyless.problems
    assert keyless.snapshots_checked == 2


# --- append-only REST ---------------------------------------------------------


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    src = str(Path(__file__).resolve().parents[1] / "src")
    full_env = {**os.environ, "PYTHONPATH": src, "DELTAVAULT_PASSWORD": PASSWORD.decode(),
                **env}
    return subprocess.run([sys.executable, "-m", "deltavault", *args], capture_output=True,
                          text=True, env=full_env, timeout=120)


def test_append_only_rest(tmp_path: Path) -> None:
    src = trading_state(tmp_path / "state")
    root = tmp_path / "server-repo"
    with BackgroundServer(LocalStore(root, create=True), tokens=tokens(),
                          append_only=True) as server:
        url = f"rest:{server.url}"
        repo = api.init(open_url(url, options={"token": APPEND}), PASSWORD, **KDF)
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
            assert [s.id for s in api.snapshots(api.open(store, PASSWORD))] == \
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
        repo = api.init(open_url(f"rest:{server.url}", options=opts), PASSWORD,
                        pack_size=1 << 18, **KDF)
    dying = StopServerAfterPuts(LocalStore(root), 3)
    with BackgroundServer(dying, tokens=tokens()) as server:
        dying.server = server
        repo = api.open(open_url(f"rest:{server.url}", options=opts), PASSWORD)
        with pytest.raises(BackendUnavailable):
            api.backup(repo, [src], snapshot_type="full")
    packs_written = len(list(LocalStore(root).list("data/")))
    assert packs_written >= 3

    with BackgroundServer(LocalStore(root), tokens=tokens()) as server:
        repo = api.open(open_url(f"rest:{server.url}", options=opts), PASSWORD)
        assert api.snapshots(repo) == []
        report = api.check(repo)
        assert report.ok, [p.to_dict() for p in report.problems]
        api.backup(repo, [src], snapshot_type="full")
        api.restore(repo, "latest", tmp_path / "out")
        assert_same_tree(src, tmp_path / "out" / "state")
        assert api.check(repo, read_data=True).ok


@pytest.mark.parametrize("mode", ["lost-ack", "unavailable"])
def test_faulty_store_mid_backup(tmp_path: Path, mode: str) -> None:
    from deltavault.store.testing import FaultyStore
    from deltavault.store.wrappers import RetryingStore

    src = trading_state(tmp_path / "state", scale=0.004)
    inner = LocalStore(tmp_path / "repo", create=True)
    api.init(inner, PASSWORD, pack_size=1 << 18, **KDF)
    faulty = FaultyStore(inner, fail_after=4, mode=mode,  # type: ignore[arg-type]
                         ops=("put", "replace"))
    store = RetryingStore(faulty, attempts=2 if mode == "lost-ack" else 1, backoff=0,
                          sleep=lambda s: None)
    repo = api.open(store, PASSWORD)
    with contextlib.suppress(BackendUnavailable):  # lost acks may all be absorbed
        api.backup(repo, [src], snapshot_type="full")
    assert faulty.faults > 0

    repo = api.open(inner, PASSWORD)
    assert api.check(repo).ok
    api.backup(repo, [src], snapshot_type="full")
    api.restore(repo, "latest", tmp_path / "out")
    assert_same_tree(src, tmp_path / "out" / "state")
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
