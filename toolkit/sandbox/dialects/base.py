"""What every dialect shares: the meanings routes raise, response builders, and the
``project`` dialect (``Dialect``), which every other dialect subclasses."""

from __future__ import annotations

import itertools
import json
import random
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from starlette.responses import Response

from toolkit.models import ResponseCode

__all__ = [
    "ALLOCATED",
    "RATE_LIMIT_STYLES",
    "Dialect",
    "OAuthRefusal",
    "ProjectDialect",
    "Refusal",
    "Rotation",
    "cloudflare_page",
    "envelope_response",
    "expired_token_refusal",
    "html_response",
    "json_response",
    "spring_body",
]

RATE_LIMIT_STYLES: tuple[str, ...] = (
    "retry-after",
    "retry-after-decimal",
    "no-retry-after",
    "velocity",
)

REALM = 'realm="enkash-sandbox"'
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
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
    ``bug``, ``disconnected``, ``forbidden``. ``message`` is the project dialect's wording
    (other dialects reuse it where they have no wording of their own).
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


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
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
    return json_response(body, status, headers)


def html_response(html: str, status: int, headers: dict[str, str] | None = None) -> Response:
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


def spring_body(status: int, message: str, path: str) -> dict[str, Any]:
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
    return {
        "timestamp": stamp,
        "status": status,
        "error": _REASONS.get(status, "Error"),
        "message": message,
        "path": path,
    }


def cloudflare_page(status: int, title: str, detail: str) -> str:
    ray = f"{random.getrandbits(64):016x}"
    return (
        '<!DOCTYPE html>\n<html lang="en-US"><head><title>'
        f'{title}</title><meta charset="UTF-8"></head><body>'
        f'<div id="cf-wrapper"><h1>{status}: {title}</h1><p>{detail}</p>'
        f"<p>Cloudflare Ray ID: <strong>{ray}</strong></p></div></body></html>\n"
    )


CHALLENGE_PAGE = (
    '<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title>'
    '<meta http-equiv="refresh" content="390"></head><body>'
    '<div class="main-wrapper"><h1>Just a moment...</h1>'
    "<p>Checking if the site connection is secure</p>"
    "<noscript>Enable JavaScript and cookies to continue</noscript></div></body></html>\n"
)


class Rotation:
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
        self._server_faults = Rotation((500, 503))

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
        return json_response(body, headers=dict(NO_STORE))

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
        headers = dict(NO_STORE)
        if refusal.status == 401:
            headers["WWW-Authenticate"] = f"Basic {REALM}"
        body = {"error": refusal.error, "error_description": refusal.description}
        return json_response(body, refusal.status, headers)

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
        return html_response(
            CHALLENGE_PAGE,
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
        headers={"WWW-Authenticate": f'Bearer {REALM}, error="invalid_token"'},
        reason="expired",
        token=token,
    )


_PROJECT_CODES: dict[str, tuple[int, int]] = {
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
