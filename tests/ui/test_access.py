"""Who may reach the console, over real HTTP to the real entry point.

Loopback by default; a non-loopback address needs a token (exit 2
otherwise); with a token every request needs it (header, cookie, or the
first-visit ``?token=``); read-only unless --allow-actions; POSTs need the
page's CSRF value; a foreign Host header is refused on loopback.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from deltavault import api
from tests.support.cli import API_PASSWORD, KDF, cli_env
from tests.ui.scenario import Console, Scenario, start_console

TOKEN = "s3cret-console-token-0123456789"


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    root = tmp_path_factory.mktemp("access")
    (root / "data").mkdir()
    (root / "data" / "positions.jsonl").write_text('{"a": 1}\n')
    repo = api.init(root / "repo", API_PASSWORD, **KDF)  # type: ignore[arg-type]
    sid = api.backup(repo, [root / "data"], snapshot_type="full").snapshot.id
    pw = root / "password"
    pw.write_text(API_PASSWORD.decode() + "\n")
    (root / "token").write_text(TOKEN + "\n")
    return Scenario(root, root / "repo", pw, [sid], {}, ("", ""), [],
                    repo.config.ledger_verifier_key)


def _ui(small: Scenario, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "deltavault", "ui", *args],
                          capture_output=True, text=True, timeout=60,
                          env=cli_env(small.repo, small.password_file))


def _csrf(client: httpx.Client, url: str) -> str:
    found = re.search(r'name="csrf" content="([^"]+)"', client.get(url + "timeline").text)
    assert found is not None
    return found.group(1)


@pytest.fixture
def stopped() -> Iterator[list[Console]]:
    started: list[Console] = []
    yield started
    for c in started:
        assert c.stop() == -signal.SIGTERM


def test_non_loopback_without_token_is_refused(small: Scenario) -> None:
    res = _ui(small, "--listen", "0.0.0.0:0")
    assert res.returncode == 2, res.stderr
    assert "--token-file" in res.stderr and "Traceback" not in res.stderr


def test_short_token_is_refused(small: Scenario, tmp_path: Path) -> None:
    short = tmp_path / "short"
    short.write_text("abc\n")
    res = _ui(small, "--listen", "0.0.0.0:0", "--token-file", str(short))
    assert res.returncode == 1 and "at least 16" in res.stderr


def test_token_is_required_on_every_request(small: Scenario, stopped: list[Console]) -> None:
    c = start_console(small, "--token-file", str(small.root / "token"))  # loopback + token
    stopped.append(c)
    url = c.url
    with httpx.Client(timeout=30, follow_redirects=False) as http:
        assert http.get(url + "timeline").status_code == 401
        assert http.get(url + "timeline", headers={"Authorization": "Bearer nope"}
                        ).status_code == 401
        assert http.get(url + "static/console.css").status_code == 401
        assert http.get(url + "timeline?token=wrong-token-0123456789").status_code == 401
        ok = http.get(url + "timeline", headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200 and small.snapshots[0][:12] in ok.text
        first = http.get(url + f"snapshot/{small.snapshots[0]}?token={TOKEN}&path=")
        assert first.status_code == 303
        assert "token" not in first.headers["location"]
        assert "HttpOnly" in first.headers["set-cookie"]
    with httpx.Client(timeout=30, follow_redirects=True) as browser_like:
        page = browser_like.get(url + f"timeline?token={TOKEN}")
        assert page.status_code == 200 and str(page.url).endswith("/timeline")
        assert browser_like.get(url + "ledger").status_code == 200  # the cookie now
        csrf = _csrf(browser_like, url)
        assert browser_like.post(url + "ledger/verify").status_code == 403  # no CSRF header
        job = browser_like.post(url + "ledger/verify", headers={"X-Deltavault-Csrf": csrf})
        assert job.status_code == 202 and job.json()["kind"] == "verify"


def test_token_on_all_interfaces(small: Scenario, stopped: list[Console]) -> None:
    argv = [sys.executable, "-m", "deltavault", "ui", "--listen", "0.0.0.0:0",
            "--token-file", str(small.root / "token")]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=cli_env(small.repo, small.password_file))
    assert proc.stderr is not None
    found = re.search(r"serving http://[^:]+:(\d+)/", proc.stderr.readline())
    assert found is not None
    c = Console(proc, f"http://127.0.0.1:{found.group(1)}/")
    c.drain()
    stopped.append(c)
    with httpx.Client(timeout=30) as http:
        assert http.get(c.url + "timeline").status_code == 401
        # not loopback: any Host is fine once the token is right (reached by name)
        assert http.get(c.url + "timeline", headers={"Authorization": f"Bearer {TOKEN}",
                                                     "Host": "vault.example:443"}
                        ).status_code == 200


def test_read_only_by_default_and_host_checked(small: Scenario,
                                               stopped: list[Console]) -> None:
    c = start_console(small)
    stopped.append(c)
    with httpx.Client(timeout=30) as http:
        assert http.get(c.url + "timeline", headers={"Host": "evil.example"}).status_code == 400
        page = http.get(c.url + "timeline")
        assert page.status_code == 200 and "read-only" in page.text
        assert page.headers["x-frame-options"] == "DENY"
        assert "default-src 'self'" in page.headers["content-security-policy"]
        csrf = _csrf(http, c.url)
        for url, body in (("repository/check", None),
                          (f"snapshot/{small.snapshots[0]}/tag", {"add": ["x"]})):
            res = http.post(c.url + url, json=body, headers={"X-Deltavault-Csrf": csrf})
            assert res.status_code == 403 and "read-only" in res.json()["error"]
        assert 'id="check-button"' not in http.get(c.url + "repository").text
