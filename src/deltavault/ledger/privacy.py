"""Salted commitments for the event fields an auditor does not need in clear.

The ledger is readable without the key (that is what makes it auditable),
so an event must not say more than an auditor needs. Restore, rollback and
reconstruct targets (paths, database labels) and reconcile source labels are
replaced by a commitment per field (docs/ledger.md §6.2; host names and tags
stay in clear: keyless monitoring needs them)::

    <field>_commitment = hex(SHA-256(salt ‖ canonical_json(value)))   salt: 32 random bytes

and the values with their salts travel in the same event, sealed with the
repository key (``private`` = b64 envelope, aad ``dv1:event-private``), so the
password holder can always read them back and disclose one field — value and
salt — to a third party, who checks it against the commitment. Required
version-1 fields keep a neutral placeholder (``""`` or ``[]``) so readers of
an older version still parse the event.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from deltavault.errors import FormatError, IntegrityError
from deltavault.ledger._text import b64decode, b64encode, parse_hex32
from deltavault.ledger.events import Event, canonical_json, parse_canonical
from deltavault.ledger.journal import Sealer

AAD_PRIVATE = b"dv1:event-private"
SALT_SIZE = 32
SUFFIX = "_commitment"

#: event type → committed field → placeholder kept in clear (None: the field is dropped)
PRIVATE_FIELDS: dict[str, dict[str, Any]] = {
    "restore": {"target": ""},
    "rollback": {"target": ""},
    "reconstruct": {"target": None},
    "reconcile": {"left": None, "right": None},
}


def field_commitment(salt: bytes, value: Any) -> str:
    """hex(SHA-256(salt ‖ canonical_json(value)))."""
    return hashlib.sha256(salt + canonical_json(value)).hexdigest()


def protect(event: Event, sealer: Sealer) -> Event:
    """The event with its private fields committed and sealed (unchanged if it has none)."""
    private = PRIVATE_FIELDS.get(event.type, {})
    fields = dict(event.fields)
    present = {name: fields[name] for name in private if name in fields}
    if not present or "private" in fields:
        return event
    salts = {name: os.urandom(SALT_SIZE) for name in present}
    for name, value in present.items():
        placeholder = private[name]
        if placeholder is None:
            del fields[name]
        else:
            fields[name] = placeholder
        fields[name + SUFFIX] = field_commitment(salts[name], value)
    sealed = sealer.seal(AAD_PRIVATE, canonical_json(
        {"fields": present, "salts": {n: s.hex() for n, s in salts.items()}}))
    fields["private"] = b64encode(sealed)
    return Event.new(event.type, **{k: v for k, v in fields.items() if k != "type"})


def reveal(event: Event, sealer: Sealer) -> dict[str, tuple[Any, bytes]]:
    """The committed fields of an event: name → (value, salt), each checked.

    Raises:
        IntegrityError: the sealed part does not open or does not match a commitment.
    """
    sealed = event.fields.get("private")
    if sealed is None:
        return {}
    try:
        plain = sealer.open(AAD_PRIVATE, b64decode(str(sealed), "private fields"))
        doc = parse_canonical(plain, "private fields")
        values, salts = doc["fields"], doc["salts"]
        out = {name: (values[name], parse_hex32(salts[name], "salt")) for name in values}
    except IntegrityError:
        raise
    except (FormatError, KeyError, TypeError, ValueError) as exc:
        raise IntegrityError(f"the private fields of a {event.type} event are malformed") from exc
    except Exception as exc:  # a failed decryption: the sealer's own error type
        raise IntegrityError(f"the private fields of a {event.type} event do not open") from exc
    for name, (value, salt) in out.items():
        if event.fields.get(name + SUFFIX) != field_commitment(salt, value):
            raise IntegrityError(f"the sealed {name} of a {event.type} event does not match "
                                 "its commitment")
    return out


def verify_disclosure(event: Event, name: str, value: Any, salt: bytes) -> bool:
    """Whether a disclosed (value, salt) matches the event's commitment to ``name``."""
    expected = event.fields.get(name + SUFFIX)
    return isinstance(expected, str) and field_commitment(salt, value) == expected
