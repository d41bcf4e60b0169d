"""Resemblance sketches find the edited version of a chunk among unrelated ones."""

from __future__ import annotations

import json

import numpy as np

from deltavault.codec.sketch import SketchIndex, sketch

_rng = np.random.default_rng(5)


def _log(n: int, seed: int) -> bytes:
    r = np.random.default_rng(seed)
    return b"".join(json.dumps({"ts": 1_700_000_000 + i, "sym": f"S{int(r.integers(50))}",
                                "px": round(float(r.normal(100, 5)), 2),
                                "qty": int(r.integers(1, 500))}).encode() + b"\n"
                    for i in range(n))


def test_edited_chunk_matches_its_original() -> None:
    chunks = [_log(4000, s) for s in range(8)]
    index = SketchIndex()
    for i, c in enumerate(chunks):
        index.add(i, sketch(c), offset=i * len(c))
    for i, c in enumerate(chunks):
        edited = c[:1000] + b'{"inserted": true}\n' + c[1000:-500] + b"tail\n"
        assert index.best(sketch(edited), offset=i * len(c)) == i


def test_unrelated_random_chunk_matches_nothing() -> None:
    index = SketchIndex()
    index.add("a", sketch(_rng.bytes(1 << 18)))
    assert index.best(sketch(_rng.bytes(1 << 18))) is None
    assert len(index) == 1


def test_degenerate_inputs() -> None:
    assert sketch(b"") == ()
    assert sketch(b"short") == ()
    assert len(sketch(bytes(1 << 20))) == 3
    assert sketch(b"ab" * 10_000) == sketch(b"ab" * 10_000)
