"""The console script tunes glibc's allocator so chunk buffers are reused, not re-faulted."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from deltavault.cli import main as cli_main

_PROBE = textwrap.dedent("""
    import os, resource, sys
    from deltavault.cli.allocator import tune_allocator
    if sys.argv[1] == "tuned":
        assert tune_allocator()
    else:  # what setting only the trim threshold did: it stops glibc's adaptive mmap threshold
        import ctypes
        ctypes.CDLL(None).mallopt(-1, 32 << 20)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(100):
        chunk = os.urandom(2 << 20)  # a chunk-sized buffer, made and freed
        del chunk
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], check=True,
                         capture_output=True, text=True)
    return int(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_chunk_sized_buffers_are_served_from_the_heap_without_faults() -> None:
    # 100 buffers of 2 MiB are 51,200 pages: an mmap per buffer faults each page in again
    assert _faults("trim-only") > 25_000
    assert _faults("tuned") < 2_000


def test_the_console_script_tunes_the_allocator_first(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(cli_main, "tune_allocator", lambda: calls.append(1) or True)
    with pytest.raises(SystemExit) as info:
        cli_main.run(["version"])
    assert info.value.code == 0 and calls == [1]
