"""Exceptions of deltavault, split by who is at fault.

* :class:`RepositoryError` — the stored data is wrong (corrupt, tampered,
  wrong password, a ledger that does not verify).
* :class:`BackendError` — the transport or the storage service failed
  (object missing, already there, locked by retention, unreachable).
* :class:`UserError` — the caller asked for something impossible
  (bad arguments, unknown snapshot, unsafe path).
* :class:`BreaksFound` — two states that should agree do not (``reconcile``).

Every class carries the process exit code the CLI uses for it, so the CLI
maps an exception to one line and one documented exit code without a table
of its own (``deltavault.cli.outcome`` is the one place that does). The codes
follow restic's where restic has one; README.md's table lists them all.
"""

from __future__ import annotations

from typing import Any

#: the command did what was asked
EXIT_OK = 0
#: SIGINT / Ctrl-C (128 + SIGINT, as shells report it)
EXIT_INTERRUPTED = 130


class DeltavaultError(Exception):
    """Base of every error deltavault raises on purpose.

    Attributes:
        exit_code: the process exit code of this family.
        hint: what the user can do about it (shown in parentheses).
        details: the report a command had produced before it failed (a check
            report, a backup summary); with ``--json`` it is printed as the
            error document, so a failing command still prints one document.
    """

    exit_code: int = 1
    hint: str = ""
    details: dict[str, Any] | None = None

    def __init__(self, message: str, *, hint: str | None = None,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint
        if details is not None:
            self.details = details

    def one_line(self) -> str:
        """The message and, if any, what to do about it, on one line."""
        text = str(self)
        return f"{text} ({self.hint})" if self.hint else text


# --- the repository is wrong -------------------------------------------------


class RepositoryError(DeltavaultError):
    """The repository's stored data is missing, corrupt or inconsistent."""

    exit_code = 13


class RepositoryNotFound(RepositoryError, FileNotFoundError):
    """No repository (no `config` object) at the given location."""

    exit_code = 10
    hint = "run 'deltavault init' first, or check --repo / DELTAVAULT_REPO"


class WrongPassword(RepositoryError):
    """No key file of the repository opens with the given password."""

    exit_code = 12
    hint = "check --password-file / DELTAVAULT_PASSWORD_FILE"


class FormatError(RepositoryError, ValueError):
    """Bytes that should hold a deltavault structure do not parse.

    Raised by every decoder of stored data; it never lets another exception
    type escape for hostile input.
    """


class IntegrityError(RepositoryError):
    """Decryption failed or a hash does not match: data was changed."""


class LedgerError(RepositoryError):
    """The ledger does not verify (bad signature, root mismatch, fork)."""


class ProofError(LedgerError):
    """An inclusion or consistency proof does not verify."""


class RepositoryLocked(RepositoryError):
    """Another process holds a conflicting lock on the repository."""

    exit_code = 11
    hint = "wait for the other process, or run 'deltavault unlock' if it is dead"


class LockLost(RepositoryLocked):
    """This process's own lock could not be kept (refresh failed, or it was removed).

    Raised at the operation's next commit point, so nothing more is committed:
    another process may already judge the lock stale and prune.
    """

    hint = "nothing more was committed; run the operation again"


# --- the transport or storage failed ----------------------------------------


class BackendError(DeltavaultError):
    """The storage backend failed."""

    exit_code = 14
    transient: bool = False


class ObjectNotFound(BackendError, FileNotFoundError):
    """The named object does not exist in the store."""


class ObjectExists(BackendError, FileExistsError):
    """A write-once object already exists under that key."""


class VersionConflict(BackendError):
    """A compare-and-swap lost: the object changed since it was read."""

    transient = True


class ObjectLocked(BackendError, PermissionError):
    """The store refuses to delete or overwrite (retention, append-only)."""


class PermissionDenied(BackendError, PermissionError):
    """The credentials do not allow this operation."""


class NoCompareAndSwap(BackendError):
    """The store cannot replace an object atomically (no conditional writes).

    Refused rather than raced: two ledger writers could both "win" and fork
    the log (docs/backends.md, servers without conditional writes).
    """

    hint = "use a store with conditional writes (If-Match / If-None-Match)"


class BackendUnavailable(BackendError, ConnectionError):
    """The store cannot be reached (network, endpoint down)."""

    transient = True


# --- the caller asked for something wrong -----------------------------------


class UserError(DeltavaultError):
    """Bad arguments or an impossible request."""

    exit_code = 1


class UsageError(UserError):
    """Options that do not go together, or a required one missing (like click's)."""

    exit_code = 2


class SnapshotNotFound(UserError):
    """No snapshot matches the given id, prefix or name."""


class UnsafePath(UserError):
    """A path would leave the restore target (traversal or symlink escape)."""


class SourceError(UserError):
    """Some source files could not be read; the snapshot is incomplete."""

    exit_code = 3


class StaleBackup(UserError):
    """``status --max-age``: a host's newest snapshot is older than the limit the user set.

    Not a fault of the repository (which verified) nor of the storage: the
    backups that should feed it did not run. Its own code, so a cron alert
    can tell "late" from "broken" (13) and "unreachable" (14).
    """

    exit_code = 4
    hint = "check the backup job of that host; 'deltavault status' lists every group"


# --- the states compared differ ---------------------------------------------


class BreaksFound(DeltavaultError):
    """``reconcile`` found breaks: the two sources do not agree within tolerance.

    Not a failure of deltavault nor of the caller, but a result a cron job
    must be able to act on, hence a non-zero exit (1, like ``diff``'s).
    """

    exit_code = 1
