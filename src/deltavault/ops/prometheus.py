"""Prometheus text exposition format 0.0.4: render gauges, write them atomically.

Written by hand (a few lines) rather than through ``prometheus_client``, so
that neither ``backup --metrics-file`` nor ``serve`` needs another runtime
dependency; the tests parse every output with ``prometheus_client``'s own
parser. node_exporter's textfile collector reads ``*.prom`` files whenever it
is scraped, so a file must never be seen half-written: :func:`write_textfile`
writes a hidden temporary file beside it (not ``*.prom``, so never collected)
and renames it over the old one.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    """A sample value: integers without a fraction, Go's spelling of NaN and infinities."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 2**63:
        return str(int(value))
    return repr(float(value))


@dataclass
class Gauge:
    """One metric family of type gauge and its samples (label set → value)."""

    name: str
    help: str
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"invalid metric name {self.name!r}")

    def set(self, value: float, labels: Mapping[str, str] | None = None) -> Gauge:
        """Add a sample; returns self so families read as one expression."""
        labels = dict(labels or {})
        for key in labels:
            if not _LABEL.fullmatch(key) or key.startswith("__"):
                raise ValueError(f"invalid label name {key!r}")
        self.samples.append((labels, float(value)))
        return self

    def render(self) -> str:
        lines = [f"# HELP {self.name} {_escape_help(self.help)}", f"# TYPE {self.name} gauge"]
        for labels, value in self.samples:
            text = ",".join(f'{k}="{_escape_label(v)}"' for k, v in sorted(labels.items()))
            lines.append(f"{self.name}{{{text}}} {format_value(value)}" if text
                         else f"{self.name} {format_value(value)}")
        return "\n".join(lines) + "\n"


def render(families: Iterable[Gauge]) -> str:
    """The exposition text of several families (each name once, in the given order)."""
    return "".join(f.render() for f in families)


def write_textfile(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically (temp file, fsync, rename, fsync dir).

    Raises:
        OSError: the directory is missing or not writable.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(text.encode("utf-8"))
            fh.flush()
            os.fchmod(fh.fileno(), 0o644)  # node_exporter often runs as another user
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # some file systems cannot fsync a directory
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
