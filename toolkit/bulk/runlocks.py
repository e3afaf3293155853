"""Run locks: a bulk run of one sheet (same file, kind and server) never runs twice at once.

Two runs of one sheet would send the same rows and audit each twice. Whoever starts a run
takes the sheet's lock first (`acquire_run_lock`), refreshes it while sending (`RunLock.beat`)
and releases it at the end. A lock whose holder died (its process is gone, or its heartbeat
stopped) is taken over. The same tables remember who started each attempt (and who approved
it), which `toolkit.bulk.journal.list_runs` shows. They live in the registry's SQLite file
beside the journal, under their own named migrations.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from toolkit import db

__all__ = [
    "LOCK_MIGRATIONS",
    "LOCK_STALE_S",
    "LockHolder",
    "RunLock",
    "RunLocked",
    "acquire_run_lock",
    "lock_holder",
    "make_lock_key",
    "run_lock_holder",
]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


LOCK_MIGRATIONS: list[tuple[str, str]] = [
    (
        "bulk_journal_locks_0001",
        """
        CREATE TABLE IF NOT EXISTS bulk_locks (
            lock_key      TEXT PRIMARY KEY,
            run_key       TEXT NOT NULL,
            token         TEXT NOT NULL,
            actor         TEXT,
            host          TEXT NOT NULL,
            pid           INTEGER NOT NULL,
            acquired_at   TEXT NOT NULL,
            heartbeat_at  TEXT NOT NULL
        );
        CREATE TABLE IF NOT EXISTS bulk_run_starts (
            start_id      INTEGER PRIMARY KEY AUTOINCREMENT,
            run_key       TEXT NOT NULL,
            lock_key      TEXT NOT NULL,
            token         TEXT NOT NULL,
            actor         TEXT,
            approved_by   TEXT,
            source_name   TEXT,
            host          TEXT NOT NULL,
            pid           INTEGER NOT NULL,
            started_at    TEXT NOT NULL,
            ended_at      TEXT,
            outcome       TEXT
        );
        CREATE INDEX IF NOT EXISTS bulk_run_starts_by_key ON bulk_run_starts (run_key, start_id);
        """,
    ),
]

# A holder on another machine is presumed dead when its heartbeat is this old; one on this
# machine is alive exactly while its process is.
LOCK_STALE_S = 120.0


def make_lock_key(file_sha256: str, kind: str, server_key: str) -> str:
    """The sheet a lock guards: file content, kind and server (any mode: create and upsert of
    the same sheet at once would race each other too)."""
    text = "\x1f".join(("lock", file_sha256, kind, server_key))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _host() -> str:
    return socket.gethostname()


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    except OSError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class LockHolder:
    """Who holds a sheet's lock, and whether they are still alive."""

    lock_key: str
    run_key: str
    actor: str | None
    host: str
    pid: int
    acquired_at: str
    heartbeat_at: str
    alive: bool


def _holder_alive(host: str, pid: int, heartbeat_at: str, *, stale_after_s: float) -> bool:
    if host == _host():
        if pid == os.getpid():
            return True  # this process holds it (a thread of ours is running it)
        return _pid_alive(pid)
    try:
        age = (datetime.now(UTC) - datetime.fromisoformat(heartbeat_at)).total_seconds()
    except ValueError:
        return False
    return age < stale_after_s


def _lock_conn(path: str | Path) -> sqlite3.Connection:
    conn = db.connect(Path(path))
    db.apply_migrations(conn, LOCK_MIGRATIONS)
    return conn


def lock_holder(
    conn: sqlite3.Connection, lock_key: str, stale_after_s: float = LOCK_STALE_S
) -> LockHolder | None:
    """Who holds ``lock_key`` on this connection's file, or None (for readers of the tables)."""
    found = conn.execute(
        "SELECT lock_key, run_key, actor, host, pid, acquired_at, heartbeat_at FROM bulk_locks"
        " WHERE lock_key = ?",
        (lock_key,),
    ).fetchone()
    if found is None:
        return None
    key, run_key, actor, host, pid, acquired_at, heartbeat_at = found
    alive = _holder_alive(host, int(pid), heartbeat_at, stale_after_s=stale_after_s)
    return LockHolder(key, run_key, actor, host, int(pid), acquired_at, heartbeat_at, alive)


class RunLocked(Exception):
    """The sheet is being run by someone alive; ``holder`` says who, where and since when."""

    def __init__(self, holder: LockHolder) -> None:
        who = holder.actor or "someone"
        super().__init__(
            f"this sheet is already running (started by {who} at "
            f"{holder.acquired_at[:19].replace('T', ' ')} UTC on {holder.host})"
        )
        self.holder = holder


class RunLock:
    """A held sheet lock: ``beat()`` while running, ``release(outcome)`` at the end."""

    def __init__(self, path: Path, lock_key: str, run_key: str, token: str, start_id: int):
        self.path = path
        self.lock_key = lock_key
        self.run_key = run_key
        self.token = token
        self.start_id = start_id
        self.released = False

    def _conn(self) -> sqlite3.Connection:
        return _lock_conn(self.path)

    def beat(self) -> bool:
        """Refresh the heartbeat; False when the lock is no longer ours."""
        conn = self._conn()
        try:
            with db.transaction(conn):
                cur = conn.execute(
                    "UPDATE bulk_locks SET heartbeat_at = ? WHERE lock_key = ? AND token = ?",
                    (_now(), self.lock_key, self.token),
                )
            return cur.rowcount == 1
        finally:
            conn.close()

    def approve(self, approver: str) -> None:
        """Record who approved this attempt."""
        conn = self._conn()
        try:
            with db.transaction(conn):
                conn.execute(
                    "UPDATE bulk_run_starts SET approved_by = ? WHERE start_id = ?",
                    (approver, self.start_id),
                )
        finally:
            conn.close()

    def release(self, outcome: str) -> None:
        """Give the lock back and record how the attempt ended (finished, cancelled, …)."""
        if self.released:
            return
        conn = self._conn()
        try:
            with db.transaction(conn):
                conn.execute(
                    "DELETE FROM bulk_locks WHERE lock_key = ? AND token = ?",
                    (self.lock_key, self.token),
                )
                conn.execute(
                    "UPDATE bulk_run_starts SET ended_at = ?, outcome = ? WHERE start_id = ?",
                    (_now(), outcome, self.start_id),
                )
            self.released = True
        finally:
            conn.close()


def acquire_run_lock(
    path: str | Path,
    *,
    lock_key: str,
    run_key: str,
    actor: str | None,
    source_name: str | None = None,
    stale_after_s: float = LOCK_STALE_S,
) -> RunLock:
    """Take the sheet's lock, or raise `RunLocked` when a live holder has it. A dead holder's
    lock (its process gone, or silent for ``stale_after_s``) is taken over."""
    path = Path(path)
    conn = _lock_conn(path)
    try:
        with db.transaction(conn):
            holder = lock_holder(conn, lock_key, stale_after_s)
            if holder is not None and holder.alive:
                raise RunLocked(holder)
            token = secrets.token_hex(16)
            now = _now()
            conn.execute("DELETE FROM bulk_locks WHERE lock_key = ?", (lock_key,))
            conn.execute(
                "INSERT INTO bulk_locks (lock_key, run_key, token, actor, host, pid,"
                " acquired_at, heartbeat_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (lock_key, run_key, token, actor, _host(), os.getpid(), now, now),
            )
            if holder is not None:  # the dead holder's attempt ended without telling us
                conn.execute(
                    "UPDATE bulk_run_starts SET ended_at = ?, outcome = 'died'"
                    " WHERE lock_key = ? AND ended_at IS NULL",
                    (now, lock_key),
                )
            cur = conn.execute(
                "INSERT INTO bulk_run_starts (run_key, lock_key, token, actor, source_name,"
                " host, pid, started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (run_key, lock_key, token, actor, source_name, _host(), os.getpid(), now),
            )
            if cur.lastrowid is None:  # pragma: no cover - sqlite3 sets it after an INSERT
                raise sqlite3.DatabaseError("the attempt was not recorded")
            start_id = cur.lastrowid
    finally:
        conn.close()
    return RunLock(path, lock_key, run_key, token, start_id)


def run_lock_holder(
    path: str | Path, lock_key: str, *, stale_after_s: float = LOCK_STALE_S
) -> LockHolder | None:
    """Who holds the sheet's lock now (``alive`` False: its holder died), or None."""
    conn = _lock_conn(path)
    try:
        return lock_holder(conn, lock_key, stale_after_s)
    finally:
        conn.close()
