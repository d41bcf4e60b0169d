"""Frames between our processes: round trip, and any byte stream read without a crash."""

from __future__ import annotations

import contextlib
import io
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deltavault.repo.frames import FrameError, read_frame, write_frame


def test_frames_round_trip_through_a_pipe() -> None:
    r, w = os.pipe()
    bodies = [{"b": 5}, {"files": 2, "linked": [[1, 2, [b"a", b"\xff"], b"x"]]}, [1], None]
    for body in bodies:
        write_frame(w, body)
    os.close(w)
    with os.fdopen(r, "rb", buffering=0) as fh:
        got = [read_frame(fh, 1 << 20) for _ in bodies]
        assert read_frame(fh, 1 << 20) is None  # the end of the stream
    assert got == bodies


def test_a_frame_longer_than_the_limit_is_refused() -> None:
    r, w = os.pipe()
    write_frame(w, b"x" * 100)
    os.close(w)
    with os.fdopen(r, "rb", buffering=0) as fh, pytest.raises(FrameError, match="frame of"):
        read_frame(fh, 50)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_any_bytes_give_a_body_the_end_or_a_frame_error(data: bytes) -> None:
    with contextlib.suppress(FrameError):
        read_frame(io.BytesIO(data), 1 << 16)
