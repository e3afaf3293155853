"""Schemathesis fuzzes every documented operation: no input produces a 5xx.

Runs in process over ASGI (``from_asgi``) against its own app on a temporary database, with a
valid bearer token (or valid Basic client auth for ``/oauth/token``) so that the generated
bodies reach the validation and the business rules rather than stopping at 401. The project
dialect gets the full run; the enkash and spring dialects (whose refusals are rendered by other
code) a shorter one each.
"""

from __future__ import annotations

import atexit
import base64
import shutil
import tempfile
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from toolkit.sandbox import create_app

_DB_DIR = Path(tempfile.mkdtemp(prefix="coins-fuzz-"))
atexit.register(shutil.rmtree, _DB_DIR, True)


def _app(dialect: str) -> tuple[Any, str]:
    app = create_app(_DB_DIR / f"fuzz-{dialect}.sqlite3", dialect=dialect)
    atexit.register(app.sandbox.store.close)  # runs first (LIFO): close, then remove
    token, _ = app.sandbox.store.issue_tokens(
        username="analyst@example.com", client_id="SANDBOX", ttl_s=3600
    )
    # Something for the fuzzer to find: GET/PATCH of a known id, allocation of a known pair.
    app.sandbox.store.create_config(
        company_id="CEKEKCARDS",
        event="MEAL_CARD_PAYMENT",
        configuration="DEFAULT",
        amount=6,
        id_style=app.sandbox.dialect.id_style,
    )
    return app, token


app, ACCESS_TOKEN = _app("project")
BASIC = "Basic " + base64.b64encode(b"SANDBOX:sandbox-secret").decode()

schema = schemathesis.openapi.from_asgi("/openapi.json", app)
_enkash_app, _ENKASH_TOKEN = _app("enkash")
enkash_schema = schemathesis.openapi.from_asgi("/openapi.json", _enkash_app)
_spring_app, _SPRING_TOKEN = _app("spring")
spring_schema = schemathesis.openapi.from_asgi("/openapi.json", _spring_app)


@schema.parametrize()
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_generated_request_gets_a_server_error(case: schemathesis.Case) -> None:
    auth = BASIC if case.path == "/oauth/token" else f"Bearer {ACCESS_TOKEN}"
    case.call_and_validate(headers={"Authorization": auth}, checks=[not_a_server_error])


@enkash_schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_enkash_dialect_never_answers_a_server_error(case: schemathesis.Case) -> None:
    auth = BASIC if case.path == "/oauth/token" else f"Bearer {_ENKASH_TOKEN}"
    case.call_and_validate(headers={"Authorization": auth}, checks=[not_a_server_error])


@spring_schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_spring_dialect_never_answers_a_server_error(case: schemathesis.Case) -> None:
    auth = BASIC if case.path == "/oauth/token" else f"Bearer {_SPRING_TOKEN}"
    case.call_and_validate(headers={"Authorization": auth}, checks=[not_a_server_error])


def test_the_schema_lists_the_six_calls() -> None:
    operations = {
        (op.method.upper(), op.path)
        for result in schema.get_all_operations()
        for op in [result.ok()]
    }
    assert operations == {
        ("POST", "/oauth/token"),
        ("POST", "/api/v0/enkash-coins/create-coins-config"),
        ("GET", "/api/v0/enkash-coins/{coinConfigId}"),
        ("PATCH", "/api/v0/enkash-coins/{coinConfigId}"),
        ("POST", "/api/v0/enkash-coins/allocate-coin"),
        ("GET", "/api/v0/coins/balance"),
    }
