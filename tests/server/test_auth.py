"""The token table and the append-only policy (pure functions)."""

from __future__ import annotations

from pathlib import Path

import pytest

from deltavault.errors import UserError
from deltavault.server.auth import Right, TokenTable, authorize


@pytest.mark.parametrize("op", ["read", "list"])
def test_read_needs_read(op: str) -> None:
    for right in Right:
        assert authorize(op, "data/aa/x", right, append_only=True) is None


def test_read_token_cannot_write() -> None:
    for op in ("create", "replace", "delete"):
        refusal = authorize(op, "locks/x", Right.READ, append_only=False)
        assert refusal is not None and refusal.code == "permission_denied"


@pytest.mark.parametrize("append_only,right", [(True, Right.ADMIN), (True, Right.APPEND),
                                              (False, Right.APPEND)])
def test_append_capped_callers(append_only: bool, right: Right) -> None:
    def ok(op: str, key: str) -> bool:
        return authorize(op, key, right, append_only=append_only) is None

    assert ok("create", "data/aa/p") and ok("create", "snapshots/s") and ok("create", "locks/l")
    assert ok("replace", "ledger/checkpoint") and ok("replace", "locks/l")
    assert ok("delete", "locks/l")
    for key in ("data/aa/p", "index/i", "snapshots/s", "ledger/tile/0/000", "config", "keys/k"):
        assert not ok("delete", key)
        refusal = authorize("replace", key, right, append_only=append_only)
        assert refusal is not None and refusal.code == "object_locked"
        assert "overwrite" in refusal.message
    assert not ok("delete", "ledger/checkpoint")  # replaced, never removed


def test_admin_may_do_anything_without_append_only() -> None:
    for op in ("create", "replace", "delete"):
        assert authorize(op, "data/aa/p", Right.ADMIN, append_only=False) is None


def test_token_table_load(tmp_path: Path) -> None:
    import hashlib

    digest = hashlib.sha256(b"hashed-token-0123456789").hexdigest()
    f = tmp_path / "tokens"
    f.write_text(f"# rights\nadmin admin-token-0123456789 ops\n"
                 f"append sha256:{digest} backup host\n\nread reader-token-012345678\n")
    table = TokenTable.load(f)
    assert table.lookup("admin-token-0123456789") is Right.ADMIN
    assert table.lookup("hashed-token-0123456789") is Right.APPEND
    assert table.lookup("reader-token-012345678") is Right.READ
    assert table.lookup("nope") is None and table.lookup(None) is None


@pytest.mark.parametrize("text", ["", "# only a comment\n", "writer tok-0123456789abcdef\n",
                                  "admin\n", "admin short\n"])
def test_token_table_rejects_bad_files(tmp_path: Path, text: str) -> None:
    f = tmp_path / "tokens"
    f.write_text(text)
    with pytest.raises(UserError):
        TokenTable.load(f)


def test_open_table_is_admin() -> None:
    assert TokenTable().lookup(None) is Right.ADMIN
