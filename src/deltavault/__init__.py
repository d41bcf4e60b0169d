"""deltavault: full, differential and incremental backups of trading state.

Deduplicated, compressed, encrypted, with a tamper-evident Merkle ledger.
"""

__version__ = "0.1.0"
