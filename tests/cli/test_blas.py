"""The console script keeps numpy's OpenBLAS from starting a pool of polling threads."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from deltavault.cli import blas
from deltavault.cli import main as cli_main

_PROBE = textwrap.dedent("""
    import os, sys
    if sys.argv[1] == "limited":
        from deltavault.cli.blas import single_threaded_blas
        single_threaded_blas()
    import numpy
    print(len(os.listdir("/proc/self/task")))
""")


def _threads_after_numpy(mode: str) -> int:
    env = {k: v for k, v in os.environ.items()
           if k not in (blas.POOL_VARIABLE, "OMP_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], check=True,
                         capture_output=True, text=True, env=env)
    return int(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/task")
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="OpenBLAS starts no pool on one core")
def test_numpy_starts_no_helper_threads_once_limited() -> None:
    assert _threads_after_numpy("default") > 1  # the pool this build starts: the check can fail
    assert _threads_after_numpy("limited") == 1


def test_the_console_script_limits_the_pool_and_keeps_a_users_choice(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(blas.POOL_VARIABLE, "-")  # so that teardown puts back what was there
    monkeypatch.delenv(blas.POOL_VARIABLE)
    with pytest.raises(SystemExit) as info:
        cli_main.run(["version"])
    assert info.value.code == 0 and os.environ[blas.POOL_VARIABLE] == "1"
    monkeypatch.setenv(blas.POOL_VARIABLE, "2")
    with pytest.raises(SystemExit):
        cli_main.run(["version"])
    assert os.environ[blas.POOL_VARIABLE] == "2"
