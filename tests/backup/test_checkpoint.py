"""Index checkpoints: a backup killed with SIGKILL leaves its packs indexed and reused.

The writer saves an index file every N packs (``DELTAVAULT_INDEX_EVERY_PACKS``
here 2, 64 by default), so the next backup deduplicates against what the
killed one already stored instead of uploading it again (issue 13).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from deltavault import api
from deltavault.repo.layout import INDEX_PREFIX
from tests.support.cli import KDF_ARGS, PASSWORD, Cli

FILES = 48  # 1 MiB of random bytes each: one pack per file at --pack-size 1


def _indexed_packs(repo_path: Path) -> dict[str, set[bytes]]:
    """Blob ids per pack, from the index files stored so far."""
    repo = api.open(repo_path, PASSWORD.encode())
    repo.load_index(force=True)
    packs: dict[str, set[bytes]] = {}
    for loc in repo.index.all_locations():
        packs.setdefault(loc.pack_id, set()).add(loc.id)
    return packs


def test_killed_backup_packs_are_indexed_and_reused(cli: Cli, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(FILES):
        (src / f"blob{i:03d}.bin").write_bytes(os.urandom(1 << 20))
    cli("init", *KDF_ARGS, "--pack-size", "1")
    env = cli.env(DELTAVAULT_INDEX_EVERY_PACKS="2")
    proc = subprocess.Popen([sys.executable, "-m", "deltavault", "backup", str(src)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    index_dir = cli.repo / INDEX_PREFIX.rstrip("/")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if index_dir.is_dir() and any(index_dir.iterdir()):
            break
        time.sleep(0.005)
    assert proc.poll() is None, "the backup ended before its first index checkpoint"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert api.snapshots(api.open(cli.repo, PASSWORD.encode())) == []

    before = _indexed_packs(cli.repo)
    assert before, "no index file was written before the kill"
    kept = set().union(*before.values())

    done = cli.json("backup", src, env=env)
    assert done["errors"] == []
    after = _indexed_packs(cli.repo)
    new_packs = set(after) - set(before)
    rewritten = kept & set().union(*(after[p] for p in new_packs)) if new_packs else set()
    assert rewritten == set(), f"{len(rewritten)} blobs of indexed packs stored again"
    assert done["summary"]["blobs_deduplicated"] >= len(kept)
    # every blob stored once across all indexed packs
    counts = Counter(b for blobs in after.values() for b in blobs)
    assert max(counts.values()) == 1
    # and the snapshot restores what was backed up
    out = tmp_path / "out"
    cli("restore", done["snapshot_id"], "--target", out)
    for f in src.iterdir():
        assert (out / "src" / f.name).read_bytes() == f.read_bytes()
