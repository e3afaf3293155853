"""The sandbox's FastAPI application: the six calls of the contract, admin routes and faults.

Bodies are parsed by hand (not by pydantic) so that every refusal is the contract's envelope
with a message naming the field, the value and the reason, and so that the API stays strict:
``amount`` must be a JSON integer, ``configuration`` exactly DEFAULT or CUSTOM. The OpenAPI
schema still describes the real bodies (for the docs page and for the fuzzer).

Never imports pandas or requests: the app is loaded by the toolkit's light paths.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import sqlite3
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.routing import Match

from toolkit.models import (
    COMPANY_ID_PATTERN,
    EVENT_PATTERN,
    MAX_AMOUNT,
    REQUEST_ID_PATTERN,
    USER_ID_PATTERN,
    ResponseCode,
    check_amount,
    check_company_id,
    check_event,
    check_request_id,
    check_user_id,
)
from toolkit.sandbox.demo import seed_demo
from toolkit.sandbox.faults import FaultMiddleware, Faults, FaultState
from toolkit.sandbox.store import (
    LOCKOUT_AFTER,
    ConfigConflict,
    ConfigNotFound,
    DuplicateRequest,
    LoginResult,
    NoConfiguration,
    Store,
)

__all__ = ["SandboxConfig", "SandboxState", "create_app"]

DEFAULT_CREDENTIALS: dict[str, str] = {
    # The same values as toolkit.settings.SANDBOX_CREDENTIALS (not imported: it pulls dotenv).
    "client_id": "SANDBOX",
    "client_secret": "sandbox-secret",
    "username": "analyst@example.com",
    "password": "sandbox-password",
}
_REALM = 'realm="enkash-sandbox"'
_CONFIG_FIELDS = ("configuration", "companyId", "event", "amount")
_ALLOCATE_FIELDS = ("companyId", "event", "requestId", "userId")
_ACTION_PATHS = {"create-coins-config": "POST", "allocate-coin": "POST"}
MAX_BODY_BYTES = 1_000_000


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    """Per-process settings: credentials and token lifetime. Secrets stay out of ``repr``."""

    client_id: str = DEFAULT_CREDENTIALS["client_id"]
    client_secret: str = field(default=DEFAULT_CREDENTIALS["client_secret"], repr=False)
    username: str = DEFAULT_CREDENTIALS["username"]
    password: str = field(default=DEFAULT_CREDENTIALS["password"], repr=False)
    token_ttl: int = 300


@dataclass(slots=True)
class SandboxState:
    """What the routes share: the store (all durable state) and this process's faults."""

    store: Store
    config: SandboxConfig
    faults: FaultState

    def reset(self) -> None:
        self.store.reset()
        self.faults.clear()


# ---- answers ---------------------------------------------------------------------------------


class ApiError(Exception):
    """An API refusal, answered as the envelope with a non-zero response_code."""

    def __init__(
        self,
        status: int,
        code: ResponseCode,
        message: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


class OAuthError(Exception):
    """A token-endpoint refusal, answered as RFC 6749 §5.2 JSON."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description


def envelope(
    payload: Any,
    *,
    status: int = 200,
    code: ResponseCode = ResponseCode.SUCCESS,
    message: str = "Success",
    headers: dict[str, str] | None = None,
) -> Response:
    body = {"payload": payload, "response_code": int(code), "response_message": message}
    return Response(
        json.dumps(body, ensure_ascii=False).encode(),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _oauth_error(exc: OAuthError) -> Response:
    headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
    if exc.status == 401:
        headers["WWW-Authenticate"] = f"Basic {_REALM}"
    body = {"error": exc.error, "error_description": exc.description}
    return Response(
        json.dumps(body).encode(),
        status_code=exc.status,
        media_type="application/json",
        headers=headers,
    )


def _show(value: Any, limit: int = 40) -> str:
    """A value as JSON text for a message, shortened so a huge input cannot flood it."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, str):
        return "text"
    if isinstance(value, int):
        return "a number"
    if isinstance(value, float):
        return "a decimal number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "null"


def _invalid(problems: list[str]) -> ApiError:
    return ApiError(400, ResponseCode.INVALID_REQUEST, "Invalid request: " + "; ".join(problems))


# ---- request parsing -------------------------------------------------------------------------


async def _read_body(request: Request) -> bytes:
    """The request body, refused (413) past MAX_BODY_BYTES without reading it all."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large()
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise _too_large()
            chunks.append(chunk)
    except ClientDisconnect:
        # Nobody is left to read an answer; this one only keeps the server's log quiet.
        raise ApiError(400, ResponseCode.INVALID_REQUEST, "Client disconnected") from None
    return b"".join(chunks)


def _too_large() -> ApiError:
    return ApiError(
        413,
        ResponseCode.INVALID_REQUEST,
        f"Request body too large: at most {MAX_BODY_BYTES:,} bytes",
    )


class _RepeatedKey(Exception):
    """A JSON object names the same key twice (json.loads would silently keep the last)."""


def _no_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise _RepeatedKey(key)
        seen.add(key)
    return dict(pairs)


async def _json_object(request: Request) -> dict[str, Any]:
    raw = await _read_body(request)
    if not raw.strip():
        raise _invalid(["the body is empty: send a JSON object"])
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        raise _invalid(
            [f"the body must be a JSON object (Content-Type: application/json), not {content_type}"]
        )
    try:
        data = json.loads(raw, object_pairs_hook=_no_repeats)
    except _RepeatedKey as exc:
        raise _invalid([f"field {_show(exc.args[0])} is given more than once"]) from None
    except RecursionError:
        raise _invalid(["the body is not valid JSON: nested too deeply"]) from None
    except ValueError as exc:  # JSONDecodeError, bad UTF-8, over-long integers
        if "integer string conversion" in str(exc):
            raise _invalid(["a number in the body is too long (at most 4,300 digits)"]) from None
        raise _invalid([f"the body is not valid JSON ({exc})"]) from None
    if not isinstance(data, dict):
        raise _invalid([f"the body must be a JSON object, not {_json_type(data)}"])
    return data


def _text_problem(name: str, value: Any, check) -> str | None:
    if not isinstance(value, str):
        return f"{name}={_show(value)} must be text (a JSON string), not {_json_type(value)}"
    if value != value.strip():
        return f"{name}={_show(value)} must not start or end with spaces"
    _, reason = check(value)
    return None if reason is None else f"{name}={_show(value)} {reason}"


def _amount_problem(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return (
            f"amount={_show(value)} must be a JSON integer (a whole number of coins, "
            f"e.g. 6), not {_json_type(value)}"
        )
    _, reason = check_amount(value)
    return None if reason is None else f"amount={_show(value)} {reason}"


def _configuration_problem(value: Any) -> str | None:
    if value in ("DEFAULT", "CUSTOM"):
        return None
    return f"configuration={_show(value)} must be exactly DEFAULT or CUSTOM"


_FIELD_CHECKS = {
    "configuration": _configuration_problem,
    "companyId": partial(_text_problem, "companyId", check=check_company_id),
    "event": partial(_text_problem, "event", check=check_event),
    "amount": _amount_problem,
    "requestId": partial(_text_problem, "requestId", check=check_request_id),
    "userId": partial(_text_problem, "userId", check=check_user_id),
}


def _fields(body: dict[str, Any], names: tuple[str, ...], *, partial: bool) -> dict[str, Any]:
    """The named fields of ``body``, strictly checked; ``ApiError`` listing every problem.

    ``null`` counts as absent (so with ``partial`` it is simply not updated).
    """
    problems: list[str] = []
    out: dict[str, Any] = {}
    for name in names:
        value = body.get(name)
        if value is None:
            if not partial:
                problems.append(f"{name} is missing")
            continue
        problem = _FIELD_CHECKS[name](value)
        if problem is None:
            out[name] = value
        else:
            problems.append(problem)
    for name in body:
        if name not in names:
            problems.append(f"unknown field {_show(name)} (allowed: {', '.join(names)})")
    if problems:
        raise _invalid(problems)
    return out


# ---- authentication --------------------------------------------------------------------------


def _same(given: str, expected: str) -> bool:
    return secrets.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8"))


def _require_token(request: Request, state: SandboxState) -> str:
    """The username behind the request's bearer token, or a 401 saying what is wrong."""
    header = request.headers.get("authorization")
    challenge = {"WWW-Authenticate": f"Bearer {_REALM}"}
    if not header or not header.strip():
        raise ApiError(
            401,
            ResponseCode.UNAUTHORIZED,
            "Missing access token: send 'Authorization: Bearer <access_token>' "
            "(get one from POST /oauth/token)",
            challenge,
        )
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise ApiError(
            401,
            ResponseCode.UNAUTHORIZED,
            "The Authorization header must be 'Bearer <access_token>' "
            "(get a token from POST /oauth/token)",
            challenge,
        )
    info = state.store.token_info(token)
    if info is None:
        raise ApiError(
            401,
            ResponseCode.UNAUTHORIZED,
            "Unknown access token: get a new one from POST /oauth/token",
            challenge,
        )
    if info.kind != "access":
        raise ApiError(
            401,
            ResponseCode.UNAUTHORIZED,
            "That is a refresh token: send the access_token from POST /oauth/token",
            challenge,
        )
    if info.expires_at <= time.time():
        raise ApiError(
            401,
            ResponseCode.UNAUTHORIZED,
            "Access token expired: get a new one from POST /oauth/token "
            "(grant_type=refresh_token or password)",
            {"WWW-Authenticate": f'Bearer {_REALM}, error="invalid_token"'},
        )
    return info.username


def _client_from_basic(request: Request, config: SandboxConfig) -> str:
    header = (request.headers.get("authorization") or "").strip()
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        raise OAuthError(
            401,
            "invalid_client",
            "Client authentication required: send 'Authorization: Basic "
            "base64(clientId:clientSecret)'",
        )
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise OAuthError(
            401, "invalid_client", "The Basic credentials are not base64 of clientId:clientSecret"
        ) from None
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        raise OAuthError(
            401, "invalid_client", "The Basic credentials must be clientId:clientSecret"
        )
    # RFC 6749 §2.3.1 form-encodes both parts first; most clients do not. Accept either.
    for cid, sec in ((client_id, secret), (unquote(client_id), unquote(secret))):
        if _same(cid, config.client_id) and _same(sec, config.client_secret):
            return config.client_id
    raise OAuthError(401, "invalid_client", "Unknown client or wrong client secret")


async def _form(request: Request) -> dict[str, str]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    pairs: list[tuple[str, str]]
    if content_type in ("", "application/x-www-form-urlencoded"):
        try:
            raw = await _read_body(request)
        except ApiError as exc:
            raise OAuthError(400, "invalid_request", exc.message) from None
        try:
            pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=32)
        except ValueError:  # bad UTF-8 or too many fields
            raise OAuthError(
                400, "invalid_request", "The body is not a valid form (UTF-8, at most 32 fields)"
            ) from None
    elif content_type == "multipart/form-data":
        try:
            async with request.form(max_files=0, max_fields=32) as form:
                pairs = [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
        except Exception:  # python-multipart refuses malformed bodies in many ways
            raise OAuthError(400, "invalid_request", "The body is not a valid form") from None
    else:
        raise OAuthError(
            400,
            "invalid_request",
            f"The body must be application/x-www-form-urlencoded, not {content_type}",
        )
    form_data: dict[str, str] = {}
    for key, value in pairs:
        if key in form_data:
            raise OAuthError(400, "invalid_request", f"Parameter {key!r} is given more than once")
        form_data[key] = value
    return form_data


# ---- OpenAPI pieces --------------------------------------------------------------------------


def _string(pattern: str, example: str) -> dict[str, Any]:
    return {"type": "string", "pattern": pattern, "example": example}


_CONFIGURATION_SCHEMA = {"type": "string", "enum": ["DEFAULT", "CUSTOM"]}
_AMOUNT_SCHEMA = {"type": "integer", "minimum": 0, "maximum": MAX_AMOUNT, "example": 6}
_CONFIG_PROPERTIES = {
    "configuration": _CONFIGURATION_SCHEMA,
    "companyId": _string(COMPANY_ID_PATTERN, "CEKEKCARDS"),
    "event": _string(EVENT_PATTERN, "MEAL_CARD_PAYMENT"),
    "amount": _AMOUNT_SCHEMA,
}


def _envelope_schema(payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["payload", "response_code", "response_message"],
        "properties": {
            "payload": payload,
            "response_code": {"type": "integer"},
            "response_message": {"type": "string"},
        },
    }


_ERROR = {
    "description": "Refused: non-zero response_code, response_message says why",
    "content": {"application/json": {"schema": _envelope_schema({"nullable": True})}},
}
_CONFIG_ANSWER = {
    "type": "object",
    "required": ["coinConfigId", "configuration", "companyId", "event", "amount"],
    "properties": {"coinConfigId": {"type": "string", "example": "WCC817428"}} | _CONFIG_PROPERTIES,
}
_UPDATE_ANSWER = {
    "type": "object",
    "required": ["coinConfigId", "configuration", "event", "amount"],
    "properties": {
        "coinConfigId": {"type": "string", "example": "WCC024845"},
        "configuration": _CONFIGURATION_SCHEMA,
        "event": _CONFIG_PROPERTIES["event"],
        "amount": _AMOUNT_SCHEMA,
    },
}


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _ok(payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "description": "Success (response_code 0)",
        "content": {"application/json": {"schema": _envelope_schema(payload)}},
    }


def _api_extra(
    ok: dict[str, Any], *statuses: int, body: dict[str, Any] | None = None, **more: Any
) -> dict[str, Any]:
    extra: dict[str, Any] = {
        "security": [{"bearerAuth": []}],
        "responses": {"200": _ok(ok), "401": _ERROR} | {str(s): _ERROR for s in statuses},
    }
    if body is not None:
        extra["requestBody"] = _json_body(body)
    return extra | more


_CONFIG_ID_PARAM = {
    "name": "coinConfigId",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "example": "WCC817428"},
}

_DESCRIPTION = """\
A local stand-in for EnKash's Point Management (coins) API: the same six calls and answers,
state in one SQLite file, and faults on demand. Default credentials: client `SANDBOX` /
`sandbox-secret`, user `analyst@example.com` / `sandbox-password`.

Faults (`PUT /_sandbox/faults`): latency applies to every answer; errors, 429s, slow answers
after commit and dropped connections apply to `/api/*` only.
"""


# ---- the application -------------------------------------------------------------------------


class SandboxApp(FastAPI):
    """FastAPI with the fault middleware outermost, where ``send`` is the server's own."""

    sandbox: SandboxState

    def __init__(self, state: SandboxState, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sandbox = state
        self._with_faults = FaultMiddleware(partial(FastAPI.__call__, self), state.faults)

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[override]
        await self._with_faults(scope, receive, send)


def create_app(
    db_path: str | Path,
    *,
    config: SandboxConfig | None = None,
    faults: Faults | None = None,
    fault_seed: int | None = None,
) -> SandboxApp:
    """Build the sandbox app on the SQLite file ``db_path`` (created if new).

    ``app.sandbox`` holds the store, the settings and the live faults; call
    ``app.sandbox.store.close()`` when done.
    """
    config = config or SandboxConfig()
    state = SandboxState(
        store=Store(db_path), config=config, faults=FaultState(faults, seed=fault_seed)
    )
    app = SandboxApp(
        state,
        title="EnKash coins sandbox",
        version="1.0",
        description=_DESCRIPTION,
        redirect_slashes=False,
    )
    store = state.store

    # -- error handlers: always the envelope (or OAuth JSON), never FastAPI's `detail` --------

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return envelope(
            None, status=exc.status, code=exc.code, message=exc.message, headers=exc.headers
        )

    @app.exception_handler(OAuthError)
    async def _oauth(request: Request, exc: OAuthError) -> Response:
        return _oauth_error(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        problems = [
            f"{'.'.join(str(p) for p in err.get('loc', ()) if p != 'body') or 'body'}: "
            f"{err.get('msg', 'invalid')}"
            for err in exc.errors()
        ]
        return envelope(
            None,
            status=400,
            code=ResponseCode.INVALID_REQUEST,
            message="Invalid request: " + "; ".join(problems),
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        where = f"{request.method} {request.url.path}"
        if exc.status_code == 404:
            code, message = ResponseCode.NOT_FOUND, f"No such route: {where}"
            if _route_without_trailing_slash(request):
                message += f" (no trailing slash: {request.url.path.rstrip('/')})"
        elif exc.status_code == 405:
            allowed = (exc.headers or {}).get("Allow", "")
            code = ResponseCode.METHOD_NOT_ALLOWED
            message = f"Method not allowed: {where} (allowed: {allowed or 'none'})"
        else:
            code = (
                ResponseCode.INVALID_REQUEST if exc.status_code < 500 else ResponseCode.SERVER_ERROR
            )
            message = f"{where}: {exc.detail}"
        return envelope(
            None, status=exc.status_code, code=code, message=message, headers=exc.headers
        )

    @app.exception_handler(sqlite3.OperationalError)
    async def _busy(request: Request, exc: sqlite3.OperationalError) -> Response:
        # Another sandbox process held the database longer than the busy timeout.
        return envelope(
            None,
            status=503,
            code=ResponseCode.UNAVAILABLE,
            message=f"The sandbox database is busy ({exc}); retry shortly",
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> Response:
        return envelope(
            None,
            status=500,
            code=ResponseCode.SERVER_ERROR,
            message=f"Sandbox bug: {type(exc).__name__} (please report it)",
        )

    # -- 1. token -----------------------------------------------------------------------------

    token_form = {
        "type": "object",
        "required": ["grant_type"],
        "properties": {
            "grant_type": {"type": "string", "enum": ["password", "refresh_token"]},
            "username": {"type": "string", "example": DEFAULT_CREDENTIALS["username"]},
            "password": {"type": "string", "format": "password"},
            "clientId": {"type": "string", "example": DEFAULT_CREDENTIALS["client_id"]},
            "refresh_token": {"type": "string"},
        },
    }
    token_answer = {
        "type": "object",
        "required": ["access_token", "token_type", "refresh_token", "expires_in"],
        "properties": {
            "access_token": {"type": "string"},
            "token_type": {"type": "string", "enum": ["bearer"]},
            "refresh_token": {"type": "string"},
            "expires_in": {"type": "integer"},
            "scope": {"type": "string"},
        },
    }
    oauth_error = {
        "description": "RFC 6749 §5.2 error",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {"type": "string"},
                        "error_description": {"type": "string"},
                    },
                }
            }
        },
    }

    @app.post(
        "/oauth/token",
        tags=["auth"],
        summary="Get a token (password or refresh_token grant)",
        openapi_extra={
            "security": [{"basicAuth": []}],
            "requestBody": {
                "required": True,
                "content": {"application/x-www-form-urlencoded": {"schema": token_form}},
            },
            "responses": {
                "200": {
                    "description": "Tokens (plain OAuth JSON, not the envelope)",
                    "content": {"application/json": {"schema": token_answer}},
                },
                "400": oauth_error,
                "401": oauth_error,
            },
        },
    )
    async def oauth_token(request: Request) -> Response:
        cfg = state.config
        client_id = _client_from_basic(request, cfg)
        form = await _form(request)
        for key in ("clientId", "client_id"):
            if key in form and form[key] != client_id:
                raise OAuthError(
                    401,
                    "invalid_client",
                    f"{key} in the body does not match the client in the Authorization header",
                )
        grant = form.get("grant_type")
        if not grant:
            raise OAuthError(
                400, "invalid_request", "grant_type is missing (use grant_type=password)"
            )
        if grant == "password":
            missing = [name for name in ("username", "password") if not form.get(name)]
            if missing:
                raise OAuthError(400, "invalid_request", f"{' and '.join(missing)} missing")
            username = form["username"]
            matches = _same(username, cfg.username) & _same(form["password"], cfg.password)
            result = store.login(
                username=username, password_ok=matches, client_id=client_id, ttl_s=cfg.token_ttl
            )
            if not result.ok:
                raise OAuthError(400, "invalid_grant", _login_refusal(username, result))
            access, refresh = result.access_token, result.refresh_token
        elif grant == "refresh_token":
            given = form.get("refresh_token")
            if not given:
                raise OAuthError(400, "invalid_request", "refresh_token is missing")
            outcome = store.refresh(given, client_id=client_id, ttl_s=cfg.token_ttl)
            if isinstance(outcome, str):
                raise OAuthError(400, "invalid_grant", f"Refresh refused: {outcome}")
            access, refresh = outcome
        else:
            raise OAuthError(
                400,
                "unsupported_grant_type",
                f"grant_type {_show(grant)} is not supported: use password or refresh_token",
            )
        body = {
            "access_token": access,
            "token_type": "bearer",
            "refresh_token": refresh,
            "expires_in": cfg.token_ttl,
            "scope": "read write",
        }
        return Response(
            json.dumps(body).encode(),
            media_type="application/json",
            headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
        )

    # -- 2. create ----------------------------------------------------------------------------

    @app.post(
        "/api/v0/enkash-coins/create-coins-config",
        tags=["coins"],
        summary="Create a coin event configuration",
        openapi_extra=_api_extra(
            _CONFIG_ANSWER,
            400,
            409,
            body={
                "type": "object",
                "required": list(_CONFIG_FIELDS),
                "properties": _CONFIG_PROPERTIES,
                "additionalProperties": False,
            },
        ),
    )
    async def create_config(request: Request) -> Response:
        _require_token(request, state)
        values = _fields(await _json_object(request), _CONFIG_FIELDS, partial=False)
        try:
            created = store.create_config(
                company_id=values["companyId"],
                event=values["event"],
                configuration=values["configuration"],
                amount=values["amount"],
            )
        except ConfigConflict as exc:
            raise _conflict(exc) from None
        return envelope(created)

    # -- 3. get one / 4. update ---------------------------------------------------------------

    def _config_id(request: Request) -> str:
        coin_config_id = request.path_params["coinConfigId"]
        action = _ACTION_PATHS.get(coin_config_id)
        if action is not None:
            raise ApiError(
                405,
                ResponseCode.METHOD_NOT_ALLOWED,
                f"Method not allowed: {request.method} {request.url.path} (allowed: {action})",
                {"Allow": action},
            )
        return coin_config_id

    def _not_found(coin_config_id: str) -> ApiError:
        return ApiError(
            404,
            ResponseCode.NOT_FOUND,
            f"No coin configuration with coinConfigId {_show(coin_config_id, 60)}",
        )

    @app.get(
        "/api/v0/enkash-coins/{coinConfigId}",
        tags=["coins"],
        summary="Get one configuration",
        openapi_extra=_api_extra(_CONFIG_ANSWER, 404, parameters=[_CONFIG_ID_PARAM]),
    )
    async def get_config(request: Request) -> Response:
        _require_token(request, state)
        coin_config_id = _config_id(request)
        found = store.get_config(coin_config_id)
        if found is None:
            raise _not_found(coin_config_id)
        return envelope(found)

    @app.patch(
        "/api/v0/enkash-coins/{coinConfigId}",
        tags=["coins"],
        summary="Update a configuration (every field optional)",
        openapi_extra=_api_extra(
            _UPDATE_ANSWER,
            400,
            404,
            409,
            body={
                "type": "object",
                "properties": _CONFIG_PROPERTIES,
                "additionalProperties": False,
                "minProperties": 1,
            },
            parameters=[_CONFIG_ID_PARAM],
        ),
    )
    async def update_config(request: Request) -> Response:
        _require_token(request, state)
        coin_config_id = _config_id(request)
        changes = _fields(await _json_object(request), _CONFIG_FIELDS, partial=True)
        if not changes:
            raise _invalid([f"nothing to update: send at least one of {', '.join(_CONFIG_FIELDS)}"])
        try:
            updated = store.update_config(coin_config_id, changes)
        except ConfigNotFound:
            raise _not_found(coin_config_id) from None
        except ConfigConflict as exc:
            raise _conflict(exc) from None
        # As documented: the update answer has no companyId.
        return envelope(
            {
                "coinConfigId": updated["coinConfigId"],
                "configuration": updated["configuration"],
                "event": updated["event"],
                "amount": updated["amount"],
            }
        )

    # -- 5. allocate --------------------------------------------------------------------------

    @app.post(
        "/api/v0/enkash-coins/allocate-coin",
        tags=["coins"],
        summary="Allocate the configured coins to a user (idempotent by requestId)",
        openapi_extra=_api_extra(
            {"type": "string", "example": "Successfully allocated enkash Coins"},
            400,
            404,
            409,
            body={
                "type": "object",
                "required": list(_ALLOCATE_FIELDS),
                "properties": {
                    "companyId": _CONFIG_PROPERTIES["companyId"],
                    "event": _CONFIG_PROPERTIES["event"],
                    "requestId": _string(REQUEST_ID_PATTERN, "COIN_REQ1234567"),
                    "userId": _string(USER_ID_PATTERN, "EKQZVMQK"),
                },
                "additionalProperties": False,
            },
        ),
    )
    async def allocate_coin(request: Request) -> Response:
        _require_token(request, state)
        values = _fields(await _json_object(request), _ALLOCATE_FIELDS, partial=False)
        try:
            store.allocate(
                request_id=values["requestId"],
                user_id=values["userId"],
                company_id=values["companyId"],
                event=values["event"],
            )
        except DuplicateRequest:
            raise ApiError(
                409,
                ResponseCode.DUPLICATE_REQUEST,
                f"Duplicate requestId {values['requestId']}: coins were already allocated for "
                "this request; nothing was allocated again",
            ) from None
        except NoConfiguration:
            raise ApiError(
                404,
                ResponseCode.NO_CONFIGURATION,
                f"No coin configuration for company {values['companyId']} and event "
                f"{values['event']}: create one before allocating",
            ) from None
        return envelope("Successfully allocated enkash Coins")

    # -- 6. balance ---------------------------------------------------------------------------

    @app.get(
        "/api/v0/coins/balance",
        tags=["coins"],
        summary="A user's coin balance",
        openapi_extra=_api_extra(
            {"type": "integer", "minimum": 0},
            400,
            parameters=[
                {
                    "name": "userId",
                    "in": "query",
                    "required": True,
                    "schema": _string(USER_ID_PATTERN, "EK6CYE6K"),
                }
            ],
        ),
    )
    async def balance(request: Request) -> Response:
        _require_token(request, state)
        given = request.query_params.getlist("userId")
        if not given or not given[0]:
            raise _invalid(["userId is missing: GET /api/v0/coins/balance?userId=EK6CYE6K"])
        if len(given) > 1:
            raise _invalid(["userId is given more than once"])
        problem = _FIELD_CHECKS["userId"](given[0])
        if problem is not None:
            raise _invalid([problem])
        return envelope(store.balance(given[0]))

    # -- admin (test-only; hidden from the schema so the fuzzer never resets) -----------------

    @app.post("/_sandbox/reset", include_in_schema=False)
    async def admin_reset() -> Response:
        state.reset()
        return envelope("Sandbox reset: configurations, allocations, tokens, lockouts and faults")

    @app.get("/_sandbox/configs", include_in_schema=False)
    async def admin_configs() -> Response:
        return envelope(store.list_configs())

    @app.get("/_sandbox/allocations", include_in_schema=False)
    async def admin_allocations() -> Response:
        return envelope(store.list_allocations())

    @app.get("/_sandbox/faults", include_in_schema=False)
    async def admin_get_faults() -> Response:
        return envelope(state.faults.as_dict())

    @app.put("/_sandbox/faults", include_in_schema=False)
    async def admin_put_faults(request: Request) -> Response:
        changes = await _json_object(request)
        try:
            state.faults.update(changes)
        except ValueError as exc:
            raise _invalid([str(exc)]) from None
        return envelope(state.faults.as_dict())

    @app.post("/_sandbox/seed-demo", include_in_schema=False)
    async def admin_seed_demo() -> Response:
        seeded = seed_demo(store)
        return envelope({"seeded": seeded, "configs": store.count_configs()})

    @app.get("/", include_in_schema=False)
    async def root() -> Response:
        return envelope(
            {"name": "EnKash coins sandbox", "docs": "/docs", "openapi": "/openapi.json"}
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


def _route_without_trailing_slash(request: Request) -> bool:
    """True when the path, less its trailing slash, is one of the app's routes."""
    path = request.url.path
    if len(path) < 2 or not path.endswith("/"):
        return False
    scope = dict(request.scope, path=path.rstrip("/"))
    return any(route.matches(scope)[0] != Match.NONE for route in request.app.router.routes)


def _conflict(exc: ConfigConflict) -> ApiError:
    return ApiError(
        409,
        ResponseCode.CONFLICT,
        f"Configuration {exc.existing_id} already exists for company {exc.company_id} "
        f"and event {exc.event}",
    )


def _login_refusal(username: str, result: LoginResult) -> str:
    who = _show(username, 60)
    unlock = (
        "Unlock it by resetting the sandbox (POST /_sandbox/reset) or starting it on a fresh "
        "database."
    )
    if result.locked and result.already_locked:
        return (
            f"Account {who} is locked after {LOCKOUT_AFTER} failed login attempts in a row; "
            f"even the right password is refused. {unlock}"
        )
    if result.locked:
        return (
            f"Bad credentials: wrong username or password. That was {LOCKOUT_AFTER} failed "
            f"attempts in a row, so account {who} is now locked after {LOCKOUT_AFTER} failed "
            f"attempts. {unlock}"
        )
    return (
        f"Bad credentials: wrong username or password ({result.failures} of {LOCKOUT_AFTER} "
        f"failed attempts in a row; the account locks at {LOCKOUT_AFTER})"
    )
