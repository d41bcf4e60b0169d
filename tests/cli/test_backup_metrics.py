"""``backup --metrics-file`` run as cron would, parsed with prometheus_client's parser."""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from deltavault.cli.backup import _metric_labels
from deltavault.ops.backup_metrics import previous_success
from tests.support.cli import KDF_ARGS, Cli


def metrics(path: Path) -> dict[str, list[tuple[dict[str, str], float]]]:
    return {f.name: [(dict(s.labels), s.value) for s in f.samples]
            for f in text_string_to_metric_families(path.read_text())}


def value(m: dict[str, list[tuple[dict[str, str], float]]], name: str, **want: str) -> float:
    [found] = [v for labels, v in m[name] if all(labels.get(k) == x for k, x in want.items())]
    return found


def test_success_then_failure_keeps_the_last_success(cli: Cli, tmp_path: Path) -> None:
    cli("init", *KDF_ARGS)
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.bin").write_bytes(os.urandom(300_000))
    (src / "b.txt").write_text("b\n")
    textfiles = tmp_path / "textfile"
    textfiles.mkdir()
    prom = textfiles / "deltavault.prom"
    out = cli.json("backup", src, "--type", "full", "--host", "db1", "--metrics-file", prom)
    m = metrics(prom)
    job = {"host": "db1", "paths": str(src), "repo": str(cli.repo)}
    assert m["deltavault_backup_exit_status"] == [(job, 0.0)]
    success = value(m, "deltavault_backup_last_success_timestamp_seconds")
    assert success == value(m, "deltavault_backup_last_run_timestamp_seconds") > 1.7e9
    assert value(m, "deltavault_backup_read_bytes") == out["summary"]["bytes_read"] > 300_000
    assert value(m, "deltavault_backup_added_bytes") == out["summary"]["bytes_added"] > 0
    assert value(m, "deltavault_backup_files", state="new") == 2
    assert value(m, "deltavault_backup_snapshot_type", type="full") == 1
    assert value(m, "deltavault_backup_snapshot_type", type="incr") == 0
    assert value(m, "deltavault_backup_duration_seconds") >= 0
    assert os.listdir(textfiles) == ["deltavault.prom"]

    # the same job fails (wrong password, exit 12): written anyway, success time kept
    bad = tmp_path / "bad-password"
    bad.write_text("wrong\n")
    cli("backup", src, "--host", "db1", "--metrics-file", prom,
        env=cli.env(DELTAVAULT_PASSWORD_FILE=str(bad)), expect=12)
    m = metrics(prom)
    assert m["deltavault_backup_exit_status"] == [(job, 12.0)]
    assert value(m, "deltavault_backup_last_success_timestamp_seconds") == success
    assert value(m, "deltavault_backup_last_run_timestamp_seconds") > success
    assert "deltavault_backup_added_bytes" not in m  # no snapshot, no snapshot figures

    # and succeeds again: an incremental
    cli("backup", src, "--host", "db1", "--metrics-file", prom)
    m = metrics(prom)
    assert value(m, "deltavault_backup_exit_status") == 0
    assert value(m, "deltavault_backup_last_success_timestamp_seconds") > success
    assert value(m, "deltavault_backup_snapshot_type", type="incr") == 1
    assert value(m, "deltavault_backup_files", state="unmodified") == 2


def test_missing_metrics_directory_refuses_before_backing_up(cli: Cli, tmp_path: Path) -> None:
    cli("init", *KDF_ARGS)
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_text("a")
    r = cli("backup", src, "--metrics-file", tmp_path / "nope" / "x.prom", expect=1)
    assert b"does not exist" in r.stderr
    assert cli.json("snapshots") == []


def test_backend_failure_is_written_with_its_code(cli: Cli, tmp_path: Path) -> None:
    prom = tmp_path / "dv.prom"
    src = tmp_path / "src"
    src.mkdir()
    cli("backup", src, "--metrics-file", prom, expect=10)  # no repository there
    assert value(metrics(prom), "deltavault_backup_exit_status") == 10


def test_passwords_stay_out_of_labels() -> None:
    labels = _metric_labels("rest:https://ops:s3cret@vault:8443/", "h", [], False, "stdin", [],
                            ["host=db user=ops password=hunter2"], ["redis://:pw@r:6379/0"])
    assert "s3cret" not in str(labels) and "hunter2" not in str(labels)
    assert "pw@" not in labels["paths"] and labels["host"] == "h"


@given(st.binary(max_size=2000))
def test_previous_file_is_read_as_untrusted(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "old.prom"
        path.write_bytes(data)
        got = previous_success(path)
    assert got is None or (math.isfinite(got) and got >= 0)


def test_previous_file_forms(tmp_path: Path) -> None:
    p = tmp_path / "old.prom"
    for text, want in [
        ('deltavault_backup_last_success_timestamp_seconds{host="a"} 1700000000.5\n',
         1700000000.5),
        ("deltavault_backup_last_success_timestamp_seconds 1.7e+09\n", 1.7e9),
        ("deltavault_backup_last_success_timestamp_seconds -5\n", None),
        ("deltavault_backup_last_success_timestamp_seconds NaN\n", None),
        ("deltavault_backup_last_success_timestamp_seconds 1e999\n", None),
        ("# deltavault_backup_last_success_timestamp_seconds 5\n", None),
        ("other_metric 5\n", None),
    ]:
        p.write_text(text)
        assert previous_success(p) == want, text
    assert previous_success(tmp_path / "absent.prom") is None
