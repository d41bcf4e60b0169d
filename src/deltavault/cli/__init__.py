"""The ``deltavault`` command line: thin Typer commands over :mod:`deltavault.api`."""
