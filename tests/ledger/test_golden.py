"""The golden vectors of docs/ledger.md §10, recomputed through a real log."""

from __future__ import annotations

import hashlib
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from deltavault.ledger.log import Ledger
from deltavault.ledger.merkle import leaf_hash
from deltavault.ledger.note import NoteSigner
from deltavault.ledger.verify import verify_log
from deltavault.store.local import LocalStore

DOC = (Path(__file__).parents[2] / "docs" / "ledger.md").read_text()
ORIGIN = "example.com/deltavault-golden"
ENTRIES = [b'{"n":0,"time":"2026-01-01T00:00:00Z","type":"check"}', b"hello", b""]


def test_golden_vectors(tmp_path: Path) -> None:
    seed = hashlib.sha256(b"deltavault ledger golden vector").digest()
    key = Ed25519PrivateKey.from_private_bytes(seed)
    signer = NoteSigner(ORIGIN, key)
    assert seed.hex() in DOC
    assert f"verifier: {signer.verifier.vkey()}" in DOC
    assert f"signer:   {signer.skey()}" in DOC
    for e in ENTRIES:
        assert leaf_hash(e).hex() in DOC
    store = LocalStore(tmp_path, create=True)
    ledger = Ledger.open(store, ORIGIN, signer=key)
    ledger.append(ENTRIES)
    assert f"Root of the 3-entry tree: `{ledger.root.hex()}`" in DOC
    checkpoint = store.get("ledger/checkpoint").decode()
    assert f"```\n{checkpoint}```" in DOC
    assert sorted(i.key for i in store.list("ledger/")) == [
        "ledger/checkpoint", "ledger/tile/0/000.p/3", "ledger/tile/entries/000.p/3"]  # fmt: skip
    assert store.get("ledger/tile/0/000.p/3") == b"".join(leaf_hash(e) for e in ENTRIES)
    assert verify_log(ledger).ok
