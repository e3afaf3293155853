"""Recording: what every API call showed, kept as the configurations' values and audited.

`Recording` is the part of `Registry` that implements the client's `Recorder` hook
(``record_call``): the client calls it after every create, get, update and allocate, from many
threads at once; each call is one short write transaction. ``toolkit.sync`` adds the two it
needs for fetches and reverts made through a client that records elsewhere.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

from toolkit import errors
from toolkit.client import ApiCall
from toolkit.errors import EnKashError, NotFoundError
from toolkit.models import Allocation, CoinConfig
from toolkit.registry.rows import (
    _clean_request,
    _config_from_row,
    _dumps,
    _error_outcome,
    _iso,
    _str_or_none,
    _stripped,
    _text,
    _values,
)

__all__ = ["Recording", "RevertMark"]

logger = logging.getLogger(__name__)


@dataclass
class RevertMark:
    """While a revert runs: the update of ``coin_config_id`` recorded in this thread is the
    revert of ``reverts_audit_id``; ``audit_id`` is its own entry once recorded."""

    coin_config_id: str
    reverts_audit_id: int
    audit_id: int | None = None


class Recording:
    """The recorder half of `Registry` (needs its file, server key and actor)."""

    server_key: str
    actor: str
    _explicit_actor: str | None
    _local: threading.local

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError  # Registry's

    @contextmanager
    def reverting(self, coin_config_id: str, reverts_audit_id: int) -> Iterator[RevertMark]:
        """Within: an update of ``coin_config_id`` recorded from this thread is audited as the
        revert of ``reverts_audit_id``; the mark yielded gets its audit id."""
        mark = RevertMark(coin_config_id, int(reverts_audit_id))
        self._local.reverting = mark
        try:
            yield mark
        finally:
            self._local.reverting = None

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
                last = _config_from_row(known)
                self._audit(
                    conn,
                    context,
                    action="gone",
                    outcome="ok",
                    coin_config_id=config_id,
                    company_id=last.company_id,
                    event=last.event,
                    before=_values(last),
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
        mark: RevertMark | None = getattr(self._local, "reverting", None)
        action, reverts = "update", None
        if mark is not None and mark.coin_config_id == config_id:
            action, reverts = "revert", mark.reverts_audit_id
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
        if mark is not None and action == "revert":
            mark.audit_id = audit_id

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
        request_id: str | None
        user_id: str | None
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

    def record_fetch(
        self,
        config_id: str,
        config: CoinConfig | None,
        error: EnKashError | None,
        *,
        source: str,
    ) -> None:
        """Record a GET the client made without recording it here (``toolkit.sync`` fetching
        through a client that records elsewhere)."""
        self.record_call(
            ApiCall(
                action="get",
                server_key=self.server_key,
                coin_config_id=config_id,
                request={"coinConfigId": config_id},
                result=config,
                error=error,
                source=source,
                actor=self.actor,
            )
        )

    def record_revert(
        self, reverted_audit_id: int, current: CoinConfig, result: CoinConfig, *, source: str
    ) -> int:
        """Record a revert the client did not record here (it records elsewhere, or nowhere):
        the configuration's new values and a ``revert`` audit entry; its audit id."""
        config = result.merge(current)
        context = {
            "server_key": self.server_key,
            "at": _iso(),
            "actor": self.actor,
            "source": source,
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
                reverts_audit_id=int(reverted_audit_id),
            )
