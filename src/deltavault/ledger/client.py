"""A verifying client of one log: its cached verified state, kept in step with the log.

Like a Go checksum-database client, the client remembers the last
checkpoint it verified (docs/ledger.md §9.2). On each open it requires the
current checkpoint to extend that one and verifies only the entries past it,
folding them into its :class:`~deltavault.ledger.state.LedgerState`; the new
state is saved only once the whole extension verified. A missing cache means
a full verification (first use); a damaged one is reported, never believed,
and rebuilt from the log — keeping its signed checkpoint, if that still
verifies, as a floor the log must extend.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from deltavault.errors import FormatError, UserError
from deltavault.ledger.frontier import Frontier
from deltavault.ledger.log import Ledger
from deltavault.ledger.note import (
    NoteSigner,
    NoteVerifier,
    SignedCheckpoint,
    cosignature_time,
)
from deltavault.ledger.state import LedgerState, now_us
from deltavault.ledger.statecache import (
    CachedState,
    decode,
    encode,
    salvage_checkpoint,
    write_atomically,
)
from deltavault.store.base import Store


@dataclass(frozen=True)
class StateCache:
    """Where the state lives and the key that authenticates it."""

    path: Path
    key: bytes


def witness_time_us(signed: SignedCheckpoint, witnesses: Sequence[NoteVerifier]) -> int | None:
    """The earliest valid cosignature time of a trusted witness, in microseconds."""
    times = []
    for w in witnesses:
        for sig in signed.note.signatures:
            if w.matches(sig) and w.verify(signed.note.text, sig):
                times.append(cosignature_time(sig) * 1_000_000)
    return min(times) if times else None


@dataclass
class _StateFold:
    """One accepted checkpoint's worth of entries, folded into a copy of the state."""

    client: LedgerClient
    signed: SignedCheckpoint
    work: LedgerState
    seen_us: int

    def add(self, start: int, entries: Sequence[bytes]) -> None:
        self.work.add(start, entries, self.signed.checkpoint.size, self.seen_us)

    def done(self, frontier: Frontier) -> None:
        self.work.root = frontier.root
        self.client._adopt(self.signed, frontier, self.work)


@dataclass
class LedgerClient:
    """This client's verified view of the log of ``origin``."""

    verifier: NoteVerifier
    origin: str
    cache: StateCache | None = None
    witnesses: Sequence[NoteVerifier] = ()
    clock: Callable[[], int] = now_us
    state: LedgerState = field(default_factory=LedgerState)
    frontier: Frontier | None = None
    floor: Frontier | None = None
    #: what was wrong with the cache when it was loaded ("" if nothing)
    cache_problem: str = ""

    def __post_init__(self) -> None:
        self._load()

    def _load(self) -> None:
        if self.cache is None:
            return
        try:
            data = self.cache.path.read_bytes()
        except FileNotFoundError:
            return  # first use: a full verification
        except OSError as exc:
            self._damaged(f"cannot read it: {exc.strerror}", None)
            return
        try:
            cached = decode(data, self.cache.key, self.verifier, self.origin)
        except FormatError as exc:
            self._damaged(str(exc), salvage_checkpoint(data, self.verifier, self.origin))
            return
        self.frontier, self.state = cached.frontier, cached.state

    def _damaged(self, why: str, floor: SignedCheckpoint | None) -> None:
        """Never believe a damaged cache; keep only a checkpoint that verifies on its own."""
        self.cache_problem = why
        if floor is not None:
            self.floor = Frontier(floor.checkpoint.size, floor.checkpoint.root)
        assert self.cache is not None
        warnings.warn(f"the ledger state cache {self.cache.path} is not usable ({why}); "
                      "verifying the whole log again", stacklevel=3)

    def follow(self, signed: SignedCheckpoint, start: int) -> _StateFold:
        """A fold of the entries past ``start`` (the Ledger's Follower)."""
        seen = self.clock()
        witnessed = witness_time_us(signed, self.witnesses)
        if witnessed is not None:
            seen = min(seen, witnessed)
        work = self.state.copy() if start == self.state.size else LedgerState()
        return _StateFold(self, signed, work, seen)

    def _adopt(self, signed: SignedCheckpoint, frontier: Frontier, state: LedgerState) -> None:
        self.state, self.frontier, self.floor = state, frontier, None
        if self.cache is None:
            return
        data = encode(CachedState(signed, frontier, state), self.cache.key)
        # A cache that cannot be written only costs time next run.
        with contextlib.suppress(OSError):
            write_atomically(self.cache.path, data)

    def open(self, store: Store, signer: Ed25519PrivateKey | None = None) -> Ledger:
        """The log, verified up to its current checkpoint and followed by this client.

        Raises:
            LedgerError: the log does not verify or does not extend what this
                client verified before (nothing is saved then).
        """
        note_signer = NoteSigner(self.origin, signer) if signer is not None else None
        if note_signer is not None and note_signer.verifier != self.verifier:
            raise UserError("the ledger signing key does not match the verifier key")
        ledger = Ledger(store, self.origin, note_signer, self.verifier, trusted=self.frontier,
                        follower=self, floor=self.floor)
        ledger.refresh()
        return ledger
