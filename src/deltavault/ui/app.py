"""The console's routes: server-rendered pages, a file download, job polling.

Pages are Jinja2 templates shipped in the package, charts are SVG built on
the server (:mod:`deltavault.ui.svg`), and the only script is
``static/console.js`` (the Verify and Check buttons poll their job). Every
handler is a plain function (Starlette runs it on a worker thread), gets
plain values from the page modules and renders them. Errors are pages with
the status their class implies: a bad request or an unknown snapshot is a
4xx; a repository that fails verification is a 5xx page that says so.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import FastAPI, Query, Request
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, PackageLoader, select_autoescape
from pydantic import BaseModel, Field

import deltavault
from deltavault.errors import (
    BackendError,
    DeltavaultError,
    RepositoryLocked,
    SnapshotNotFound,
    UserError,
)
from deltavault.ui import browse, compare, ledger_page, repository_page, timeline
from deltavault.ui.auth import Guard, new_csrf
from deltavault.ui.engine import RepositoryView
from deltavault.ui.jobs import Job, Jobs
from deltavault.ui.svg import human_bytes

Big = Annotated[int, Query(ge=0, le=1 << 62)]
PageNo = Annotated[int, Query(alias="page", ge=1, le=1 << 30)]
Text = Annotated[str, Query(max_length=4096)]


class TagChange(BaseModel):
    """Body of ``POST /snapshot/{ref}/tag``."""

    add: list[Annotated[str, Field(max_length=100)]] = Field(default_factory=list, max_length=20)
    remove: list[Annotated[str, Field(max_length=100)]] = Field(default_factory=list,
                                                                max_length=20)


@dataclass
class Console:
    """What every request shares: the repository view, jobs, and the mode."""

    view: RepositoryView
    allow_actions: bool = False
    csrf: str = field(default_factory=new_csrf)
    jobs: Jobs = field(default_factory=Jobs)


def _status(exc: DeltavaultError) -> int:
    if isinstance(exc, SnapshotNotFound):
        return 404
    if isinstance(exc, RepositoryLocked):
        return 409
    if isinstance(exc, UserError):
        return 400
    if isinstance(exc, BackendError):
        return 502
    return 500  # the repository failed verification: say so, do not show a half page


def create_app(view: RepositoryView, *, allow_actions: bool = False, token: str | None = None,
               loopback: bool = True) -> Guard:
    """The ASGI application of the console (wrapped in its :class:`Guard`)."""
    console = Console(view, allow_actions)
    env = Environment(loader=PackageLoader("deltavault.ui", "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True))
    env.filters["bytes"] = human_bytes
    env.globals.update(console=console, version=deltavault.__version__)
    templates = Jinja2Templates(env=env)
    app = FastAPI(title="deltavault console", version=deltavault.__version__, docs_url=None,
                  redoc_url=None)
    app.state.console = console
    app.mount("/static", StaticFiles(packages=[("deltavault.ui", "static")]), name="static")

    def page(request: Request, name: str, ctx: dict[str, Any], status: int = 200) -> Response:
        return templates.TemplateResponse(request, name, {"nav": name.split(".")[0], **ctx},
                                          status_code=status)

    @app.exception_handler(DeltavaultError)
    def on_error(request: Request, exc: DeltavaultError) -> Response:
        status = _status(exc)
        if request.url.path.startswith(("/jobs/", "/ledger/verify", "/repository/check")) or \
                request.method != "GET":
            return JSONResponse({"error": exc.one_line()}, status_code=status)
        return page(request, "error.html", {"status": status, "message": str(exc),
                                            "hint": exc.hint or ""}, status)

    def actions_allowed() -> None:
        if not console.allow_actions:
            raise _Refused()

    @app.exception_handler(_Refused)
    def on_refused(request: Request, exc: _Refused) -> Response:
        return JSONResponse({"error": "the console is read-only: start it with "
                                      "--allow-actions"}, status_code=403)

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/timeline", status_code=303)

    @app.get("/timeline", response_class=HTMLResponse)
    def timeline_page(request: Request, page_no: PageNo = 1) -> Response:
        return page(request, "timeline.html", timeline.timeline_context(view, page_no))

    @app.get("/snapshot/{ref}", response_class=HTMLResponse)
    def snapshot_page(request: Request, ref: str, path: Text = "",
                      page_no: PageNo = 1) -> Response:
        return page(request, "snapshot.html", browse.snapshot_context(view, ref, path, page_no))

    @app.get("/snapshot/{ref}/file", response_class=HTMLResponse)
    def file_page(request: Request, ref: str, path: Text) -> Response:
        return page(request, "file.html", browse.file_context(view, ref, path))

    @app.get("/snapshot/{ref}/download")
    def download(ref: str, path: Text) -> Response:
        name, size, chunks = browse.download(view, ref, path)
        first = next(chunks, b"")  # a damaged first blob is an error page, not a cut stream

        def body() -> Iterator[bytes]:
            yield first
            try:
                yield from chunks
            except DeltavaultError as exc:
                # A later blob failed its check: end the stream short of its
                # Content-Length, which every client treats as a failed download.
                sys.stderr.write(f"deltavault: error: download of {path[:200]!r} from "
                                 f"{ref[:12]} stopped: {exc.one_line()}\n")
                raise DownloadAborted from exc

        return StreamingResponse(body(), media_type="application/octet-stream", headers={
            "content-length": str(size),
            "content-disposition": f"attachment; filename*=UTF-8''{quote(name, safe='')}"})

    @app.post("/snapshot/{ref}/tag")
    def tag(ref: str, change: TagChange) -> JSONResponse:
        actions_allowed()
        entry = view.snapshot(ref)
        new = view.tag(entry.snapshot, change.add, change.remove)
        return JSONResponse({"id": new.id, "tags": new.tags})

    @app.get("/diff", response_class=HTMLResponse)
    def diff_page(request: Request, a: Text = "", b: Text = "") -> Response:
        return page(request, "diff.html", compare.diff_context(view, a, b))

    @app.get("/ledger", response_class=HTMLResponse)
    def ledger(request: Request, etype: Annotated[str, Query(alias="type", max_length=64)] = "",
               since: Annotated[str, Query(max_length=64)] = "",
               until: Annotated[str, Query(max_length=64)] = "",
               before: Big | None = None) -> Response:
        return page(request, "ledger.html",
                    ledger_page.ledger_context(view, etype, since, until, before))

    @app.post("/ledger/verify")
    def verify() -> JSONResponse:
        def work(job: Job) -> dict[str, Any]:
            return view.ledger.verify(job.progress).to_dict()

        return JSONResponse(console.jobs.start("verify", work).to_dict(), status_code=202)

    @app.get("/ledger/journal", response_class=HTMLResponse)
    def journal(request: Request, q: Annotated[str, Query(max_length=400)] = "",
                index: Big | None = None, cursor: Big | None = None) -> Response:
        return page(request, "journal.html", ledger_page.journal_context(view, q, index, cursor))

    @app.get("/ledger/journal/{index}/proof")
    def proof(index: int) -> Response:
        if not 0 <= index < 1 << 62:
            raise UserError("no such entry")
        text = view.ledger.prove(index)
        return PlainTextResponse(text, headers={
            "content-disposition": f'attachment; filename="entry-{index}.tlog-proof"'})

    @app.get("/repository", response_class=HTMLResponse)
    def repository(request: Request) -> Response:
        return page(request, "repository.html", repository_page.repository_context(view))

    @app.post("/repository/check")
    def check() -> JSONResponse:
        actions_allowed()

        def work(job: Job) -> dict[str, Any]:
            return view.check(job.progress).to_dict()

        return JSONResponse(console.jobs.start("check", work).to_dict(), status_code=202)

    @app.get("/jobs/{job_id}")
    def job(job_id: str) -> JSONResponse:
        found = console.jobs.get(job_id)
        if found is None:
            return JSONResponse({"error": "no such job"}, status_code=404)
        return JSONResponse(found.to_dict())

    return Guard(_EndAbortedDownloads(app), token=token, loopback=loopback, csrf=console.csrf)


class _Refused(Exception):
    """An action on a read-only console."""


class DownloadAborted(Exception):
    """A download stopped after its headers were sent (a blob failed verification)."""


class _EndAbortedDownloads:
    """Let an aborted download end its response without a server traceback.

    The error was already reported in one line; returning leaves the response
    incomplete, so the server closes the connection.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await self.app(scope, receive, send)
        except* DownloadAborted:
            pass
