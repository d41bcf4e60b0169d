"""Shared fixtures: a CLI runner that behaves like a user's shell, source trees, repositories.

The CLI runs in a subprocess (``python -m deltavault``) with the repository and
password file in the environment, exactly as a cron job would call it.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from deltavault import api
from deltavault.repo.repository import Repository

SRC = Path(__file__).resolve().parent.parent / "src"
PASSWORD = "correct horse battery staple"
#: cheap Argon2id so every test can create repositories
KDF_ARGS = ["--kdf-memory", "8192", "--kdf-time", "1"]


def cli_env(repo: Path, password_file: Path, **extra: str) -> dict[str, str]:
    """The environment a user would have: repository and password file set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DELTAVAULT_")}
    env.update(PYTHONPATH=str(SRC), DELTAVAULT_REPO=str(repo),
               DELTAVAULT_PASSWORD_FILE=str(password_file), COLUMNS="200")
    env.update(extra)
    return env


@dataclass
class Cli:
    """Runs ``deltavault`` commands against one repository."""

    repo: Path
    password_file: Path

    def env(self, **extra: str) -> dict[str, str]:
        return cli_env(self.repo, self.password_file, **extra)

    def __call__(self, *args: str | os.PathLike[str], input: bytes | None = None,
                 expect: int | None = 0, env: dict[str, str] | None = None,
                 cwd: Path | None = None,
                 timeout: float = 240) -> subprocess.CompletedProcess[bytes]:
        """Run one command; check its exit code unless ``expect`` is None."""
        argv = [sys.executable, "-m", "deltavault", *map(os.fspath, args)]
        proc = subprocess.run(argv, input=input, capture_output=True, env=env or self.env(),
                              cwd=cwd, timeout=timeout, check=False)
        if expect is not None and proc.returncode != expect:
            raise AssertionError(
                f"deltavault {' '.join(map(os.fspath, args))} exited {proc.returncode}, "
                f"expected {expect}\nstdout: {proc.stdout.decode(errors='replace')[-3000:]}\n"
                f"stderr: {proc.stderr.decode(errors='replace')[-3000:]}")
        return proc

    def json(self, *args: str | os.PathLike[str], **kw: Any) -> Any:
        import json

        return json.loads(self(*args, "--json", **kw).stdout)

    def popen(self, *args: str | os.PathLike[str]) -> subprocess.Popen[bytes]:
        argv = [sys.executable, "-m", "deltavault", *map(os.fspath, args)]
        return subprocess.Popen(argv, env=self.env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)


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


# --- source trees ------------------------------------------------------------


def write_random(path: Path, size: int, seed: int) -> None:
    """Incompressible, reproducible content (numpy's generator is fast)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    with open(path, "wb") as fh:
        left = size
        while left:
            n = min(left, 8 << 20)
            fh.write(rng.bytes(n))
            left -= n


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


@dataclass(frozen=True)
class Symlink:
    target: str


@dataclass(frozen=True)
class Hardlink:
    to: str


# --- comparing trees ---------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """What a restore must reproduce for one path."""

    kind: str
    mode: int
    mtime_ns: int
    digest: str = ""
    size: int = 0
    target: bytes = b""
    inode_group: int = 0


def manifest(root: Path, *, mtimes: bool = True) -> dict[bytes, Entry]:
    """Every entry below ``root`` (bytes paths) with content hash and metadata.

    Hard links are compared by which paths share an inode, numbered by first
    appearance, since inode numbers differ between the source and a restore.
    """
    out: dict[bytes, Entry] = {}
    groups: dict[tuple[int, int], int] = {}
    base = os.fsencode(root)
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames.sort()
        for name in sorted(dirnames) + sorted(filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, base)
            st = os.lstat(full)
            mt = st.st_mtime_ns if mtimes else 0
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = Entry("symlink", 0, mt, target=os.readlink(full))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = Entry("dir", mode, mt)
            elif stat.S_ISREG(st.st_mode):
                group = 0
                if st.st_nlink > 1:
                    group = groups.setdefault((st.st_dev, st.st_ino), len(groups) + 1)
                out[rel] = Entry("file", mode, mt, file_digest(full), st.st_size,
                                 inode_group=group)
            else:
                out[rel] = Entry("other", mode, mt)
    return out


def file_digest(path: str | bytes | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def assert_same_tree(expected: dict[bytes, Entry], actual: dict[bytes, Entry]) -> None:
    """Equal manifests, with a readable list of differences if not."""
    missing = sorted(expected.keys() - actual.keys())
    extra = sorted(actual.keys() - expected.keys())
    differ = sorted(k for k in expected.keys() & actual.keys() if expected[k] != actual[k])
    details = [f"{k!r}: expected {expected[k]}, got {actual[k]}" for k in differ[:10]]
    assert not (missing or extra or differ), (
        f"missing {missing[:10]}, unexpected {extra[:10]}, different:\n" + "\n".join(details))
