"""SQLite plumbing shared by the registry and the bulk journal: connections and named migrations.

A connection from ``connect`` is in WAL mode (readers never block the writer), waits up to
``busy_timeout`` for another process's write lock instead of failing, and enforces foreign
keys. Write transactions take the write lock up front (``BEGIN IMMEDIATE``): a deferred
transaction that reads and then writes can fail with "database is locked" when another
process wrote in between, whatever the busy timeout. Use ``with transaction(conn):`` — or the
stdlib idiom ``with conn:``, which here also begins with ``BEGIN IMMEDIATE`` before the first
write and commits at the end.

Migrations are ``(name, sql_or_callable)`` pairs, recorded by name in ``_migrations`` and
applied once each, in order, each in its own immediate transaction, so two processes opening
a brand-new file at the same moment apply every migration exactly once.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from toolkit import files

__all__ = [
    "BUSY_TIMEOUT_S",
    "Migration",
    "applied_migrations",
    "apply_migrations",
    "connect",
    "split_statements",
    "transaction",
]

BUSY_TIMEOUT_S = 30.0

Migration = tuple[str, str | Callable[[sqlite3.Connection], None]]


def connect(
    path: str | Path, *, timeout_s: float = BUSY_TIMEOUT_S, check_same_thread: bool = False
) -> sqlite3.Connection:
    """Open (creating it and its folder if needed, both private) a SQLite file set up for
    several writers.

    ``check_same_thread`` is off by default: callers that share a connection between threads
    must serialise its use with a lock (the registry does).
    """
    target = str(path)
    if target != ":memory:" and not target.startswith("file:"):
        # Private from the first byte: folders it creates 0700, the file 0600 (SQLite gives its
        # -wal and -shm files the database file's mode).
        files.private_dir(Path(target).expanduser().parent)
        target = str(files.private_file(Path(target).expanduser()))
    conn = sqlite3.connect(
        target,
        timeout=timeout_s,
        isolation_level="IMMEDIATE",
        check_same_thread=check_same_thread,
        uri=target.startswith("file:"),
    )
    conn.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
    _retry_locked(lambda: conn.execute("PRAGMA journal_mode = WAL").fetchone(), timeout_s)
    # WAL + NORMAL survives a killed process; only a power cut may lose the last commit.
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def _retry_locked(fn: Callable[[], object], timeout_s: float) -> object:
    # Switching a brand-new file to WAL needs an exclusive lock, and SQLite may answer
    # SQLITE_BUSY at once instead of calling the busy handler; retry for the busy timeout.
    deadline = time.monotonic() + timeout_s
    delay = 0.005
    while True:
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A short write transaction: ``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on error)."""
    if conn.in_transaction:  # nested use: the outer transaction commits
        yield conn
        return
    _retry_locked(lambda: conn.execute("BEGIN IMMEDIATE"), BUSY_TIMEOUT_S)
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def split_statements(sql: str) -> list[str]:
    """Split a script into complete statements (``executescript`` would COMMIT first)."""
    statements: list[str] = []
    buffer = ""
    for piece in sql.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            if buffer.strip(" \t\r\n;"):
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip(" \t\r\n;"):
        raise ValueError(f"incomplete SQL statement in migration: {buffer.strip()[:80]!r}")
    return statements


def apply_migrations(conn: sqlite3.Connection, migrations: Sequence[Migration]) -> list[str]:
    """Apply, in order, each named migration not yet recorded in ``_migrations``.

    A migration is SQL text (one or more statements) or a callable taking the connection; it
    runs inside the transaction that records it, so it is applied completely or not at all.
    Returns the names applied by this call.
    """
    names = [name for name, _ in migrations]
    if len(set(names)) != len(names):
        raise ValueError("migration names must be unique")
    with transaction(conn):
        conn.execute(
            "CREATE TABLE IF NOT EXISTS _migrations ("
            " name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
    applied: list[str] = []
    for name, step in migrations:
        with transaction(conn):
            done = conn.execute("SELECT 1 FROM _migrations WHERE name = ?", (name,)).fetchone()
            if done:
                continue
            if callable(step):
                step(conn)
            else:
                for statement in split_statements(step):
                    conn.execute(statement)
            conn.execute(
                "INSERT INTO _migrations (name, applied_at) VALUES (?, ?)",
                (name, datetime.now(UTC).isoformat(timespec="microseconds")),
            )
            applied.append(name)
    return applied


def applied_migrations(conn: sqlite3.Connection) -> list[str]:
    """Names recorded in ``_migrations``, in the order they were applied."""
    try:
        rows = conn.execute("SELECT name FROM _migrations ORDER BY rowid").fetchall()
    except sqlite3.OperationalError:  # no table yet
        return []
    return [row[0] for row in rows]
