"""Bearer tokens, their rights, and what each right may do to which key.

The policy is a pure function (:func:`authorize`) so that it can be read and
tested on its own. Rights are ordered: ``read`` < ``append`` < ``admin``.

What an append-only client may still change, and why:

* ``ledger/checkpoint`` by compare-and-swap (``PUT`` with ``If-Match``):
  every ledger append ends with it. Replacing it cannot rewrite history
  unnoticed: the tiles and entry bundles it commits to are write-once, and a
  checkpoint that is not consistent with an older one fails the consistency
  proof that witnesses, auditors and ``ledger verify`` check.
* ``locks/*`` (create, replace and delete): a backup takes, refreshes and
  releases its lock. A lock holds no history; deleting someone else's lock
  at worst lets two writers run at once, which the write-once objects and
  the checkpoint CAS make safe.

Everything else is write-once for them: no delete, no overwrite.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from dataclasses import dataclass, field
from pathlib import Path

from deltavault.errors import UserError


class Right(enum.IntEnum):
    """What a token may do; each includes the ones below it."""

    READ = 1
    APPEND = 2
    ADMIN = 3

    @classmethod
    def parse(cls, text: str) -> Right:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise UserError(f"unknown right {text!r} (use read, append or admin)") from None


#: Keys an append-only client may replace (CAS) and, for ``locks/``, delete.
MUTABLE_FOR_APPEND = ("ledger/checkpoint",)
DELETABLE_FOR_APPEND = ("locks/",)


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused: HTTP status, error code and message."""

    status: int
    code: str
    message: str


def authorize(op: str, key: str, right: Right, *, append_only: bool) -> Refusal | None:
    """Decide whether ``right`` may perform ``op`` on ``key``.

    Args:
        op: ``read``, ``list``, ``create``, ``replace`` or ``delete``.
        key: the object key (or list prefix).
        right: the caller's right.
        append_only: the server runs with ``--append-only`` (caps every
            token at ``append``).

    Returns:
        None if allowed, else the refusal to send.
    """
    effective = min(right, Right.APPEND) if append_only else right
    need = Right.READ if op in ("read", "list") else Right.APPEND
    if right < need:
        return Refusal(403, "permission_denied", f"token has right '{right.name.lower()}',"
                       f" {op} of {key or '/'} needs '{need.name.lower()}'")
    if effective >= Right.ADMIN or op in ("read", "list", "create"):
        return None
    why = "append-only server" if append_only else "token without admin right"
    if op == "replace" and (key in MUTABLE_FOR_APPEND or key.startswith(DELETABLE_FOR_APPEND)):
        return None
    if op == "delete" and key.startswith(DELETABLE_FOR_APPEND):
        return None
    verb = "overwrite" if op == "replace" else op
    return Refusal(403, "object_locked", f"{why} refuses to {verb} {key}")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class TokenTable:
    """Bearer tokens (kept as SHA-256 digests) and their rights.

    An empty table means no authentication: every request has ``admin``
    (capped to ``append`` by ``--append-only``). Use only on a trusted
    loopback or behind an authenticating proxy.
    """

    _rights: dict[str, tuple[Right, str]] = field(default_factory=dict)

    def add(self, token: str, right: Right, label: str = "") -> None:
        if len(token) < 16:
            raise UserError("tokens must be at least 16 characters")
        self._rights[_digest(token)] = (right, label)

    def add_digest(self, digest: str, right: Right, label: str = "") -> None:
        self._rights[digest.lower()] = (right, label)

    @property
    def open(self) -> bool:
        return not self._rights

    def lookup(self, token: str | None) -> Right | None:
        """The token's right, ``ADMIN`` for an open table, None if unknown."""
        if self.open:
            return Right.ADMIN
        if not token:
            return None
        digest = _digest(token)
        for known, (right, _) in self._rights.items():
            if hmac.compare_digest(known, digest):
                return right
        return None

    @classmethod
    def load(cls, path: str | Path) -> TokenTable:
        """Read a tokens file: one ``<right> <token> [label]`` per line.

        ``<token>`` may be ``sha256:<hex>`` (the digest of the token) so the
        file need not hold secrets. ``#`` starts a comment.
        """
        table = cls()
        try:
            lines = Path(path).read_text().splitlines()
        except OSError as exc:
            raise UserError(f"cannot read tokens file {path}: {exc.strerror}") from exc
        for number, line in enumerate(lines, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split(None, 2)
            if len(parts) < 2:
                raise UserError(f"{path}:{number}: expected '<right> <token> [label]'")
            right, token = Right.parse(parts[0]), parts[1]
            label = parts[2] if len(parts) > 2 else ""
            if token.startswith("sha256:"):
                table.add_digest(token[7:], right, label)
            else:
                table.add(token, right, label)
        if table.open:
            raise UserError(f"tokens file {path} defines no token")
        return table
