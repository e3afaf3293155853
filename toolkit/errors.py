"""Every error the toolkit raises about the API, one base class with subclasses by meaning.

    EnKashError                 http status, response code, message, request id
    ├── AuthError               credentials refused, token missing/expired (never retried)
    │   └── ForbiddenError      the API is not enabled for this client (EnKash's 403)
    ├── ValidationError         the request was refused as invalid (400/412/422); field problems
    ├── NotFoundError           unknown coinConfigId
    ├── ConflictError           (company, event) already configured; existing_id when named
    │   └── DuplicateRequestError   this requestId was used before
    ├── RateLimitError          throttled (429, velocity limit) past the wait budget; retry_after
    ├── ServerError             5xx / gateway failure after the retry budget
    ├── BlockedError            a CDN or firewall challenge page: the API never saw the request
    ├── BadAnswerError          the server answered, but not in a form the toolkit can read
    ├── UnconfirmedError        a write whose outcome cannot be known; carries what was sent
    ├── TransportError          the server was not reached or did not answer (timeout, dropped)
    │   └── LoginUnavailableError   the login itself got no usable answer (wrong address, down)
    └── RevertRefused           (also a ValueError) a revert `toolkit.sync` will not do

    SheetError (a ValueError)   the analyst's file cannot be read as such a sheet (row, column
                                or part named); not about the API, so not an EnKashError

Messages never contain secrets: only what the server said and what we asked for by id.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

__all__ = [
    "AuthError",
    "BadAnswerError",
    "BlockedError",
    "ConflictError",
    "DuplicateRequestError",
    "EnKashError",
    "ForbiddenError",
    "LoginUnavailableError",
    "NotFoundError",
    "RateLimitError",
    "RevertRefused",
    "ServerError",
    "SheetError",
    "TransportError",
    "UnconfirmedError",
    "ValidationError",
    "find_config_id",
    "redact",
]

_CONFIG_ID_RE = re.compile(r"\b(WCC[0-9A-Z]+)\b")


class EnKashError(Exception):
    """Base of every API error. ``str()`` is a sentence an analyst can act on."""

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        response_code: int | str | None = None,
        request_id: str | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status
        self.response_code = response_code
        self.request_id = request_id
        self.body = body

    def __str__(self) -> str:
        parts = [self.message]
        detail = []
        if self.http_status is not None:
            detail.append(f"HTTP {self.http_status}")
        if self.response_code not in (None, 0, "0"):
            detail.append(f"code {self.response_code}")
        if detail:
            parts.append(f"({', '.join(detail)})")
        return " ".join(parts)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(message={self.message!r}, http_status={self.http_status!r}, "
            f"response_code={self.response_code!r})"
        )


class AuthError(EnKashError):
    """Credentials refused or token unusable. A refused login is never retried automatically."""


class ValidationError(EnKashError):
    """The request was refused as invalid; ``problems`` lists field-level reasons when known."""

    def __init__(self, message: str, *, problems: list[Any] | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.problems = list(problems or [])


class NotFoundError(EnKashError):
    """No configuration with that id."""


class ConflictError(EnKashError):
    """Already configured (company, event), or a requestId used before.

    ``existing_id`` is the coinConfigId the server named, when it named one.
    """

    def __init__(
        self,
        message: str,
        *,
        existing_id: str | None = None,
        candidates: tuple[str, ...] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.existing_id = existing_id if existing_id is not None else find_config_id(message)
        # Every id the answer named (the first is ``existing_id``): callers check them.
        self.candidates = tuple(candidates) or ((self.existing_id,) if self.existing_id else ())


class DuplicateRequestError(ConflictError):
    """The server says this requestId was used before (nothing was allocated this time)."""


class ForbiddenError(AuthError):
    """The server refused the call for this client (EnKash: "APIs not enabled"): a matter for
    EnKash support, not a token to renew nor a password to change."""


class BlockedError(EnKashError):
    """A CDN or web firewall answered with a challenge or block page: the API never saw the
    request. Usually the network (VPN, office proxy) or too many requests from one address."""


class BadAnswerError(EnKashError):
    """The server answered, but not in a form the toolkit can read (an HTML page on HTTP 200,
    a body that is not JSON, a payload of the wrong type). The server was reached."""


class UnconfirmedError(EnKashError):
    """A write whose outcome the toolkit cannot know: the request reached the server, its
    answer was lost, and this server's answers cannot confirm it safely. ``sent`` is the body
    that was sent; ``action`` is "create" or "allocate". Check in EnKash before trying again.
    """

    def __init__(self, message: str, *, sent: dict[str, Any], action: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.sent = dict(sent)
        self.action = action


class RateLimitError(EnKashError):
    """Too many requests, still refused after the retry budget."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(EnKashError):
    """The server failed (5xx), still failing after the retry budget."""


class TransportError(EnKashError):
    """No usable answer: connection refused or dropped, timeout, or a body that is not JSON."""


class LoginUnavailableError(TransportError):
    """The login got no usable answer (server down, wrong ENKASH_BASE_URL) after its own small
    retry budget. Nothing else was sent, so callers do not spend their retry budget on it."""


class RevertRefused(EnKashError, ValueError):
    """A revert the toolkit will not do: the configuration changed since, or the audit entry
    is not a successful change with before-values (creates and allocations cannot be undone).
    ``audit_id`` is the entry asked for."""

    def __init__(self, message: str, *, audit_id: int | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.audit_id = audit_id


class SheetError(ValueError):
    """The input cannot be read as a sheet of this kind, or is past a limit; the message says
    why (row, column or part) and what to send instead."""


def find_config_id(message: str | None) -> str | None:
    """The first coinConfigId (``WCC…``) named in a server message, if any."""
    if not message:
        return None
    match = _CONFIG_ID_RE.search(message)
    return match.group(1) if match else None


def redact(value: Any, secrets: Iterable[str | None]) -> Any:
    """``value`` with every secret (4+ characters) replaced by ``•••``.

    Text is scrubbed directly; lists and dicts (a JSON body) are scrubbed item by item, keys
    included, so a server that echoes a token or cookie never passes it on to an error.
    """
    shown = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)
    return _redact(value, shown) if shown else value


def _redact(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, "•••")
        return value
    if isinstance(value, dict):
        return {_redact(k, secrets): _redact(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact(v, secrets) for v in value)
    return value
