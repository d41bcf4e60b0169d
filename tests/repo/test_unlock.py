"""Unlocking derives the key before the ledger, index and codecs are loaded (issue 14).

Argon2id holds 64 MiB while it runs; done before those imports, its memory
is back with the system before theirs is taken, so it does not stack on the
data path in a command's peak. Checked in a fresh interpreter: the modules
present at the moment of derivation are recorded by a wrapper of the KDF.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from deltavault import api
from deltavault.errors import WrongPassword
from deltavault.repo.unlock import unlock
from deltavault.store.local import LocalStore

PROBE = """
import json, sys
import deltavault.repo.keys as keys
real = keys.hash_secret_raw
seen = []
def probe(*args, **kwargs):
    seen.append(sorted(m for m in ("deltavault.ledger.log", "deltavault.repo.repository",
                                   "deltavault.repo.index", "numpy", "deltavault.codec.registry")
                       if m in sys.modules))
    return real(*args, **kwargs)
keys.hash_secret_raw = probe
from deltavault import api
repo = api.open(sys.argv[1], b"pw")
print(json.dumps({"seen": seen, "id": repo.config.id}))
"""


def test_key_is_derived_before_the_engine_is_imported(tmp_path: Path) -> None:
    repo = api.init(tmp_path / "repo", b"pw", kdf_memory_kib=8192, kdf_time_cost=1)
    proc = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "repo")],
                          capture_output=True, check=True)
    out = json.loads(proc.stdout)
    assert out["id"] == repo.config.id
    assert out["seen"] == [[]], f"imported before the key was derived: {out['seen']}"


def test_unlock_refuses_a_wrong_password_and_names_a_damaged_key_file(tmp_path: Path) -> None:
    repo = api.init(tmp_path / "repo", b"pw", kdf_memory_kib=8192, kdf_time_cost=1)
    store = LocalStore(tmp_path / "repo")
    assert unlock(store, b"pw").key_id == repo.key_id
    with pytest.raises(WrongPassword) as caught:
        unlock(store, b"not the password")
    assert "damaged" not in str(caught.value)
    key_file = tmp_path / "repo" / "keys" / repo.key_id
    key_file.write_bytes(key_file.read_bytes()[:-5])
    with pytest.raises(WrongPassword, match=f"damaged key file.*{repo.key_id}"):
        unlock(store, b"pw")
