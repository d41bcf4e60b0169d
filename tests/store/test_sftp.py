"""SFTPStore against a real OpenSSH sshd on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from deltavault.errors import BackendUnavailable, ObjectNotFound, PermissionDenied
from deltavault.store.sftp import SFTPStore
from deltavault.store.testing import StoreConformance
from tests.support.servers import SSHServer, free_ports

_n = iter(range(10**6))


def make_store(server: SSHServer, **kwargs: object) -> SFTPStore:
    path = server.root / f"repo{next(_n)}"
    return SFTPStore(server.host, server.port, server.user, str(path),
                     key_filename=str(server.key_file), known_hosts=str(server.known_hosts),
                     create=True, **kwargs)  # type: ignore[arg-type]


class TestSFTPStore(StoreConformance):
    @pytest.fixture
    def store(self, sshd_server: SSHServer) -> Iterator[SFTPStore]:
        with make_store(sshd_server) as store:
            yield store  # type: ignore[misc]


def test_layout_matches_local_backend(sshd_server: SSHServer) -> None:
    store = make_store(sshd_server)
    store.put("data/ab/ab01", b"pack")
    store.replace("ledger/checkpoint", b"cp", None)
    root = Path(store.root)
    assert (root / "data/ab/ab01").read_bytes() == b"pack"
    assert (root / "ledger/checkpoint").read_bytes() == b"cp"
    assert list((root / "tmp").iterdir()) == []  # no temp files or CAS locks left
    store.close()


def test_replace_changes_version_within_one_second(sshd_server: SSHServer) -> None:
    store = make_store(sshd_server)
    versions = {store.replace("cp", b"same", None)}
    for _ in range(5):
        versions.add(store.replace("cp", b"same", max(versions)))
    assert len(versions) == 6


def test_stale_cas_lock_is_broken(sshd_server: SSHServer) -> None:
    store = make_store(sshd_server, cas_lock_stale=0.0)
    lock = Path(store.root) / "tmp" / "cas~ledger~checkpoint"
    lock.parent.mkdir(exist_ok=True)
    lock.write_bytes(b"left by a dead writer")
    import os

    os.utime(lock, (1, 1))
    assert store.replace("ledger/checkpoint", b"x", None)
    assert not lock.exists()


def test_unknown_host_key_is_rejected(sshd_server: SSHServer, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    store = SFTPStore(sshd_server.host, sshd_server.port, sshd_server.user, "/tmp",
                      key_filename=str(sshd_server.key_file), known_hosts=str(empty))
    with pytest.raises(PermissionDenied, match="unknown host key"):
        store.stat("config")


def test_wrong_key_is_permission_denied(sshd_server: SSHServer, tmp_path: Path) -> None:
    import subprocess

    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")],
                   check=True)
    store = SFTPStore(sshd_server.host, sshd_server.port, sshd_server.user, "/tmp",
                      key_filename=str(tmp_path / "k"), known_hosts=str(sshd_server.known_hosts))
    with pytest.raises(PermissionDenied, match="refused"):
        store.stat("config")


def test_unreachable_host(tmp_path: Path) -> None:
    store = SFTPStore("127.0.0.1", free_ports(1)[0], "nobody", "/tmp", timeout=2)
    with pytest.raises(BackendUnavailable):
        store.stat("config")


def test_reconnects_after_connection_loss(sshd_server: SSHServer) -> None:
    store = make_store(sshd_server)
    store.put("a", b"1")
    assert store._ssh is not None
    store._ssh.get_transport().close()  # type: ignore[union-attr]
    # The pooled channel died with the connection; a fresh one is opened.
    assert store.get("a") == b"1"
    assert store.get_versioned("a")[0] == b"1"
    with pytest.raises(ObjectNotFound):
        store.get("b")
