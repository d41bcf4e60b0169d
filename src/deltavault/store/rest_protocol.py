"""The REST backend's wire protocol for errors, shared by server and client.

The server maps a store exception to an HTTP status and a JSON body
``{"error": code, "message": text}``; the client maps them back to the same
exception class. One table, so the two sides cannot drift apart
(docs/rest-api.md "Errors").
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime

from deltavault.errors import (
    BackendError,
    BackendUnavailable,
    DeltavaultError,
    NoCompareAndSwap,
    ObjectExists,
    ObjectLocked,
    ObjectNotFound,
    PermissionDenied,
    UserError,
    VersionConflict,
)

#: (code in the JSON body, HTTP status, exception class), most specific class first
WIRE_ERRORS: tuple[tuple[str, int, type[DeltavaultError]], ...] = (
    ("not_found", 404, ObjectNotFound),
    ("exists", 412, ObjectExists),
    ("version_conflict", 412, VersionConflict),
    ("object_locked", 403, ObjectLocked),
    ("permission_denied", 403, PermissionDenied),
    ("bad_request", 400, UserError),
    ("unavailable", 503, BackendUnavailable),
    ("no_compare_and_swap", 501, NoCompareAndSwap),
    ("backend_error", 502, BackendError),
)


def wire_error(exc: DeltavaultError) -> tuple[int, str]:
    """The (HTTP status, code) the server answers for a store exception."""
    for code, status, cls in WIRE_ERRORS:
        if isinstance(exc, cls):
            return status, code
    return 502, "backend_error"


def error_class(status: int, code: str) -> type[DeltavaultError] | None:
    """The exception class a response stands for: by its code, else by its status."""
    for wire_code, _status, cls in WIRE_ERRORS:
        if wire_code == code:
            return cls
    for _code, wire_status, cls in WIRE_ERRORS:
        if wire_status == status:
            return cls
    return None


def http_date(mtime: datetime | None) -> dict[str, str]:
    """A ``Last-Modified`` header for an object's store mtime (none if unknown)."""
    return {} if mtime is None else {"Last-Modified": format_datetime(mtime, usegmt=True)}


def parse_http_date(value: str | None) -> datetime | None:
    """``Last-Modified`` back to an aware UTC datetime; None if absent or malformed."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def iso_mtime(mtime: datetime | None) -> str | None:
    """An object's mtime in a listing: RFC 3339 UTC, or null if unknown."""
    return None if mtime is None else mtime.astimezone(UTC).isoformat()


def parse_iso_mtime(value: object) -> datetime | None:
    """A listing's ``mtime`` back to an aware datetime; None if absent or malformed."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else None
