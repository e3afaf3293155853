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

from toolkit import db

__all__ = [
    "DONE_STATUSES",
    "MIGRATIONS",
    "RETRY_STATUSES",
    "Journal",
    "JournalRun",
    "make_run_key",
]

# Final statuses a resumed run reuses as they are. `failed` and `skipped` are final for the
# run that produced them but are tried again when the same file is run again.
DONE_STATUSES = frozenset({"created", "updated", "unchanged", "allocated", "invalid", "conflict"})
RETRY_STATUSES = frozenset({"pending", "sending", "failed", "skipped"})

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

    def _insert_rows(self, run_id: str, rows: pd.DataFrame, now: str) -> None:
        def column(name: str) -> list[object]:
            if name not in rows.columns:
                return [None] * len(rows)
            return [None if pd.isna(v) else v for v in rows[name].tolist()]

        data = zip(
            [int(r) for r in rows["row"].tolist()],
            column("action"),
            column("status"),
            column("coin_config_id"),
            column("request_id"),
            column("message"),
            strict=True,
        )
        self._conn.executemany(
            "INSERT INTO bulk_rows (run_id, row, action, status, coin_config_id, request_id,"
            " message, attempts, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?)",
            [(run_id, *values, now) for values in data],
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
    ) -> None:
        """Commit final statuses: (row, status, coin_config_id, message) after the answer."""
        now = _now()
        batch = [
            (status, coin_config_id, message, now, run_id, int(row))
            for row, status, coin_config_id, message in results
        ]
        if not batch:
            return
        with db.transaction(self._conn):
            self._conn.executemany(
                "UPDATE bulk_rows SET status = ?, coin_config_id = COALESCE(?, coin_config_id),"
                " message = ?, updated_at = ? WHERE run_id = ? AND row = ?",
                batch,
            )

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):  # closing twice: nothing to lose
            self._conn.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
