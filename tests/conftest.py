"""Shared fixtures: a CLI runner that behaves like a user's shell, source trees, repositories.

The CLI runs in a subprocess (``python -m deltavault``) with the repository and
password file in the environment, exactly as a cron job would call it.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from deltavault import api
from deltavault.repo.repository import Repository
from tests.support.backends import backend_location
from tests.support.cli import KDF_ARGS, PASSWORD, Cli
from tests.support.servers import pg_dsn, pg_server, redis_server, s3_server, sshd_server
from tests.support.trees import Hardlink, Symlink

#: the storage-attack matrix is tallied across xdist workers and reported at the end
pytest_plugins = ("tests.support.attack_matrix",)

#: session fixtures of real servers, available to every test
__all__ = ["backend_location", "pg_dsn", "pg_server", "redis_server", "s3_server", "sshd_server"]

# A suite started in the background of a shell without job control (``nohup … &``) inherits
# SIGINT ignored, and so would every deltavault it starts: the tests that press Ctrl-C
# (exit 130) would wait for nothing. Children of a handled SIGINT start with the default.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

@pytest.fixture(scope="session", autouse=True)
def client_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One client cache directory per test session (worker), never the user's own."""
    path = tmp_path_factory.mktemp("client-cache")
    old = os.environ.get("DELTAVAULT_CACHE_DIR")
    os.environ["DELTAVAULT_CACHE_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("DELTAVAULT_CACHE_DIR", None)
    else:
        os.environ["DELTAVAULT_CACHE_DIR"] = old


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    p = tmp_path / "password"
    p.write_text(PASSWORD + "\n")
    return p


@pytest.fixture
def cli(tmp_path: Path, password_file: Path) -> Cli:
    """A CLI runner for a repository at ``tmp_path/repo`` (not yet initialised)."""
    return Cli(tmp_path / "repo", password_file)


@pytest.fixture
def cli_repo(cli: Cli) -> Cli:
    """A CLI runner whose repository exists."""
    cli("init", *KDF_ARGS)
    return cli


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repository]:
    """An API-created repository (cheap KDF)."""
    yield api.init(tmp_path / "apirepo", PASSWORD.encode(), kdf_memory_kib=8192, kdf_time_cost=1)


@pytest.fixture
def make_tree() -> Callable[..., Path]:
    """Build a source tree from ``{relative path: bytes | Link | Symlink}``."""

    def build(root: Path, spec: dict[str, Any]) -> Path:
        root.mkdir(parents=True, exist_ok=True)
        for rel, value in spec.items():
            p = root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(value, Symlink):
                os.symlink(value.target, p)
            elif isinstance(value, Hardlink):
                os.link(root / value.to, p)
            elif value is None:
                p.mkdir(exist_ok=True)
            else:
                p.write_bytes(value)
        return root

    return build
