"""The in-memory objects API: arrays and JSON values round-trip bit for bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deltavault.errors import UserError
from deltavault.sources.objects import backup_objects, load_objects
from tests.sources.helpers import make_repo


def _bits(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a).view(np.uint8).tobytes()


def _arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    f64 = rng.standard_normal(50_000)
    f64[[3, 5, 7]] = [np.nan, -0.0, np.inf]
    payload_nan = np.uint64(0x7FF8_0000_DEAD_BEEF).tobytes()
    f64[11] = np.frombuffer(payload_nan, np.float64)[0]
    f32 = rng.standard_normal((300, 40)).astype(np.float32)
    f32[0, 0], f32[1, 1] = np.float32(np.nan), np.float32(-0.0)
    return {
        "f64": f64,
        "f32": f32,
        "i64": rng.integers(-(2**62), 2**62, 10_000, dtype=np.int64),
        "u8_fortran": np.asfortranarray(rng.integers(0, 255, (64, 33), dtype=np.uint8)),
        "empty": np.zeros((0, 3), dtype=np.int32),
        "scalar": np.array(1.5, dtype=np.float64),
        "be": np.arange(10, dtype=">i4"),
    }


def test_round_trip_bit_identical(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    arrays = _arrays()
    meta = {"lr": 0.001, "one": 1.0, "n": 1, "names": ["a", "é"], "nested": {"k": [1, 2.5]}}
    rows = [{"account": "A1", "qty": 1.25}, {"account": "A2", "qty": -3.0}]
    result = backup_objects(repo, {**arrays, "meta": meta, "rows": rows}, tags=["model"])
    assert result.snapshot.paths == ["objects:default"]
    back = load_objects(repo, "latest")
    for name, a in arrays.items():
        b = back[name]
        assert b.dtype == a.dtype and b.shape == a.shape, name
        assert b.flags.f_contiguous == a.flags.f_contiguous or a.ndim < 2, name
        assert _bits(b) == _bits(a), name
    assert back["meta"] == meta and isinstance(back["meta"]["one"], float)
    assert back["rows"] == rows
    assert set(load_objects(repo, result.snapshot.id, names=["meta"])) == {"meta"}


def test_incremental_stores_little(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    w = np.random.default_rng(1).standard_normal(400_000)
    first = backup_objects(repo, {"w": w}, collection="model", snapshot_type="full").snapshot
    w2 = w.copy()
    w2[1000:1100] += 1e-9
    second = backup_objects(repo, {"w": w2}, collection="model").snapshot
    assert second.type == "incr" and second.parent == first.id
    assert second.summary["bytes_added"] < w.nbytes // 20
    assert _bits(load_objects(repo, second.id)["w"]) == _bits(w2)
    assert _bits(load_objects(repo, first.id)["w"]) == _bits(w)


@pytest.mark.parametrize("bad", [
    {"x": np.array([object()], dtype=object)},
    {"x": {"v": float("nan")}},
    {"x": {1, 2}},
    {"../x": [1]},
    {"_objects": [1]},
])
def test_refused(tmp_path: Path, bad: dict[str, object]) -> None:
    repo = make_repo(tmp_path / "repo")
    with pytest.raises(UserError):
        backup_objects(repo, bad)


def test_load_needs_objects_snapshot(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    with pytest.raises(UserError):
        load_objects(repo)
