"""Make the console screenshots in docs/ (ui-timeline.png, ui-ledger.png).

Run: .venv/bin/python scripts/ui_screenshots.py   (needs /usr/bin/chromium)

A sample trading state is backed up over a few "days" (fulls, diffs, incrs,
a known-good tag), journal records are appended and a witness cosigns the
checkpoint; then the real ``deltavault ui`` is started and Chromium takes
the pictures. The PNGs are written small (PIL is not needed: Chromium's
device scale and the viewport size keep them at a few hundred KiB).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

from deltavault import api, sampledata
from deltavault.ledger.journal import Journal
from deltavault.ledger.note import SIG_COSIGNATURE, NoteSigner, parse_vkey
from deltavault.ledger.witness import cosign

DOCS = Path(__file__).resolve().parents[1] / "docs"
PASSWORD = "docs screenshots"


def main() -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="dv-ui-docs-"))
    state = work / "trading"
    sampledata.generate(state, scale=0.004, seed=5)
    repo = api.init(work / "vault", PASSWORD.encode(), kdf_memory_kib=8192, kdf_time_cost=1)
    plan = ["full", "incr", "incr", "diff", "incr", "incr", "diff", "full", "incr", "diff"]
    for day, kind in enumerate(plan):
        if day:
            sampledata.mutate(state, day=day, seed=5)
        api.backup(repo, [state], snapshot_type=kind,
                   tags=["known-good"] if day in (3, 7) else ["eod"] if day == 9 else [])
    Journal(repo.ledger, repo.crypto).append(
        [{"kind": "trade", "order_id": f"O-{i:04d}", "symbol": ["ESZ6", "NQZ6", "CLF7"][i % 3],
          "qty": 1 + i % 4, "px": 4800 + i / 4} for i in range(40)])
    witness = NoteSigner("witness.example/w1", Ed25519PrivateKey.generate(), SIG_COSIGNATURE)
    cosign(repo.store, parse_vkey(repo.config.ledger_verifier_key), witness, work / "witness")
    (work / "pw").write_text(PASSWORD + "\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "deltavault", "ui", "--repo", str(work / "vault"),
         "--password-file", str(work / "pw"), "--listen", "127.0.0.1:0",
         "--require-witness", witness.verifier.vkey()],
        stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    found = re.search(r"(http://\S+/)", proc.stderr.readline())
    assert found, "deltavault ui did not start"
    url = found.group(1)
    try:
        with sync_playwright() as pw:
            ctx = pw.chromium.launch_persistent_context(
                str(work / "profile"), executable_path="/usr/bin/chromium", headless=True,
                args=["--no-sandbox", "--disable-gpu"], viewport={"width": 1100, "height": 760})
            page = ctx.new_page()
            page.goto(url + "timeline")
            page.screenshot(path=str(DOCS / "ui-timeline.png"))
            page.goto(url + "ledger")
            page.click("#verify-button")
            page.wait_for_selector("#verify-result[data-state]")
            page.screenshot(path=str(DOCS / "ui-ledger.png"))
            ctx.close()
    finally:
        proc.terminate()
        proc.wait(15)
    print(f"wrote {DOCS / 'ui-timeline.png'} and {DOCS / 'ui-ledger.png'}")


if __name__ == "__main__":
    main()
