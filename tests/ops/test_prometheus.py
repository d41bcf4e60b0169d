"""The text format writer: what prometheus_client's parser reads back, and atomic files."""

from __future__ import annotations

import math
import os
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from deltavault.ops.prometheus import Gauge, format_value, render, write_textfile


def parse(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    return {f.name: [(dict(s.labels), s.value) for s in f.samples]
            for f in text_string_to_metric_families(text)}


@given(labels=st.dictionaries(st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True),
                              st.text(), max_size=4),
       value=st.floats(allow_nan=False) | st.integers(-(2**62), 2**62),
       help_text=st.text())
@settings(max_examples=200)
def test_any_label_value_and_help_round_trip(labels: dict[str, str], value: float,
                                             help_text: str) -> None:
    text = render([Gauge("dv_test", help_text).set(value, labels)])
    [(got_labels, got)] = parse(text)["dv_test"]
    assert got_labels == labels
    assert got == float(value) or (math.isinf(got) and math.isinf(value))


def test_special_values_and_names() -> None:
    assert [format_value(v) for v in (1.0, 0, float("nan"), float("inf"), -float("inf"), 0.25)] \
        == ["1", "0", "NaN", "+Inf", "-Inf", "0.25"]
    text = render([Gauge("dv_a", "x").set(float("nan")), Gauge("dv_b", "y").set(3, {"k": "v"})])
    got = parse(text)
    assert math.isnan(got["dv_a"][0][1]) and got["dv_b"] == [({"k": "v"}, 3.0)]
    for bad in ("1abc", "a-b", ""):
        with pytest.raises(ValueError):
            Gauge(bad, "x")
    with pytest.raises(ValueError):
        Gauge("dv_c", "x").set(1, {"__name__": "y"})


def test_write_textfile_replaces_atomically(tmp_path: Path) -> None:
    target = tmp_path / "deltavault.prom"
    target.write_text("old\n")
    os.chmod(target, 0o600)
    big = render([Gauge(f"dv_m{i}", "h" * 500).set(i, {"l": "v" * 200}) for i in range(200)])
    small = render([Gauge("dv_small", "h").set(1)])
    seen: list[str] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            seen.append(target.read_text())

    t = threading.Thread(target=reader)
    t.start()
    for i in range(100):
        write_textfile(target, big if i % 2 else small)
    stop.set()
    t.join()
    # a reader (node_exporter) only ever sees a whole file, old or new
    assert set(seen) <= {"old\n", big, small}
    assert target.read_text() == big
    assert oct(target.stat().st_mode & 0o777) == "0o644"
    assert os.listdir(tmp_path) == ["deltavault.prom"]  # no temporary left behind
    with pytest.raises(OSError):
        write_textfile(tmp_path / "missing" / "x.prom", small)
