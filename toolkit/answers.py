"""Any answer from any plausible EnKash, read into one meaning — the only place that does it.

The coins pages document only the success answer, so every signal an answer carries is read:
the HTTP status, ``response_code`` in every scheme seen on EnKash's portal or in our sandbox
(0/1; HTTP-like three-digit codes 403/409/412/422 inside the envelope; the Bill Payment
velocity codes 36/37 and duplicate-reference code 38; the sandbox's four-digit codes such as
4090), Spring Security OAuth2 error bodies (``{"error": "invalid_token", ...}``), Spring Boot
default error bodies (``timestamp``, ``status``, ``error``, ``message``, ``path``), the
server's wording, the ``Retry-After`` header in each of its forms, and bodies that are not
JSON (a CDN's HTML page is a transport fault or a block, never a success).

    read(response) -> Answer           one meaning, the payload, the server's message, ids
    error_for(answer, what) -> EnKashError   the error an unsuccessful answer stands for
    config_payload(data) -> (dict, extra)    a configuration with its types normalised

No network, no state: `toolkit.client` and `toolkit.auth` both use it, neither imports the other.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import requests

from toolkit.errors import (
    AuthError,
    BadAnswerError,
    BlockedError,
    ConflictError,
    DuplicateRequestError,
    EnKashError,
    ForbiddenError,
    NotFoundError,
    RateLimitError,
    ServerError,
    ValidationError,
    redact,
)

__all__ = [
    "RETRY_AFTER_CAP_S",
    "Answer",
    "Meaning",
    "as_id",
    "config_payload",
    "error_for",
    "error_from_response",
    "meaning_of_words",
    "read",
    "read_parts",
    "retry_after_seconds",
    "whole_number",
]

# A server asking us to wait longer than this is waited for this long, and the message says so.
RETRY_AFTER_CAP_S = 60.0


class Meaning(StrEnum):
    """What an answer means, whatever its shape."""

    SUCCESS = "success"
    INVALID = "invalid"  # the request was refused as invalid (field problems when named)
    NOT_FOUND = "not_found"
    EXISTS = "exists"  # the (company, event) is already configured
    DUPLICATE_REQUEST = "duplicate_request"  # this requestId was used before
    TOKEN_INVALID = "token_invalid"  # expired, unknown or missing bearer token: renew
    CREDENTIALS_REFUSED = "credentials_refused"  # the login itself was refused
    FORBIDDEN = "forbidden"  # the API is not enabled for this client
    THROTTLED = "throttled"  # 429, 503 + Retry-After, velocity limit: nothing was done
    SERVER_FAILURE = "server_failure"  # 5xx, gateway: the request may or may not have run
    BLOCKED = "blocked"  # a CDN's challenge or block page: the API never saw the request
    UNREADABLE = "unreadable"  # an answer we cannot read (HTML on 200, not JSON, no envelope)
    FAILURE = "failure"  # a refusal that says nothing more specific


@dataclass(frozen=True, slots=True)
class Answer:
    """One answer read: its meaning and everything a caller may need from it."""

    meaning: Meaning
    http_status: int
    code: int | str | None = None
    message: str = ""  # the server's own words (or a description of a wordless answer)
    payload: Any = None
    body: Any = None  # the parsed JSON body, when there was one
    retry_after: float | None = None  # seconds, capped at RETRY_AFTER_CAP_S
    retry_after_asked: float | None = None  # what the server asked, before the cap
    existing_ids: tuple[str, ...] = ()  # ids the answer names (for EXISTS: candidates)
    request_id: str | None = None  # the server's request/trace id header, if any
    reason: str = ""  # the HTTP reason phrase

    @property
    def ok(self) -> bool:
        return self.meaning is Meaning.SUCCESS


# -- reading ---------------------------------------------------------------------------------

_VELOCITY_CODES = frozenset({36, 37})
_SUCCESS_WORDS = frozenset({"SUCCESS", "OK", "SUCCEEDED", "DONE"})
_FAILURE_WORDS = frozenset({"FAILURE", "FAILED", "ERROR", "FAIL"})
_DUPLICATE_REFERENCE_CODE = 38
_OAUTH_REFUSALS = frozenset(
    {"invalid_grant", "invalid_client", "unauthorized_client", "unsupported_grant_type"}
)
_OAUTH_TOKEN = frozenset({"invalid_token", "expired_token", "unauthorized", "access_denied"})

_HTML_RE = re.compile(rb"^\s*(<!doctype html|<html|<head|<body|<\?xml|<!--)", re.IGNORECASE)
_CHALLENGE_RE = re.compile(
    r"just a moment|attention required|checking your browser|cf-chl|challenge|captcha"
    r"|access denied|request blocked|you have been blocked|web application firewall",
    re.IGNORECASE,
)

# Wording, checked in this order (the first that matches decides).
_WORDS: tuple[tuple[Meaning, re.Pattern[str]], ...] = (
    (
        Meaning.DUPLICATE_REQUEST,
        re.compile(
            r"duplicate\s*(request|reference|ref|txn|transaction)"
            r"|(request|reference)\s*id\S*\s*(\S+\s+){0,3}(already|used|exists|duplicate)",
            re.IGNORECASE,
        ),
    ),
    (
        Meaning.THROTTLED,
        re.compile(
            r"velocity|too many requests|rate.?limit|throttl|slow down|quota", re.IGNORECASE
        ),
    ),
    (
        Meaning.TOKEN_INVALID,
        re.compile(
            r"(access|bearer|auth\w*)?\s*token\W+(\w+\W+){0,3}(expired|invalid|unknown|revoked|"
            r"not valid|missing)|(expired|invalid|unknown|missing)\s+(access\s+|bearer\s+)?token"
            r"|full authentication is required|unauthori[sz]ed",
            re.IGNORECASE,
        ),
    ),
    (Meaning.CREDENTIALS_REFUSED, re.compile(r"bad credentials", re.IGNORECASE)),
    (
        Meaning.EXISTS,
        re.compile(
            r"already\s+(exists?|configured|present|created|defined)|duplicate|exists already",
            re.IGNORECASE,
        ),
    ),
    (
        Meaning.NOT_FOUND,
        re.compile(
            r"not\s+found|no\s+(such|record|data|config\w*)|does\s*n[o']t\s+exist|unknown\s+"
            r"(coin\s*)?config",
            re.IGNORECASE,
        ),
    ),
    (
        Meaning.FORBIDDEN,
        re.compile(r"not\s+enabled|not\s+allowed|forbidden|not\s+permitted", re.IGNORECASE),
    ),
    (
        Meaning.INVALID,
        re.compile(
            r"invalid|missing|required|must\s+be|malformed|bad\s+request|not\s+a\s+valid",
            re.IGNORECASE,
        ),
    ),
)

_BY_STATUS: dict[int, Meaning] = {
    400: Meaning.INVALID,
    401: Meaning.TOKEN_INVALID,
    403: Meaning.FORBIDDEN,
    404: Meaning.NOT_FOUND,
    409: Meaning.EXISTS,
    412: Meaning.INVALID,
    422: Meaning.INVALID,
    429: Meaning.THROTTLED,
}


def read(response: requests.Response, *, secrets: Iterable[str | None] = ()) -> Answer:
    """Read a `requests.Response` (see `read_parts`)."""
    try:
        content = response.content or b""
    except (requests.RequestException, OSError):  # a body cut off mid-way
        content = b""
    return read_parts(
        response.status_code,
        response.headers,
        content,
        reason=response.reason or "",
        secrets=secrets,
    )


def read_parts(
    status: int,
    headers: Mapping[str, str],
    content: bytes,
    *,
    reason: str = "",
    secrets: Iterable[str | None] = (),
    now: float | None = None,
) -> Answer:
    """One answer from its status, headers and raw body; every secret scrubbed from it."""
    secrets = tuple(secrets)
    headers = {str(k).lower(): str(v) for k, v in headers.items()}
    asked = retry_after_seconds(headers.get("retry-after"), now=now)
    retry_after = None if asked is None else min(asked, RETRY_AFTER_CAP_S)
    common: dict[str, Any] = {
        "http_status": status,
        "retry_after": retry_after,
        "retry_after_asked": asked,
        "request_id": headers.get("x-request-id") or headers.get("x-correlation-id"),
        "reason": reason,
    }
    if 300 <= status < 400:
        return _redirected(status, headers.get("location"), secrets, common)
    body = _json(content)
    if body is _NOT_JSON:
        return _read_not_json(status, headers, content, common)
    body = redact(body, secrets)
    if isinstance(body, dict):
        return _read_object(status, headers, body, common)
    # A bare JSON value (a string, a number, a list): only a 2xx can make it a payload.
    if 200 <= status < 300:
        return Answer(Meaning.SUCCESS, payload=body, body=body, **common)
    return Answer(
        _by_status(status, headers), message=_wordless(status, reason), body=body, **common
    )


_NOT_JSON = object()


def _json(content: bytes) -> Any:
    text = content.strip()
    if not text or text[:1] not in b'{["-0123456789tfn':
        return _NOT_JSON
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError):
        return _NOT_JSON


def _redirected(
    status: int, location: str | None, secrets: tuple[str | None, ...], common: dict[str, Any]
) -> Answer:
    """A redirect is not followed (a write it sends elsewhere may or may not have been
    processed, and a create must never turn into a GET): unreadable, saying where it points."""
    where = ""
    if location:
        shown = redact("".join(c for c in location if c.isprintable()), secrets)
        where = f" to {shown[:200]}" + ("…" if len(shown) > 200 else "")
    message = (
        f"the server answered with a redirect (HTTP {status}{where}), which the toolkit does "
        "not follow: check the base URL (ENKASH_BASE_URL)"
    )
    return Answer(Meaning.UNREADABLE, message=message, **common)


def _read_not_json(
    status: int, headers: dict[str, str], content: bytes, common: dict[str, Any]
) -> Answer:
    html = "html" in headers.get("content-type", "") or bool(_HTML_RE.match(content[:200]))
    sample = content[:4000].decode("utf-8", "replace")
    reason = common["reason"]
    if html and (
        status == 403
        or headers.get("cf-mitigated")
        or (status in (403, 429, 503) and _CHALLENGE_RE.search(sample))
    ):
        message = (
            f"a CDN or firewall in front of EnKash blocked the request (HTTP {status}, "
            "a challenge page): the API did not see it"
        )
        return Answer(Meaning.BLOCKED, message=message, **common)
    meaning = _by_status(status, headers)
    if status == 204:
        return Answer(Meaning.SUCCESS, **common)  # No Content: a success that says nothing
    if 200 <= status < 300 or meaning is Meaning.FAILURE:
        kind = "a web page" if html else ("empty" if not content.strip() else "not JSON")
        message = f"the server answered HTTP {status} but the answer was {kind}"
        return Answer(Meaning.UNREADABLE, message=message, **common)
    return Answer(meaning, message=_wordless(status, reason), **common)


def _read_object(
    status: int, headers: dict[str, str], body: dict[str, Any], common: dict[str, Any]
) -> Answer:
    code = _code(_first(body, "response_code", "responseCode", "code", "errorCode"))
    message = _text(
        _first(
            body,
            "response_message",
            "responseMessage",
            "message",
            "error_description",
            "errorMessage",
            "detail",
        )
    )
    error = body.get("error")
    has_envelope = any(k in body for k in ("response_code", "responseCode"))
    spring = isinstance(body.get("status"), int) and isinstance(error, str) and not has_envelope
    oauth = isinstance(error, str) and not spring and not has_envelope
    payload = body.get("payload") if "payload" in body else body.get("data")
    ids = _ids_named(body, message)
    base = {**common, "code": code, "body": body, "existing_ids": ids}

    if oauth:
        token_words = f"{error} {message}"
        if error in _OAUTH_REFUSALS or re.search(r"bad credentials", token_words, re.I):
            meaning = Meaning.CREDENTIALS_REFUSED
        elif error in _OAUTH_TOKEN or status in (401, 403):
            meaning = Meaning.TOKEN_INVALID
        else:
            meaning = _from_words(token_words) or _by_status(status, headers)
        shown = f"{error} — {message}" if message and message != error else (message or error)
        return Answer(meaning, message=shown or _wordless(status, common["reason"]), **base)

    if spring:
        meaning = _refine(_by_status(body["status"], headers), message)
        if not 200 <= status < 300:
            meaning = _refine(_by_status(status, headers), message)
        return Answer(meaning, message=message or str(error), **base)

    success_flag = body.get("success") if isinstance(body.get("success"), bool) else None
    word_status = body.get("status")
    if success_flag is None and isinstance(word_status, str):
        # {"status": "SUCCESS" | "FAILURE", "message": …}
        if word_status.strip().upper() in _SUCCESS_WORDS:
            success_flag = True
        elif word_status.strip().upper() in _FAILURE_WORDS:
            success_flag = False
    if has_envelope or success_flag is not None:
        succeeded = (
            (code in (0, None) or (code == 200 and 200 <= status < 300)) if has_envelope else True
        ) and success_flag is not False
        if succeeded and 200 <= status < 300:
            return Answer(Meaning.SUCCESS, payload=payload, message=message, **base)
        coded = _from_code(code, message) if not succeeded else None
        meaning = coded if coded is not None else _refine(_by_status(status, headers), message)
        if meaning is Meaning.FAILURE and not 200 <= status < 300:
            meaning = _refine(_by_status(status, headers), message)
        return Answer(
            meaning,
            payload=payload,
            message=message or _wordless(status, common["reason"]),
            **base,
        )

    # A JSON object with no envelope: a 2xx is a bare payload, anything else is read by status.
    if 200 <= status < 300:
        return Answer(Meaning.SUCCESS, payload=body, message=message, **base)
    meaning = _refine(_by_status(status, headers), message)
    return Answer(meaning, message=message or _wordless(status, common["reason"]), **base)


def _from_code(code: int | str | None, message: str) -> Meaning:
    """The meaning of a non-zero ``response_code`` (any scheme), refined by the wording."""
    if isinstance(code, int):
        if code in _VELOCITY_CODES:
            return Meaning.THROTTLED
        if code == _DUPLICATE_REFERENCE_CODE:
            return Meaning.DUPLICATE_REQUEST
        if code == 4091:  # the project sandbox's duplicate requestId
            return Meaning.DUPLICATE_REQUEST
        http_like = code // 10 if 1000 <= code < 6000 else code
        if 100 <= http_like < 600 and http_like != 200:
            by_code = _by_status(http_like, {})
            if by_code is not Meaning.FAILURE:
                return _refine(by_code, message)
    return _from_words(message) or Meaning.FAILURE


def _refine(meaning: Meaning, message: str) -> Meaning:
    """A status-like meaning made precise by the server's words (a 409 about a requestId is a
    duplicate request; a 403 about a token is a token problem; a 400 that says "already
    exists" is a conflict)."""
    words = _from_words(message)
    if words is None:
        return meaning
    if meaning in (Meaning.SERVER_FAILURE, Meaning.THROTTLED, Meaning.BLOCKED):
        return meaning
    if meaning is Meaning.EXISTS and words is not Meaning.DUPLICATE_REQUEST:
        return meaning
    if meaning is Meaning.NOT_FOUND and words not in (Meaning.TOKEN_INVALID,):
        return meaning
    if meaning is Meaning.TOKEN_INVALID and words not in (Meaning.CREDENTIALS_REFUSED,):
        return meaning
    if words is Meaning.INVALID and meaning is not Meaning.FAILURE:
        return meaning
    return words


def meaning_of_words(message: str) -> Meaning | None:
    """What a server's message says on its own (None when its words say nothing known)."""
    return _from_words(message)


def _from_words(message: str) -> Meaning | None:
    if not message:
        return None
    for meaning, pattern in _WORDS:
        if pattern.search(message):
            return meaning
    return None


def _by_status(status: int, headers: Mapping[str, str]) -> Meaning:
    if status == 503 and headers.get("retry-after"):
        return Meaning.THROTTLED
    if status >= 500:
        return Meaning.SERVER_FAILURE
    if 200 <= status < 300:
        return Meaning.FAILURE
    return _BY_STATUS.get(status, Meaning.FAILURE)


def _wordless(status: int, reason: str) -> str:
    return f"the server answered HTTP {status}" + (f" {reason}" if reason else "")


def _first(body: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        value = body.get(key)
        if value not in (None, ""):
            return value
    return None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "; ".join(_text(v) for v in value if v not in (None, ""))
    if isinstance(value, dict):
        return _text(_first(value, "message", "description", "error")) or json.dumps(value)
    return str(value).strip()


def _code(value: Any) -> int | str | None:
    if value is None or isinstance(value, bool):
        return None if value is None else str(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        text = str(value).strip()
        return 0 if text.upper() in ("SUCCESS", "OK") else text


def retry_after_seconds(raw: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` in seconds: integer or decimal seconds, or an HTTP date."""
    if raw is None or not raw.strip():
        return None
    text = raw.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if math.isnan(seconds):
        return None
    return max(0.0, seconds)


# -- ids and payloads ------------------------------------------------------------------------

_ID_KEYS = (
    "coinConfigId",
    "coin_config_id",
    "existingCoinConfigId",
    "existingId",
    "existing_id",
    "configId",
    "config_id",
    "id",
)
_UUID_RE = re.compile(
    r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
)
_WCC_RE = re.compile(r"\bWCC[0-9A-Z]+\b")
# "id 1042", "coinConfigId: WCC1", "config id=abc-1", "ID #77"
_AFTER_ID_RE = re.compile(
    r"\b(?:coin\s*config(?:uration)?\s*id|config(?:uration)?\s*id|existing\s*id|id)"
    r"\s*(?:is|was|of)?\s*[:=#]?\s*[\"'(\[]?([A-Za-z0-9][A-Za-z0-9_.:-]{0,63})",
    re.IGNORECASE,
)


def _ids_named(body: Mapping[str, Any], message: str) -> tuple[str, ...]:
    """Every id an answer names, in order: id fields of the payload or body, then id-shaped
    tokens in its message. A caller checks a candidate (fetches it) before trusting it."""
    found: list[str] = []
    for holder in (body.get("payload"), body.get("data"), body):
        if isinstance(holder, Mapping):
            for key in _ID_KEYS:
                value = as_id(holder.get(key))
                if value:
                    found.append(value)
    if message:
        found += _WCC_RE.findall(message)
        found += _UUID_RE.findall(message)
        found += [m.rstrip(".:") for m in _AFTER_ID_RE.findall(message)]
    seen: dict[str, None] = {}
    for value in found:
        if value and value.lower() not in ("is", "was", "of", "the", "for") and value not in seen:
            seen[value] = None
    return tuple(seen)


def as_id(value: Any) -> str | None:
    """An id whatever its JSON type (1042, "WCC1", a UUID); None for blanks and booleans."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float):
        if not value.is_integer():
            return None
        value = int(value)
    if isinstance(value, int | str):
        text = str(value).strip()
        return text or None
    return None


def whole_number(value: Any) -> int | None:
    """An integer from 6, 6.0, "6", " 6 ", "106.0"; None for anything else (6.5, "six")."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str):
        text = value.strip().replace(",", "")
        if not text or len(text) > 30:
            return None
        try:
            number = float(text)
        except ValueError:
            return None
        if not math.isfinite(number) or not number.is_integer():
            return None
        return int(text) if text.lstrip("+-").isdigit() else int(number)
    return None


_CONFIG_ALIASES = {
    "coinConfigId": ("coinConfigId", "coin_config_id", "configId", "id"),
    "companyId": ("companyId", "company_id"),
    "event": ("event", "eventName", "event_name"),
    "configuration": ("configuration", "configurationType", "configuration_type"),
    "amount": ("amount", "coins", "coinAmount"),
}


def config_payload(data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A configuration answer as (known fields with normalised types, unknown fields aside).

    Ids become strings whatever their JSON type, whole numbers sent as text become integers,
    snake_case names are accepted; fields the toolkit does not know are kept in the second
    dict, never fatal.
    """
    known: dict[str, Any] = {}
    used: set[str] = set()
    for name, aliases in _CONFIG_ALIASES.items():
        for alias in aliases:
            if alias in data and data[alias] is not None:
                known[name] = data[alias]
                used.add(alias)
                break
    if "coinConfigId" in known:
        known["coinConfigId"] = as_id(known["coinConfigId"])
    if "amount" in known:
        amount = whole_number(known["amount"])
        known["amount"] = amount if amount is not None else known["amount"]
    for name in ("companyId", "event", "configuration"):
        if name in known and not isinstance(known[name], str):
            known[name] = str(known[name])
    extra = {k: v for k, v in data.items() if k not in used}
    return known, extra


# -- errors ----------------------------------------------------------------------------------


_ERROR_BY_MEANING: dict[Meaning, type[EnKashError]] = {
    Meaning.INVALID: ValidationError,
    Meaning.NOT_FOUND: NotFoundError,
    Meaning.EXISTS: ConflictError,
    Meaning.DUPLICATE_REQUEST: DuplicateRequestError,
    Meaning.TOKEN_INVALID: AuthError,
    Meaning.CREDENTIALS_REFUSED: AuthError,
    Meaning.FORBIDDEN: ForbiddenError,
    Meaning.THROTTLED: RateLimitError,
    Meaning.SERVER_FAILURE: ServerError,
    Meaning.BLOCKED: BlockedError,
    Meaning.UNREADABLE: BadAnswerError,
    Meaning.FAILURE: EnKashError,
}


def error_for(answer: Answer, what: str, *, request_id: str | None = None) -> EnKashError:
    """The `EnKashError` an unsuccessful answer stands for; ``what`` starts its message."""
    message = f"{what}: {answer.message or _wordless(answer.http_status, answer.reason)}"
    kwargs: dict[str, Any] = {
        "http_status": answer.http_status,
        "response_code": answer.code,
        "request_id": request_id or answer.request_id,
        "body": answer.body,
    }
    meaning = answer.meaning
    if meaning is Meaning.THROTTLED:
        if answer.retry_after_asked is not None and answer.retry_after_asked > RETRY_AFTER_CAP_S:
            message += (
                f" (the server asked to wait {answer.retry_after_asked:.0f} s; the toolkit waits "
                f"at most {RETRY_AFTER_CAP_S:.0f} s)"
            )
        return RateLimitError(message, retry_after=answer.retry_after, **kwargs)
    if meaning is Meaning.EXISTS:
        existing = answer.existing_ids[0] if answer.existing_ids else None
        return ConflictError(
            message, existing_id=existing, candidates=answer.existing_ids, **kwargs
        )
    if meaning is Meaning.DUPLICATE_REQUEST:
        return DuplicateRequestError(message, existing_id=None, **kwargs)
    if meaning is Meaning.SUCCESS:
        return BadAnswerError(f"{what}: the answer could not be used", **kwargs)
    cls = _ERROR_BY_MEANING.get(meaning, EnKashError)
    return cls(message, **kwargs)


def error_from_response(
    response: requests.Response,
    what: str,
    *,
    request_id: str | None = None,
    secrets: Iterable[str | None] = (),
) -> EnKashError:
    """`read` then `error_for`, for a response already known to be a refusal."""
    return error_for(read(response, secrets=secrets), what, request_id=request_id)
