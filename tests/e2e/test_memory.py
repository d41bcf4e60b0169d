"""The backup pipeline's memory stays bounded whatever the input size."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import Cli

LIMIT_MIB = 500

# Runs the backup as its only child, so RUSAGE_CHILDREN is that process alone.
WRAPPER = """
import resource, subprocess, sys
rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
print(rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def _write_gib(path: Path) -> None:
    """1 GiB that neither compresses nor deduplicates: one random 64 MiB block,
    written 16 times with a distinct counter at the start of every MiB."""
    import numpy as np

    block = np.random.default_rng(5).bytes(64 << 20)
    with open(path, "wb") as fh:
        for i in range(16):
            b = bytearray(block)
            for j in range(64):
                b[j << 20 : (j << 20) + 8] = (i * 64 + j).to_bytes(8, "little")
            fh.write(b)


@pytest.mark.slow
def test_backup_of_1gib_file_stays_under_500mib_rss(cli_repo: Cli, tmp_path: Path) -> None:
    big = tmp_path / "src" / "one.gib"
    big.parent.mkdir()
    _write_gib(big)
    argv = [sys.executable, "-m", "deltavault", "backup", str(big.parent), "--quiet"]
    out = subprocess.run([sys.executable, "-c", WRAPPER, *argv], env=cli_repo.env(),
                         capture_output=True, check=True, timeout=600).stdout.split()
    rc, peak_kib = int(out[0]), int(out[1])
    assert rc == 0
    print(f"peak RSS of 'deltavault backup' of a 1 GiB file: {peak_kib / 1024:.0f} MiB")
    assert peak_kib < LIMIT_MIB * 1024
    (snap,) = cli_repo.json("snapshots")
    assert snap["summary"]["bytes_read"] == 1 << 30
    # chunks between two counters repeat, so a few percent deduplicate; the rest is stored
    assert snap["summary"]["bytes_added"] > 0.9 * (1 << 30)
    big.unlink()  # free the disk before the next test
