"""The local registry: every configuration the toolkit created, fetched or was told about, and an
audit log of every change — because the API cannot list configurations.

One SQLite file (``COINS_HOME/registry.sqlite3`` by default, WAL, schema through named
migrations in ``toolkit.db``), shared safely by the app, notebooks and the CLI at once. Rows are
kept per API server (``server_key``): the sandbox and the real EnKash never mix.

The registry is the client's recorder: ``CoinsClient`` calls ``record_call`` after every create,
get, update and allocate, from many threads at once. Each call is one short write transaction.
It runs no workflow: refreshing, importing ids and reverting are ``toolkit.sync``'s.

The package, one concept a module: `schema` (migrations, frame columns), `store` (`Registry`:
the file and its lifecycle), `recording` (the recorder), `queries` (configurations and
allocations as frames), `audit` (the audit log), `reports` (ids in, refresh/import reports out),
`rows` (shared conversions).

Audit actions: ``create``, ``update``, ``allocate``, ``revert`` (the toolkit's own writes, with
outcome ``ok`` or ``error`` and the error message), ``import`` (an id first learned through a
fetch), ``drift`` (a fetch found values changed outside the toolkit) and ``gone`` (a fetch of a
known id answered "not found"). Before/after values are the configuration's fields, never
secrets. Timestamps are UTC.
"""

from __future__ import annotations

from toolkit.errors import RevertRefused
from toolkit.registry.audit import RevertResult
from toolkit.registry.reports import read_ids, report_frame, report_summary
from toolkit.registry.schema import (
    ALLOCATION_COLUMNS,
    ALLOCATION_STATUSES,
    AUDIT_COLUMNS,
    MIGRATIONS,
    REPORT_COLUMNS,
    REVERTIBLE_ACTIONS,
)
from toolkit.registry.store import Registry

__all__ = [
    "ALLOCATION_COLUMNS",
    "ALLOCATION_STATUSES",
    "AUDIT_COLUMNS",
    "MIGRATIONS",
    "REPORT_COLUMNS",
    "REVERTIBLE_ACTIONS",
    "Registry",
    "RevertRefused",
    "RevertResult",
    "read_ids",
    "report_frame",
    "report_summary",
]
