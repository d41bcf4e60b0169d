"""Long operations (ledger verify, check) run on a thread; pages poll their progress.

A verification of a log of millions of entries takes minutes: the request
that starts it returns at once with a job id, and the page polls
``/jobs/<id>`` for (done, total) and finally the result. One job per kind
runs at a time (a second click joins the running one); finished jobs are
kept a little while for the page that asked.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from deltavault.errors import DeltavaultError

_KEEP = 32


@dataclass
class Job:
    """One run: its progress while running, its result or error when finished."""

    id: str
    kind: str
    state: str = "running"  # running, done, failed
    done: int = 0
    total: int = 0
    result: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    started: float = field(default_factory=time.time)

    def progress(self, done: int, total: int) -> None:
        self.done, self.total = done, total

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "state": self.state, "done": self.done,
                "total": self.total, "result": self.result, "error": self.error}


class Jobs:
    """Jobs by id, at most one running per kind."""

    def __init__(self) -> None:
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()

    def start(self, kind: str, work: Callable[[Job], dict[str, Any]]) -> Job:
        """Run ``work(job)`` on a thread (or return the job of this kind already running)."""
        with self._lock:
            for job in self._jobs.values():
                if job.kind == kind and job.state == "running":
                    return job
            job = Job(secrets.token_hex(8), kind)
            self._jobs[job.id] = job
            while len(self._jobs) > _KEEP:
                self._jobs.popitem(last=False)

        def run() -> None:
            try:
                job.result = work(job)
                job.state = "done"
            except DeltavaultError as exc:
                job.error, job.state = exc.one_line(), "failed"
            except Exception as exc:  # a console must report, not die silently
                job.error, job.state = f"{type(exc).__name__}: {exc}", "failed"

        threading.Thread(target=run, name=f"deltavault-ui-{kind}", daemon=True).start()
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)
