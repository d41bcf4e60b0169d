"""Strict decoders for the small text fields of notes, proofs and staging objects.

Python's ``int()`` accepts ``+5``, `` 5`` and ``1_000``; ``b64decode`` accepts
several spellings of the same bytes. A verifier must accept exactly one
spelling of each value, or two parties can disagree about what was signed.
"""

from __future__ import annotations

import base64
import binascii
import re

from deltavault.errors import FormatError

_DECIMAL = re.compile(r"(0|[1-9][0-9]{0,19})")
_B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


def parse_decimal(text: str, what: str) -> int:
    """An ASCII decimal without sign or leading zeros, below 2**63."""
    if not _DECIMAL.fullmatch(text):
        raise FormatError(f"{what} is not a decimal number: {text[:40]!r}")
    value = int(text)
    if value >= 1 << 63:
        raise FormatError(f"{what} is too large: {text}")
    return value


def b64decode(text: str, what: str) -> bytes:
    """Standard padded base64 (RFC 4648 §4), canonical spelling only."""
    if not _B64.fullmatch(text):
        raise FormatError(f"{what} is not base64")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise FormatError(f"{what} is not base64: {exc}") from exc
    if base64.b64encode(data).decode("ascii") != text:
        raise FormatError(f"{what} is not canonical base64")
    return data


def b64encode(data: bytes) -> str:
    """Standard padded base64 as str."""
    return base64.b64encode(data).decode("ascii")


def parse_hex32(text: str, what: str) -> bytes:
    """64 lowercase hex digits → 32 bytes."""
    if not _HEX64.fullmatch(text):
        raise FormatError(f"{what} is not 64 lowercase hex digits")
    return bytes.fromhex(text)
