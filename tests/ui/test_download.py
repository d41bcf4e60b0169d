"""A download is verified as restore verifies: a damaged blob never reaches the user as data.

Over real HTTP to the real entry point: a damaged first blob is an error
page (no bytes sent), a damaged later blob cuts the stream short of its
Content-Length, so no client saves the file as complete.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest

from deltavault import api
from deltavault.repo.layout import pack_key
from deltavault.repo.walk import find_node
from tests.support.cli import API_PASSWORD, KDF
from tests.ui.scenario import Console, Scenario, start_console

SIZE = 6 << 20  # several content-defined chunks (1 MiB average)


@pytest.fixture(scope="module")
def damaged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Scenario, Console]]:
    root = tmp_path_factory.mktemp("download")
    (root / "data").mkdir()
    (root / "data" / "weights.bin").write_bytes(os.urandom(SIZE))
    (root / "data" / "small.json").write_bytes(b'{"risk": 1}\n')
    repo = api.init(root / "repo", API_PASSWORD, **KDF)  # type: ignore[arg-type]
    snap = api.backup(repo, [root / "data"], snapshot_type="full").snapshot
    repo.load_index()
    tree = bytes.fromhex(snap.tree)
    big = find_node(repo, tree, "data/weights.bin").content
    small = find_node(repo, tree, "data/small.json").content
    assert len(big) >= 3
    for blob in (big[1], small[0]):  # flip one byte inside each blob's stored bytes
        loc = repo.locate(blob)
        path = root / "repo" / pack_key(loc.pack_id)
        data = bytearray(path.read_bytes())
        data[loc.offset + loc.length // 2] ^= 0x40
        path.chmod(0o644)
        path.write_bytes(bytes(data))
    pw = root / "password"
    pw.write_text(API_PASSWORD.decode() + "\n")
    scenario = Scenario(root, root / "repo", pw, [snap.id], {}, ("", ""), [], "")
    console = start_console(scenario)
    try:
        yield scenario, console
    finally:
        console.stop()


def test_damaged_first_blob_is_an_error_page(damaged: tuple[Scenario, Console]) -> None:
    scenario, console = damaged
    res = httpx.get(f"{console.url}snapshot/{scenario.snapshots[0]}/download",
                    params={"path": "data/small.json"}, timeout=60)
    assert res.status_code == 500 and "did not verify" in res.text
    assert b'{"risk"' not in res.content


def test_damaged_later_blob_cuts_the_stream(damaged: tuple[Scenario, Console]) -> None:
    scenario, console = damaged
    received = 0
    with pytest.raises(httpx.RemoteProtocolError), httpx.stream(
            "GET", f"{console.url}snapshot/{scenario.snapshots[0]}/download",
            params={"path": "data/weights.bin"}, timeout=60) as res:
        assert res.status_code == 200 and int(res.headers["content-length"]) == SIZE
        for chunk in res.iter_bytes():
            received += len(chunk)
    assert 0 < received < SIZE
    assert (scenario.root / "data" / "weights.bin").stat().st_size == SIZE
    page = httpx.get(f"{console.url}timeline", timeout=60)
    assert page.status_code == 200  # the console keeps serving
    said = "".join(console.stderr)
    assert "download of 'data/weights.bin'" in said and "Traceback" not in said, said


