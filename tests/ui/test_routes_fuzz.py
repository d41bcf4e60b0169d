"""No request makes the console answer 5xx: schemathesis over its OpenAPI routes, and
hypothesis over the routes with real snapshot ids and hostile paths, times and queries.

A 4xx is the right answer to a bad request; a 5xx would mean a request
could break a page (or worse, reach a code path nobody checked).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from starlette.testclient import TestClient

from deltavault import api
from deltavault.ui.app import create_app
from deltavault.ui.engine import RepositoryView
from tests.support.cli import API_PASSWORD
from tests.ui.scenario import Scenario, build


class _LazyView:
    """Builds this module's repository on first use, not when pytest collects the module.

    The schema below is read from the app at import time (schemathesis's lazy
    fixture loader does not work with this pytest), and the OpenAPI document
    does not depend on the repository.
    """

    def __init__(self) -> None:
        self.built: dict[str, Any] = {}

    def scenario(self) -> Scenario:
        if "scenario" not in self.built:
            root = Path(tempfile.mkdtemp(prefix="dv-ui-fuzz-"))
            scenario = build(root)
            self.built.update(scenario=scenario, view=RepositoryView(
                api.open(scenario.repo, API_PASSWORD)))
        return self.built["scenario"]  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        self.scenario()
        return getattr(self.built["view"], name)


_view = _LazyView()
app = create_app(cast(RepositoryView, _view), allow_actions=True, loopback=False)
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.fixture(scope="module")
def fuzz_app() -> Iterator[tuple[Any, Scenario]]:
    yield app, _view.scenario()
    shutil.rmtree(_view.scenario().root, ignore_errors=True)
    _view.built.clear()


@schema.parametrize()
@settings(max_examples=25, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_no_route_answers_5xx(case: schemathesis.Case, fuzz_app: tuple[Any, Scenario]) -> None:
    case.call_and_validate(headers={"X-Deltavault-Csrf": app.csrf}, checks=[not_a_server_error])


hostile_text = st.one_of(st.text(max_size=80), st.sampled_from(
    ["", "/", "..", "../../etc/passwd", "state/../state", "state//db", "\x00", "%00", "state/",
     "state/db/positions.sqlite/x", "state/db", "a" * 5000, "2026-13-45T99:99:99Z", "latest",
     "symbol=", "=", "order_id=O-0003", "{", "\\", "state/logs/trades.jsonl"]))
ROUTES = ["/snapshot/{id}?path={x}", "/snapshot/{id}/file?path={x}",
          "/snapshot/{id}/download?path={x}", "/snapshot/{x}", "/diff?a={id}&b={x}",
          "/diff?a={x}&b={id}", "/ledger?type={x}", "/ledger?since={x}", "/ledger?until={x}",
          "/ledger?before={n}", "/ledger/journal?q={x}", "/ledger/journal?index={n}",
          "/ledger/journal?q=symbol%3DESZ6&cursor={n}", "/ledger/journal/{n}/proof",
          "/timeline?page={n}", "/snapshot/{id}?page={n}", "/jobs/{x}"]


@given(route=st.sampled_from(ROUTES), x=hostile_text, pick=st.integers(0, 2),
       n=st.one_of(st.integers(-5, 60), st.integers(-(2**70), 2**70)))
@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
def test_real_ids_with_hostile_parameters(fuzz_app: tuple[Any, Scenario], route: str, x: str,
                                          pick: int, n: int) -> None:
    app, scenario = fuzz_app
    from urllib.parse import quote

    url = route.format(id=scenario.snapshots[pick], x=quote(x, safe=""), n=n)
    with TestClient(app, raise_server_exceptions=False) as client:
        res = client.get(url)
    assert res.status_code < 500, f"{url} → {res.status_code}: {res.text[:500]}"
