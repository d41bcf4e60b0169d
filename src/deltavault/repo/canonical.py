"""Canonical JSON (RFC 8785) and strict msgpack helpers for stored metadata.

Decoders here are the first line against hostile bytes: any malformed input
becomes :class:`~deltavault.errors.FormatError`, never another exception.
"""

from __future__ import annotations

import json
from typing import Any

import msgpack
import rfc8785

from deltavault.errors import FormatError


def canonical_json(obj: Any) -> bytes:
    """RFC 8785 canonical JSON bytes of ``obj``."""
    return bytes(rfc8785.dumps(obj))


def parse_json_object(data: bytes, what: str) -> dict[str, Any]:
    """Parse JSON that must be an object; FormatError otherwise."""
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise FormatError(f"{what}: not valid JSON ({exc.__class__.__name__})") from exc
    if not isinstance(obj, dict):
        raise FormatError(f"{what}: expected a JSON object")
    return obj


def pack_msgpack(obj: Any) -> bytes:
    """msgpack with bin type for bytes and str for text."""
    return bytes(msgpack.packb(obj, use_bin_type=True))


def unpack_msgpack_map(data: bytes, what: str) -> dict[str, Any]:
    """Parse msgpack that must be a map with string keys; FormatError otherwise."""
    try:
        obj = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
        )
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError,
            msgpack.StackError, UnicodeDecodeError, RecursionError, OverflowError) as exc:
        raise FormatError(f"{what}: not valid msgpack ({exc.__class__.__name__})") from exc
    except Exception as exc:  # msgpack raises a few undocumented types on garbage
        raise FormatError(f"{what}: not valid msgpack ({exc.__class__.__name__})") from exc
    if not isinstance(obj, dict) or not all(isinstance(k, str) for k in obj):
        raise FormatError(f"{what}: expected a map with string keys")
    return obj


def field(obj: dict[str, Any], key: str, typ: type | tuple[type, ...], what: str) -> Any:
    """A required field of a given type; FormatError names what is wrong."""
    if key not in obj:
        raise FormatError(f"{what}: missing field {key!r}")
    value = obj[key]
    if isinstance(value, bool) and typ is int:
        raise FormatError(f"{what}: field {key!r} must be int")
    if not isinstance(value, typ):
        raise FormatError(f"{what}: field {key!r} has the wrong type")
    return value


def optional(obj: dict[str, Any], key: str, typ: type | tuple[type, ...], what: str,
             default: Any = None) -> Any:
    """An optional field; None/absent gives ``default``."""
    if obj.get(key) is None:
        return default
    return field(obj, key, typ, what)
