"""The local registry: every configuration the toolkit created, fetched or was told about, and an
audit log of every change — because the API cannot list configurations.

One SQLite file (``COINS_HOME/registry.sqlite3`` by default, WAL, schema through named
migrations in ``toolkit.db``), shared safely by the app, notebooks and the CLI at once. Rows are
kept per API server (``server_key``): the sandbox and the real EnKash never mix.

The registry is the client's recorder: ``CoinsClient`` calls ``record_call`` after every create,
get, update and allocate, from many threads at once. Each call is one short write transaction.

Audit actions: ``create``, ``update``, ``allocate``, ``revert`` (the toolkit's own writes, with
outcome ``ok`` or ``error`` and the error message), ``import`` (an id first learned through a
fetch), ``drift`` (a fetch found values changed outside the toolkit) and ``gone`` (a fetch of a
known id answered "not found"). Before/after values are the configuration's fields, never
secrets. Timestamps are UTC.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from toolkit import db, errors
from toolkit.changes import CONFIG_FIELDS, describe_changes
from toolkit.errors import (
    EnKashError,
    NotFoundError,
    RevertRefused,
    UnconfirmedError,
    ValidationError,
)
from toolkit.files import private_dir
from toolkit.frames import CONFIGURATION_DTYPE, configs_to_frame
from toolkit.models import Allocation, CoinConfig, check_configuration
from toolkit.settings import Settings, sandbox_server_key

if TYPE_CHECKING:
    from toolkit.client import ApiCall, CoinsClient

__all__ = [
    "ALLOCATION_COLUMNS",
    "ALLOCATION_STATUSES",
    "AUDIT_COLUMNS",
    "MIGRATIONS",
    "REPORT_COLUMNS",
    "Registry",
    "RevertRefused",
    "RevertResult",
    "read_ids",
    "report_summary",
]

logger = logging.getLogger(__name__)

MIGRATIONS: list[db.Migration] = [
    (
        "registry_0001_configs_and_audit",
        """
        CREATE TABLE IF NOT EXISTS configs (
            server_key      TEXT NOT NULL,
            coin_config_id  TEXT NOT NULL,
            company_id      TEXT,
            event           TEXT,
            configuration   TEXT,
            amount          INTEGER,
            status          TEXT NOT NULL DEFAULT 'active',
            created_at      TEXT NOT NULL,
            updated_at      TEXT NOT NULL,
            last_synced_at  TEXT,
            source          TEXT,
            PRIMARY KEY (server_key, coin_config_id)
        );
        CREATE INDEX IF NOT EXISTS configs_by_pair ON configs (server_key, company_id, event);
        CREATE TABLE IF NOT EXISTS audit (
            audit_id          INTEGER PRIMARY KEY AUTOINCREMENT,
            server_key        TEXT NOT NULL,
            at                TEXT NOT NULL,
            action            TEXT NOT NULL,
            outcome           TEXT NOT NULL,
            coin_config_id    TEXT,
            company_id        TEXT,
            event             TEXT,
            actor             TEXT,
            source            TEXT,
            before_json       TEXT,
            after_json        TEXT,
            request_json      TEXT,
            message           TEXT,
            reverts_audit_id  INTEGER REFERENCES audit (audit_id)
        );
        CREATE INDEX IF NOT EXISTS audit_by_config ON audit (server_key, coin_config_id);
        CREATE INDEX IF NOT EXISTS audit_by_time ON audit (server_key, at);
        """,
    ),
    (
        # One row per requestId that awarded (or may have awarded) coins, with the coins the
        # configuration gave at that moment: what `toolkit.cost` adds up. Earlier successful
        # allocations are filled in from the audit log (coins from the configuration's values
        # as last audited before the allocation, else as known now).
        "registry_0002_allocations",
        """
        CREATE TABLE IF NOT EXISTS allocations (
            server_key      TEXT NOT NULL,
            request_id      TEXT NOT NULL,
            at              TEXT NOT NULL,
            company_id      TEXT,
            event           TEXT,
            user_id         TEXT,
            coin_config_id  TEXT,
            coins           INTEGER,
            status          TEXT NOT NULL,
            source          TEXT,
            actor           TEXT,
            audit_id        INTEGER REFERENCES audit (audit_id),
            confirmed_at    TEXT,
            PRIMARY KEY (server_key, request_id)
        );
        CREATE INDEX IF NOT EXISTS allocations_by_time ON allocations (server_key, at);
        CREATE INDEX IF NOT EXISTS allocations_by_audit ON allocations (audit_id);
        INSERT OR IGNORE INTO allocations (server_key, request_id, at, company_id, event,
            user_id, coin_config_id, coins, status, source, actor, audit_id)
        SELECT a.server_key, json_extract(a.request_json, '$.requestId'), a.at, a.company_id,
            a.event, json_extract(a.request_json, '$.userId'), a.coin_config_id,
            COALESCE(
                (SELECT json_extract(h.after_json, '$.amount') FROM audit h
                  WHERE h.server_key = a.server_key AND h.coin_config_id = a.coin_config_id
                    AND h.outcome = 'ok' AND h.after_json IS NOT NULL AND h.at <= a.at
                  ORDER BY h.at DESC, h.audit_id DESC LIMIT 1),
                (SELECT c.amount FROM configs c
                  WHERE c.server_key = a.server_key AND c.coin_config_id = a.coin_config_id)
            ),
            CASE WHEN a.message LIKE 'already allocated earlier%' THEN 'confirmed'
                 ELSE 'allocated' END,
            a.source, a.actor, a.audit_id
        FROM audit a
        WHERE a.action = 'allocate' AND a.outcome = 'ok' AND json_valid(a.request_json)
          AND json_extract(a.request_json, '$.requestId') IS NOT NULL
        ORDER BY a.audit_id;
        """,
    ),
]

AUDIT_COLUMNS: tuple[str, ...] = (
    "audit_id",
    "at",
    "action",
    "outcome",
    "coinConfigId",
    "companyId",
    "event",
    "actor",
    "source",
    "before_amount",
    "after_amount",
    "before_configuration",
    "after_configuration",
    "changes",
    "message",
    "reverts_audit_id",
    "before",
    "after",
    "request",
    # Allocations only: who was awarded, under which request id, the coins the entry awarded
    # (blank when it awarded nothing new) and the bulk run that sent it.
    "userId",
    "requestId",
    "coins",
    "bulk_run",
)
# Registry.allocations_frame: one row per requestId that awarded coins (toolkit.cost's input).
ALLOCATION_COLUMNS: tuple[str, ...] = (
    "at",
    "companyId",
    "event",
    "userId",
    "requestId",
    "coinConfigId",
    "coins",
    "status",
    "source",
    "actor",
    "bulk_run",
    "bulk_sheet",
    "audit_id",
)
# Allocation record statuses: `allocated` (the server said so), `confirmed` (a repeat of our
# requestId proved an earlier send done), `unconfirmed` (the answer was lost; maybe awarded).
ALLOCATION_STATUSES = ("allocated", "confirmed", "unconfirmed")
REPORT_COLUMNS: tuple[str, ...] = (
    "coinConfigId",
    "status",
    "companyId",
    "event",
    "configuration",
    "amount",
    "changes",
    "message",
)
_FIELDS = CONFIG_FIELDS
_SECRET_HINTS = ("password", "secret", "token", "authorization", "cookie")
REVERTIBLE_ACTIONS = frozenset({"update", "revert", "drift"})


@dataclass(frozen=True, slots=True)
class RevertResult:
    """A revert that was applied: its own audit entry, the entry it undid, and the values."""

    audit_id: int
    reverted_audit_id: int
    coin_config_id: str
    before: CoinConfig
    after: CoinConfig

    def __str__(self) -> str:
        changes = describe_changes(self.before.to_payload(), self.after.to_payload())
        return (
            f"{self.coin_config_id}: {changes or 'no change'} "
            f"(audit entry {self.audit_id} reverts {self.reverted_audit_id})"
        )


# --------------------------------------------------------------------------- reading ids

_ID_SEPARATORS = re.compile(r"[\s,;]+")


def _id_key(text: str) -> str:
    return text.strip().lower().replace("_", "").replace(" ", "")


def read_ids(data: str | bytes) -> list[str]:
    """coinConfigIds from what an analyst has: pasted text or a file's bytes.

    A CSV with a ``coinConfigId`` column (any case, ``coin_config_id``, ``Coin Config ID``) gives
    that column; otherwise every token separated by lines, spaces, commas or semicolons, with
    ``#`` comment lines skipped. Each id once, in order. ``ValueError`` for binary data.
    """
    if isinstance(data, bytes):
        if b"\x00" in data[:4096] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise ValueError("this is not text: expected coinConfigIds, one a line, or a CSV")
        for encoding in ("utf-8-sig", "utf-16", "cp1252"):
            try:
                text = data.decode(encoding)
                break
            except UnicodeDecodeError:
                continue
        else:  # pragma: no cover - cp1252 decodes nearly everything
            text = data.decode("latin-1")
    else:
        text = data
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    if "coinconfigid" in _id_key(lines[0]):
        try:
            dialect: Any = csv.Sniffer().sniff(lines[0], delimiters=",;\t")
        except csv.Error:
            dialect = csv.excel
        reader = csv.reader(io.StringIO("\n".join(lines)), dialect)
        header = [_id_key(h) for h in next(reader)]
        column = next(i for i, name in enumerate(header) if "coinconfigid" in name)
        ids = [row[column].strip() for row in reader if len(row) > column and row[column].strip()]
    else:
        ids = [
            token
            for line in lines
            if not line.lstrip().startswith("#")
            for token in _ID_SEPARATORS.split(line.strip())
            if token
        ]
    return list(dict.fromkeys(ids))


# --------------------------------------------------------------------------- helpers


def _iso(moment: datetime | None = None) -> str:
    moment = moment or datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _iso_from(value: datetime | str | pd.Timestamp) -> str:
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return _iso(stamp.to_pydatetime())


def _values(config: CoinConfig | None) -> dict[str, Any] | None:
    return None if config is None else config.to_payload(include_id=False)


def _dumps(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


def _clean_request(request: dict[str, Any] | None) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for key, value in (request or {}).items():
        if any(hint in str(key).lower() for hint in _SECRET_HINTS):
            continue
        clean[str(key)] = (
            value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
        )
    return clean


def _config_from_row(row: Any) -> CoinConfig:
    configuration, _ = check_configuration(row["configuration"])
    return CoinConfig(
        coin_config_id=row["coin_config_id"],
        company_id=row["company_id"],
        event=row["event"],
        configuration=configuration,
        amount=row["amount"],
    )


def _as_list(value: str | Iterable[str] | None) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def report_summary(report: pd.DataFrame) -> str:
    """One line for a refresh / import report: counts per status."""
    if report is None or report.empty:
        return "Nothing to do: no configurations."
    counts = report["status"].value_counts()
    return ", ".join(f"{int(n)} {status}" for status, n in counts.items())


# --------------------------------------------------------------------------- the registry


class Registry:
    """Known configurations and the audit log of one server in one SQLite file.

    ``Registry()`` uses ``Settings.from_env()`` for the file (``COINS_HOME``), the server key
    (the base URL, or the embedded sandbox's file) and the actor (``COINS_ACTOR`` or the OS
    user). With ``client`` it becomes the client's recorder and keys rows by
    ``client.server_key``.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        client: CoinsClient | None = None,
        server_key: str | None = None,
        actor: str | None = None,
    ) -> None:
        settings: Settings | None = None
        if path is None or actor is None or (server_key is None and client is None):
            settings = Settings.from_env()
        if client is not None:
            if server_key is not None and server_key != client.server_key:
                raise ValueError(
                    f"server_key {server_key!r} differs from the client's {client.server_key!r}"
                )
            server_key = client.server_key
        if server_key is None:
            assert settings is not None
            server_key = settings.base_url or sandbox_server_key(settings.sandbox_db_path)
        self.path = Path(path) if path is not None else settings.registry_path  # type: ignore[union-attr]
        self.server_key = server_key
        # An actor given here wins over the client's; otherwise the client's, then settings'.
        self._explicit_actor = actor
        self.actor = actor or settings.actor  # type: ignore[union-attr]
        self.client = client
        self._lock = threading.RLock()
        self._local = threading.local()
        if path is None:  # the file under COINS_HOME: that folder is the user's alone (0700)
            private_dir(self.path.parent, tighten=True)
        self._conn = db.connect(self.path)
        self._conn.row_factory = _row_factory
        db.apply_migrations(self._conn, MIGRATIONS)
        if client is not None:
            client.recorder = self

    def __repr__(self) -> str:
        return f"Registry(path={str(self.path)!r}, server_key={self.server_key!r})"

    # -- lifecycle ----------------------------------------------------------------------

    def close(self) -> None:
        """Close the file; a client still pointing here stops recording into it."""
        if self.client is not None and getattr(self.client, "recorder", None) is self:
            self.client.recorder = None
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[Any]:
        with self._lock, db.transaction(self._conn) as conn:
            yield conn

    def _read(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return self._conn.execute(sql, tuple(params)).fetchall()

    # -- recording ----------------------------------------------------------------------

    def record_call(self, call: ApiCall) -> None:
        """Remember what one API call showed and audit it (the client's Recorder hook)."""
        self.record_calls([call])

    def record_calls(self, calls: Iterable[ApiCall]) -> None:
        """Record several calls in one all-or-nothing transaction (bulk runs batch them)."""
        handlers = {
            "create": self._record_create,
            "get": self._record_get,
            "update": self._record_update,
            "allocate": self._record_allocate,
        }
        work = []
        for call in calls:
            handler = handlers.get(call.action)
            if handler is None:
                logger.warning("The registry does not record %r calls", call.action)
                continue
            context = {
                "server_key": call.server_key or self.server_key,
                "at": _iso(call.at),
                "actor": self._explicit_actor or call.actor or self.actor,
                "source": call.source,
            }
            work.append((handler, call, context))
        if not work:
            return
        with self._write() as conn:
            for handler, call, context in work:
                handler(conn, call, context)

    def _known_row(self, conn: Any, server_key: str, coin_config_id: str | None) -> Any:
        if not coin_config_id:
            return None
        return conn.execute(
            "SELECT * FROM configs WHERE server_key = ? AND coin_config_id = ?",
            (server_key, coin_config_id),
        ).fetchone()

    def _audit(
        self,
        conn: Any,
        context: dict[str, Any],
        *,
        action: str,
        outcome: str,
        coin_config_id: str | None,
        company_id: str | None,
        event: str | None,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
        request: dict[str, Any] | None = None,
        message: str | None = None,
        reverts_audit_id: int | None = None,
    ) -> int:
        cur = conn.execute(
            "INSERT INTO audit (server_key, at, action, outcome, coin_config_id, company_id,"
            " event, actor, source, before_json, after_json, request_json, message,"
            " reverts_audit_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                context["server_key"],
                context["at"],
                action,
                outcome,
                coin_config_id,
                company_id,
                event,
                context["actor"],
                context["source"],
                _dumps(before),
                _dumps(after),
                _dumps(_clean_request(request)) if request is not None else None,
                message,
                reverts_audit_id,
            ),
        )
        return int(cur.lastrowid)

    def _store(self, conn: Any, context: dict[str, Any], config: CoinConfig, known: Any) -> None:
        """Insert or update a configuration's values as last confirmed by the server."""
        at = context["at"]
        values = (config.company_id, config.event, _text(config.configuration), config.amount)
        if known is None:
            conn.execute(
                "INSERT INTO configs (server_key, coin_config_id, company_id, event,"
                " configuration, amount, status, created_at, updated_at, last_synced_at, source)"
                " VALUES (?, ?, ?, ?, ?, ?, 'active', ?, ?, ?, ?)",
                (
                    context["server_key"],
                    config.coin_config_id,
                    *values,
                    at,
                    at,
                    at,
                    context["source"],
                ),
            )
            return
        changed = not config.same_values(_config_from_row(known)) or known["status"] != "active"
        if changed:
            conn.execute(
                "UPDATE configs SET company_id = ?, event = ?, configuration = ?, amount = ?,"
                " status = 'active', updated_at = ?, last_synced_at = ?, source = ?"
                " WHERE server_key = ? AND coin_config_id = ?",
                (*values, at, at, context["source"], context["server_key"], config.coin_config_id),
            )
        else:
            conn.execute(
                "UPDATE configs SET last_synced_at = ? WHERE server_key = ? AND coin_config_id = ?",
                (at, context["server_key"], config.coin_config_id),
            )

    def _record_create(self, conn: Any, call: ApiCall, context: dict[str, Any]) -> None:
        request = call.request or {}
        result = call.result if isinstance(call.result, CoinConfig) else None
        if result is not None and result.coin_config_id:
            known = self._known_row(conn, context["server_key"], result.coin_config_id)
            config = result.merge(_config_from_row(known) if known is not None else None)
            self._store(conn, context, config, known)
            self._audit(
                conn,
                context,
                action="create",
                outcome="ok",
                coin_config_id=config.coin_config_id,
                company_id=config.company_id,
                event=config.event,
                after=_values(config),
                request=request,
            )
            return
        self._audit(
            conn,
            context,
            action="create",
            outcome=_error_outcome(call.error),
            coin_config_id=getattr(call.error, "existing_id", None),
            company_id=_str_or_none(request.get("companyId")),
            event=_str_or_none(request.get("event")),
            request=request,
            message=str(call.error) if call.error is not None else "no configuration returned",
        )

    def _record_get(self, conn: Any, call: ApiCall, context: dict[str, Any]) -> None:
        config_id = getattr(call.result, "coin_config_id", None) or _stripped(call.coin_config_id)
        known = self._known_row(conn, context["server_key"], config_id)
        result = call.result if isinstance(call.result, CoinConfig) else None
        if result is None:
            gone = isinstance(call.error, NotFoundError) and known is not None
            if gone and known["status"] != "gone":
                conn.execute(
                    "UPDATE configs SET status = 'gone', updated_at = ?, last_synced_at = ?"
                    " WHERE server_key = ? AND coin_config_id = ?",
                    (context["at"], context["at"], context["server_key"], config_id),
                )
                before = _config_from_row(known)
                self._audit(
                    conn,
                    context,
                    action="gone",
                    outcome="ok",
                    coin_config_id=config_id,
                    company_id=before.company_id,
                    event=before.event,
                    before=_values(before),
                    message=str(call.error),
                )
            return
        before = _config_from_row(known) if known is not None else None
        config = result.merge(before)
        self._store(conn, context, config, known)
        if before is None:
            action = "import"
        elif not config.same_values(before):
            action = "drift"
        else:
            return
        self._audit(
            conn,
            context,
            action=action,
            outcome="ok",
            coin_config_id=config.coin_config_id,
            company_id=config.company_id,
            event=config.event,
            before=_values(before),
            after=_values(config),
        )

    def _record_update(self, conn: Any, call: ApiCall, context: dict[str, Any]) -> None:
        config_id = getattr(call.result, "coin_config_id", None) or _stripped(call.coin_config_id)
        known = self._known_row(conn, context["server_key"], config_id)
        before = _config_from_row(known) if known is not None else call.known_before
        reverting = getattr(self._local, "reverting", None)
        action, reverts = "update", None
        if reverting is not None and reverting[0] == config_id:
            action, reverts = "revert", reverting[1]
        result = call.result if isinstance(call.result, CoinConfig) else None
        request = {k: v for k, v in (call.request or {}).items() if k != "coinConfigId"}
        if result is not None:
            config = result.merge(before)
            self._store(conn, context, config, known)
            audit_id = self._audit(
                conn,
                context,
                action=action,
                outcome="ok",
                coin_config_id=config_id,
                company_id=config.company_id,
                event=config.event,
                before=_values(before),
                after=_values(config),
                request=request,
                reverts_audit_id=reverts,
            )
        else:
            if isinstance(call.error, NotFoundError) and known is not None:
                conn.execute(
                    "UPDATE configs SET status = 'gone', last_synced_at = ?"
                    " WHERE server_key = ? AND coin_config_id = ?",
                    (context["at"], context["server_key"], config_id),
                )
            audit_id = self._audit(
                conn,
                context,
                action=action,
                outcome="error",
                coin_config_id=config_id,
                company_id=before.company_id if before else None,
                event=before.event if before else None,
                before=_values(before),
                request=request,
                message=str(call.error) if call.error is not None else "no answer",
                reverts_audit_id=reverts,
            )
        if reverting is not None and action == "revert":
            self._local.revert_audit_id = audit_id

    def _record_allocate(self, conn: Any, call: ApiCall, context: dict[str, Any]) -> None:
        request = call.request or {}
        result = call.result if isinstance(call.result, Allocation) else None
        company = result.company_id if result else _str_or_none(request.get("companyId"))
        event = result.event if result else _str_or_none(request.get("event"))
        pair = conn.execute(
            "SELECT coin_config_id, amount FROM configs WHERE server_key = ? AND company_id = ?"
            " AND event = ? AND status = 'active' ORDER BY updated_at DESC LIMIT 1",
            (context["server_key"], company, event),
        ).fetchone()
        if result is not None:
            message = result.message
            if result.already_done:
                message = f"already allocated earlier with request id {result.request_id}"
            outcome = "ok"
        else:
            message = str(call.error) if call.error is not None else "no answer"
            outcome = _error_outcome(call.error)
        audit_id = self._audit(
            conn,
            context,
            action="allocate",
            outcome=outcome,
            coin_config_id=pair["coin_config_id"] if pair else None,
            company_id=company,
            event=event,
            request=request,
            message=message,
        )
        self._record_award(conn, call, context, result, pair, audit_id)

    def _record_award(
        self,
        conn: Any,
        call: ApiCall,
        context: dict[str, Any],
        result: Allocation | None,
        pair: Any,
        audit_id: int,
    ) -> None:
        """The allocation record `toolkit.cost` counts: once per requestId, with the coins the
        pair's configuration gave at this moment. A repeat that proves an earlier send done
        (``already_done``) is ``confirmed`` unless that send is recorded already; a lost answer
        (`UnconfirmedError`) is ``unconfirmed`` until a later answer settles it."""
        request = call.request or {}
        unconfirmed = getattr(errors, "UnconfirmedError", None)
        if result is not None:
            status = "confirmed" if result.already_done else "allocated"
            request_id, user_id = result.request_id, result.user_id
        elif unconfirmed is not None and isinstance(call.error, unconfirmed):
            status = "unconfirmed"
            request_id = _str_or_none(request.get("requestId"))
            user_id = _str_or_none(request.get("userId"))
        else:
            return  # refused: nothing was awarded
        if not request_id:
            return
        conn.execute(
            "INSERT INTO allocations (server_key, request_id, at, company_id, event, user_id,"
            " coin_config_id, coins, status, source, actor, audit_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (server_key, request_id) DO UPDATE SET status = excluded.status,"
            " audit_id = excluded.audit_id, confirmed_at = excluded.at,"
            " coins = COALESCE(allocations.coins, excluded.coins)"
            " WHERE allocations.status = 'unconfirmed' AND excluded.status != 'unconfirmed'",
            (
                context["server_key"],
                request_id,
                context["at"],
                result.company_id if result else _str_or_none(request.get("companyId")),
                result.event if result else _str_or_none(request.get("event")),
                user_id,
                pair["coin_config_id"] if pair else None,
                pair["amount"] if pair else None,
                status,
                context["source"],
                context["actor"],
                audit_id,
            ),
        )

    # -- reading ------------------------------------------------------------------------

    def _rows(self, *, include_gone: bool = False) -> list[dict[str, Any]]:
        status = "" if include_gone else " AND status = 'active'"
        return self._read(
            "SELECT coin_config_id AS coinConfigId, company_id AS companyId, event,"
            " configuration, amount, created_at, updated_at, last_synced_at, source, status"
            f" FROM configs WHERE server_key = ?{status} ORDER BY created_at, coin_config_id",
            (self.server_key,),
        )

    def to_frame(self, *, include_gone: bool = False) -> pd.DataFrame:
        """This server's known configurations (``toolkit.frames`` columns and dtypes, with the
        metadata columns). ``include_gone`` adds ids the server no longer knows, and a
        ``status`` column (active/gone)."""
        rows = self._rows(include_gone=include_gone)
        frame = configs_to_frame(rows, metadata=True)
        if include_gone:
            frame["status"] = pd.array([r["status"] for r in rows], dtype="str")
        return frame

    def get(self, coin_config_id: str) -> CoinConfig | None:
        """The configuration as last known here (no HTTP); None when unknown or gone."""
        rows = self._read(
            "SELECT * FROM configs WHERE server_key = ? AND coin_config_id = ?"
            " AND status = 'active'",
            (self.server_key, coin_config_id),
        )
        return _config_from_row(rows[0]) if rows else None

    def find(self, company_id: str, event: str) -> CoinConfig | None:
        """The known configuration of a (company, event) pair, if any (no HTTP)."""
        rows = self._read(
            "SELECT * FROM configs WHERE server_key = ? AND company_id = ? AND event = ?"
            " AND status = 'active' ORDER BY updated_at DESC LIMIT 1",
            (self.server_key, company_id, event),
        )
        return _config_from_row(rows[0]) if rows else None

    def known_pairs(self) -> pd.DataFrame:
        """One row per known (companyId, event): coinConfigId, companyId, event,
        configuration, amount — the bulk form of ``find``, for planning."""
        rows = self._read(
            "SELECT coin_config_id AS coinConfigId, company_id AS companyId, event,"
            " configuration, amount FROM configs WHERE server_key = ? AND status = 'active'"
            " AND company_id IS NOT NULL AND event IS NOT NULL"
            " ORDER BY company_id, event, updated_at",
            (self.server_key,),
        )
        frame = configs_to_frame(rows, metadata=False)
        return frame.drop_duplicates(["companyId", "event"], keep="last").reset_index(drop=True)

    def allocations_frame(
        self,
        *,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        company_id: str | Iterable[str] | None = None,
        event: str | Iterable[str] | None = None,
        status: str | Iterable[str] | None = None,
        bulk_runs: bool = True,
    ) -> pd.DataFrame:
        """Every allocation this server's registry recorded, oldest first (ALLOCATION_COLUMNS):
        one row per requestId, ``coins`` as configured at that moment (blank when the
        configuration was not known here), ``status`` (ALLOCATION_STATUSES) and the bulk run
        (journal run id and sheet name) that sent it, if any (``bulk_runs=False`` skips that
        look-up: the columns stay blank). ``since`` inclusive, ``until`` exclusive; text
        filters take one value or several. Read in batches: memory stays near the frame's."""
        where = ["server_key = ?"]
        params: list[Any] = [self.server_key]
        for column, value in (("company_id", company_id), ("event", event), ("status", status)):
            values = _as_list(value)
            if values is not None:
                where.append(f"{column} IN ({', '.join('?' * len(values))})")
                params.extend(values)
        if since is not None:
            where.append("at >= ?")
            params.append(_iso_from(since))
        if until is not None:
            where.append("at < ?")
            params.append(_iso_from(until))
        # Without a time filter every row is wanted: a plain scan beats the time index's
        # row-by-row look-ups. Rows are put in time order below, not by SQLite.
        table = "allocations" if since or until else "allocations NOT INDEXED"
        sql = (
            "SELECT at, company_id, event, user_id, request_id, coin_config_id, coins, status,"
            f" source, actor, audit_id FROM {table} WHERE " + " AND ".join(where)
        )
        parts = []
        with self._lock:
            cursor = self._conn.cursor()
            cursor.row_factory = None  # plain tuples, turned into columns a batch at a time
            cursor.execute(sql, params)
            while rows := cursor.fetchmany(_ALLOCATION_BATCH):
                parts.append(_allocation_batch(rows))
        frame = pd.concat(parts, ignore_index=True) if parts else _allocation_batch([])
        if len(frame) > 1:
            order = np.lexsort(
                (
                    frame["audit_id"].to_numpy(dtype="float64", na_value=np.inf),
                    frame["at"].array.asi8,
                )
            )
            frame = frame.take(order).reset_index(drop=True)
        runs = self._bulk_runs(frame["requestId"].tolist()) if bulk_runs and len(frame) else {}
        if runs:
            found = [runs.get(r, (None, None)) for r in frame["requestId"].tolist()]
            frame["bulk_run"] = pd.array([f[0] for f in found], dtype="str")
            frame["bulk_sheet"] = pd.array([f[1] for f in found], dtype="str")
        return frame[list(ALLOCATION_COLUMNS)]

    def _bulk_runs(self, request_ids: list[str | None]) -> dict[str, tuple[str, str | None]]:
        """requestId → (run id, sheet name) of the bulk allocation run that first sent it,
        from the journal in this file (none when the journal lives elsewhere)."""
        wanted = {r for r in request_ids if r}
        if not wanted:
            return {}
        sql = (
            "SELECT b.request_id, b.run_id, r.source_name FROM bulk_rows b"
            " JOIN bulk_runs r ON r.run_id = b.run_id"
            " WHERE r.kind = 'allocations' AND r.server_key = ? AND b.attempts > 0"
            " AND b.request_id IS NOT NULL"
        )
        params: list[Any] = [self.server_key]
        if len(wanted) <= 500:
            sql += f" AND b.request_id IN ({', '.join('?' * len(wanted))})"
            params.extend(sorted(wanted))
        try:
            with self._lock:
                cursor = self._conn.cursor()
                cursor.row_factory = None
                rows = cursor.execute(sql + " ORDER BY r.started_at DESC", params).fetchall()
        except sqlite3.OperationalError:  # no journal in this file (yet)
            return {}
        # Newest first, so the earliest run that sent a requestId is the one kept.
        return {request: (run, sheet) for request, run, sheet in rows if request in wanted}

    # -- fetching -----------------------------------------------------------------------

    def _require_client(self, what: str) -> CoinsClient:
        if self.client is None:
            raise RuntimeError(f"{what} needs a client: Registry(path, client=CoinsClient(...))")
        return self.client

    def _fetch_all(
        self,
        ids: list[str],
        *,
        concurrency: int,
        progress: Callable[[int, int], Any] | None,
        source: str | None,
    ) -> list[tuple[CoinConfig | None, EnKashError | None]]:
        """GET every id with at most ``concurrency`` in flight; results in input order."""
        client = self._require_client("Fetching")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        records_itself = getattr(client, "recorder", None) is self
        total = len(ids)
        results: list[tuple[CoinConfig | None, EnKashError | None]] = [(None, None)] * total

        def fetch(config_id: str) -> tuple[CoinConfig | None, EnKashError | None]:
            try:
                config = client.get_config(config_id, source=source)
                outcome: tuple[CoinConfig | None, EnKashError | None] = (config, None)
            except EnKashError as exc:
                outcome = (None, exc)
            if not records_itself:
                self._record_fetch(config_id, *outcome, source=source)
            return outcome

        if progress is not None:
            progress(0, total)
        if not total:
            return results
        with ThreadPoolExecutor(max_workers=min(concurrency, total)) as pool:
            futures = {pool.submit(fetch, config_id): i for i, config_id in enumerate(ids)}
            for done, future in enumerate(as_completed(futures), start=1):
                results[futures[future]] = future.result()
                if progress is not None:
                    progress(done, total)
        return results

    def _record_fetch(
        self,
        config_id: str,
        config: CoinConfig | None,
        error: EnKashError | None,
        *,
        source: str | None,
    ) -> None:
        from toolkit.client import ApiCall

        self.record_call(
            ApiCall(
                action="get",
                server_key=self.server_key,
                coin_config_id=config_id,
                request={"coinConfigId": config_id},
                result=config,
                error=error,
                source=source or getattr(self.client, "source", "library"),
                actor=self.actor,
            )
        )

    @staticmethod
    def _report(rows: list[dict[str, Any]]) -> pd.DataFrame:
        frame = configs_to_frame(
            [{k: r.get(k) for k in ("coinConfigId", *_FIELDS)} for r in rows], metadata=False
        )
        frame.insert(1, "status", pd.array([r["status"] for r in rows], dtype="str"))
        frame["changes"] = pd.array([r.get("changes") for r in rows], dtype="str")
        frame["message"] = pd.array([r.get("message") for r in rows], dtype="str")
        frame = frame[list(REPORT_COLUMNS)]
        frame.attrs["summary"] = report_summary(frame)
        return frame

    def import_ids(
        self,
        ids: Iterable[str],
        *,
        progress: Callable[[int, int], Any] | None = None,
        concurrency: int = 8,
        source: str | None = None,
    ) -> pd.DataFrame:
        """Fetch ids learned elsewhere and remember them. Never stops on a bad id.

        Returns one row per distinct id (REPORT_COLUMNS) with status ``imported`` (new here),
        ``known`` (already known, unchanged), ``drift`` (known, changed outside), ``unknown``
        (the server has no such id), ``invalid`` (not an id) or ``error`` (see message).
        """
        wanted = [str(i).strip() for i in ids if i is not None and str(i).strip()]
        wanted = list(dict.fromkeys(wanted))
        before = {cid: self.get(cid) for cid in wanted}
        fetched = self._fetch_all(wanted, concurrency=concurrency, progress=progress, source=source)
        rows = []
        for config_id, (config, error) in zip(wanted, fetched, strict=True):
            known = before[config_id]
            row: dict[str, Any] = {"coinConfigId": config_id}
            if config is not None:
                merged = config.merge(known)
                row.update(merged.to_payload(include_id=False))
                if known is None:
                    row["status"] = "imported"
                elif merged.same_values(known):
                    row["status"] = "known"
                else:
                    row["status"] = "drift"
                    row["changes"] = describe_changes(_values(known), _values(merged))
            else:
                row["status"] = (
                    "unknown"
                    if isinstance(error, NotFoundError)
                    else "invalid"
                    if isinstance(error, ValidationError) and error.http_status is None
                    else "error"
                )
                row["message"] = str(error)
            rows.append(row)
        return self._report(rows)

    def refresh(
        self,
        *,
        concurrency: int = 16,
        progress: Callable[[int, int], Any] | None = None,
        source: str | None = None,
    ) -> pd.DataFrame:
        """Re-fetch every known id of this server (``concurrency`` at a time).

        Changes made outside the toolkit are recorded as ``drift`` audit entries, ids the
        server no longer knows become ``gone``. Returns one row per id (REPORT_COLUMNS) with
        status unchanged / drift / gone / error; ``progress(done, total)`` is called as fetches
        finish.
        """
        known = {r["coinConfigId"]: r for r in self._rows(include_gone=False)}
        ids = list(known)
        fetched = self._fetch_all(ids, concurrency=concurrency, progress=progress, source=source)
        rows = []
        for config_id, (config, error) in zip(ids, fetched, strict=True):
            old = known[config_id]
            before = CoinConfig(
                coin_config_id=config_id,
                company_id=old["companyId"],
                event=old["event"],
                configuration=check_configuration(old["configuration"])[0],
                amount=old["amount"],
            )
            row: dict[str, Any] = {"coinConfigId": config_id}
            if config is not None:
                merged = config.merge(before)
                row.update(merged.to_payload(include_id=False))
                if merged.same_values(before):
                    row["status"] = "unchanged"
                else:
                    row["status"] = "drift"
                    row["changes"] = describe_changes(_values(before), _values(merged))
            else:
                row.update(before.to_payload(include_id=False))
                row["status"] = "gone" if isinstance(error, NotFoundError) else "error"
                row["message"] = str(error)
            rows.append(row)
        return self._report(rows)

    # -- audit --------------------------------------------------------------------------

    def audit_frame(
        self,
        *,
        action: str | Iterable[str] | None = None,
        coin_config_id: str | Iterable[str] | None = None,
        company_id: str | Iterable[str] | None = None,
        event: str | Iterable[str] | None = None,
        actor: str | Iterable[str] | None = None,
        source: str | Iterable[str] | None = None,
        outcome: str | Iterable[str] | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        all_servers: bool = False,
    ) -> pd.DataFrame:
        """The audit log (this server's, oldest first), filtered; AUDIT_COLUMNS.

        Each text filter takes one value or several; ``since`` is inclusive, ``until``
        exclusive (datetimes or ISO text; naive means UTC).
        """
        where: list[str] = []
        params: list[Any] = []
        if not all_servers:
            where.append("server_key = ?")
            params.append(self.server_key)
        for column, value in (
            ("action", action),
            ("coin_config_id", coin_config_id),
            ("company_id", company_id),
            ("event", event),
            ("actor", actor),
            ("source", source),
            ("outcome", outcome),
        ):
            values = _as_list(value)
            if values is not None:
                where.append(f"{column} IN ({', '.join('?' * len(values))})")
                params.extend(values)
        if since is not None:
            where.append("at >= ?")
            params.append(_iso_from(since))
        if until is not None:
            where.append("at < ?")
            params.append(_iso_from(until))
        # The coins an allocate entry awarded live in its allocation record.
        sql = (
            "SELECT *, (SELECT al.coins FROM allocations al WHERE al.audit_id = audit.audit_id)"
            " AS awarded_coins FROM audit"
        )
        if where:
            sql += " WHERE " + " AND ".join(where)
        frame = _audit_frame(self._read(sql + " ORDER BY audit_id", params))
        allocations = frame["action"] == "allocate"
        if allocations.any():
            runs = self._bulk_runs(frame.loc[allocations, "requestId"].dropna().tolist())
            if runs:
                run_ids = [
                    runs.get(r, (None,))[0] if a else None
                    for r, a in zip(frame["requestId"].tolist(), allocations.tolist(), strict=True)
                ]
                frame["bulk_run"] = pd.array(run_ids, dtype="str")
        return frame

    def history(self, coin_config_id: str) -> pd.DataFrame:
        """Every audit entry of one configuration on this server, oldest first."""
        return self.audit_frame(coin_config_id=coin_config_id)

    def _audit_entry(self, audit_id: int) -> dict[str, Any]:
        rows = self._read("SELECT * FROM audit WHERE audit_id = ?", (int(audit_id),))
        if not rows:
            raise RevertRefused(f"There is no audit entry {audit_id}.", audit_id=audit_id)
        return rows[0]

    def revert(self, audit_id: int, *, source: str | None = None) -> RevertResult:
        """Put back the values an audited change replaced, through the API, as a new audit
        entry (action ``revert``, ``reverts_audit_id`` = ``audit_id``).

        Refused (`RevertRefused`) when the entry is not a successful update, revert or drift
        of this server, or when the configuration changed since that entry (a fresh GET is
        compared with the entry's after-values): never a silent overwrite.
        """
        client = self._require_client("Revert")
        entry = self._audit_entry(int(audit_id))
        config_id = entry["coin_config_id"]
        if entry["server_key"] != self.server_key:
            raise RevertRefused(
                f"Audit entry {audit_id} belongs to another server ({entry['server_key']}).",
                audit_id=audit_id,
            )
        if entry["action"] not in REVERTIBLE_ACTIONS or entry["outcome"] != "ok":
            raise RevertRefused(
                f"Audit entry {audit_id} is a {entry['outcome']} {entry['action']}; only "
                "successful updates, reverts and drift can be reverted.",
                audit_id=audit_id,
            )
        before = json.loads(entry["before_json"] or "null")
        after = json.loads(entry["after_json"] or "null")
        if not before or not after or not config_id:
            raise RevertRefused(
                f"Audit entry {audit_id} has no before-values to put back.", audit_id=audit_id
            )
        changed_fields = [n for n in _FIELDS if n in before and before.get(n) != after.get(n)]
        if not changed_fields:
            raise RevertRefused(
                f"Audit entry {audit_id} changed nothing; there is nothing to revert.",
                audit_id=audit_id,
            )
        try:
            current = client.get_config(config_id, source=source)
        except NotFoundError as exc:
            raise RevertRefused(
                f"{config_id} no longer exists on the server; nothing to revert.",
                audit_id=audit_id,
            ) from exc
        current = current.merge(self.get(config_id))
        now = current.to_payload(include_id=False)
        moved = {n: now.get(n) for n in _FIELDS if n in after and now.get(n) != after[n]}
        if moved:
            what = "; ".join(
                f"{n} is now {v} (was {after[n]} after that change)" for n, v in moved.items()
            )
            raise RevertRefused(
                f"{config_id} changed since audit entry {audit_id}: {what}. Not reverting, "
                "so as not to overwrite that change; look at its history first.",
                audit_id=audit_id,
            )
        names = {"companyId": "company_id", "event": "event", "configuration": "configuration"}
        changes = {names.get(n, n): before[n] for n in changed_fields}
        self._local.reverting = (config_id, int(audit_id))
        self._local.revert_audit_id = None
        try:
            result = client.update_config(config_id, known=current, source=source, **changes)
            new_audit = self._local.revert_audit_id
        finally:
            self._local.reverting = None
        if new_audit is None:  # the client records elsewhere: record the revert here
            new_audit = self._record_revert_directly(entry, current, result, source)
        return RevertResult(
            audit_id=int(new_audit),
            reverted_audit_id=int(audit_id),
            coin_config_id=config_id,
            before=current,
            after=result.merge(current),
        )

    def _record_revert_directly(
        self, entry: dict[str, Any], current: CoinConfig, result: CoinConfig, source: str | None
    ) -> int:
        config = result.merge(current)
        context = {
            "server_key": self.server_key,
            "at": _iso(),
            "actor": self.actor,
            "source": source or getattr(self.client, "source", "library"),
        }
        with self._write() as conn:
            self._store(
                conn, context, config, self._known_row(conn, self.server_key, config.coin_config_id)
            )
            return self._audit(
                conn,
                context,
                action="revert",
                outcome="ok",
                coin_config_id=config.coin_config_id,
                company_id=config.company_id,
                event=config.event,
                before=_values(current),
                after=_values(config),
                reverts_audit_id=int(entry["audit_id"]),
            )


# --------------------------------------------------------------------------- rows → frames


def _row_factory(cursor: Any, row: tuple[Any, ...]) -> dict[str, Any]:
    return {d[0]: value for d, value in zip(cursor.description, row, strict=True)}


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


_ALLOCATION_BATCH = 100_000


def _allocation_batch(rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    """One batch of allocation rows (the SELECT of allocations_frame) as typed columns."""
    columns = list(zip(*rows, strict=True)) if rows else [()] * 11
    at, company, event, user, request, config, coins, state, source, actor, audit = columns
    blank = [None] * len(rows)
    return pd.DataFrame(
        {
            "at": pd.to_datetime(pd.Series(at, dtype=object), utc=True, format="ISO8601")
            .astype("datetime64[us, UTC]")
            .array,
            "companyId": pd.array(company, dtype="str"),
            "event": pd.array(event, dtype="str"),
            "userId": pd.array(user, dtype="str"),
            "requestId": pd.array(request, dtype="str"),
            "coinConfigId": pd.array(config, dtype="str"),
            "coins": pd.array(coins, dtype="Int64"),
            "status": pd.array(state, dtype="str"),
            "source": pd.array(source, dtype="str"),
            "actor": pd.array(actor, dtype="str"),
            "bulk_run": pd.array(blank, dtype="str"),
            "bulk_sheet": pd.array(blank, dtype="str"),
            "audit_id": pd.array(audit, dtype="Int64"),
        }
    )


def _audit_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    befores = [json.loads(r["before_json"]) if r["before_json"] else None for r in rows]
    afters = [json.loads(r["after_json"]) if r["after_json"] else None for r in rows]
    sent = [_allocation_request(r) for r in rows]

    def pick(values: list[dict[str, Any] | None], name: str) -> list[Any]:
        return [v.get(name) if v else None for v in values]

    def strings(values: list[Any]) -> pd.api.extensions.ExtensionArray:
        return pd.array(values, dtype="str")

    data = {
        "audit_id": pd.array([r["audit_id"] for r in rows], dtype="int64"),
        "at": pd.to_datetime(
            pd.Series([r["at"] for r in rows], dtype=object), utc=True, format="ISO8601"
        )
        .astype("datetime64[us, UTC]")
        .array,
        "action": strings([r["action"] for r in rows]),
        "outcome": strings([r["outcome"] for r in rows]),
        "coinConfigId": strings([r["coin_config_id"] for r in rows]),
        "companyId": strings([r["company_id"] for r in rows]),
        "event": strings([r["event"] for r in rows]),
        "actor": strings([r["actor"] for r in rows]),
        "source": strings([r["source"] for r in rows]),
        "before_amount": pd.array(pick(befores, "amount"), dtype="Int64"),
        "after_amount": pd.array(pick(afters, "amount"), dtype="Int64"),
        "before_configuration": pd.Categorical(
            pick(befores, "configuration"), dtype=CONFIGURATION_DTYPE
        ),
        "after_configuration": pd.Categorical(
            pick(afters, "configuration"), dtype=CONFIGURATION_DTYPE
        ),
        "changes": strings(
            [describe_changes(b, a) or None for b, a in zip(befores, afters, strict=True)]
        ),
        "message": strings([r["message"] for r in rows]),
        "reverts_audit_id": pd.array([r["reverts_audit_id"] for r in rows], dtype="Int64"),
        "before": strings([r["before_json"] for r in rows]),
        "after": strings([r["after_json"] for r in rows]),
        "request": strings([r["request_json"] for r in rows]),
        "userId": strings(pick(sent, "userId")),
        "requestId": strings(pick(sent, "requestId")),
        "coins": pd.array([r.get("awarded_coins") for r in rows], dtype="Int64"),
        "bulk_run": strings([None] * len(rows)),
    }
    return pd.DataFrame(data)[list(AUDIT_COLUMNS)]


def _allocation_request(row: dict[str, Any]) -> dict[str, Any] | None:
    """What an allocate entry sent (userId, requestId, …); None for other actions."""
    if row["action"] != "allocate" or not row["request_json"]:
        return None
    try:
        sent = json.loads(row["request_json"])
    except ValueError:
        return None
    return {k: _text(v) for k, v in sent.items()} if isinstance(sent, dict) else None


def _stripped(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) else None


def _error_outcome(error: EnKashError | None) -> str:
    """An audit entry's outcome for a failed call: "unconfirmed" when the write may have
    happened on the server (its answer was lost), else "error"."""
    return "unconfirmed" if isinstance(error, UnconfirmedError) else "error"
