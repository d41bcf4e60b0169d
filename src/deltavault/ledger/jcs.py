"""RFC 8785 (JCS) bytes at the speed of the standard library's C JSON encoder.

Every ledger event, journal record and commitment is hashed over its RFC 8785
form, so canonicalisation runs once or twice per journal record: with the
pure-Python ``rfc8785`` package it was three quarters of an append's time
(~7,000 records/s). For the values JCS and ``json.dumps(sort_keys=True,
separators=(",", ":"), ensure_ascii=False)`` write alike, the C encoder is
used; ``rfc8785`` stays the reference and handles (or rejects) the rest, so
the output is always exactly ``rfc8785.dumps(value)``.

They write alike when every value is ``None``, a ``bool``, an ``int`` within
±(2**53 − 1), a ``str``, a ``list``/``tuple`` or a ``dict`` of such with
``str`` keys, or a ``float`` whose ``repr`` has neither an exponent nor a
trailing ``.0`` (JCS writes those as ECMAScript does, e.g. ``1e+16`` as
``10000000000000000``; ``float('nan')`` is refused). Keys are sorted by
UTF-16 code units in JCS and by code points here: the two orders differ only
between a character above U+FFFF and one in U+E000–U+FFFF, so a key with any
character above U+D7FF takes the reference path.
"""

from __future__ import annotations

import json
from typing import Any

import rfc8785

_INT_MAX = 2**53 - 1
_ENCODE = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                           allow_nan=False, check_circular=False).encode


def dumps(value: Any) -> bytes:
    """``rfc8785.dumps(value)``, faster for plain JSON values.

    Raises:
        rfc8785.CanonicalizationError: the value has no JCS form (NaN, an
            integer beyond ±2**53, a non-string key, a lone surrogate, ...).
        TypeError, ValueError, RecursionError: as ``rfc8785.dumps`` raises them.
    """
    if _plain(value, 0):
        try:
            return _ENCODE(value).encode("utf-8")
        except UnicodeEncodeError:
            pass  # a lone surrogate: the reference raises its own error
    return bytes(rfc8785.dumps(value))


#: deeper values take the reference path (which recurses as deep as it must)
_MAX_DEPTH = 64


def _plain(value: Any, depth: int) -> bool:
    """True if the C encoder writes ``value`` exactly as JCS does."""
    kind = type(value)
    if kind is str or value is None or kind is bool:
        return True
    if kind is int:
        return bool(-_INT_MAX <= value <= _INT_MAX)
    if kind is float:
        text = repr(value)
        return "e" not in text and not text.endswith(".0") and text[-1].isdigit()
    if depth >= _MAX_DEPTH:
        return False
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or (not key.isascii() and max(key) > "\ud7ff"):
                return False
            if not _plain(item, depth + 1):
                return False
        return True
    if kind is list or kind is tuple:
        return all(_plain(item, depth + 1) for item in value)
    return False
