"""``backup --metrics-file``: the outcome of one backup run for node_exporter.

The file describes the *last run* of one backup job (labels ``repo``,
``host``, ``paths``), success or failure, so an alert needs no log parsing::

    deltavault_backup_exit_status                     0 ok, else the exit code
    deltavault_backup_last_run_timestamp_seconds      when the run ended
    deltavault_backup_last_success_timestamp_seconds  when a run last ended with 0
    deltavault_backup_duration_seconds                wall time of the run
    deltavault_backup_read_bytes / _added_bytes       of the snapshot taken
    deltavault_backup_files{state=new|changed|unmodified}
    deltavault_backup_snapshot_type{type=full|diff|incr}   1 for the type taken

A failed run keeps the last success time of the file it replaces (read back
with a strict parser that treats the old file as untrusted), so a staleness
alert on ``time() - deltavault_backup_last_success_timestamp_seconds`` keeps
counting through failures; the snapshot figures appear only when a snapshot
was saved (exit 0, or 3 when some files could not be read).
"""

from __future__ import annotations

import math
import re
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deltavault.errors import DeltavaultError, UserError
from deltavault.ops.prometheus import Gauge, render, write_textfile

_SUCCESS = "deltavault_backup_last_success_timestamp_seconds"
_SUCCESS_LINE = re.compile(_SUCCESS + r'(?:\{[^{}\n]*\})? ([0-9]+(?:\.[0-9]+)?(?:e\+?[0-9]+)?)')
_MAX_OLD_FILE = 1 << 20


def previous_success(path: Path) -> float | None:
    """The last success time recorded in an existing metrics file, if any.

    The file may be anything (truncated, edited, another program's): only a
    line of exactly our metric with a finite, non-negative number counts.
    """
    try:
        with open(path, "rb") as fh:
            data = fh.read(_MAX_OLD_FILE)
    except OSError:
        return None
    for line in data.decode("utf-8", "replace").splitlines():
        m = _SUCCESS_LINE.fullmatch(line)
        if m:
            value = float(m.group(1))
            return value if math.isfinite(value) else None
    return None


@dataclass
class BackupRun:
    """What one run did; filled in by the backup command as it goes."""

    labels: dict[str, str]
    started: float = field(default_factory=time.monotonic)
    snapshot_types: list[str] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=dict)

    def saved(self, snapshot_type: str, summary: Mapping[str, Any]) -> None:
        """Account for one snapshot saved (a run with several sources saves several)."""
        self.snapshot_types.append(snapshot_type)
        for key in ("bytes_read", "bytes_added", "files_new", "files_changed",
                    "files_unmodified"):
            value = summary.get(key, 0)
            self.totals[key] = self.totals.get(key, 0) + (value if isinstance(value, int) else 0)

    def gauges(self, exit_code: int, now: float, last_success: float | None) -> list[Gauge]:
        """The families of the file, for a run that ended with ``exit_code`` at ``now``."""
        labels = self.labels
        out = [
            Gauge("deltavault_backup_exit_status",
                  "Exit code of the last backup run (0 success, 3 some files unreadable, "
                  "13 repository damaged, 14 storage failed, ...).").set(exit_code, labels),
            Gauge("deltavault_backup_last_run_timestamp_seconds",
                  "When the last backup run ended, Unix seconds.").set(now, labels),
            Gauge("deltavault_backup_duration_seconds",
                  "Wall time of the last backup run.").set(
                      round(time.monotonic() - self.started, 3), labels),
        ]
        success = now if exit_code == 0 else last_success
        if success is not None:
            out.append(Gauge(_SUCCESS, "When a backup run last ended with exit code 0, "
                                       "Unix seconds.").set(success, labels))
        if self.snapshot_types:
            t = self.totals
            files = Gauge("deltavault_backup_files", "Files in the snapshot, by state.")
            for state in ("new", "changed", "unmodified"):
                files.set(t.get(f"files_{state}", 0), {**labels, "state": state})
            kind = Gauge("deltavault_backup_snapshot_type",
                         "Type of the snapshot taken: 1 for its type, 0 for the others.")
            for typ in ("full", "diff", "incr"):
                kind.set(1 if self.snapshot_types[-1] == typ else 0, {**labels, "type": typ})
            out += [
                Gauge("deltavault_backup_read_bytes",
                      "Bytes read from the sources.").set(t.get("bytes_read", 0), labels),
                Gauge("deltavault_backup_added_bytes",
                      "Bytes added to the repository (after dedup, delta and compression)."
                      ).set(t.get("bytes_added", 0), labels),
                files, kind,
            ]
        return out


def check_target(path: Path) -> None:
    """Refuse before backing up if the metrics file could never be written."""
    if not path.parent.is_dir():
        raise UserError(f"--metrics-file: directory {path.parent} does not exist")
    if path.is_dir():
        raise UserError(f"--metrics-file: {path} is a directory")


@contextmanager
def recording(path: Path | None, labels: dict[str, str]) -> Iterator[BackupRun]:
    """Run a backup inside; the file is written on the way out, whatever happened.

    The exit code written is the one the CLI will exit with: the error's
    family code, 130 for an interrupt, 1 for anything unexpected.

    Raises:
        UserError: the backup itself succeeded but the file could not be written
            (a job whose monitoring is blind must not look healthy).
    """
    run = BackupRun(labels)
    if path is None:
        yield run
        return
    check_target(path)
    code = 0
    try:
        yield run
    except DeltavaultError as exc:
        code = exc.exit_code
        raise
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
        raise
    except KeyboardInterrupt:
        code = 130
        raise
    except BaseException:
        code = 1
        raise
    finally:
        text = render(run.gauges(code, round(time.time(), 3), previous_success(path)))
        try:
            write_textfile(path, text)
        except OSError as exc:
            if code == 0:
                raise UserError(f"the backup succeeded but --metrics-file {path} could not "
                                f"be written: {exc.strerror}") from exc
            warnings.warn(f"--metrics-file {path} could not be written: {exc.strerror}",
                          stacklevel=2)
