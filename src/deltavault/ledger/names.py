"""Names of the objects the journal writes, importable without the ledger's code.

:mod:`deltavault.repo.layout` lists every prefix of a repository; importing
:mod:`deltavault.ledger.journal` for one string would load the log, its
signatures and cryptography before a command has derived its key.
"""

from __future__ import annotations

#: sealed journal batches: ``journal/<sha256 of the object>`` (docs/ledger.md)
JOURNAL_PREFIX = "journal/"
