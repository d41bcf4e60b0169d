"""The trade-record journal: salted commitments in the ledger, records sealed aside.

Each batch of records is sealed (AES-256-GCM by the repository, aad
``dv1:journal``) into one object ``journal/<SHA-256 of the sealed bytes>``;
each record gets a 32-byte random salt and one ledger entry::

    {"commitment": hex(SHA-256(salt ‖ canonical_json(record))),
     "object": "<journal object id>", "slot": <position in the batch>,
     "time": "...", "type": "journal"}

The entry names its object and slot, so a leaf index leads to its record
without any index of our own, and reveals nothing of the record. Disclosing
one record (with its salt) lets anyone recompute that one commitment; the
salts make the other commitments unguessable (docs/ledger.md §8).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Sequence
from typing import Any, Protocol

from deltavault.errors import FormatError, IntegrityError, ObjectExists, ObjectNotFound, UserError
from deltavault.ledger._text import parse_hex32
from deltavault.ledger.events import (
    Event,
    canonical_json,
    event_time,
    journal_entries,
    parse_canonical,
)
from deltavault.ledger.log import Ledger
from deltavault.ledger.names import JOURNAL_PREFIX
from deltavault.ledger.proof import Disclosure, ProofFile, commitment, commitment_of_canonical

JOURNAL_AAD = b"dv1:journal"
SALT_SIZE = 32


class Sealer(Protocol):
    """Authenticated encryption the repository provides (AES-256-GCM envelope)."""

    def seal(self, aad: bytes, plaintext: bytes) -> bytes:
        """Encrypt and authenticate ``plaintext`` bound to ``aad``."""
        ...

    def open(self, aad: bytes, data: bytes) -> bytes:
        """Decrypt; raise on any tampering."""
        ...


class Journal:
    """Append, read and disclose journal records through a ledger."""

    def __init__(self, ledger: Ledger, sealer: Sealer) -> None:
        self.ledger = ledger
        self.sealer = sealer

    def append(self, records: list[dict[str, Any]], *, time: str | None = None) -> list[int]:
        """Commit a batch of records under one checkpoint; returns their indexes.

        Raises:
            UserError: a record is not a JSON object representable canonically.
        """
        if not records:
            return []
        if not all(isinstance(r, dict) for r in records):
            raise UserError("journal records must be JSON objects")
        time = event_time(time)  # a malformed time is refused before anything is written
        salts = [os.urandom(SALT_SIZE) for _ in records]
        # Each record is canonicalised once: its bytes go into its commitment
        # and, spliced, into the batch (RFC 8785 of {"records": [{"record": r,
        # "salt": s}, ...], "v": 1}: those keys are already in sorted order).
        canon = [canonical_json(r) for r in records]
        plaintext = b"".join((
            b'{"records":[',
            b",".join(b'{"record":%s,"salt":"%s"}' % (c, s.hex().encode()) for c, s in zip(
                canon, salts, strict=True)),
            b'],"v":1}'))
        sealed = self.sealer.seal(JOURNAL_AAD, plaintext)
        oid = hashlib.sha256(sealed).hexdigest()
        with contextlib.suppress(ObjectExists):  # named by its hash: same bytes
            self.ledger.store.put(JOURNAL_PREFIX + oid, sealed)
        digests = [commitment_of_canonical(s, c).hex() for s, c in zip(salts, canon, strict=True)]
        return self.ledger.append(journal_entries(digests, oid, time))

    def read(self, index: int) -> tuple[dict[str, Any], bytes]:
        """The record at leaf ``index`` and its salt, checked against the commitment.

        Raises:
            UserError: the entry is not a journal event.
            IntegrityError: the sealed object is missing, altered or does not
                match the commitment.
        """
        return self.read_many([index])[0]

    def read_many(self, indexes: Sequence[int]) -> list[tuple[dict[str, Any], bytes]]:
        """:meth:`read` for several leaves, opening each batch object once.

        Results are in the order of ``indexes``; only one batch is held in
        memory at a time.
        """
        # object id → (position in ``indexes``, slot in the batch, commitment)
        wanted: dict[str, list[tuple[int, int, str]]] = {}
        for pos, index in enumerate(indexes):
            try:
                event = Event.from_bytes(self.ledger.entry(index))
            except FormatError as exc:
                raise UserError(f"ledger entry {index} is not an event: {exc}") from exc
            if event.type != "journal":
                raise UserError(
                    f"ledger entry {index} is a {event.type} event, not a journal record")
            wanted.setdefault(event.fields["object"], []).append(
                (pos, event.fields["slot"], event.fields["commitment"]))
        out: list[tuple[dict[str, Any], bytes] | None] = [None] * len(indexes)
        for oid, slots in wanted.items():
            batch = self.read_batch(oid, f" of entry {indexes[slots[0][0]]}")
            for pos, slot, committed in slots:
                if slot >= len(batch):
                    raise IntegrityError(
                        f"journal object {JOURNAL_PREFIX + oid} has no slot {slot}")
                record, salt = batch[slot]
                if not isinstance(record, dict) or commitment(salt, record).hex() != committed:
                    raise IntegrityError(
                        f"journal record {indexes[pos]} does not match its ledger commitment")
                out[pos] = (record, salt)
        return [r for r in out if r is not None]

    def read_batch(self, oid: str, what: str = "", *, canonical: bool = True
                   ) -> list[tuple[Any, bytes]]:
        """Every (record, salt) of the sealed batch object ``oid``, in slot order.

        The object is checked against its SHA-256 name and decrypted; the
        commitments are not checked here (they live in the ledger entries),
        so callers that disclose a record go through :meth:`read`. A search
        over many records decrypts each batch once with this, and may pass
        ``canonical=False`` to skip re-encoding the batch to prove it is in
        RFC 8785 form (four fifths of the time; the AEAD already proves the
        repository wrote it, and every record shown is re-read by :meth:`read`).

        Raises:
            IntegrityError: the object is missing, altered or malformed.
        """
        key = JOURNAL_PREFIX + oid
        try:
            sealed = self.ledger.store.get(key)
        except ObjectNotFound:
            raise IntegrityError(f"journal object {key}{what} is missing") from None
        if hashlib.sha256(sealed).hexdigest() != oid:
            raise IntegrityError(f"journal object {key} does not match its SHA-256 name")
        try:
            plaintext = self.sealer.open(JOURNAL_AAD, sealed)
            batch = (parse_canonical(plaintext, "journal batch") if canonical
                     else json.loads(plaintext))
            return [(item["record"], parse_hex32(item["salt"], "journal salt"))
                    for item in batch["records"]]
        except Exception as exc:  # any decryption or shape failure means tampering
            raise IntegrityError(f"journal object {key} cannot be opened: {exc}") from exc

    def prove(self, index: int) -> str:
        """A tlog-proof file disclosing record ``index`` (and no other)."""
        record, salt = self.read(index)
        signed = self.ledger.checkpoint()
        if signed is None:
            raise UserError("the ledger is empty")
        proof = self.ledger.inclusion_proof(index)
        extra = Disclosure(self.ledger.leaf(index), record, salt).to_bytes()
        return ProofFile(index, proof.hashes, signed.to_bytes(), extra).to_text()
