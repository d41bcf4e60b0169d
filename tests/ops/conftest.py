"""Fixtures of the ops tests: ledger fixtures (:mod:`tests.support.ledger`) and a
three-day history built once per module and copied per test."""

from pathlib import Path

import pytest

from tests.support.cli import Cli
from tests.support.history import History, build_history
from tests.support.ledger import ledger, log_key, sealer, store, witness

__all__ = ["ledger", "log_key", "sealer", "store", "witness"]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> History:
    """A repository with three days of history (built once per test module)."""
    return build_history(tmp_path_factory.mktemp("history"), days=3)


@pytest.fixture
def hist(template: History, tmp_path: Path) -> History:
    """A private copy of the template."""
    return template.copy_to(tmp_path / "repo")


@pytest.fixture
def cli(hist: History, password_file: Path) -> Cli:
    """The real entry point on the private copy."""
    return Cli(hist.repo, password_file)
