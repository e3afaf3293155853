"""The bulk run journal: every row's state in SQLite, before and after it is sent.

It lives in the registry's SQLite file (its own named migrations, applied through
``toolkit.db.apply_migrations``). A row goes ``pending`` → ``sending`` → a final status; the
``sending`` mark is committed before the request leaves, and the final status only after the
API answered, so a crash, Ctrl-C or ``kill -9`` loses nothing: running the same file again
(same run key) finds the run, reuses the rows already final and resolves the rest.

Only one thread touches the journal's connection (the thread that calls ``run``); workers
hand their answers back to it.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa

from toolkit import db
from toolkit.bulk.runlocks import (
    LOCK_MIGRATIONS,
    LOCK_STALE_S,
    LockHolder,
    RunLock,
    RunLocked,
    acquire_run_lock,
    lock_holder,
    make_lock_key,
    run_lock_holder,
)

__all__ = [
    "DONE_STATUSES",
    "LOCK_STALE_S",
    "MIGRATIONS",
    "RETRY_STATUSES",
    "Journal",
    "JournalRun",
    "LockHolder",
    "RunLock",
    "RunLocked",
    "acquire_run_lock",
    "last_row_write",
    "list_runs",
    "make_lock_key",
    "make_run_key",
    "run_lock_holder",
]

# Final statuses a resumed run reuses as they are. `failed` and `skipped` are final for the
# run that produced them but are tried again when the same file is run again.
DONE_STATUSES = frozenset({"created", "updated", "unchanged", "allocated", "invalid", "conflict"})
# `unconfirmed` rows are re-checked: the client sends them again only where the server's
# answers confirm a repeat safely, and otherwise leaves them unconfirmed without sending.
RETRY_STATUSES = frozenset({"pending", "sending", "failed", "skipped", "unconfirmed"})

MIGRATIONS: list[tuple[str, str]] = [
    (
        "bulk_journal_0001_runs_and_rows",
        """
        CREATE TABLE IF NOT EXISTS bulk_runs (
            run_id       TEXT PRIMARY KEY,
            run_key      TEXT NOT NULL,
            kind         TEXT NOT NULL,
            mode         TEXT NOT NULL,
            server_key   TEXT NOT NULL,
            source_name  TEXT,
            file_sha256  TEXT,
            total        INTEGER NOT NULL,
            state        TEXT NOT NULL,
            started_at   TEXT NOT NULL,
            updated_at   TEXT NOT NULL,
            finished_at  TEXT
        );
        CREATE INDEX IF NOT EXISTS bulk_runs_by_key ON bulk_runs (run_key, started_at);
        CREATE TABLE IF NOT EXISTS bulk_rows (
            run_id          TEXT NOT NULL REFERENCES bulk_runs (run_id) ON DELETE CASCADE,
            row             INTEGER NOT NULL,
            action          TEXT NOT NULL,
            status          TEXT NOT NULL,
            coin_config_id  TEXT,
            request_id      TEXT,
            message         TEXT,
            attempts        INTEGER NOT NULL DEFAULT 0,
            updated_at      TEXT NOT NULL,
            PRIMARY KEY (run_id, row)
        ) WITHOUT ROWID;
        """,
    ),
]

_ROW_COLUMNS = [
    "row",
    "action",
    "status",
    "coin_config_id",
    "request_id",
    "message",
    "attempts",
]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def make_run_key(file_sha256: str, kind: str, mode: str, server_key: str) -> str:
    """The key that makes "the same file again" resume: file content, kind, mode and server."""
    text = "\x1f".join((file_sha256, kind, mode, server_key))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class JournalRun:
    """One bulk run as the journal records it."""

    run_id: str
    run_key: str
    kind: str
    mode: str
    server_key: str
    source_name: str | None
    file_sha256: str | None
    total: int
    state: str
    started_at: str
    updated_at: str
    finished_at: str | None


class Journal:
    """The run journal on a SQLite file (normally the registry's).

    Writes are short transactions; ``mark_sending`` and ``record`` take many rows at once so a
    fast run commits in batches, never marking a row done before its answer arrived.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._conn = db.connect(self.path)
        db.apply_migrations(self._conn, MIGRATIONS)

    # -- runs ---------------------------------------------------------------------------

    def find_run(self, run_key: str) -> JournalRun | None:
        """The latest run with this key, if any."""
        cur = self._conn.execute(
            "SELECT run_id, run_key, kind, mode, server_key, source_name, file_sha256, total,"
            " state, started_at, updated_at, finished_at FROM bulk_runs WHERE run_key = ?"
            " ORDER BY started_at DESC, rowid DESC LIMIT 1",
            (run_key,),
        )
        found = cur.fetchone()
        return JournalRun(*found) if found else None

    def get_run(self, run_id: str) -> JournalRun | None:
        cur = self._conn.execute(
            "SELECT run_id, run_key, kind, mode, server_key, source_name, file_sha256, total,"
            " state, started_at, updated_at, finished_at FROM bulk_runs WHERE run_id = ?",
            (run_id,),
        )
        found = cur.fetchone()
        return JournalRun(*found) if found else None

    def start_run(
        self,
        *,
        run_key: str,
        kind: str,
        mode: str,
        server_key: str,
        rows: pd.DataFrame,
        source_name: str | None = None,
        file_sha256: str | None = None,
    ) -> str:
        """Record a new run and all its rows in one transaction; return the run id.

        ``rows`` has columns row, action, status (``pending`` or already final), and
        optionally coin_config_id, request_id, message.
        """
        now = _now()
        run_id = f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{run_key[:6]}{secrets.token_hex(2)}"
        with db.transaction(self._conn):
            self._conn.execute(
                "INSERT INTO bulk_runs (run_id, run_key, kind, mode, server_key, source_name,"
                " file_sha256, total, state, started_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'running', ?, ?)",
                (
                    run_id,
                    run_key,
                    kind,
                    mode,
                    server_key,
                    source_name,
                    file_sha256,
                    len(rows),
                    now,
                    now,
                ),
            )
            self._insert_rows(run_id, rows, now)
        return run_id

    def add_rows(self, run_id: str, rows: pd.DataFrame) -> None:
        """Add rows a resumed run did not know yet (should not happen for the same file)."""
        with db.transaction(self._conn):
            self._insert_rows(run_id, rows, _now())

    # Rows go to SQLite this many at a time (inside the caller's transaction): a million-row
    # run never holds a million parameter tuples.
    INSERT_CHUNK = 20_000

    def _insert_rows(self, run_id: str, rows: pd.DataFrame, now: str) -> None:
        def column(part: pd.DataFrame, name: str) -> list[object]:
            if name not in part.columns:
                return [None] * len(part)
            values = part[name]
            if pd.api.types.is_string_dtype(values.dtype) and values.dtype != object:
                return pa.array(values.array).to_pylist()  # text, and None for missing
            return [None if pd.isna(v) else v for v in values.tolist()]

        for start in range(0, len(rows), self.INSERT_CHUNK):
            part = rows.iloc[start : start + self.INSERT_CHUNK]
            data = zip(
                part["row"].to_numpy(dtype="int64").tolist(),
                column(part, "action"),
                column(part, "status"),
                column(part, "coin_config_id"),
                column(part, "request_id"),
                column(part, "message"),
                strict=True,
            )
            self._conn.executemany(
                "INSERT INTO bulk_rows (run_id, row, action, status, coin_config_id, request_id,"
                " message, attempts, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?)",
                ((run_id, *values, now) for values in data),
            )

    def replan(self, run_id: str, rows: pd.DataFrame) -> None:
        """Give rows that were never sent the action and status of a fresh plan (columns as
        for ``start_run``); rows that were sent keep theirs."""
        if rows.empty:
            return
        now = _now()

        def value(v: object) -> object:
            return None if v is None or (not isinstance(v, str) and pd.isna(v)) else v

        batch = [
            (
                r["action"],
                r["status"],
                value(r.get("coin_config_id")),
                value(r.get("message")),
                now,
                run_id,
                int(r["row"]),
            )
            for r in rows.to_dict("records")
        ]
        with db.transaction(self._conn):
            self._conn.executemany(
                "UPDATE bulk_rows SET action = ?, status = ?, coin_config_id = ?, message = ?,"
                " updated_at = ? WHERE run_id = ? AND row = ? AND attempts = 0",
                batch,
            )

    def set_state(self, run_id: str, state: str) -> None:
        """Mark the run ``running``, ``finished``, ``cancelled`` or ``stopped``."""
        now = _now()
        finished = now if state != "running" else None
        with db.transaction(self._conn):
            self._conn.execute(
                "UPDATE bulk_runs SET state = ?, updated_at = ?, finished_at = ? WHERE run_id = ?",
                (state, now, finished, run_id),
            )

    def runs(self) -> pd.DataFrame:
        """Every run, newest first, with its counts per status."""
        runs = pd.read_sql_query(
            "SELECT run_id, kind, mode, source_name, total, state, started_at, finished_at,"
            " server_key FROM bulk_runs ORDER BY started_at DESC",
            self._conn,
        )
        counts = pd.read_sql_query(
            "SELECT run_id, status, COUNT(*) AS n FROM bulk_rows GROUP BY run_id, status",
            self._conn,
        )
        if counts.empty:
            return runs
        wide = counts.pivot_table(index="run_id", columns="status", values="n", fill_value=0)
        wide.columns = [str(c) for c in wide.columns]
        return runs.merge(wide.reset_index(), on="run_id", how="left")

    def status_counts(self, run_id: str) -> dict[str, int]:
        """How many rows of one run are in each status (counted in SQLite, not read out)."""
        cur = self._conn.execute(
            "SELECT status, COUNT(*) FROM bulk_rows WHERE run_id = ? GROUP BY status", (run_id,)
        )
        return {str(status): int(n) for status, n in cur.fetchall()}

    # -- rows -----------------------------------------------------------------------------

    def rows(self, run_id: str) -> pd.DataFrame:
        """The journal's rows of one run (columns: row, action, status, coin_config_id,
        request_id, message, attempts), ordered by row."""
        frame = pd.read_sql_query(
            f"SELECT {', '.join(_ROW_COLUMNS)} FROM bulk_rows WHERE run_id = ? ORDER BY row",
            self._conn,
            params=(run_id,),
        )
        return frame

    def mark_sending(self, run_id: str, rows: Sequence[int]) -> None:
        """Commit ``sending`` for these rows; call before their requests leave."""
        if not rows:
            return
        now = _now()
        with db.transaction(self._conn):
            self._conn.executemany(
                "UPDATE bulk_rows SET status = 'sending', attempts = attempts + 1,"
                " updated_at = ? WHERE run_id = ? AND row = ?",
                [(now, run_id, int(r)) for r in rows],
            )

    def record(
        self,
        run_id: str,
        results: Iterable[tuple[int, str, str | None, str | None]],
        *,
        unsent: Iterable[int] = (),
    ) -> None:
        """Commit final statuses: (row, status, coin_config_id, message) after the answer.

        ``unsent`` rows were marked ``sending`` but their request never left (the run stopped
        first): their attempt is taken back in the same transaction, so a later run sends
        them as rows never sent rather than as rows that may have reached the server.
        """
        now = _now()
        batch = [
            (status, coin_config_id, message, now, run_id, int(row))
            for row, status, coin_config_id, message in results
        ]
        if not batch:
            return
        taken_back = [(run_id, int(row)) for row in unsent]
        with db.transaction(self._conn):
            self._conn.executemany(
                "UPDATE bulk_rows SET status = ?, coin_config_id = COALESCE(?, coin_config_id),"
                " message = ?, updated_at = ? WHERE run_id = ? AND row = ?",
                batch,
            )
            if taken_back:
                self._conn.executemany(
                    "UPDATE bulk_rows SET attempts = MAX(attempts - 1, 0)"
                    " WHERE run_id = ? AND row = ? AND attempts > 0",
                    taken_back,
                )

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):  # closing twice: nothing to lose
            self._conn.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- the runs list ----------------------------------------------------------------------------
#
# Locks and attempts are `toolkit.bulk.runlocks`' (their names are kept here too, where the
# surfaces import them); the list reads them beside the journal's rows.


def _lock_conn(path: str | Path) -> sqlite3.Connection:
    conn = db.connect(Path(path))
    db.apply_migrations(conn, MIGRATIONS)
    db.apply_migrations(conn, LOCK_MIGRATIONS)
    return conn


RUN_LIST_COLUMNS = [
    "run_id",
    "run_key",
    "kind",
    "mode",
    "source_name",
    "state",
    "total",
    "done",
    "counts",
    "started_at",
    "finished_at",
    "started_by",
    "approved_by",
    "live",
]


def list_runs(
    path: str | Path,
    *,
    kind: str | None = None,
    server_key: str | None = None,
    limit: int = 50,
    stale_after_s: float = LOCK_STALE_S,
) -> pd.DataFrame:
    """The latest runs, newest first: one row per run with its state as the journal knows it
    (``running`` whose holder died reads ``interrupted``), rows done of total, the counts per
    status as text, who started it (and approved it) and when, and ``live`` (someone alive is
    sending it now)."""
    conn = _lock_conn(path)
    try:
        where, params = [], []
        if kind is not None:
            where.append("kind = ?")
            params.append(kind)
        if server_key is not None:
            where.append("server_key = ?")
            params.append(server_key)
        sql = (
            "SELECT run_id, run_key, kind, mode, source_name, state, total, started_at,"
            " finished_at FROM bulk_runs"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY started_at DESC, rowid DESC LIMIT ?"
        )
        runs = conn.execute(sql, (*params, int(limit))).fetchall()
        out = []
        for run_id, run_key, k, mode, name, state, total, started, finished in runs:
            counts = dict(
                conn.execute(
                    "SELECT status, COUNT(*) FROM bulk_rows WHERE run_id = ? GROUP BY status"
                    " ORDER BY COUNT(*) DESC",
                    (run_id,),
                ).fetchall()
            )
            first = conn.execute(
                "SELECT actor, started_at FROM bulk_run_starts WHERE run_key = ?"
                " ORDER BY start_id LIMIT 1",
                (run_key,),
            ).fetchone()
            approvers = [
                a
                for (a,) in conn.execute(
                    "SELECT DISTINCT approved_by FROM bulk_run_starts WHERE run_key = ?"
                    " AND approved_by IS NOT NULL",
                    (run_key,),
                ).fetchall()
            ]
            actors = [
                a
                for (a,) in conn.execute(
                    "SELECT actor FROM bulk_run_starts WHERE run_key = ? AND actor IS NOT NULL"
                    " GROUP BY actor ORDER BY MIN(start_id)",
                    (run_key,),
                ).fetchall()
            ]
            lock = conn.execute(
                "SELECT lock_key FROM bulk_locks WHERE run_key = ?", (run_key,)
            ).fetchone()
            holder = lock_holder(conn, lock[0], stale_after_s) if lock else None
            live = bool(holder is not None and holder.alive)
            if state == "running" and not live:
                state = "interrupted"
            pending = sum(n for s, n in counts.items() if s in ("pending", "sending"))
            out.append(
                {
                    "run_id": run_id,
                    "run_key": run_key,
                    "kind": k,
                    "mode": mode,
                    "source_name": name,
                    "state": state,
                    "total": int(total),
                    "done": int(total) - int(pending),
                    "counts": ", ".join(f"{n:,} {s}" for s, n in counts.items()),
                    "started_at": (first[1] if first else started),
                    "finished_at": finished,
                    "started_by": ", ".join(actors),
                    "approved_by": ", ".join(str(a) for a in approvers),
                    "live": live,
                }
            )
    finally:
        conn.close()
    return pd.DataFrame(out, columns=RUN_LIST_COLUMNS)


def last_row_write(path: str | Path, run_id: str) -> str | None:
    """When any row of ``run_id`` was last written (ISO, UTC), or None: a run journaled as
    running whose rows are still being written is alive even if it holds no lock (a process
    that does not take one)."""
    conn = _lock_conn(path)
    try:
        found = conn.execute(
            "SELECT MAX(updated_at) FROM bulk_rows WHERE run_id = ?", (run_id,)
        ).fetchone()
    finally:
        conn.close()
    return found[0] if found else None
