"""The local directory backend against the shared conformance suite."""

from pathlib import Path

import pytest

from deltavault.store.local import LocalStore
from deltavault.store.testing import StoreConformance


class TestLocalStore(StoreConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> LocalStore:
        return LocalStore(tmp_path / "repo", create=True)


def test_put_leaves_no_temp_files(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, create=True)
    store.put("data/aa/x", b"1")
    store.replace("ledger/checkpoint", b"c", None)
    assert list((tmp_path / "tmp").iterdir()) == []
