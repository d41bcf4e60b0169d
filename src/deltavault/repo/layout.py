"""Where every kind of repository object lives: the one map from object kinds to keys.

docs/format.md §1 is the specification; this module is its only
implementation. Every other module names an object through these functions,
so a change of layout (or a reader of another layout) touches one file.
The ledger's own objects (``ledger/…``) are named by the ledger layer
(:mod:`deltavault.ledger.tiles`, :mod:`deltavault.ledger.journal`); their
prefixes are repeated here so that whole-repository operations (copy,
retention, audit) can enumerate everything from one place.
"""

from __future__ import annotations

from collections.abc import Iterable

from deltavault.ledger.names import JOURNAL_PREFIX
from deltavault.ledger.tiles import CHECKPOINT_KEY
from deltavault.ledger.tiles import PREFIX as LEDGER_PREFIX

CONFIG_KEY = "config"
LEDGER_KEY = "ledger-key"
#: plaintext marker ``copy`` writes into a replica (docs/backends.md "Replicas")
REPLICA_KEY = "replica"
KEY_PREFIX = "keys/"
DATA_PREFIX = "data/"
INDEX_PREFIX = "index/"
SNAPSHOT_PREFIX = "snapshots/"
PACKLIST_PREFIX = "packlists/"
LOCK_PREFIX = "locks/"
STAGING_PREFIX = LEDGER_PREFIX + "staging/"

#: prefixes of objects named by the SHA-256 of their stored bytes (checkable keylessly)
HASH_NAMED = (DATA_PREFIX, INDEX_PREFIX, SNAPSHOT_PREFIX, KEY_PREFIX, JOURNAL_PREFIX)

__all__ = [
    "CHECKPOINT_KEY", "CONFIG_KEY", "DATA_PREFIX", "HASH_NAMED", "INDEX_PREFIX", "JOURNAL_PREFIX",
    "KEY_PREFIX", "LEDGER_KEY", "LEDGER_PREFIX", "LOCK_PREFIX", "PACKLIST_PREFIX", "REPLICA_KEY",
    "SNAPSHOT_PREFIX", "STAGING_PREFIX", "index_key", "key_file_key", "kind_of", "lock_key",
    "name_of", "pack_key", "packlist_key", "snapshot_key",
]  # fmt: skip


def pack_key(pack_id: str) -> str:
    """The store key of a pack: ``data/<first two hex>/<id>``."""
    return f"{DATA_PREFIX}{pack_id[:2]}/{pack_id}"


def index_key(index_id: str) -> str:
    """The store key of an index file."""
    return INDEX_PREFIX + index_id


def snapshot_key(snapshot_id: str) -> str:
    """The store key of a snapshot object."""
    return SNAPSHOT_PREFIX + snapshot_id


def packlist_key(snapshot_id: str) -> str:
    """The store key of a snapshot's plaintext pack list."""
    return PACKLIST_PREFIX + snapshot_id


def key_file_key(key_id: str) -> str:
    """The store key of a password key file."""
    return KEY_PREFIX + key_id


def lock_key(lock_id: str) -> str:
    """The store key of a lock."""
    return LOCK_PREFIX + lock_id


def name_of(key: str) -> str:
    """The id part of a key (its last path component): a pack, index or snapshot id."""
    return key.rsplit("/", 1)[-1]


def names(keys: Iterable[str]) -> list[str]:
    """The ids of several keys, in the order given."""
    return [name_of(k) for k in keys]


_KINDS = (
    (DATA_PREFIX, "pack"), (INDEX_PREFIX, "index"), (SNAPSHOT_PREFIX, "snapshot"),
    (PACKLIST_PREFIX, "packlist"), (KEY_PREFIX, "key"), (LOCK_PREFIX, "lock"),
    (JOURNAL_PREFIX, "journal"), (STAGING_PREFIX, "ledger-staging"),
    (LEDGER_PREFIX + "tile/entries/", "ledger-bundle"), (LEDGER_PREFIX + "tile/", "ledger-tile"),
    (LEDGER_PREFIX + "blob/", "ledger-blob"),
)  # fmt: skip
_FIXED = {CONFIG_KEY: "config", LEDGER_KEY: "ledger-key", REPLICA_KEY: "replica",
          CHECKPOINT_KEY: "ledger-checkpoint"}


def kind_of(key: str) -> str | None:
    """The kind of object a key names (``pack``, ``snapshot``, ``ledger-tile`` …), or None.

    Readers ignore keys of no kind (a backend's temporary files).
    """
    fixed = _FIXED.get(key)
    if fixed is not None:
        return fixed
    for prefix, kind in _KINDS:
        if key.startswith(prefix):
            return kind
    return None
