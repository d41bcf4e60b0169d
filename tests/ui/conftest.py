"""A real headless browser for the console tests: Debian's Chromium driven by Playwright.

One browser per test session (per xdist worker), a fresh profile directory,
no network beyond 127.0.0.1 and nothing Playwright would download:
``executable_path`` points at the system package (``./scripts/test`` installs
it with apt).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A Playwright BrowserContext on a fresh ``--user-data-dir``."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (./scripts/test does)")
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=FLAGS,
            accept_downloads=True, viewport={"width": 1280, "height": 900})
        context.set_default_timeout(30_000)
        try:
            yield context
        finally:
            context.close()
    shutil.rmtree(profile, ignore_errors=True)
