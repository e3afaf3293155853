"""The sandbox's FastAPI application: routers, the dialect that renders answers, and faults.

``create_app`` wires the parts: the store (``store.py``), the state the routes share
(``state.py``), the routers (``routes/oauth.py``, ``routes/coins.py``, ``routes/admin.py``), the
dialect (``dialects/``) every answer and refusal goes through, and the fault middleware with the
token bucket (``middleware.py``, ``faults.py``, ``limiter.py``) outermost. Refusals raised
anywhere are rendered by exception handlers here, in the active dialect (the admin routes
always answer in the ``project`` dialect: they are our own API).

Never imports pandas or requests: the app is loaded by the toolkit's light paths.
"""

from __future__ import annotations

import sqlite3
from functools import partial
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import Receive, Scope, Send

from toolkit.sandbox.dialects import (
    Dialect,
    OAuthRefusal,
    ProjectDialect,
    Refusal,
    dialect_named,
    envelope_response,
)
from toolkit.sandbox.faults import Faults, FaultState
from toolkit.sandbox.limiter import RateLimit, TokenBucket
from toolkit.sandbox.middleware import FaultMiddleware
from toolkit.sandbox.openapi import DESCRIPTION
from toolkit.sandbox.parsing import MAX_BODY_BYTES
from toolkit.sandbox.routes import admin, coins, oauth
from toolkit.sandbox.state import DEFAULT_CREDENTIALS, SandboxConfig, SandboxState
from toolkit.sandbox.store import Store

__all__ = [
    "DEFAULT_CREDENTIALS",
    "MAX_BODY_BYTES",
    "SandboxApp",
    "SandboxConfig",
    "SandboxState",
    "create_app",
]

_ADMIN_DIALECT = ProjectDialect()


def _dialect_for(request: Request) -> Dialect:
    path = request.url.path
    if path.startswith("/_sandbox") or path == "/":
        return _ADMIN_DIALECT
    return request.app.sandbox.dialect


class SandboxApp(FastAPI):
    """FastAPI with the fault middleware outermost, where ``send`` is the server's own."""

    sandbox: SandboxState

    def __init__(self, state: SandboxState, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sandbox = state
        self._with_faults = FaultMiddleware(partial(FastAPI.__call__, self), state)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._with_faults(scope, receive, send)


def _route_without_trailing_slash(request: Request) -> bool:
    """True when the path, less its trailing slash, is one of the app's routes."""
    path = request.url.path
    if len(path) < 2 or not path.endswith("/"):
        return False
    scope = dict(request.scope, path=path.rstrip("/"))
    return any(route.matches(scope)[0] != Match.NONE for route in request.app.router.routes)


def _install_handlers(app: SandboxApp) -> None:
    """Every refusal through the dialect: never FastAPI's ``detail`` bodies, never a traceback."""

    @app.exception_handler(Refusal)
    async def _refusal(request: Request, exc: Refusal) -> Response:
        return _dialect_for(request).refuse(exc, request.url.path)

    @app.exception_handler(OAuthRefusal)
    async def _oauth(request: Request, exc: OAuthRefusal) -> Response:
        return request.app.sandbox.dialect.oauth_refuse(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        problems = [
            f"{'.'.join(str(p) for p in err.get('loc', ()) if p != 'body') or 'body'}: "
            f"{err.get('msg', 'invalid')}"
            for err in exc.errors()
        ]
        return _dialect_for(request).refuse(Refusal("invalid", problems=problems), request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        where = f"{request.method} {request.url.path}"
        if exc.status_code == 404:
            message = f"No such route: {where}"
            if _route_without_trailing_slash(request):
                message += f" (no trailing slash: {request.url.path.rstrip('/')})"
            refusal = Refusal("route_not_found", message, status=404)
        elif exc.status_code == 405:
            allowed = (exc.headers or {}).get("Allow", "")
            refusal = Refusal(
                "method_not_allowed",
                f"Method not allowed: {where} (allowed: {allowed or 'none'})",
                status=405,
                headers=dict(exc.headers or {}),
                allow=allowed,
            )
        else:
            refusal = Refusal(
                "http",
                f"{where}: {exc.detail}",
                status=exc.status_code,
                headers=dict(exc.headers) if exc.headers else None,
            )
        return _dialect_for(request).refuse(refusal, request.url.path)

    @app.exception_handler(sqlite3.OperationalError)
    async def _busy(request: Request, exc: sqlite3.OperationalError) -> Response:
        # Another sandbox process held the database longer than the busy timeout.
        refusal = Refusal(
            "busy",
            f"The sandbox database is busy ({exc}); retry shortly",
            status=503,
            headers={"Retry-After": "1"},
        )
        return _dialect_for(request).refuse(refusal, request.url.path)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> Response:
        refusal = Refusal("bug", f"Sandbox bug: {type(exc).__name__} (please report it)")
        return _dialect_for(request).refuse(refusal, request.url.path)


def create_app(
    db_path: str | Path,
    *,
    config: SandboxConfig | None = None,
    faults: Faults | None = None,
    fault_seed: int | None = None,
    dialect: str | None = None,
    rate_limit: RateLimit | None = None,
    admin_anywhere: bool = False,
) -> SandboxApp:
    """Build the sandbox app on the SQLite file ``db_path`` (created if new).

    ``dialect`` is a name of ``dialects.DIALECTS`` (None = ``DEFAULT_DIALECT``); a bad name
    raises ``ValueError`` before the database is opened. ``app.sandbox`` holds the store, the
    settings, the dialect, the live faults, the token bucket and the counters; call
    ``app.sandbox.store.close()`` when done.
    """
    chosen = dialect_named(dialect)
    state = SandboxState(
        store=Store(db_path),
        config=config or SandboxConfig(),
        faults=FaultState(faults, seed=fault_seed),
        dialect=chosen,
        bucket=TokenBucket(rate_limit),
        admin_anywhere=admin_anywhere,
    )
    app = SandboxApp(
        state,
        title="EnKash coins sandbox",
        version="1.0",
        description=DESCRIPTION,
        redirect_slashes=False,
    )
    _install_handlers(app)
    app.include_router(oauth.router)
    app.include_router(coins.router)
    app.include_router(admin.router)

    @app.get("/", include_in_schema=False)
    async def root() -> Response:
        return envelope_response(
            {
                "name": "EnKash coins sandbox",
                "docs": "/docs",
                "openapi": "/openapi.json",
                "dialect": state.dialect.name,
            }
        )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearerAuth": {"type": "http", "scheme": "bearer"},
                "basicAuth": {"type": "http", "scheme": "basic"},
            }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
