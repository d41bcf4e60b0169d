"""Reading a small file whole: one read of the stat's size plus one byte, right when it changed."""

from __future__ import annotations

from pathlib import Path

import pytest

from deltavault.backup.smallfile import SMALL_FILE, read_whole


@pytest.mark.parametrize("stat_size,actual", [
    (0, 0), (5, 5), (4096, 4096),
    (10, 3000),                            # grew after the walk's lstat
    (3000, 10),                            # shrank
    (100, SMALL_FILE * 2 + 7),             # grew past the small-file limit: still whole
])
def test_read_whole_returns_the_file_as_it_is_now(tmp_path: Path, stat_size: int,
                                                  actual: int) -> None:
    data = bytes(i % 251 for i in range(actual))
    (tmp_path / "f").write_bytes(data)
    assert read_whole(str(tmp_path / "f"), None, stat_size) == data
