"""A repository with a few days of trading-state history, and the checks destructive ops must pass.

Built once per test module through the API (sample trading state, one
``incr`` backup a day, so delta chains cross snapshots), then copied per
test: ``forget``/``prune``/``repair`` tests start from the same history and
compare every surviving snapshot with the state it was taken of.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from deltavault import api, sampledata
from deltavault.repo.config import ChunkerParams
from deltavault.repo.repository import Repository
from tests.support.cli import PASSWORD, Cli
from tests.support.trees import Entry, assert_same_tree, manifest

#: small chunks and packs: many packs, each shared by several days
CHUNKER = ChunkerParams(min_size=8 * 1024, avg_size=32 * 1024, max_size=128 * 1024)
PACK_SIZE = 256 * 1024


@dataclass
class History:
    """A repository at ``repo`` and what each snapshot must restore to."""

    repo: Path
    src: Path
    #: snapshot id → manifest of the source tree when it was taken (oldest first)
    states: dict[str, dict[bytes, Entry]] = field(default_factory=dict)

    def open(self) -> Repository:
        return api.open(self.repo, PASSWORD.encode())

    def copy_to(self, dest: Path) -> History:
        """An independent copy (repository only; the states are shared, read-only)."""
        shutil.copytree(self.repo, dest, symlinks=True)
        return History(dest, self.src, self.states)


def build_history(root: Path, *, days: int = 6, scale: float = 0.004, seed: int = 7,
                  chunker: ChunkerParams = CHUNKER, pack_size: int = PACK_SIZE,
                  full_every: int = 0) -> History:
    """``days`` + 1 daily ``incr`` backups of an evolving sample trading state."""
    src = root / "src"
    sampledata.generate(src, scale=scale, seed=seed)
    repo_path = root / "repo"
    repo = api.init(repo_path, PASSWORD.encode(), chunker=chunker, pack_size=pack_size,
                    kdf_memory_kib=8192, kdf_time_cost=1)
    history = History(repo_path, src)
    for day in range(days + 1):
        if day:
            sampledata.mutate(src, day=day, seed=seed)
        snap = api.backup(repo, [src], full_every=full_every, hostname="trader-1").snapshot
        history.states[snap.id] = manifest(src)
    return history


def cli_for(history: History, password_file: Path) -> Cli:
    return Cli(history.repo, password_file)


def assert_restores(history: History, scratch: Path, *, repo: Repository | None = None) -> int:
    """Every live snapshot restores byte-identically to the state it was taken of.

    Returns:
        How many snapshots were restored.
    """
    repo = repo or history.open()
    live = [s.id for s in api.snapshots(repo)]
    assert set(live) <= set(history.states), "a snapshot appeared that was never taken"
    for sid in live:
        target = scratch / sid[:12]
        shutil.rmtree(target, ignore_errors=True)
        api.restore(repo, sid, target)
        restored = target / history.src.name
        assert_same_tree(history.states[sid], manifest(restored))
        shutil.rmtree(target)
    return len(live)


def assert_sound(history: History, scratch: Path, *, read_data: bool = False) -> int:
    """``check`` passes, the keyless audit passes and every live snapshot restores."""
    repo = history.open()
    report = api.check(repo, read_data=read_data)
    assert report.ok, [p.to_dict() for p in report.problems]
    audit = api.audit(history.repo, api.ledger_verifier_key(history.repo))
    assert audit.ok, audit.problems
    return assert_restores(history, scratch, repo=repo)


# Fixtures for modules that work on a copy of one history (import them: named
# ``template``, ``hist`` and ``cli``, they replace the session's ``cli`` in that module only).


@pytest.fixture(scope="module", name="template")
def history_template(tmp_path_factory: pytest.TempPathFactory) -> History:
    """A repository with three days of history (built once per test module)."""
    return build_history(tmp_path_factory.mktemp("history"), days=3)


@pytest.fixture(name="hist")
def history_copy(template: History, tmp_path: Path) -> History:
    """A private copy of the template."""
    return template.copy_to(tmp_path / "repo")


@pytest.fixture(name="cli")
def history_cli(hist: History, password_file: Path) -> Cli:
    """The real entry point on the private copy."""
    return Cli(hist.repo, password_file)
