"""Exit statuses, and the one place a library error becomes a one-line message and a status.

0 every row ended well · 1 some row invalid, failed, in conflict or unconfirmed (or the single
request was refused) · 2 usage or fatal error (bad credentials, unreadable file, server
unreachable) · 130 interrupted. Every command's handler raises; `translate` answers for all.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from toolkit.errors import (
    AuthError,
    BadAnswerError,
    BlockedError,
    ConflictError,
    EnKashError,
    ForbiddenError,
    LoginUnavailableError,
    NotFoundError,
    RateLimitError,
    RevertRefused,
    ServerError,
    TransportError,
    UnconfirmedError,
    ValidationError,
)

__all__ = [
    "BAD_REPORT_STATUSES",
    "BAD_STATUSES",
    "EXIT_FATAL",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_ROWS",
    "INTERRUPTED",
    "CliError",
    "rows_exit",
    "translate",
]

EXIT_OK = 0
EXIT_ROWS = 1
EXIT_FATAL = 2
EXIT_INTERRUPTED = 130
# Row statuses that make a bulk command exit 1; every other status ended well.
BAD_STATUSES = frozenset({"invalid", "failed", "conflict", "unconfirmed"})
# Registry report statuses (import-ids, refresh) that mean an id could not be handled.
BAD_REPORT_STATUSES = frozenset({"unknown", "invalid", "error"})
INTERRUPTED = "interrupted — run the same command again to resume"


class CliError(Exception):
    """A fatal problem to report in one line (exit 2 unless ``code`` says otherwise)."""

    def __init__(self, message: str, code: int = EXIT_FATAL) -> None:
        super().__init__(message)
        self.code = code


def rows_exit(counts: Mapping[str, int]) -> int:
    """The exit status row counts give: 1 when a row is invalid, failed, in conflict or
    unconfirmed, else 0."""
    return EXIT_ROWS if any(counts.get(s, 0) for s in BAD_STATUSES) else EXIT_OK


def _describe_os_error(exc: OSError) -> str:
    name = exc.filename
    reason = exc.strerror or str(exc)
    return f"{name}: {reason}" if name else reason


def translate(exc: BaseException) -> tuple[str, int]:
    """A library error as (one-line message, exit status); anything unknown re-raised with
    COINS_DEBUG=1, else reported in one line too (never a traceback for an analyst)."""
    if isinstance(exc, CliError):
        return str(exc), exc.code
    if isinstance(exc, UnconfirmedError):
        return str(exc), EXIT_ROWS
    if isinstance(exc, ForbiddenError):
        return f"EnKash refused this call for this client: {exc}", EXIT_FATAL
    if isinstance(exc, BlockedError):
        return (
            f"blocked before reaching EnKash: {exc}. Try from another network, or later",
            EXIT_FATAL,
        )
    if isinstance(exc, BadAnswerError):
        return f"the server's answer could not be read: {exc}", EXIT_FATAL
    if isinstance(exc, AuthError):
        if "ENKASH_" in str(exc):  # the client's message names what to check already
            return f"credentials were refused: {exc}", EXIT_FATAL
        return (
            f"credentials were refused ({exc}); check ENKASH_CLIENT_ID/ENKASH_CLIENT_SECRET and "
            "ENKASH_USERNAME/ENKASH_PASSWORD. Not retried: 3 failed logins lock the account",
            EXIT_FATAL,
        )
    if isinstance(exc, TransportError):
        # "Cannot reach" only when nothing reached the server; a timeout or a dropped answer
        # means it was reached and did not answer.
        reached = not any(w in str(exc) for w in ("could not connect", "was not found"))
        if reached and not isinstance(exc, LoginUnavailableError):
            return f"the server did not answer: {exc}", EXIT_FATAL
        return f"cannot reach the server: {exc}", EXIT_FATAL
    if isinstance(exc, NotFoundError):
        return f"not found: {exc}", EXIT_ROWS
    if isinstance(exc, ConflictError):
        named = exc.existing_id and exc.existing_id not in str(exc)
        existing = f" (existing: {exc.existing_id})" if named else ""
        return f"conflict: {exc}{existing}", EXIT_ROWS
    if isinstance(exc, ValidationError):
        problems = "; ".join(str(p) for p in exc.problems)
        return f"refused as invalid: {exc}" + (f" — {problems}" if problems else ""), EXIT_ROWS
    if isinstance(exc, RevertRefused):
        return f"not reverted: {exc}", EXIT_ROWS
    if isinstance(exc, RateLimitError | ServerError):
        return f"the server kept failing, try again later: {exc}", EXIT_ROWS
    if isinstance(exc, EnKashError):
        return str(exc), EXIT_FATAL
    if isinstance(exc, OSError):
        return _describe_os_error(exc), EXIT_FATAL
    if isinstance(exc, ValueError):  # includes toolkit.bulk.SheetError
        return str(exc), EXIT_FATAL
    if os.environ.get("COINS_DEBUG"):
        raise exc
    return (
        f"unexpected {type(exc).__name__}: {exc} (set COINS_DEBUG=1 to see the traceback, "
        "and please report it)",
        EXIT_FATAL,
    )
