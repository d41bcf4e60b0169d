"""Connection strings in reports and the ledger: never with a password in them."""

from __future__ import annotations

import re


def redact(spec: str) -> str:
    """A source string without passwords (for reports and the ledger)."""
    spec = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", spec)
    return re.sub(r"(password\s*=\s*)('[^']*'|\S+)", r"\1***", spec, flags=re.I)
