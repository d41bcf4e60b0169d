"""Ledger fixtures (from :mod:`tests.support.ledger`)."""

from tests.support.ledger import ledger, log_key, sealer, store, witness

__all__ = ["ledger", "log_key", "sealer", "store", "witness"]
