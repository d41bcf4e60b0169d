"""Hard links that crossed the parts of a split restore, joined by the coordinator."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from deltavault.restore.files import FileWriter
from deltavault.restore.fsdir import DirTable
from deltavault.restore.joinlinks import join_links

MTIME = 1_600_000_000_123_456_789


def test_names_of_one_file_that_different_parts_wrote_are_linked(tmp_path: Path) -> None:
    """What each part reports is joined: later parts' copies become links to the first."""
    target = tmp_path / "t"
    for rel in ("a/x", "b/y"):
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        (target / rel).write_bytes(b"same file\n")
    (target / "c").mkdir()
    os.link(target / "b/y", target / "c/z")  # part 2's own link, as its planner makes it
    for d in ("a", "b", "c"):
        os.utime(target / d, ns=(MTIME, MTIME))
    table = DirTable()
    writer = FileWriter(owners=False)
    try:
        replaced = join_links(table.root(target), [
            [[1, 7, [b"a"], b"x"]],  # part 0 wrote the first copy
            [],
            [[1, 7, [b"b"], b"y"], [1, 7, [b"c"], b"z"]],  # part 2 linked z to its y
        ], writer)
    finally:
        table.close()
    inodes = {os.stat(target / rel).st_ino for rel in ("a/x", "b/y", "c/z")}
    assert len(inodes) == 1 and os.stat(target / "a/x").st_nlink == 3
    assert [os.stat(target / d).st_mtime_ns for d in ("b", "c")] == [MTIME, MTIME]
    assert not writer.messages
    assert sorted(p.name for p in (target / "b").iterdir()) == ["y"]  # no temporary left
    # part 2 counted its copy's 10 bytes once (z was a link to it): they come off again
    assert replaced == len(b"same file\n")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
def test_a_read_only_directory_a_part_finished_still_gets_its_link(tmp_path: Path) -> None:
    """As an ordinary user, the link goes into a directory a part left read-only, whose
    mode and times are then as the part left them."""
    target = tmp_path / "t"
    for rel in ("a/x", "ro/y"):
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        (target / rel).write_bytes(b"same file\n")
    for p in (target, target / "a", target / "a/x", target / "ro", target / "ro/y"):
        os.chown(p, 65534, 65534)
    (target / "ro").chmod(0o555)
    os.utime(target / "ro", ns=(MTIME, MTIME))
    table = DirTable()
    root = table.root(target)  # opened as root: the test's own directories are 0700
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setgid(65534)
            os.setuid(65534)
            writer = FileWriter(owners=False)
            join_links(root, [[[1, 7, [b"a"], b"x"]], [[1, 7, [b"ro"], b"y"]]], writer)
            code = 0 if not writer.messages else 2
        finally:
            os._exit(code)
    _pid, status = os.waitpid(pid, 0)
    table.close()
    assert os.waitstatus_to_exitcode(status) == 0
    assert os.stat(target / "a/x").st_ino == os.stat(target / "ro/y").st_ino
    st = os.stat(target / "ro")
    assert (stat.S_IMODE(st.st_mode), st.st_mtime_ns) == (0o555, MTIME)
