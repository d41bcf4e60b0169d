"""What a trading file holds, told from its bytes: array stats, table counts, line counts.

An on-call engineer deciding which snapshot to roll back to wants to see
that ``positions.sqlite`` had 380,000 rows and the ES book's prices stayed in
range, not a hex dump. The bytes come from the snapshot (each blob verified
on load by the caller's iterator) and are hostile all the same: a header
that lies about its shape, a database that is not one, a line that never
ends. Memory stays bounded: arrays are reduced chunk by chunk, a database is
spooled to a temporary file, lines are counted without keeping them.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deltavault.chunk.npy import MAGIC as NPY_MAGIC
from deltavault.chunk.npy import MAX_HEADER as NPY_MAX_HEADER
from deltavault.chunk.npy import parse_header
from deltavault.chunk.sqlite import MAGIC as SQLITE_MAGIC
from deltavault.ui.kinds import JSONL, NPY, SQLITE, summary_kind

#: files larger than this get no summary (it would read the whole file per view)
MAX_SUMMARY_BYTES = 512 << 20
_MAX_TABLES = 200
_PREVIEW = 240


@dataclass
class Summary:
    """What is worth showing about one file instead of its bytes.

    Attributes:
        kind: ``npy``, ``sqlite``, ``jsonl`` or ``none``.
        facts: label → value rows for the page, in display order.
        tables: SQLite table name → row count.
        error: why the file is not what its name or magic says (hostile or
            damaged content), or why no summary was made.
    """

    kind: str
    facts: list[tuple[str, str]] = field(default_factory=list)
    tables: list[tuple[str, int]] = field(default_factory=list)
    error: str = ""


class _Reader:
    """Pull exact byte counts out of an iterator of chunks."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._it: Iterator[bytes] = iter(chunks)
        self._buf = b""

    def peek(self, n: int) -> bytes:
        while len(self._buf) < n:
            nxt = next(self._it, None)
            if nxt is None:
                break
            self._buf += nxt
        return self._buf[:n]

    def take(self, n: int) -> bytes:
        head = self.peek(n)
        self._buf = self._buf[len(head):]
        return head

    def rest(self) -> Iterator[bytes]:
        if self._buf:
            yield self._buf
            self._buf = b""
        yield from self._it


def summarize(path: str, size: int, chunks: Iterable[bytes]) -> Summary:
    """The summary of a file of ``size`` bytes whose content ``chunks`` yields.

    The kind is chosen by magic bytes first (a SQLite file named ``.bin`` is
    still a database), then by name (JSON lines have no magic).
    """
    reader = _Reader(chunks)
    head = reader.peek(16)
    if head.startswith(SQLITE_MAGIC):
        kind = SQLITE
    elif head.startswith(NPY_MAGIC):
        kind = NPY
    else:
        kind = summary_kind(path) or "none"
        if kind != JSONL:
            return Summary("none")
    if size > MAX_SUMMARY_BYTES:
        return Summary(kind, error=f"larger than {MAX_SUMMARY_BYTES >> 20} MiB: no summary")
    if kind == NPY:
        return _npy(reader)
    if kind == SQLITE:
        return _sqlite(reader)
    return _jsonl(reader)


# --- .npy ----------------------------------------------------------------------


def _npy(reader: _Reader) -> Summary:
    header = parse_header(reader.peek(NPY_MAX_HEADER + 12))
    if header is None:
        return Summary(NPY, error="not a valid .npy array (header unreadable or refused)")
    reader.take(header.data_offset)
    dtype, shape, fortran = header.dtype, header.shape, header.fortran_order
    count = int(np.prod(shape, dtype=np.float64)) if shape else 1
    facts = [("shape", " × ".join(map(str, shape)) or "scalar"), ("dtype", str(dtype)),
             ("order", "Fortran" if fortran else "C"), ("elements", f"{count:,}")]
    numeric = dtype.kind in "iufb" and dtype.fields is None and dtype.itemsize > 0
    lo: float | None = None
    hi: float | None = None
    nans = 0
    seen = 0
    carry = b""
    for chunk in reader.rest():
        data = carry + chunk
        usable = len(data) - len(data) % max(dtype.itemsize, 1)
        carry = data[usable:]
        seen += usable
        if not numeric or not usable:
            continue
        arr = np.frombuffer(data[:usable], dtype=dtype)
        if dtype.kind == "f":
            mask = np.isnan(arr)
            nans += int(mask.sum())
            arr = arr[~mask]
        if arr.size:
            a, b = float(arr.min()), float(arr.max())
            lo = a if lo is None else min(lo, a)
            hi = b if hi is None else max(hi, b)
    expected = count * dtype.itemsize
    if seen + len(carry) != expected:
        return Summary(NPY, facts, error=f"data holds {seen + len(carry)} bytes, the header "
                                         f"promises {expected}")
    if numeric:
        facts += [("min", _num(lo)), ("max", _num(hi))]
        if dtype.kind == "f":
            facts.append(("NaN values", f"{nans:,}"))
    return Summary(NPY, facts)


def _num(x: float | None) -> str:
    return "—" if x is None else f"{x:.10g}"


# --- SQLite -----------------------------------------------------------------


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sqlite(reader: _Reader) -> Summary:
    with tempfile.TemporaryDirectory(prefix="deltavault-ui-") as tmp:
        db = Path(tmp) / "db.sqlite"
        with open(db, "wb") as f:
            for chunk in reader.rest():
                f.write(chunk)
        try:
            # immutable=1: no locking, no journal, no WAL recovery written next to it
            con = sqlite3.connect(f"file:{db}?mode=ro&immutable=1", uri=True)
        except sqlite3.Error as exc:
            return Summary(SQLITE, error=f"cannot open the database: {exc}")
        try:
            names = [r[0] for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name").fetchall()]
            tables = [(str(n), int(con.execute(f"SELECT count(*) FROM {_quote(str(n))}"
                                               ).fetchone()[0]))
                      for n in names[:_MAX_TABLES]]
            page_size = int(con.execute("PRAGMA page_size").fetchone()[0])
            pages = int(con.execute("PRAGMA page_count").fetchone()[0])
        except sqlite3.Error as exc:
            return Summary(SQLITE, error=f"not a readable SQLite database: {exc}")
        finally:
            con.close()
    facts = [("tables", f"{len(names):,}"), ("rows", f"{sum(n for _, n in tables):,}"),
             ("page size", f"{page_size:,} bytes"), ("pages", f"{pages:,}")]
    if len(names) > _MAX_TABLES:
        facts.append(("tables counted", f"first {_MAX_TABLES}"))
    return Summary(SQLITE, facts, tables)


# --- JSON lines ---------------------------------------------------------------


def _jsonl(reader: _Reader) -> Summary:
    lines = 0
    first = b""
    tail = b""
    total = 0
    for chunk in reader.rest():
        if not first and total < _PREVIEW:
            first = (first + chunk)[:_PREVIEW * 4]
        lines += chunk.count(b"\n")
        total += len(chunk)
        tail = (tail + chunk)[-_PREVIEW * 4:]
    if total and not tail.endswith(b"\n"):
        lines += 1  # a last line without its newline (being written) still counts
    facts = [("lines", f"{lines:,}")]
    if total:
        facts.append(("first line", _line(first.split(b"\n", 1)[0])))
        facts.append(("last line", _line(tail.rstrip(b"\n").rsplit(b"\n", 1)[-1])))
    return Summary(JSONL, facts)


def _line(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace")
    return text if len(text) <= _PREVIEW else text[:_PREVIEW] + "…"
