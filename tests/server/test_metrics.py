"""``serve``'s /metrics: request counters plus the repository gauges it can read keylessly."""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from deltavault.server import BackgroundServer
from deltavault.store.local import LocalStore
from tests.support.cli import KDF_ARGS, Cli


def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    resp = httpx.get(url + "metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {f.name: [(dict(s.labels), s.value) for s in f.samples]
            for f in text_string_to_metric_families(resp.text)}


def test_repository_gauges_follow_the_ledger(cli: Cli, tmp_path: Path) -> None:
    cli("init", *KDF_ARGS)
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_bytes(b"a" * 5000)
    first = cli.json("backup", src, "--type", "full", "--host", "alpha")
    with BackgroundServer(LocalStore(cli.repo)) as server:
        m = scrape(server.url)
        assert m["deltavault_ledger_verified"] == [({}, 1.0)]
        assert m["deltavault_snapshots"] == [({"host": "alpha"}, 1.0)]
        assert ({"host": "alpha", "type": "full"}, 1.0) in m["deltavault_last_snapshot_type"]
        assert m["deltavault_last_snapshot_added_bytes"] == [({"host": "alpha"},
                                                             float(first["bytes_added"]))]
        assert "deltavault_check_last_ok" not in m
        size_before = m["deltavault_ledger_size"][0][1]
        # a backup and a check through the REST backend itself, then scrape again
        rest = cli.env(DELTAVAULT_REPO=f"rest:{server.url}")
        (src / "b").write_bytes(b"b" * 5000)
        cli("backup", src, "--host", "beta", "-q", env=rest)
        cli("check", "--read-data", "-q", env=rest)
        m = scrape(server.url)
        assert sorted(m["deltavault_snapshots"], key=str) == [({"host": "alpha"}, 1.0),
                                                             ({"host": "beta"}, 1.0)]
        assert m["deltavault_ledger_size"][0][1] == size_before + 2
        levels = {labels["level"] for labels, _ in
                  m["deltavault_check_last_success_timestamp_seconds"]}
        assert levels == {"structure", "read_data"}
        assert m["deltavault_check_last_ok"] == [({}, 1.0)]
        assert any(k.startswith("deltavault_http_requests") for k in m)
