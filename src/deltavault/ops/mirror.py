"""Mirror what an auditor needs (config, ledger, pack lists) to another store.

Incremental: write-once objects already there are skipped; the checkpoint
is replaced last, by compare-and-swap, after every tile and bundle it
commits to, so the mirror always holds a log that verifies.
"""

from __future__ import annotations

import contextlib

from deltavault.errors import ObjectExists, ObjectNotFound
from deltavault.repo import layout
from deltavault.store.base import Store


def mirror_ledger(src: Store, dst: Store) -> int:
    """Copy config, ``ledger/`` and ``packlists/`` to ``dst``; returns objects written."""
    copied = 0
    for prefix in (layout.CONFIG_KEY, layout.LEDGER_PREFIX, layout.PACKLIST_PREFIX):
        for info in src.list(prefix):
            if info.key == layout.CHECKPOINT_KEY or dst.exists(info.key):
                continue
            with contextlib.suppress(ObjectExists):
                dst.put(info.key, src.get(info.key))
                copied += 1
    checkpoint = src.get(layout.CHECKPOINT_KEY)
    try:
        current, version = dst.get_versioned(layout.CHECKPOINT_KEY)
    except ObjectNotFound:
        current, version = None, None
    if current != checkpoint:
        dst.replace(layout.CHECKPOINT_KEY, checkpoint, version)
        copied += 1
    return copied
