"""The web console (``deltavault ui``): timeline, snapshots, diff, ledger, repository.

Server-rendered pages over an opened repository; see docs/ui.md. The
engine is reached through :mod:`deltavault.ui.engine` and
:mod:`deltavault.ui.ledger_view` only.
"""
