"""The sealer process: small files stored alike in it and in process, and never relied on.

A backup of many tiny files hands them to a helper process (sealer.py) so
both cores work on them. What it returns must be exactly what the backup's
own workers would have stored (same ids, decodable envelopes); a backup
whose sealer dies finishes without it; a backup killed with SIGKILL leaves
no sealer behind.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deltavault import api
from deltavault.backup.sealer import Callback, Sealer, SealerGone, _read_frame
from deltavault.chunk.fastcdc import CdcParams
from deltavault.chunk.files import FileChunker
from deltavault.codec.registry import decode
from deltavault.errors import DeltavaultError
from deltavault.repo.repository import Repository
from tests.support.cli import KDF_ARGS, PASSWORD, Cli, entry_argv
from tests.support.trees import differences

PW = b"sealer-test"


def _init(path: Path) -> Repository:
    return api.init(path, PW, kdf_memory_kib=8192, kdf_time_cost=1)


def _cdc(repo: Repository) -> CdcParams:
    p = repo.config.chunker
    return CdcParams(p.min_size, p.avg_size, p.max_size, p.normalization,
                     repo.crypto.chunker_seed)


def _started(crypto_repo: Repository) -> Sealer:
    sealer = Sealer(crypto_repo.crypto, _cdc(crypto_repo), "auto", 3)
    deadline = time.monotonic() + 60
    while not sealer.ready():
        assert time.monotonic() < deadline, "the sealer did not start"
        time.sleep(0.01)
    return sealer


@pytest.fixture
def waiting_sealer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sealers start after 64 tiny files and are waited for: a backup of a few
    thousand files may otherwise end before the helper's imports do."""
    monkeypatch.setenv("DELTAVAULT_SEALER_AFTER_FILES", "64")
    real_ready = Sealer.ready

    def ready(self: Sealer) -> bool:
        deadline = time.monotonic() + 60
        while not real_ready(self) and self._broken is None:
            assert time.monotonic() < deadline, "the sealer did not start"
            time.sleep(0.01)
        return real_ready(self)

    monkeypatch.setattr(Sealer, "ready", ready)


def _seal(sealer: Sealer, files: list[tuple[bytes, int]]) -> list[list[object]]:
    """One request's answers, waited for."""
    got: list[object] = []
    done = threading.Event()
    sealer.submit(files, lambda answers: (got.append(answers), done.set()))
    assert done.wait(60), "no answer from the sealer"
    assert isinstance(got[0], list), got[0]
    return got[0]


def _restores_exactly(repo: Repository, snapshot: str, src: Path, out: Path) -> None:
    """The snapshot restores ``src`` byte for byte and every stored blob reads back."""
    api.restore(repo, snapshot, out)
    assert differences(src, out / src.name) == []
    assert api.check(repo, read_data=True).ok


def _tiny_tree(root: Path, n: int, seed: int = 3) -> None:
    """``n`` JSON-lines files of 0.1-4 KiB, 100 to a directory."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        d = root / f"g{i // 100:03d}"
        d.mkdir(parents=True, exist_ok=True)
        lines = int(rng.integers(2, 80))
        (d / f"f{i:05d}.jsonl").write_bytes(
            b"".join(b'{"sym":"ES%d","px":%d,"qty":%d}\n' % (i % 7, rng.integers(1e6), j)
                     for j in range(lines)))


def test_the_sealer_seals_each_file_as_the_backup_itself_would(tmp_path: Path) -> None:
    repo = _init(tmp_path / "repo")
    crypto, chunker = repo.crypto, FileChunker(_cdc(repo))
    text = tmp_path / "a.jsonl"
    text.write_bytes(b'{"px": 101.25, "qty": 3}\n' * 200)
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    rand = tmp_path / "r.bin"
    rand.write_bytes(os.urandom(3000))  # incompressible: stored raw
    arr = tmp_path / "a.npy"
    np.save(arr, np.round(np.random.default_rng(1).normal(100, 1, (200, 8)), 2))
    db = tmp_path / "p.db"
    with sqlite3.connect(db) as con:
        con.execute("create table t (x)")
    odd = tmp_path / os.fsdecode(b"odd-\xff-name")  # not UTF-8: crosses the pipe as bytes
    odd.write_bytes(b"not utf-8 named\n")
    paths = [text, empty, rand, arr, db, odd, tmp_path / "missing"]

    sealer = _started(repo)
    try:
        answers = _seal(sealer, [(os.fsencode(p), p.stat().st_size if p.exists() else 10)
                                 for p in paths])
        again = _seal(sealer, [(os.fsencode(text), text.stat().st_size)])
    finally:
        use = sealer.close()
    assert again[0][1][0][0] == answers[0][1][0][0]  # a second request, same id
    assert use.files == len(paths) + 1 and use.failed is None
    # its own peak, not the kernel's maxrss (which counts this process up to the exec)
    assert 0 < use.peak_rss_mib < _rss_mib(), (use.peak_rss_mib, _rss_mib())

    assert answers[4] == [2]  # SQLite: left to the backup's stream path
    assert answers[6] == [1, "No such file or directory"]
    for p, answer in zip([*paths[:4], odd], [*answers[:4], answers[5]], strict=True):
        data = p.read_bytes()
        status, chunks, nbytes = answer
        assert status == 0 and nbytes == len(data)
        refs = chunker.split_buffer(data)
        assert refs is not None and len(chunks) == len(refs)
        for (blob_id, codec, raw_length, envelope), ref in zip(chunks, refs, strict=True):
            assert blob_id == crypto.blob_id(ref.data)
            assert raw_length == ref.length
            payload = crypto.open_blob(blob_id, envelope)  # sealed to this id
            assert decode(codec, payload, None, raw_length) == bytes(ref.data)
    assert answers[2][1][0][1] == 0  # random bytes: raw, as choose() decides


@pytest.mark.usefixtures("waiting_sealer")
def test_a_backup_with_the_sealer_stores_the_same_tree_as_without(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    _tiny_tree(src, 1500)
    repo = _init(tmp_path / "repo")
    monkeypatch.setenv("DELTAVAULT_SEALER", "0")
    alone = api.backup(repo, [src], snapshot_type="full").snapshot
    monkeypatch.setenv("DELTAVAULT_SEALER", "1")
    sealed = api.backup(repo, [src], snapshot_type="full").snapshot
    assert "sealer" not in alone.summary
    assert sealed.summary["sealer"]["files"] >= 1400
    assert sealed.summary["sealer"]["failed"] is None
    assert sealed.summary["cpu_s"] >= sealed.summary["sealer"]["cpu_s"] > 0
    assert sealed.tree == alone.tree  # the same ids for every file

    repo2 = _init(tmp_path / "repo2")  # and into an empty repository: every blob new
    fresh = api.backup(repo2, [src], snapshot_type="full").snapshot
    assert fresh.summary["sealer"]["files"] >= 1400
    assert fresh.summary["blobs_added"] >= 1500  # files, and trees
    _restores_exactly(repo2, fresh.id, src, tmp_path / "out")


@pytest.mark.usefixtures("waiting_sealer")
def test_a_backup_whose_sealer_dies_finishes_without_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    _tiny_tree(src, 1500, seed=4)
    calls = {"n": 0}
    real_submit = Sealer.submit

    def dying_submit(self: Sealer, batch: list[tuple[bytes, int]], done: Callback) -> None:
        calls["n"] += 1
        if calls["n"] == 6:  # killed by the OOM killer, say, with batches in its pipe
            deadline = time.monotonic() + 60
            while self.use.files == 0:  # after it has sealed something
                assert time.monotonic() < deadline, "the sealer sealed nothing"
                time.sleep(0.01)
            os.kill(self._proc.pid, signal.SIGKILL)
        real_submit(self, batch, done)

    monkeypatch.setattr(Sealer, "submit", dying_submit)
    repo = _init(tmp_path / "repo")
    result = api.backup(repo, [src], snapshot_type="full")
    assert result.errors == []
    use = result.snapshot.summary["sealer"]
    assert use["failed"] and 0 < use["files"] < 1500
    _restores_exactly(repo, result.snapshot.id, src, tmp_path / "out")


@pytest.mark.usefixtures("waiting_sealer")
def test_unreadable_files_are_reported_through_the_sealer(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    _tiny_tree(src, 600, seed=5)
    victims = sorted(src.glob("g005/*.jsonl"))[:3]
    real_submit = Sealer.submit

    def vanishing(self: Sealer, batch: list[tuple[bytes, int]], done: Callback) -> None:
        for p in victims:  # gone between the walk and the read
            if os.fsencode(p) in {b[0] for b in batch}:
                p.unlink()
        real_submit(self, batch, done)

    monkeypatch.setattr(Sealer, "submit", vanishing)
    repo = _init(tmp_path / "repo")
    result = api.backup(repo, [src], snapshot_type="full")
    assert result.snapshot.summary["sealer"]["files"] > 0
    assert len(result.errors) == len(victims)
    for p, error in zip(victims, sorted(result.errors), strict=True):
        assert error.endswith(f"{p.name}: No such file or directory")


def test_a_killed_backup_leaves_no_sealer_behind(cli: Cli, tmp_path: Path) -> None:
    src = tmp_path / "src"
    _tiny_tree(src, 8000, seed=6)
    cli("init", *KDF_ARGS)
    env = cli.env(DELTAVAULT_SEALER_AFTER_FILES="64")
    proc = subprocess.Popen([*entry_argv(), "backup", str(src)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sealer_pid = None
    deadline = time.monotonic() + 120
    while sealer_pid is None and proc.poll() is None and time.monotonic() < deadline:
        sealer_pid = _child_sealer(proc.pid)
        time.sleep(0.005)
    assert sealer_pid is not None, "the backup ended before it started a sealer"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 30
    while _alive(sealer_pid):  # its input ends with the backup: it exits by itself
        assert time.monotonic() < deadline, "the sealer outlived its backup"
        time.sleep(0.05)
    assert api.snapshots(api.open(cli.repo, PASSWORD.encode())) == []
    done = cli.json("backup", src, env=env)
    assert done["errors"] == []
    cli("check", "--read-data")
    cli("restore", done["snapshot_id"], "--target", tmp_path / "out")
    assert differences(src, tmp_path / "out" / "src") == []


def _child_sealer(ppid: int) -> int | None:
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            cmdline = Path(entry.path, "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == ppid and b"backup.sealer" in cmdline:
            return int(entry.name)
    return None


def _rss_mib() -> float:
    """This (test) process's peak resident memory."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_a_garbled_frame_is_an_error_of_the_sealer_never_anything_else(data: bytes) -> None:
    r, w = os.pipe()
    try:
        os.write(w, data)
        os.close(w)
        w = -1
        with contextlib.suppress(SealerGone), open(r, "rb", buffering=0, closefd=False) as f:
            _read_frame(f)
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)


def test_the_sealer_process_does_not_load_numpy(tmp_path: Path) -> None:
    """Its memory counts on top of the backup's: ~25 MiB without numpy, ~43 with it.

    A text file makes it encode (codec policy, registry, chunkers); a ``.npy``
    file would load numpy where it is needed, in the numeric codecs."""
    repo = _init(tmp_path / "repo")
    text = tmp_path / "a.jsonl"
    text.write_bytes(b'{"px": 101.25}\n' * 300)
    sealer = _started(repo)
    try:
        assert _seal(sealer, [(os.fsencode(text), text.stat().st_size)])[0][0] == 0
        maps = Path(f"/proc/{sealer._proc.pid}/maps").read_text()
    finally:
        sealer.close()
    assert "_multiarray_umath" not in maps  # numpy's core extension is not mapped
    assert "zstd" in maps or "zstandard" in maps  # (and the check can see extensions)


@pytest.mark.usefixtures("waiting_sealer")
def test_a_malformed_answer_is_stored_in_process_instead(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    _tiny_tree(src, 1000, seed=7)
    real_submit = Sealer.submit
    calls = {"n": 0}

    def garbling(self: Sealer, batch: list[tuple[bytes, int]], done: Callback) -> None:
        calls["n"] += 1
        if calls["n"] != 2:
            real_submit(self, batch, done)
            return

        def short_ids(answers: list[list[object]] | DeltavaultError) -> None:
            assert isinstance(answers, list)
            for a in answers:  # a blob id cut short
                if a[0] == 0:
                    a[1][0][0] = a[1][0][0][:16]
            done(answers)

        real_submit(self, batch, short_ids)

    monkeypatch.setattr(Sealer, "submit", garbling)
    repo = _init(tmp_path / "repo")
    result = api.backup(repo, [src], snapshot_type="full")
    assert result.errors == [] and calls["n"] > 2
    assert result.snapshot.summary["sealer"]["files"] >= 1000 - 64 * 2
    _restores_exactly(repo, result.snapshot.id, src, tmp_path / "out")
