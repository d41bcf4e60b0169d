"""A fresh repository location on each backend a user would run: local, S3, SFTP, REST.

``backend_location`` is parametrised indirectly with a backend name and
yields ``make(name)``; S3 and SFTP use the session's real servers.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from deltavault.server import BackgroundServer, Right, TokenTable
from deltavault.store.base import Store
from deltavault.store.local import LocalStore
from deltavault.store.url import open_store as open_url
from tests.support.servers import S3Server, SSHServer

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


