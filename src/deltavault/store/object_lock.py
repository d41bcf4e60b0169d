"""S3 Object Lock retention policy: which objects are history, and for how long they stay.

With S3 Object Lock an object's retention is set when it is written; the
policy names the key prefixes that hold history (packs, indexes, snapshots,
pack lists, the ledger) and the retention period (docs/backends.md).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from deltavault.errors import UserError

#: Key prefixes whose objects are history and get retention under a policy.
LOCKED_PREFIXES = ("data/", "index/", "snapshots/", "packlists/", "ledger/")


@dataclass(frozen=True)
class ObjectLockPolicy:
    """Retention applied to history objects on ``put``.

    Args:
        days: retention period from the time of writing.
        mode: ``compliance`` (nobody can shorten or delete, not even the
            root account) or ``governance`` (principals with
            ``s3:BypassGovernanceRetention`` can).
        prefixes: key prefixes to protect.
    """

    days: int
    mode: Literal["compliance", "governance"] = "compliance"
    prefixes: tuple[str, ...] = LOCKED_PREFIXES

    def __post_init__(self) -> None:
        if self.days < 1:
            raise UserError(f"object lock days must be >= 1, got {self.days}")
        if self.mode not in ("compliance", "governance"):
            raise UserError(f"object lock mode must be compliance or governance, not {self.mode!r}")

    def applies_to(self, key: str) -> bool:
        return key.startswith(self.prefixes)

    def retain_until(self, now: dt.datetime | None = None) -> dt.datetime:
        return (now or dt.datetime.now(dt.UTC)) + dt.timedelta(days=self.days)
