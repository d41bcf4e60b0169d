"""Schemathesis fuzzing of the server's OpenAPI schema: no input yields a 5xx."""

from __future__ import annotations

import tempfile

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from deltavault.server import Right, TokenTable, create_app
from deltavault.store.local import LocalStore

TOKEN = "fuzz-admin-token-0123456789"
_tokens = TokenTable()
_tokens.add(TOKEN, Right.APPEND)
_root = tempfile.TemporaryDirectory(prefix="dv-fuzz-")
app = create_app(LocalStore(_root.name, create=True), _tokens, append_only=True)
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@schema.parametrize()
@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_no_server_errors(case: schemathesis.Case) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"},
                           checks=[not_a_server_error])


@schema.parametrize()
@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_no_server_errors_without_token(case: schemathesis.Case) -> None:
    case.call_and_validate(checks=[not_a_server_error])
