"""The local directory backend against the shared conformance suite."""

import errno
import os
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


def test_put_file_without_the_kernel_copy_and_with_it_leaves_no_temp_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """copy_file_range refused (another file system on an old kernel): one buffer at a time."""
    store = LocalStore(tmp_path / "repo", create=True)
    data = os.urandom(3 * (1 << 20) + 123)
    with open(tmp_path / "spool", "w+b") as fh:
        fh.write(data)
        store.put_file("data/aa/kernel", fh, len(data))

        def refused(*_: object) -> int:
            raise OSError(errno.EXDEV, "cross-device")

        monkeypatch.setattr(os, "copy_file_range", refused)
        store.put_file("data/aa/buffered", fh, len(data))
        with pytest.raises(Exception, match="ended at"):
            store.put_file("data/aa/short", fh, len(data) + 5)
    assert store.get("data/aa/kernel") == store.get("data/aa/buffered") == data
    assert not store.exists("data/aa/short")
    assert list((tmp_path / "repo" / "tmp").iterdir()) == []
