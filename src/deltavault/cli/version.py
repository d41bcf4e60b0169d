"""``deltavault version``: answered before Typer is even imported (start-up, issue 14)."""

from __future__ import annotations

import json
import platform
import sys

from deltavault import __version__


def print_version(*, as_json: bool) -> None:
    """Print the version as text or as a JSON document."""
    if as_json:
        doc = {"version": __version__, "python": platform.python_version()}
        sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    else:
        sys.stdout.write(f"deltavault {__version__}\n")
