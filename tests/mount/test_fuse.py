"""``deltavault mount`` through the kernel: views, bytes equal to restore, EIO, unmount.

Runs as root with /dev/fuse (as CI does); every assertion goes through the
real mount with ordinary file system calls.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from datetime import datetime
from pathlib import Path

import pytest

from deltavault import api
from deltavault.repo.walk import find_node
from tests.mount.conftest import mounted, stop, wait_mounted
from tests.support.cli import PASSWORD, Cli
from tests.support.trees import assert_same_tree, manifest


def _time_name(snap: dict[str, object]) -> str:
    t = datetime.fromisoformat(str(snap["time"]).replace("Z", "+00:00"))
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_every_view_lists_the_snapshots(history: tuple[Cli, Path], tmp_path: Path) -> None:
    cli, _src = history
    snaps = cli.json("snapshots")
    ids = [s["id"] for s in snaps]
    mnt = tmp_path / "mnt"
    with mounted(cli, mnt):
        assert sorted(os.listdir(mnt)) == ["hosts", "ids", "latest", "snapshots", "tags"]
        assert sorted(os.listdir(mnt / "ids")) == sorted(ids)
        names = sorted(os.listdir(mnt / "snapshots"))
        assert len(names) == 3
        # each name is its snapshot's time (a same-second twin gets "-1")
        for snap, name in zip(snaps, names, strict=True):
            assert name.startswith(_time_name(snap))
        newest = names[-1]
        assert os.readlink(mnt / "latest") == f"snapshots/{newest}"
        assert os.listdir(mnt / "latest" / "state") == os.listdir(mnt / "snapshots" / newest
                                                                  / "state")
        assert sorted(os.listdir(mnt / "tags")) == ["eod", "known-good"]
        assert sorted(os.listdir(mnt / "tags" / "known-good")) == [names[0], "latest"]
        assert sorted(os.listdir(mnt / "tags" / "eod")) == [names[2], "latest"]
        assert os.readlink(mnt / "tags" / "known-good" / "latest") == names[0]
        assert sorted(os.listdir(mnt / "hosts")) == ["alpha", "beta"]
        assert sorted(os.listdir(mnt / "hosts" / "alpha")) == [names[0], names[1], "latest"]
        assert sorted(os.listdir(mnt / "hosts" / "beta")) == [names[2], "latest"]
        assert (mnt / "hosts" / "alpha" / "latest" / "state" / "db").is_dir()
        # ids/<id> and snapshots/<time> are the same snapshot
        assert (mnt / "ids" / ids[0] / "state" / "db" / "nested" / "config.json").read_text() \
            == '{"day": 1}\n'
        assert (mnt / "snapshots" / names[2] / "state" / "db" / "nested"
                / "config.json").read_text() == '{"day": 3}\n'
        # read-only, and unknown names are ENOENT
        with pytest.raises(OSError) as exc:
            (mnt / "latest" / "state" / "new.txt").write_text("x")
        assert exc.value.errno == errno.EROFS
        assert not (mnt / "snapshots" / "1999-01-01T00:00:00Z").exists()
        assert not (mnt / "nope").exists()


@pytest.mark.parametrize("which", [0, 1, 2], ids=["full", "diff", "incr"])
def test_files_are_byte_identical_to_restore(history: tuple[Cli, Path], tmp_path: Path,
                                             which: int) -> None:
    cli, _src = history
    sid = cli.json("snapshots")[which]["id"]
    target = tmp_path / "restored"
    cli("restore", sid, "--target", target, "-q")
    mnt = tmp_path / "mnt"
    with mounted(cli, mnt):
        # hard links excepted (none here), the same manifest: names, types, modes,
        # mtimes, symlink targets, sizes and SHA-256 of every byte
        assert_same_tree(manifest(target), manifest(mnt / "ids" / sid))
        # random ranges too, not only whole sequential reads
        data = (target / "state" / "db" / "positions.bin").read_bytes()
        with open(mnt / "ids" / sid / "state" / "db" / "positions.bin", "rb") as fh:
            for offset, size in [(0, 1), (262_143, 3), (1 << 20, 700_000), (len(data) - 5, 50)]:
                fh.seek(offset)
                assert fh.read(size) == data[offset : offset + size]


def test_damaged_pack_is_eio_for_that_file_only(history: tuple[Cli, Path],
                                                tmp_path: Path) -> None:
    cli, _src = history
    sid = cli.json("snapshots")[-1]["id"]
    repo = api.open(cli.repo, PASSWORD.encode())
    repo.load_index()
    snap = repo.find_snapshot(sid)
    node = find_node(repo, bytes.fromhex(snap.tree), "state/db/positions.bin")
    loc = repo.locate(node.content[1])
    pack = cli.repo / "data" / loc.pack_id[:2] / loc.pack_id
    raw = bytearray(pack.read_bytes())
    raw[loc.offset + loc.length // 2] ^= 0x01  # one bit inside that blob only
    os.chmod(pack, 0o644)
    pack.write_bytes(bytes(raw))
    good = {rel: (cli.repo.parent / "state" / rel).read_bytes()
            for rel in ("models.bin", "db/nested/config.json")}
    mnt = tmp_path / "mnt"
    with mounted(cli, mnt) as proc:
        root = mnt / "ids" / sid / "state"
        with pytest.raises(OSError) as exc:
            (root / "db" / "positions.bin").read_bytes()
        assert exc.value.errno == errno.EIO
        # the first 256 KiB blob is intact and still readable by range
        with open(root / "db" / "positions.bin", "rb") as fh:
            assert len(fh.read(1000)) == 1000
        for rel, data in good.items():
            assert (root / rel).read_bytes() == data
        assert sorted(os.listdir(root / "db")) == ["nested", "positions.bin"]
        with pytest.raises(OSError) as again:  # verified again, not served from a cache
            (root / "db" / "positions.bin").read_bytes()
        assert again.value.errno == errno.EIO
        assert proc.poll() is None  # the mount survives damaged data


def _children(pid: int) -> set[int]:
    out = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat_line = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat_line.rsplit(")", 1)[1].split()[1]) == pid:
                out.add(int(entry))
    return out


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_signal_unmounts_and_leaves_no_process(history: tuple[Cli, Path], tmp_path: Path,
                                               sig: int) -> None:
    cli, _src = history
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = cli.popen("mount", mnt)
    wait_mounted(proc, mnt)
    # a reader holding a file open does not keep the mount alive past the signal
    fh = open(mnt / "latest" / "state" / "models.bin", "rb")  # noqa: SIM115
    fh.read(10)
    children = _children(proc.pid)
    code, err = stop(proc, mnt, sig)
    with contextlib.suppress(OSError):  # ENOTCONN: its file system is gone, as it should be
        fh.close()
    assert code == 0, err
    assert "unmounted" in err
    assert not os.path.ismount(mnt)
    assert os.listdir(mnt) == []
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{c}").exists() for c in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [c for c in children if Path(f"/proc/{c}").exists()]
    assert not Path(f"/proc/{proc.pid}").exists()


def test_new_snapshots_appear_while_mounted(history: tuple[Cli, Path], tmp_path: Path) -> None:
    cli, src = history
    mnt = tmp_path / "mnt"
    with mounted(cli, mnt, "--refresh-seconds", "0.2"):
        assert len(os.listdir(mnt / "snapshots")) == 3
        (src / "db" / "nested" / "config.json").write_text('{"day": 4}\n')
        new_id = cli.json("backup", src, "--host", "gamma")["snapshot_id"]
        deadline = time.monotonic() + 30
        while new_id not in os.listdir(mnt / "ids") and time.monotonic() < deadline:
            time.sleep(0.3)
        assert (mnt / "ids" / new_id / "state" / "db" / "nested" / "config.json").read_text() \
            == '{"day": 4}\n'
        assert sorted(os.listdir(mnt / "hosts")) == ["alpha", "beta", "gamma"]
        cli("forget", new_id, "-q")
        deadline = time.monotonic() + 30
        while new_id in os.listdir(mnt / "ids") and time.monotonic() < deadline:
            time.sleep(0.3)
        assert new_id not in os.listdir(mnt / "ids")


def test_mount_errors_exit_codes(history: tuple[Cli, Path], tmp_path: Path) -> None:
    cli, _src = history
    missing = cli("mount", tmp_path / "no-such-dir", expect=1)
    assert b"not a directory" in missing.stderr
    (tmp_path / "mnt").mkdir()
    bad = tmp_path / "bad-password"
    bad.write_text("wrong\n")
    cli("mount", tmp_path / "mnt", env=cli.env(DELTAVAULT_PASSWORD_FILE=str(bad)), expect=12)
    assert not os.path.ismount(tmp_path / "mnt")
    proc = cli.popen("mount", tmp_path / "mnt")
    wait_mounted(proc, tmp_path / "mnt")
    try:
        again = cli("mount", tmp_path / "mnt", expect=1)
        assert b"already a mount point" in again.stderr
    finally:
        code, err = stop(proc, tmp_path / "mnt")
    assert code == 0, err
