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

To add a dialect: a module here with a ``Dialect`` subclass (a ``name``, the methods that
differ), listed in ``DIALECTS`` below; then its section in docs/api.md and its tests in
tests/test_sandbox_dialects.py.
"""

from __future__ import annotations

from toolkit.sandbox.dialects.base import (
    ALLOCATED,
    RATE_LIMIT_STYLES,
    Dialect,
    OAuthRefusal,
    ProjectDialect,
    Refusal,
    envelope_response,
    expired_token_refusal,
)
from toolkit.sandbox.dialects.cdn import CdnDialect
from toolkit.sandbox.dialects.enkash import EnKashDialect
from toolkit.sandbox.dialects.lenient import LenientDialect
from toolkit.sandbox.dialects.spring import SpringDialect

__all__ = [
    "ALLOCATED",
    "DEFAULT_DIALECT",
    "DIALECTS",
    "RATE_LIMIT_STYLES",
    "CdnDialect",
    "Dialect",
    "EnKashDialect",
    "LenientDialect",
    "OAuthRefusal",
    "ProjectDialect",
    "Refusal",
    "SpringDialect",
    "dialect_named",
    "envelope_response",
    "expired_token_refusal",
]

# The dialect of the embedded sandbox and of ``start_sandbox()`` without ``dialect=``: the
# closest reading of EnKash (its sibling APIs' documented conventions).
DEFAULT_DIALECT = "enkash"

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
