"""Reading the registry: the known configurations and the allocation records, as frames.

`Queries` is the read half of `Registry` (no HTTP anywhere): ``to_frame``, ``get``, ``find``,
``known_pairs`` (what planning reads) and ``allocations_frame`` (what `toolkit.cost` adds up).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from toolkit.frames import configs_to_frame
from toolkit.models import CoinConfig
from toolkit.registry.rows import _add_filters, _config_from_row
from toolkit.registry.schema import ALLOCATION_COLUMNS

__all__ = ["Queries"]


class Queries:
    """The read half of `Registry` (needs its connection, lock and server key)."""

    server_key: str
    _lock: threading.RLock
    _conn: sqlite3.Connection

    def _read(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return self._conn.execute(sql, tuple(params)).fetchall()

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

    def known_configs(self) -> list[CoinConfig]:
        """This server's known configurations as last confirmed (no HTTP), oldest first; the
        ids a refresh fetches again."""
        rows = self._read(
            "SELECT * FROM configs WHERE server_key = ? AND status = 'active'"
            " ORDER BY created_at, coin_config_id",
            (self.server_key,),
        )
        return [_config_from_row(row) for row in rows]

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
        columns = (("company_id", company_id), ("event", event), ("status", status))
        _add_filters(where, params, columns, since, until)
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
