"""The console in a real browser: every page, the click paths, downloads, Verify, proofs.

One repository and one ``deltavault ui`` process for the module (started
with --allow-actions so the Check and Tag buttons are exercised too); the
tests run in file order and the last one tampers with the log. Each page is
saved as a screenshot under ``test-artifacts/ui/``.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.ui.scenario import (
    BREAK_QTY_DELTA,
    Console,
    Scenario,
    artifact_dir,
    build,
    deltavault,
    restore_bundles,
    sqlite_counts,
    start_console,
    tamper_bundles,
)

Page = Any  # playwright.sync_api.Page (imported lazily by the browser fixture)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    return build(tmp_path_factory.mktemp("console"))


@pytest.fixture(scope="module")
def console(scenario: Scenario) -> Iterator[Console]:
    running = start_console(scenario, "--allow-actions")
    try:
        yield running
    finally:
        # uvicorn shuts down gracefully, then re-raises the signal it caught
        code = running.stop()
        assert code == -signal.SIGTERM, f"deltavault ui exited {code} on SIGTERM"


@pytest.fixture
def page(browser: Any, console: Console) -> Iterator[Page]:
    p = browser.new_page()
    try:
        yield p
    finally:
        p.close()


def follow(page: Page, selector: str) -> None:
    """Click a link or submit button and wait until the page it loads has loaded.

    A locator's count() or evaluate_all() does not wait: read right after a
    bare click they can see the old page or a new one still being parsed.
    """
    with page.expect_navigation(wait_until="load"):
        page.click(selector)


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(artifact_dir() / f"{name}.png"), full_page=True)


def test_timeline_shows_the_chain(page: Page, console: Console, scenario: Scenario) -> None:
    page.goto(console.url + "timeline")
    rows = page.locator("#snapshots tbody tr")
    assert rows.count() == 3
    full, diff, _incr = scenario.snapshots
    newest = rows.nth(0)
    assert "incr" in newest.inner_text() and full[:12] not in newest.inner_text()
    assert diff[:12] in newest.locator("td").nth(3).inner_text()  # incr: delta of its parent
    oldest = rows.nth(2)
    assert "known-good" in oldest.inner_text() and "good" in (oldest.get_attribute("class") or "")
    assert full[:12] in rows.nth(1).locator("td").nth(3).inner_text()  # diff: of its full
    status = [rows.nth(i).locator("td.ledger-status").inner_text() for i in range(3)]
    assert status[2].startswith("committed at index 0,") and "checkpoint of size" in status[2]
    svg = page.locator("svg.timeline")
    assert svg.locator("a.snap").count() == 3 and svg.locator("line.edge").count() == 2
    assert svg.locator("circle.tag-ring").count() == 1 and svg.locator("rect.bar").count() == 3
    shot(page, "timeline")


def test_timeline_to_snapshot_to_download(page: Page, console: Console, scenario: Scenario,
                                          tmp_path: Path) -> None:
    page.goto(console.url + "timeline")
    page.locator("#snapshots tr.good a.snapshot-link").click()
    page.wait_for_url(f"**/snapshot/{scenario.snapshots[0]}")
    assert page.locator("#snapshot-id").inner_text() == scenario.snapshots[0][:12]
    shot(page, "snapshot")
    follow(page, "a.dir:text('state/')")
    follow(page, "a.dir:text('db/')")
    follow(page, "a.file:text('positions.sqlite')")
    expected_db = scenario.files["state/db/positions.sqlite"]
    counts = sqlite_counts(expected_db, tmp_path)
    for table, n in counts.items():
        assert page.locator(f"td[data-table='{table}']").inner_text() == str(n)
    shot(page, "file-sqlite")
    with page.expect_download() as dl:
        page.click("#download")
    got = Path(dl.value.path()).read_bytes()
    assert dl.value.suggested_filename == "positions.sqlite"
    assert got == expected_db


def test_array_and_log_summaries(page: Page, console: Console, scenario: Scenario,
                                 tmp_path: Path) -> None:
    full = scenario.snapshots[0]
    npy_path = next(p for p in scenario.files if p.endswith(".npy"))
    page.goto(f"{console.url}snapshot/{full}/file?path={npy_path}")
    arr = np.load(_write(tmp_path / "a.npy", scenario.files[npy_path]))
    facts = _facts(page)
    assert facts["shape"] == " × ".join(map(str, arr.shape))
    assert facts["dtype"] == str(arr.dtype)
    assert float(facts["min"]) == pytest.approx(float(np.nanmin(arr)), rel=1e-9)
    assert float(facts["max"]) == pytest.approx(float(np.nanmax(arr)), rel=1e-9)
    shot(page, "file-npy")
    log = "state/logs/trades.jsonl"
    page.goto(f"{console.url}snapshot/{full}/file?path={log}")
    lines = scenario.files[log].count(b"\n")
    assert _facts(page)["lines"] == f"{lines:,}"
    with page.expect_download() as dl:
        page.click("#download")
    assert Path(dl.value.path()).read_bytes() == scenario.files[log]


def test_diff_shows_the_planted_reconcile_break(page: Page, console: Console,
                                                scenario: Scenario) -> None:
    _full, diff, incr = scenario.snapshots
    page.goto(console.url + "diff")
    page.select_option("#diff-a", diff)
    page.select_option("#diff-b", incr)
    page.click("#diff-button")
    page.wait_for_url("**/diff?*")
    changed = page.locator("table.changes.changed td.path").all_inner_texts()
    assert changed == ["state/db/positions.sqlite"]
    section = page.locator("section.reconcile[data-path='state/db/positions.sqlite']")
    rows = section.locator("table.breaks tbody tr")
    assert rows.count() == 1
    cells = rows.nth(0).locator("td").all_inner_texts()
    account, instrument = scenario.break_key
    assert cells[:4] == ["positions", account, instrument, "qty"]
    assert float(cells[6]) == BREAK_QTY_DELTA
    assert "1 break(s)" in section.locator(".reconcile-summary").inner_text()
    shot(page, "diff")


def test_ledger_events_filter_by_type(page: Page, console: Console) -> None:
    page.goto(console.url + "ledger")
    assert page.locator("#cp-size").inner_text().isdigit()
    page.select_option("#event-type", "snapshot")
    follow(page, "#event-filter button")
    types = page.locator("#events tbody tr").evaluate_all("rs => rs.map(r => r.dataset.type)")
    assert types == ["snapshot"] * 3
    page.select_option("#event-type", "journal")
    page.fill("input[name=since]", "2000-01-01T00:00:00")
    follow(page, "#event-filter button")
    assert page.locator("#events tbody tr[data-type=journal]").count() == 20
    page.fill("input[name=until]", "2000-01-02T00:00:00")
    follow(page, "#event-filter button")
    assert page.locator("#events tbody tr").count() == 0


def test_journal_proof_download_verifies_offline(page: Page, console: Console,
                                                 scenario: Scenario, tmp_path: Path) -> None:
    page.goto(console.url + "ledger/journal")
    page.fill("#journal-q", "order_id=O-0003")
    follow(page, "#journal-search-button")
    hits = page.locator("#journal-hits tbody tr")
    assert hits.count() == 1
    index = int(hits.nth(0).get_attribute("data-index") or "-1")
    assert index == scenario.journal[3]
    assert '"symbol": "CLF7"' in hits.nth(0).locator("code.record").inner_text()
    shot(page, "journal")
    with page.expect_download() as dl:
        hits.nth(0).locator("a.proof").click()
    proof = tmp_path / dl.value.suggested_filename
    dl.value.save_as(proof)
    assert proof.name == f"entry-{index}.tlog-proof"
    res = deltavault("ledger", "verify-proof", proof, "--key", scenario.vkey, "--json",
                     scenario=scenario)
    assert res.returncode == 0, res.stderr
    assert '"order_id": "O-0003"' in res.stdout
    page.fill("#journal-index", str(scenario.journal[0]))
    follow(page, "#journal-index-button")
    assert page.locator("#journal-hits tbody tr").get_attribute("data-index") == \
        str(scenario.journal[0])


def test_repository_page_and_check(page: Page, console: Console) -> None:
    page.goto(console.url + "repository")
    kinds = page.locator("#kinds tbody tr").evaluate_all("rs => rs.map(r => r.dataset.kind)")
    assert {"order books", "DB pages", "model weights", "logs"} <= set(kinds)
    assert page.locator("svg.chart.line").count() == len(kinds)
    page.click("#check-button")
    page.wait_for_selector("#check-result[data-state]")
    assert page.locator("#check-result").get_attribute("data-state") == "ok"
    page.reload()
    assert page.locator("#checks tbody tr").count() == 1
    shot(page, "repository")


def test_tag_from_the_snapshot_page(page: Page, console: Console, scenario: Scenario) -> None:
    page.goto(f"{console.url}snapshot/{scenario.snapshots[1]}")
    page.fill("form.tag-form input[name=add]", "eod")
    page.click("#tag-button")
    page.wait_for_url(lambda url: scenario.snapshots[1] not in url)
    assert "eod" in page.locator("h1").inner_text()
    res = deltavault("snapshots", "--json", scenario=scenario)
    assert '"eod"' in res.stdout


def test_verify_passes_then_a_tampered_bundle_fails(page: Page, console: Console,
                                                    scenario: Scenario) -> None:
    page.goto(console.url + "ledger")
    page.click("#verify-button")
    page.wait_for_selector("#verify-result[data-state]")
    result = page.locator("#verify-result")
    assert result.get_attribute("data-state") == "ok", result.inner_text()
    assert "Ledger verified" in result.inner_text()
    assert page.locator("#verify-progress").get_attribute("value") == \
        page.locator("#verify-progress").get_attribute("max")
    shot(page, "ledger")
    try:
        assert tamper_bundles(scenario)
        page.reload()
        page.click("#verify-button")
        page.wait_for_selector("#verify-result[data-state]")
        assert result.get_attribute("data-state") == "failed"
        assert "FAILED" in result.inner_text()
        assert "does not match the hashes of its entries" in result.inner_text()
        shot(page, "ledger-tampered")
    finally:
        restore_bundles(scenario)


def _facts(page: Page) -> dict[str, str]:
    keys = page.locator("#summary dd.fact").evaluate_all(
        "ds => ds.map(d => [d.dataset.key, d.textContent])")
    return dict(keys)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path

