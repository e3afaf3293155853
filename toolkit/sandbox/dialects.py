"""How the sandbox answers: one class per dialect, each rendering the same meanings its own way.

The routes never build an answer themselves. They say what happened (a success of a call, or a
``Refusal`` of a kind: invalid, not found, conflict, duplicate request, ...) and the active
dialect turns it into status, headers and body. The fault middleware and the rate limiter ask
the dialect for their answers too (``throttle``, ``server_fault``, ``challenge``), so every
fault is rendered in the style of the server being imitated.

| dialect | what it imitates |
| --- | --- |
| ``project`` | this project's own scheme (HTTP status x 10 + digit codes), as before dialects |
| ``enkash`` | EnKash's documented conventions of its sibling APIs (codes 0/1/409/412/422/36-38) |
| ``spring`` | envelope on success only; Spring Boot error bodies; integer ids, amounts as text |
| ``lenient`` | ``enkash`` answers, but no per-pair uniqueness and silently idempotent requestIds |
| ``cdn`` | ``enkash`` behind a CDN: HTML 5xx pages, 429 with every Retry-After form, challenges |

Two dialect attributes change state rules rather than answers: ``unique_pairs`` (a second
create of a pair is refused) and ``id_style`` (how new coinConfigIds look). The rest is
rendering. See ``docs/api.md`` for every answer of every dialect.
"""

from __future__ import annotations

import itertools
import json
import random
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any, ClassVar

from starlette.responses import Response

from toolkit.models import ResponseCode

__all__ = [
    "DEFAULT_DIALECT",
    "DIALECTS",
    "RATE_LIMIT_STYLES",
    "CdnDialect",
    "Dialect",
    "EnKashDialect",
    "LenientDialect",
    "ProjectDialect",
    "Refusal",
    "SpringDialect",
    "dialect_named",
]

# The dialect of the embedded sandbox and of ``start_sandbox()`` without ``dialect=``.
DEFAULT_DIALECT = "project"

RATE_LIMIT_STYLES: tuple[str, ...] = (
    "retry-after",
    "retry-after-decimal",
    "no-retry-after",
    "velocity",
)

_REALM = 'realm="enkash-sandbox"'
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
ALLOCATED = "Successfully allocated enkash Coins"


# ---- meanings ----------------------------------------------------------------------------------


@dataclass(eq=False)
class Refusal(Exception):
    """Something the sandbox refuses, by meaning; the active dialect renders it.

    ``kind`` is one of: ``invalid`` (``problems``: one text per field, each starting with the
    field's name), ``bad_format`` (the body is not a JSON object), ``too_large``,
    ``not_found`` (``coin_config_id``, ``call``), ``conflict`` (``existing_id``, ``company_id``,
    ``event``), ``duplicate_request`` (``request_id``), ``no_configuration`` (``company_id``,
    ``event``), ``auth`` (``reason`` missing/malformed/unknown/refresh/expired, ``token``),
    ``route_not_found``, ``method_not_allowed`` (``allow``), ``http`` (``status``), ``busy``,
    ``bug``, ``disconnected``. ``message`` is the project dialect's wording (other dialects
    reuse it where they have no wording of their own).
    """

    kind: str
    message: str = ""
    problems: list[str] = field(default_factory=list)
    status: int = 400
    headers: dict[str, str] | None = None
    coin_config_id: str = ""
    existing_id: str = ""
    company_id: str = ""
    event: str = ""
    request_id: str = ""
    call: str = ""
    reason: str = ""
    token: str = ""
    allow: str = ""

    def __str__(self) -> str:
        return self.message or self.kind


@dataclass(eq=False)
class OAuthRefusal(Exception):
    """A token-endpoint refusal. ``kind``: bad_client, bad_credentials, locked, request."""

    kind: str
    status: int
    error: str
    description: str

    def __str__(self) -> str:
        return self.description


# ---- building blocks -------------------------------------------------------------------------


def _json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body, ensure_ascii=False).encode(),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def envelope_response(
    payload: Any,
    *,
    status: int = 200,
    code: int = 0,
    message: str = "Success",
    headers: dict[str, str] | None = None,
) -> Response:
    body = {"payload": payload, "response_code": int(code), "response_message": message}
    return _json_response(body, status, headers)


def _html_response(html: str, status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(html, status_code=status, media_type="text/html", headers=headers)


_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def _spring_body(status: int, message: str, path: str) -> dict[str, Any]:
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
    return {
        "timestamp": stamp,
        "status": status,
        "error": _REASONS.get(status, "Error"),
        "message": message,
        "path": path,
    }


def _cloudflare_page(status: int, title: str, detail: str) -> str:
    ray = f"{random.getrandbits(64):016x}"
    return (
        '<!DOCTYPE html>\n<html lang="en-US"><head><title>'
        f'{title}</title><meta charset="UTF-8"></head><body>'
        f'<div id="cf-wrapper"><h1>{status}: {title}</h1><p>{detail}</p>'
        f"<p>Cloudflare Ray ID: <strong>{ray}</strong></p></div></body></html>\n"
    )


_CHALLENGE_PAGE = (
    '<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title>'
    '<meta http-equiv="refresh" content="390"></head><body>'
    '<div class="main-wrapper"><h1>Just a moment...</h1>'
    "<p>Checking if the site connection is secure</p>"
    "<noscript>Enable JavaScript and cookies to continue</noscript></div></body></html>\n"
)


class _Rotation:
    """A thread-safe endless cycle through ``values`` (deterministic alternation of answers)."""

    def __init__(self, values: tuple[Any, ...]) -> None:
        self._cycle = itertools.cycle(values)
        self._lock = threading.Lock()

    def next(self) -> Any:
        with self._lock:
            return next(self._cycle)


# ---- the dialects ------------------------------------------------------------------------------


class Dialect:
    """The project's own answers (``project``); other dialects override what differs."""

    name: ClassVar[str] = "project"
    summary: ClassVar[str] = "this project's own scheme (status x 10 + digit codes)"
    unique_pairs: ClassVar[bool] = True
    id_style: ClassVar[str] = "wcc"

    def __init__(self) -> None:
        self._server_faults = _Rotation((500, 503))

    # -- successes ---------------------------------------------------------------------------

    def payload(self, call: str, payload: Any) -> Any:
        """The payload of a successful ``call`` (create, get, update, allocate, balance)."""
        return payload

    def ok(self, call: str, payload: Any) -> Response:
        return envelope_response(self.payload(call, payload))

    def token(self, access: str, refresh: str, ttl: int) -> Response:
        body = {
            "access_token": access,
            "token_type": "bearer",
            "refresh_token": refresh,
            "expires_in": ttl,
            "scope": "read write",
        }
        return _json_response(body, headers=dict(_NO_STORE))

    # -- refusals ----------------------------------------------------------------------------

    def refuse(self, refusal: Refusal, path: str) -> Response:
        status, code = _PROJECT_CODES.get(refusal.kind, (400, ResponseCode.INVALID_REQUEST))
        if refusal.kind in ("http", "route_not_found", "method_not_allowed", "too_large"):
            status = refusal.status
            if refusal.kind == "http" and status >= 500:
                code = ResponseCode.SERVER_ERROR
        message = refusal.message
        if refusal.kind == "invalid" or (refusal.kind == "bad_format" and refusal.problems):
            message = "Invalid request: " + "; ".join(refusal.problems)
        return envelope_response(
            None, status=status, code=code, message=message, headers=refusal.headers
        )

    def oauth_refuse(self, refusal: OAuthRefusal) -> Response:
        headers = dict(_NO_STORE)
        if refusal.status == 401:
            headers["WWW-Authenticate"] = f"Basic {_REALM}"
        body = {"error": refusal.error, "error_description": refusal.description}
        return _json_response(body, refusal.status, headers)

    # -- injected answers --------------------------------------------------------------------

    def server_fault(self, path: str, rng: random.Random) -> Response:
        if rng.random() < 0.5:
            status, code, what = 500, ResponseCode.SERVER_ERROR, "internal server error"
        else:
            status, code, what = 503, ResponseCode.UNAVAILABLE, "service unavailable"
        return envelope_response(
            None,
            status=status,
            code=code,
            message=f"Sandbox fault: {what} (error_rate); nothing was done",
        )

    def throttle(self, path: str, source: str = "fault", style: str | None = None) -> Response:
        """The over-limit answer: the dialect's own, or ``style`` (one of RATE_LIMIT_STYLES)."""
        if style is None:
            return self.default_throttle(path, source)
        if style == "velocity":
            return envelope_response(None, code=36, message="Velocity limit breached")
        headers: dict[str, str] = {}
        if style == "retry-after":
            headers["Retry-After"] = "1"
        elif style == "retry-after-decimal":
            headers["Retry-After"] = "0.5"
        elif style != "no-retry-after":
            raise ValueError(f"unknown rate limit style {style!r}")
        return self.throttle_429(path, headers)

    def default_throttle(self, path: str, source: str) -> Response:
        why = "sandbox rate_limit_rate" if source == "fault" else "sandbox rate limit"
        return envelope_response(
            None,
            status=429,
            code=ResponseCode.RATE_LIMITED,
            message=f"Too many requests: retry after 1 second ({why})",
            headers={"Retry-After": "1"},
        )

    def throttle_429(self, path: str, headers: dict[str, str]) -> Response:
        return envelope_response(
            None,
            status=429,
            code=ResponseCode.RATE_LIMITED,
            message="Too many requests (sandbox rate limit)",
            headers=headers,
        )

    def token_expired(self, token: str, path: str) -> Response:
        """What a request whose bearer token has just died hears (token_expiry_rate)."""
        return self.refuse(expired_token_refusal(token), path)

    def challenge(self, path: str) -> Response:
        """A CDN's bot challenge: HTTP 403, an HTML page, ``cf-mitigated: challenge``."""
        return _html_response(
            _CHALLENGE_PAGE,
            403,
            {"cf-mitigated": "challenge", "Cache-Control": "private, no-store"},
        )

    def render_id(self, coin_config_id: str) -> Any:
        return coin_config_id


def expired_token_refusal(token: str) -> Refusal:
    return Refusal(
        "auth",
        "Access token expired: get a new one from POST /oauth/token "
        "(grant_type=refresh_token or password)",
        status=401,
        headers={"WWW-Authenticate": f'Bearer {_REALM}, error="invalid_token"'},
        reason="expired",
        token=token,
    )


_PROJECT_CODES: dict[str, tuple[int, ResponseCode]] = {
    "invalid": (400, ResponseCode.INVALID_REQUEST),
    "bad_format": (400, ResponseCode.INVALID_REQUEST),
    "too_large": (413, ResponseCode.INVALID_REQUEST),
    "disconnected": (400, ResponseCode.INVALID_REQUEST),
    "not_found": (404, ResponseCode.NOT_FOUND),
    "route_not_found": (404, ResponseCode.NOT_FOUND),
    "method_not_allowed": (405, ResponseCode.METHOD_NOT_ALLOWED),
    "conflict": (409, ResponseCode.CONFLICT),
    "duplicate_request": (409, ResponseCode.DUPLICATE_REQUEST),
    "no_configuration": (404, ResponseCode.NO_CONFIGURATION),
    "auth": (401, ResponseCode.UNAUTHORIZED),
    "http": (400, ResponseCode.INVALID_REQUEST),
    "busy": (503, ResponseCode.UNAVAILABLE),
    "bug": (500, ResponseCode.SERVER_ERROR),
    "forbidden": (403, 4030),  # not a ResponseCode: only the admin routes refuse this way
}

ProjectDialect = Dialect


def _first8(token: str) -> str:
    return token[:8] + "…"


class EnKashDialect(Dialect):
    """EnKash's documented conventions (Payouts, Bill Payment, Authentication pages)."""

    name = "enkash"
    summary = "EnKash's documented codes: 0/1/409/412/422, velocity 36/37, duplicate 38"
    token_life_shown: ClassVar[int] = 86399  # what the portal's example says; the real life is ttl

    def __init__(self) -> None:
        super().__init__()
        self._velocity = _Rotation((36, 37))

    def token(self, access: str, refresh: str, ttl: int) -> Response:
        body = {
            "access_token": access,
            "token_type": "bearer",
            "refresh_token": refresh,
            "expires_in": self.token_life_shown,
            "scope": "read write trust",
        }
        return _json_response(body, headers=dict(_NO_STORE))

    def oauth_refuse(self, refusal: OAuthRefusal) -> Response:
        description = {
            "bad_credentials": "Bad credentials",
            "locked": "User account is locked",
            "bad_client": "Bad client credentials",
        }.get(refusal.kind, refusal.description)
        headers = dict(_NO_STORE)
        if refusal.status == 401:
            headers["WWW-Authenticate"] = f"Basic {_REALM}"
        body = {"error": refusal.error, "error_description": description}
        return _json_response(body, refusal.status, headers)

    def envelope_refusal(self, refusal: Refusal) -> tuple[int, int, str, Any, dict[str, str]]:
        """(HTTP status, response_code, message, payload, headers) of an envelope refusal."""
        kind = refusal.kind
        if kind == "invalid":
            return (
                200,
                412,
                "Missing or invalid parameters: " + "; ".join(refusal.problems),
                None,
                {},
            )
        if kind == "bad_format":
            return 422, 422, "Invalid request format", None, {}
        if kind == "too_large":
            return 413, 422, "Invalid request format: the body is too large", None, {}
        if kind == "conflict":
            rendered = self.render_id(refusal.existing_id)
            message = (
                f"Coin configuration already exists for company {refusal.company_id} and "
                f"event {refusal.event} (coinConfigId {rendered})"
            )
            return 200, 409, message, {"coinConfigId": rendered}, {}
        if kind == "not_found":
            return 200, 1, "Coin configuration not found", None, {}
        if kind == "no_configuration":
            message = (
                "Missing or invalid parameters: no coin configuration for companyId "
                f"{refusal.company_id} and event {refusal.event}"
            )
            return 200, 412, message, None, {}
        if kind == "duplicate_request":
            return 200, 38, "Duplicate referenceId provided", None, {}
        if kind == "busy":
            return 503, 1, "Service unavailable", None, {"Retry-After": "1"}
        if kind == "bug":
            return 500, 1, "Internal server error", None, {}
        if kind in ("route_not_found", "method_not_allowed", "http"):
            headers = dict(refusal.headers or {})
            return refusal.status, 1, refusal.message, None, headers
        if kind == "forbidden":
            return 403, 403, refusal.message, None, {}
        return 400, 1, refusal.message or "Failure", None, {}

    def refuse(self, refusal: Refusal, path: str) -> Response:
        if refusal.kind == "auth":
            return self.auth_refusal(refusal, path)
        status, code, message, payload, headers = self.envelope_refusal(refusal)
        return envelope_response(
            payload, status=status, code=code, message=message, headers=headers or None
        )

    def auth_refusal(self, refusal: Refusal, path: str) -> Response:
        if refusal.reason in ("missing", "malformed"):
            body = {
                "error": "unauthorized",
                "error_description": "Full authentication is required to access this resource",
            }
            headers = {"WWW-Authenticate": f"Bearer {_REALM}"}
        else:
            body = {
                "error": "invalid_token",
                "error_description": f"Access token expired: {_first8(refusal.token)}",
            }
            headers = {
                "WWW-Authenticate": f'Bearer {_REALM}, error="invalid_token"',
            }
        return _json_response(body, 401, headers | _NO_STORE)

    def server_fault(self, path: str, rng: random.Random) -> Response:
        if rng.random() < 0.5:
            return envelope_response(None, status=500, code=1, message="Internal server error")
        return envelope_response(None, status=503, code=1, message="Service unavailable")

    def default_throttle(self, path: str, source: str) -> Response:
        return envelope_response(
            None, code=self._velocity.next(), message="Velocity limit breached"
        )

    def throttle_429(self, path: str, headers: dict[str, str]) -> Response:
        return envelope_response(
            None, status=429, code=36, message="Velocity limit breached", headers=headers
        )


class SpringDialect(EnKashDialect):
    """Success in the envelope; errors as Spring Boot's default error body, no envelope."""

    name = "spring"
    summary = "Spring Boot error bodies; integer ids, amounts and balances as text"
    id_style = "int"

    def payload(self, call: str, payload: Any) -> Any:
        if call == "balance":
            return f"{int(payload)}.0"
        if isinstance(payload, dict):
            shaped = dict(payload)
            if "coinConfigId" in shaped:
                shaped["coinConfigId"] = self.render_id(shaped["coinConfigId"])
            if "amount" in shaped:
                shaped["amount"] = str(shaped["amount"])
            return shaped
        return payload

    def render_id(self, coin_config_id: str) -> Any:
        # Ids the store made in this style are digits; older ones (demo data, other dialects
        # on the same file) stay as they are.
        return int(coin_config_id) if coin_config_id.isdigit() else coin_config_id

    def token(self, access: str, refresh: str, ttl: int) -> Response:
        body = {
            "accessToken": access,
            "tokenType": "bearer",
            "expiresIn": ttl,
            "refreshToken": refresh,
        }
        return _json_response(body, headers=dict(_NO_STORE))

    def spring_refusal(self, refusal: Refusal) -> tuple[int, str, dict[str, str]]:
        kind = refusal.kind
        if kind == "invalid":
            return 400, "Validation failed: " + "; ".join(refusal.problems), {}
        if kind == "bad_format":
            detail = "; ".join(refusal.problems) or "the body is not a JSON object"
            return 400, f"JSON parse error: {detail}", {}
        if kind == "too_large":
            return 413, refusal.message, {}
        if kind == "not_found":
            return 404, f"Coin configuration not found: {refusal.coin_config_id}", {}
        if kind == "no_configuration":
            return (
                404,
                f"No coin configuration for companyId {refusal.company_id} and event "
                f"{refusal.event}",
                {},
            )
        if kind == "conflict":
            return (
                409,
                f"Configuration already exists: id {self.render_id(refusal.existing_id)}",
                {},
            )
        if kind == "duplicate_request":
            return 409, f"Duplicate requestId {refusal.request_id}", {}
        if kind == "auth":
            if refusal.reason in ("missing", "malformed"):
                return 401, "Full authentication is required to access this resource", {}
            return 401, "Invalid or expired token", {}
        if kind == "busy":
            return 503, "Service unavailable", {}
        if kind == "bug":
            return 500, "Internal server error", {}
        if kind in ("route_not_found", "method_not_allowed", "http"):
            return refusal.status, refusal.message, dict(refusal.headers or {})
        return 400, refusal.message, {}

    def refuse(self, refusal: Refusal, path: str) -> Response:
        status, message, headers = self.spring_refusal(refusal)
        return _json_response(_spring_body(status, message, path), status, headers or None)

    def server_fault(self, path: str, rng: random.Random) -> Response:
        status = 500 if rng.random() < 0.5 else 503
        message = "Internal server error" if status == 500 else "Service unavailable"
        return _json_response(_spring_body(status, message, path), status)

    def default_throttle(self, path: str, source: str) -> Response:
        return self.throttle_429(path, {})

    def throttle_429(self, path: str, headers: dict[str, str]) -> Response:
        return _json_response(_spring_body(429, "Too many requests", path), 429, headers or None)


class LenientDialect(EnKashDialect):
    """``enkash`` answers with looser rules: no per-pair uniqueness, silent duplicates."""

    name = "lenient"
    summary = "no per-pair uniqueness, repeated requestIds answered as success, UUID ids"
    unique_pairs = False
    id_style = "uuid"

    def refuse(self, refusal: Refusal, path: str) -> Response:
        if refusal.kind == "duplicate_request":
            return self.ok("allocate", ALLOCATED)  # silently idempotent: nothing allocated
        if refusal.kind == "not_found" and refusal.call == "get":
            return envelope_response(None)
        return super().refuse(refusal, path)

    def auth_refusal(self, refusal: Refusal, path: str) -> Response:
        return envelope_response(None, code=401, message="Token expired or invalid")


class CdnDialect(EnKashDialect):
    """``enkash`` behind a CDN: the CDN answers faults and throttling with HTML pages."""

    name = "cdn"
    summary = "enkash behind a CDN: HTML 502/503/504, 429 with every Retry-After form"

    def __init__(self) -> None:
        super().__init__()
        self._gateway = _Rotation((502, 503, 504))
        self._retry_after = _Rotation(("1", "0.5", "date", None))

    def server_fault(self, path: str, rng: random.Random) -> Response:
        status = self._gateway.next()
        title, detail = {
            502: ("Bad gateway", "The web server reported a bad gateway error."),
            503: ("Service unavailable", "The server is temporarily unable to serve you."),
            504: ("Gateway time-out", "The web server reported a gateway time-out error."),
        }[status]
        return _html_response(_cloudflare_page(status, title, detail), status)

    def default_throttle(self, path: str, source: str) -> Response:
        form = self._retry_after.next()
        headers: dict[str, str] = {}
        if form == "date":
            later = datetime.now(UTC) + timedelta(seconds=2)
            headers["Retry-After"] = format_datetime(later, usegmt=True)
        elif form is not None:
            headers["Retry-After"] = form
        return self.throttle_429(path, headers)

    def throttle_429(self, path: str, headers: dict[str, str]) -> Response:
        page = _cloudflare_page(429, "Too many requests", "You are being rate limited.")
        return _html_response(page, 429, headers or None)


DIALECTS: dict[str, type[Dialect]] = {
    cls.name: cls for cls in (Dialect, EnKashDialect, SpringDialect, LenientDialect, CdnDialect)
}


def dialect_named(name: str | None) -> Dialect:
    """A fresh dialect by name (None = DEFAULT_DIALECT); ``ValueError`` naming the known ones."""
    chosen = DEFAULT_DIALECT if name is None else name
    try:
        return DIALECTS[chosen]()
    except KeyError:
        raise ValueError(f"unknown dialect {chosen!r} (known: {', '.join(DIALECTS)})") from None
