"""init → backup → modify → backup → restore, run as a user would, over an awkward tree."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.cli import KDF_ARGS, PASSWORD, Cli
from tests.support.trees import Entry, assert_same_tree, file_digest, manifest, write_random

SPARSE_SIZE = 64 << 20
T0 = 1_700_000_000_123_456_789  # fixed mtimes, so a restore must really set them


def build_source(root: Path) -> None:
    """Nested dirs, every link kind, hard links, sparse, mode 000, odd names, big file."""
    (root / "a" / "b" / "c").mkdir(parents=True)
    (root / "a" / "b" / "c" / "deep.txt").write_bytes(b"deep\n" * 100)
    (root / "empty").write_bytes(b"")
    (root / "emptydir").mkdir()
    os.symlink("a/b/c/deep.txt", root / "rel-link")
    os.symlink("/etc/hostname", root / "abs-link")
    os.symlink("nowhere/missing", root / "dangling")
    (root / "hl1").write_bytes(b"shared inode\n")
    os.link(root / "hl1", root / "a" / "hl2")
    with open(root / "sparse.img", "wb") as fh:
        fh.truncate(SPARSE_SIZE)
        fh.seek(SPARSE_SIZE // 2)
        fh.write(b"middle of nowhere" * 64)
    (root / "noperm").write_bytes(b"you cannot read me as a user\n")
    os.chmod(root / "noperm", 0o000)
    (root / "é.txt").write_text("accent\n")
    (root / "日本").mkdir()
    (root / "日本" / "データ.csv").write_text("a,b\n1,2\n")
    (root / "🚀.txt").write_text("emoji\n")
    with open(os.path.join(os.fsencode(root), b"raw-\xff\xfe"), "wb") as fh:
        fh.write(b"latin-1 name\n")
    (root / "setgid-dir").mkdir()
    os.chmod(root / "setgid-dir", 0o2750)
    (root / "exec.sh").write_bytes(b"#!/bin/sh\n")
    os.chmod(root / "exec.sh", 0o755)
    write_random(root / "big.bin", 20 << 20, seed=42)


def set_times(root: Path, base: int = T0) -> None:
    """Deterministic mtimes on everything, children before their directories."""
    broot = os.fsencode(root)
    for i, (dirpath, dirnames, filenames) in enumerate(os.walk(broot, topdown=False)):
        for j, name in enumerate(sorted(filenames) + sorted(dirnames)):
            t = base + (i * 1000 + j) * 1_000_001
            os.utime(os.path.join(dirpath, name), ns=(t, t), follow_symlinks=False)
        os.utime(dirpath, ns=(base - i, base - i))


@dataclass
class Populated:
    cli: Cli
    src: Path
    first: str
    second: str
    before: dict[bytes, Entry]
    after: dict[bytes, Entry]


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> Populated:
    tmp = tmp_path_factory.mktemp("populated")
    pw = tmp / "pw"
    pw.write_text(PASSWORD + "\n")
    cli = Cli(tmp / "repo", pw)
    cli("init", *KDF_ARGS)
    src = tmp / "src"
    build_source(src)
    set_times(src)
    before = manifest(src)
    first = cli.json("backup", src)
    assert first["type"] == "full" and first["errors"] == []
    # modify: change, add, remove
    (src / "a" / "b" / "c" / "deep.txt").write_bytes(b"changed\n")
    (src / "new.txt").write_bytes(b"added\n")
    (src / "empty").unlink()
    set_times(src, T0 + 10**12)
    after = manifest(src)
    second = cli.json("backup", src)
    assert second["type"] == "incr" and second["parent"] == first["snapshot_id"]
    assert second["summary"]["files_unmodified"] == 0  # every mtime moved
    return Populated(cli, src, first["snapshot_id"], second["snapshot_id"], before, after)


@pytest.mark.parametrize("which", ["first", "second"])
def test_restore_is_identical(populated: Populated, tmp_path: Path, which: str) -> None:
    p = populated
    sid = p.first if which == "first" else p.second
    p.cli("restore", sid, "--target", tmp_path / "out")
    restored = tmp_path / "out" / "src"
    assert_same_tree(p.before if which == "first" else p.after, manifest(restored))
    assert os.readlink(restored / "abs-link") == "/etc/hostname"
    assert (os.lstat(restored / "hl1").st_ino == os.lstat(restored / "a" / "hl2").st_ino)
    assert os.lstat(restored / "noperm").st_mode & 0o7777 == 0
    assert os.lstat(restored / "setgid-dir").st_mode & 0o7777 == 0o2750
    src_blocks = os.stat(p.src / "sparse.img").st_blocks
    if src_blocks * 512 < (1 << 20):  # the file system keeps holes
        # all-zero chunks stay holes; only the chunk(s) around the data (<= 4 MiB each) land
        assert os.stat(restored / "sparse.img").st_blocks * 512 <= 8 << 20


def test_include_restores_only_matching_paths(populated: Populated, tmp_path: Path) -> None:
    p = populated
    p.cli("restore", "latest", "-t", tmp_path / "out", "--include", "src/日本",
          "--include", "src/a/b/*")
    got = sorted(os.fsdecode(k) for k in manifest(tmp_path / "out", mtimes=False))
    assert got == ["src", "src/a", "src/a/b", "src/a/b/c", "src/a/b/c/deep.txt", "src/日本",
                   "src/日本/データ.csv"]
    assert (tmp_path / "out/src/a/b/c/deep.txt").read_bytes() == b"changed\n"


def test_dump_writes_one_file_to_stdout(populated: Populated) -> None:
    p = populated
    out = p.cli("dump", "latest", "src/big.bin").stdout
    assert len(out) == 20 << 20 and out == (p.src / "big.bin").read_bytes()
    assert p.cli("dump", p.first, "src/a/b/c/deep.txt").stdout == b"deep\n" * 100
    assert p.cli("dump", "latest", "src/日本/データ.csv").stdout == b"a,b\n1,2\n"
    proc = p.cli("dump", "latest", "src/a", expect=1)
    assert b"not a file" in proc.stderr


def test_ls_json_lists_every_entry(populated: Populated) -> None:
    p = populated
    entries = p.cli.json("ls", "latest")
    by_path = {e["path"]: e for e in entries}
    expected = {"src"} | {"src/" + os.fsdecode(k) for k in p.after}
    assert set(by_path) == expected
    assert by_path["src/big.bin"]["size"] == 20 << 20
    assert by_path["src/big.bin"]["type"] == "file"
    assert by_path["src/rel-link"]["type"] == "symlink"
    assert by_path["src/a/b"]["type"] == "dir"
    assert by_path["src/noperm"]["mode"] == 0
    sub = p.cli.json("ls", "latest", "src/a/b")
    assert [e["path"] for e in sub] == ["src/a/b/c", "src/a/b/c/deep.txt"]


def test_diff_json_names_added_removed_changed(populated: Populated) -> None:
    p = populated
    d = p.cli.json("diff", p.first, p.second)
    assert d["a"] == p.first and d["b"] == p.second
    assert [x["path"] for x in d["added"]] == ["src/new.txt"]
    assert [x["path"] for x in d["removed"]] == ["src/empty"]
    assert [(x["path"], x["old_size"], x["new_size"]) for x in d["changed"]] == [
        ("src/a/b/c/deep.txt", 500, 8)]
    assert "src/big.bin" in d["metadata_only"]  # only the mtime moved


def test_snapshots_json_and_refs(populated: Populated) -> None:
    p = populated
    snaps = p.cli.json("snapshots")
    assert [s["id"] for s in snaps] == [p.first, p.second]
    assert snaps[1]["parent"] == p.first and snaps[1]["chain_depth"] == 1
    assert snaps[0]["paths"] == [str(p.src)]
    # latest, latest~1 and a unique prefix resolve; a non-matching prefix does not
    assert p.cli.json("ls", "latest~1")[0]["path"] == "src"
    d = p.cli.json("diff", "latest~1", "latest")
    assert (d["a"], d["b"]) == (p.first, p.second)
    prefix = next(n for n in range(4, 64) if p.first[:n] != p.second[:n])
    d = p.cli.json("diff", p.first[:prefix + 1], p.second[:prefix + 1])
    assert (d["a"], d["b"]) == (p.first, p.second)
    missing = next(c for c in "0123456789abcdef" if not p.first.startswith(c)
                   and not p.second.startswith(c))
    proc = p.cli("ls", missing, expect=1)
    assert proc.stderr.startswith(b"deltavault: error: no snapshot matches")


def test_stats_json(populated: Populated) -> None:
    st = populated.cli.json("stats")
    assert st["snapshots"] == 2
    assert st["packs"] >= 2  # 20 MiB of random data does not fit one 16 MiB pack
    assert st["stored_bytes"] >= 20 << 20
    assert st["blobs"] >= 6
    assert st["latest_size"] == sum(e.size for e in populated.after.values())


def test_check_read_data_passes(populated: Populated) -> None:
    rep = populated.cli.json("check", "--read-data")
    assert rep["ok"] and rep["problems"] == [] and rep["snapshots"] == 2
    assert rep["packs_read"] == rep["packs"] and rep["blobs_verified"] > 0
    rep = populated.cli.json("check", "--read-data-subset", "50%")
    assert rep["ok"] and 1 <= rep["packs_read"] <= rep["packs"]


def test_restore_over_existing_target_repairs_it(populated: Populated, tmp_path: Path) -> None:
    p = populated
    out = tmp_path / "out"
    p.cli("restore", p.first, "-t", out)
    (out / "src" / "big.bin").write_bytes(b"scribbled")
    shutil.rmtree(out / "src" / "a")
    (out / "src" / "rel-link").unlink()
    (out / "src" / "rel-link").write_bytes(b"a file where a link was")
    p.cli("restore", p.first, "-t", out)
    assert_same_tree(p.before, manifest(out / "src"))


# --- smaller scenarios, each with its own repository --------------------------


def test_tag_then_filter(cli_repo: Cli) -> None:
    a = cli_repo.json("backup", "--stdin", "--stdin-filename", "a.sql", input=b"a")
    b = cli_repo.json("backup", "--stdin", "--stdin-filename", "a.sql", input=b"b")
    t = cli_repo.json("tag", a["snapshot_id"][:10], "--add", "known-good")
    assert t["old_id"] == a["snapshot_id"] and t["tags"] == ["known-good"]
    tagged = cli_repo.json("snapshots", "--tag", "known-good")
    assert [s["id"] for s in tagged] == [t["new_id"]]
    all_ids = [s["id"] for s in cli_repo.json("snapshots")]
    assert sorted(all_ids) == sorted([t["new_id"], b["snapshot_id"]])  # old one superseded
    assert cli_repo("dump", t["new_id"], "a.sql").stdout == b"a"
    cli_repo.json("tag", t["new_id"], "--remove", "known-good")
    assert cli_repo.json("snapshots", "--tag", "known-good") == []
    assert cli_repo.json("check", "--read-data")["ok"]


def test_stdin_backup_and_dump(cli_repo: Cli) -> None:
    data = os.urandom(3 << 20) + b"tail"
    snap = cli_repo.json("backup", "--stdin", "--stdin-filename", "prices.parquet", input=data)
    assert snap["summary"]["bytes_read"] == len(data)
    assert cli_repo("dump", "latest", "prices.parquet").stdout == data
    (entry,) = cli_repo.json("ls", "latest")
    assert entry["path"] == "prices.parquet" and entry["size"] == len(data)


def test_exclude_and_exclude_file(cli_repo: Cli, tmp_path: Path) -> None:
    src = tmp_path / "src"
    for rel in ("keep.csv", "x.log", "sub/y.log", "sub/keep2.csv", "cache/z", "tmp.swp"):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(rel)
    excl = tmp_path / "excludes"
    excl.write_text("# comment\n*.swp\n\ncache\n")
    cli_repo("backup", src, "--exclude", "*.log", "--exclude-file", excl)
    paths = sorted(e["path"] for e in cli_repo.json("ls", "latest"))
    assert paths == ["src", "src/keep.csv", "src/sub", "src/sub/keep2.csv"]
    proc = cli_repo("backup", src, "--exclude-file", tmp_path / "nope", expect=1)
    assert proc.stderr.startswith(b"deltavault: error: cannot read")


@pytest.mark.slow
def test_key_add_list_remove_passwd(cli_repo: Cli, tmp_path: Path) -> None:
    cli_repo.json("backup", "--stdin", input=b"x")
    second_pw = tmp_path / "second"
    second_pw.write_text("second password\n")
    added = cli_repo.json("key", "add", "--new-password-file", second_pw)["added"]
    keys = cli_repo.json("key", "list")
    assert len(keys) == 2 and sum(k["current"] for k in keys) == 1
    as_second = cli_repo.env(DELTAVAULT_PASSWORD_FILE=str(second_pw))
    assert len(cli_repo.json("snapshots", env=as_second)) == 1
    assert next(k for k in cli_repo.json("key", "list", env=as_second) if k["current"])[
        "id"] == added
    # the key in use cannot be removed; another one can, by prefix
    proc = cli_repo("key", "remove", added[:10], env=as_second, expect=1)
    assert b"refusing" in proc.stderr
    assert cli_repo.json("key", "remove", added[:10])["removed"] == added
    cli_repo("snapshots", env=as_second, expect=12)
    # passwd: the old password stops working, the new one works
    new_pw = tmp_path / "new"
    new_pw.write_text("brand new\n")
    cli_repo.json("key", "passwd", "--new-password-file", new_pw)
    proc = cli_repo("snapshots", expect=12)
    assert proc.stderr.startswith(b"deltavault: error: wrong password")
    as_new = cli_repo.env(DELTAVAULT_PASSWORD_FILE=str(new_pw))
    assert len(cli_repo.json("snapshots", env=as_new)) == 1
    assert len(cli_repo.json("key", "list", env=as_new)) == 1


def _without_dac_override() -> None:
    """Child setup: drop CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH, so root obeys mode bits."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_unreadable_file_gives_warning_exit_3_and_usable_snapshot(cli_repo: Cli,
                                                                   tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "ok.txt").write_text("fine\n")
    (src / "locked.txt").write_text("secret\n")
    os.chmod(src / "locked.txt", 0o000)
    (src / "closed").mkdir()
    (src / "closed" / "inner").write_text("x")
    os.chmod(src / "closed", 0o000)
    for path in (cli_repo.repo, cli_repo.password_file):  # the repository stays usable
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    import sys

    proc = subprocess.run([sys.executable, "-m", "deltavault", "backup", str(src), "--json"],
                          env=cli_repo.env(), capture_output=True, timeout=120,
                          preexec_fn=_without_dac_override, check=False)
    assert proc.returncode == 3, proc.stderr
    err = proc.stderr.decode()
    assert "warning:" in err and "locked.txt" in err and "closed" in err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("deltavault: error: 2 file(s) could not")
    snap = json.loads(proc.stdout)
    assert len(snap["errors"]) == 2
    paths = {e["path"] for e in cli_repo.json("ls", snap["snapshot_id"])}
    assert paths == {"src", "src/ok.txt"}
    cli_repo("restore", "latest", "-t", tmp_path / "out")
    assert (tmp_path / "out" / "src" / "ok.txt").read_text() == "fine\n"
    assert cli_repo.json("check")["ok"]
    assert file_digest(tmp_path / "out" / "src" / "ok.txt") == file_digest(src / "ok.txt")


def test_ls_and_diff_print_one_plain_line_per_entry_with_control_characters_escaped(
        cli_repo: Cli, tmp_path: Path) -> None:
    """A file name may hold a newline or a terminal escape: shown escaped, never raw."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "plain.txt").write_bytes(b"x")
    cli_repo("backup", str(src))
    (src / "two\nlines").write_bytes(b"y")
    (src / "esc\x1b[2Jname").write_bytes(b"z")
    cli_repo("backup", str(src))
    lines = cli_repo("ls", "latest").stdout.decode().splitlines()
    assert len(lines) == 4
    names = [line.rsplit(" ", 1)[1] for line in lines]
    assert names == ["src", "src/esc\\x1b[2Jname", "src/plain.txt", "src/two\\x0alines"]
    assert lines[2].startswith("-rw") and " 1 " in lines[2]
    diff = cli_repo("diff", "latest~1", "latest").stdout.decode().splitlines()
    assert "+ src/two\\x0alines (1 B)" in diff and "+ src/esc\\x1b[2Jname (1 B)" in diff
    assert diff[-1].startswith("2 added, 0 removed")
    assert "\x1b" not in "".join(lines + diff)
