"""The ``.npy`` header parser runs on the backup's worker threads at once."""

from __future__ import annotations

import gc
import io
import sys
import threading
from collections.abc import Iterator

import numpy as np
import pytest

from deltavault.chunk.npy import parse_header


class _Finalized:
    """Cyclic garbage whose finaliser runs Python code, so the collector can
    hand the interpreter lock to another thread in the middle of a parse."""

    def __init__(self) -> None:
        self.me = self

    def __del__(self) -> None:
        sum(range(20))


@pytest.fixture
def busy_switching() -> Iterator[None]:
    interval, threshold = sys.getswitchinterval(), gc.get_threshold()
    sys.setswitchinterval(1e-6)
    gc.set_threshold(50)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)
        gc.set_threshold(*threshold)


def test_headers_parse_on_many_threads_at_once(busy_switching: None) -> None:
    """CPython 3.11 keeps the AST converter's depth counter per interpreter:
    two threads inside ``ast.literal_eval`` at once raised SystemError
    ("AST constructor recursion depth mismatch"), which failed a backup in CI."""
    buf = io.BytesIO()
    np.save(buf, np.zeros((3, 4)))
    prefix = buf.getvalue()
    failures: list[BaseException] = []
    misses = [0]

    def work() -> None:
        for _ in range(5000):
            try:
                if parse_header(prefix) is None:
                    misses[0] += 1
            except BaseException as exc:
                failures.append(exc)
                return
            _Finalized()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == [] and misses[0] == 0

