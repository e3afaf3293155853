"""The sandbox's state: one SQLite file (WAL, busy timeout) that several processes may share.

Everything that must survive a restart or be seen by another sandbox process lives here:
configurations, allocations (balances are their sums), tokens and failed-login counters.
Faults do not: they are per process (see ``faults.py``).

Writes run in ``BEGIN IMMEDIATE`` transactions, so a check-then-insert (one configuration per
company and event, one allocation per requestId) holds across processes too.
"""

from __future__ import annotations

import random
import secrets
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = [
    "ID_STYLES",
    "LOCKOUT_AFTER",
    "ConfigConflict",
    "ConfigNotFound",
    "DuplicateRequest",
    "LoginResult",
    "NoConfiguration",
    "Store",
    "TokenInfo",
]

# After this many consecutive failed logins a username is locked until reset.
LOCKOUT_AFTER = 3
# Expired tokens are kept this long so a client hears "expired" rather than "unknown".
_KEEP_EXPIRED_S = 3600.0
_ID_DIGITS = 6
_ID_TRIES_PER_WIDTH = 40

_MIGRATIONS: tuple[tuple[str, str], ...] = (
    (
        "0001_initial",
        """
        CREATE TABLE IF NOT EXISTS configs (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            coin_config_id TEXT NOT NULL UNIQUE,
            company_id TEXT NOT NULL,
            event TEXT NOT NULL,
            configuration TEXT NOT NULL,
            amount INTEGER NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            UNIQUE (company_id, event)
        );
        CREATE TABLE IF NOT EXISTS allocations (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            request_id TEXT NOT NULL UNIQUE,
            user_id TEXT NOT NULL,
            company_id TEXT NOT NULL,
            event TEXT NOT NULL,
            coin_config_id TEXT NOT NULL,
            amount INTEGER NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS allocations_by_user ON allocations (user_id);
        CREATE TABLE IF NOT EXISTS tokens (
            token TEXT PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('access', 'refresh')),
            username TEXT NOT NULL,
            client_id TEXT NOT NULL,
            expires_at REAL NOT NULL
        );
        CREATE TABLE IF NOT EXISTS login_failures (
            username TEXT PRIMARY KEY,
            failures INTEGER NOT NULL,
            last_failure_at REAL NOT NULL
        );
        """,
    ),
    (
        # Per-pair uniqueness becomes a rule of the write (BEGIN IMMEDIATE check-then-insert)
        # rather than a constraint, so the lenient dialect can keep two configurations of a pair.
        "0002_pairs_not_unique",
        """
        CREATE TABLE configs_new (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            coin_config_id TEXT NOT NULL UNIQUE,
            company_id TEXT NOT NULL,
            event TEXT NOT NULL,
            configuration TEXT NOT NULL,
            amount INTEGER NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        INSERT INTO configs_new (seq, coin_config_id, company_id, event, configuration, amount,
            created_at, updated_at)
            SELECT seq, coin_config_id, company_id, event, configuration, amount, created_at,
            updated_at FROM configs ORDER BY seq;
        DROP TABLE configs;
        ALTER TABLE configs_new RENAME TO configs;
        CREATE INDEX IF NOT EXISTS configs_by_pair ON configs (company_id, event, seq)
        """,
    ),
)

# How new coinConfigIds look: WCC + digits (EnKash's examples), a whole number, or a UUID.
ID_STYLES: tuple[str, ...] = ("wcc", "int", "uuid")
_FIRST_INT_ID = 1001


class ConfigConflict(Exception):
    """(company, event) already has a configuration: ``existing_id`` names it."""

    def __init__(self, existing_id: str, company_id: str, event: str) -> None:
        super().__init__(existing_id)
        self.existing_id = existing_id
        self.company_id = company_id
        self.event = event


class ConfigNotFound(Exception):
    """No configuration with that coinConfigId."""


class DuplicateRequest(Exception):
    """That requestId was allocated before; nothing was allocated again."""


class NoConfiguration(Exception):
    """Allocation for a (company, event) that has no configuration."""


@dataclass(frozen=True, slots=True)
class TokenInfo:
    kind: str
    username: str
    client_id: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class LoginResult:
    """Outcome of a password login: tokens on success, else the failure count and lock state."""

    access_token: str | None = None
    refresh_token: str | None = None
    failures: int = 0
    locked: bool = False
    already_locked: bool = False  # locked before this attempt (not by it)

    @property
    def ok(self) -> bool:
        return self.access_token is not None


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _config_row(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "coinConfigId": row["coin_config_id"],
        "configuration": row["configuration"],
        "companyId": row["company_id"],
        "event": row["event"],
        "amount": row["amount"],
    }


class Store:
    """All sandbox state in one SQLite file. Thread-safe; each call is one short transaction."""

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 10.0) -> None:
        self.path = Path(path)
        from toolkit.files import private_dir, private_file  # 0700 folder, 0600 database

        private_file(private_dir(self.path.parent) / self.path.name)
        self._lock = threading.RLock()
        self._ids = random.Random()
        self._conn = sqlite3.connect(
            str(self.path),
            timeout=busy_timeout_s,
            isolation_level=None,  # autocommit; transactions are explicit below
            check_same_thread=False,
        )
        self._conn.row_factory = sqlite3.Row
        self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = NORMAL")
        self._migrate()

    # ---- plumbing ----------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction that holds the database's write lock from its first statement."""
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            else:
                conn.execute("COMMIT")

    def _migrate(self) -> None:
        with self._write() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT)"
            )
            done = {row[0] for row in conn.execute("SELECT name FROM _migrations")}
            for name, script in _MIGRATIONS:
                if name in done:
                    continue
                for statement in script.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute("INSERT INTO _migrations VALUES (?, ?)", (name, _now_iso()))

    def close(self) -> None:
        with self._lock, suppress(sqlite3.Error):  # closing twice or mid-shutdown
            self._conn.close()

    # ---- configurations ----------------------------------------------------------------------

    def _new_config_id(
        self,
        conn: sqlite3.Connection,
        rng: random.Random | None = None,
        id_style: str = "wcc",
    ) -> str:
        if id_style == "uuid":
            return str(uuid.uuid4())
        if id_style == "int":
            # Past the highest whole-number id (never reused, even after a reset).
            top = conn.execute(
                "SELECT MAX(CAST(coin_config_id AS INTEGER)) FROM configs"
                " WHERE coin_config_id GLOB '[0-9]*' AND coin_config_id NOT GLOB '*[^0-9]*'"
            ).fetchone()[0]
            seq = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'configs'").fetchone()
            return str(max(int(top or 0) + 1, _FIRST_INT_ID + int(seq[0] if seq else 0)))
        rng = rng or self._ids
        digits = _ID_DIGITS
        while True:
            for _ in range(_ID_TRIES_PER_WIDTH):
                candidate = f"WCC{rng.randrange(10**digits):0{digits}d}"
                taken = conn.execute(
                    "SELECT 1 FROM configs WHERE coin_config_id = ?", (candidate,)
                ).fetchone()
                if taken is None:
                    return candidate
            digits += 1  # this width is (nearly) full: grow rather than loop forever

    def _holder(self, conn: sqlite3.Connection, company_id: str, event: str) -> str | None:
        row = conn.execute(
            "SELECT coin_config_id FROM configs WHERE company_id = ? AND event = ?"
            " ORDER BY seq DESC LIMIT 1",
            (company_id, event),
        ).fetchone()
        return None if row is None else row[0]

    def create_config(
        self,
        *,
        company_id: str,
        event: str,
        configuration: str,
        amount: int,
        unique_pairs: bool = True,
        id_style: str = "wcc",
        _rng: random.Random | None = None,
    ) -> dict[str, Any]:
        """Insert a configuration; ``ConfigConflict`` when the (company, event) has one.

        With ``unique_pairs`` False a pair may hold several configurations (allocation uses the
        newest). ``id_style`` is one of ``ID_STYLES``.
        """
        with self._write() as conn:
            if unique_pairs:
                existing = self._holder(conn, company_id, event)
                if existing is not None:
                    raise ConfigConflict(existing, company_id, event)
            config_id = self._new_config_id(conn, _rng, id_style)
            now = _now_iso()
            conn.execute(
                "INSERT INTO configs (coin_config_id, company_id, event, configuration, amount,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (config_id, company_id, event, configuration, amount, now, now),
            )
        return {
            "coinConfigId": config_id,
            "configuration": configuration,
            "companyId": company_id,
            "event": event,
            "amount": amount,
        }

    def get_config(self, coin_config_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT * FROM configs WHERE coin_config_id = ?", (coin_config_id,)
            ).fetchone()
        return None if row is None else _config_row(row)

    def update_config(
        self, coin_config_id: str, changes: dict[str, Any], *, unique_pairs: bool = True
    ) -> dict[str, Any]:
        """Apply ``changes`` (camelCase keys); ``ConfigNotFound`` or ``ConfigConflict``."""
        with self._write() as conn:
            row = conn.execute(
                "SELECT * FROM configs WHERE coin_config_id = ?", (coin_config_id,)
            ).fetchone()
            if row is None:
                raise ConfigNotFound(coin_config_id)
            merged = _config_row(row) | changes
            company_id, event = merged["companyId"], merged["event"]
            if unique_pairs and (company_id, event) != (row["company_id"], row["event"]):
                holder = self._holder(conn, company_id, event)
                if holder is not None and holder != coin_config_id:
                    raise ConfigConflict(holder, company_id, event)
            conn.execute(
                "UPDATE configs SET company_id = ?, event = ?, configuration = ?, amount = ?,"
                " updated_at = ? WHERE coin_config_id = ?",
                (
                    company_id,
                    event,
                    merged["configuration"],
                    merged["amount"],
                    _now_iso(),
                    coin_config_id,
                ),
            )
        return merged

    def list_configs(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._conn.execute("SELECT * FROM configs ORDER BY seq").fetchall()
        return [_config_row(row) for row in rows]

    def count_configs(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM configs").fetchone()[0]

    # ---- allocations -------------------------------------------------------------------------

    def allocate(self, *, request_id: str, user_id: str, company_id: str, event: str) -> int:
        """Award the configured amount once per requestId; returns the coins awarded."""
        with self._write() as conn:
            if conn.execute(
                "SELECT 1 FROM allocations WHERE request_id = ?", (request_id,)
            ).fetchone():
                raise DuplicateRequest(request_id)
            row = conn.execute(
                "SELECT coin_config_id, amount FROM configs WHERE company_id = ? AND event = ?"
                " ORDER BY seq DESC LIMIT 1",
                (company_id, event),
            ).fetchone()
            if row is None:
                raise NoConfiguration(company_id, event)
            # Amount 0 is recorded too: the requestId is spent even when nothing is awarded.
            conn.execute(
                "INSERT INTO allocations (request_id, user_id, company_id, event, coin_config_id,"
                " amount, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (request_id, user_id, company_id, event, row[0], row[1], _now_iso()),
            )
        return int(row[1])

    def balance(self, user_id: str) -> int:
        with self._lock:
            value = self._conn.execute(
                "SELECT COALESCE(SUM(amount), 0) FROM allocations WHERE user_id = ?", (user_id,)
            ).fetchone()[0]
        return int(value)

    def list_allocations(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._conn.execute("SELECT * FROM allocations ORDER BY seq").fetchall()
        return [
            {
                "requestId": row["request_id"],
                "userId": row["user_id"],
                "companyId": row["company_id"],
                "event": row["event"],
                "coinConfigId": row["coin_config_id"],
                "amount": row["amount"],
                "created_at": row["created_at"],
            }
            for row in rows
        ]

    # ---- logins and tokens -------------------------------------------------------------------

    def _issue(
        self, conn: sqlite3.Connection, username: str, client_id: str, ttl_s: float
    ) -> tuple[str, str]:
        now = time.time()
        conn.execute("DELETE FROM tokens WHERE expires_at < ?", (now - _KEEP_EXPIRED_S,))
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(32)
        conn.executemany(
            "INSERT INTO tokens (token, kind, username, client_id, expires_at)"
            " VALUES (?, ?, ?, ?, ?)",
            [
                (access, "access", username, client_id, now + ttl_s),
                (refresh, "refresh", username, client_id, now + ttl_s),
            ],
        )
        return access, refresh

    def login(
        self, *, username: str, password_ok: bool, client_id: str, ttl_s: float
    ) -> LoginResult:
        """Count a password login: lock after LOCKOUT_AFTER failures in a row, else issue."""
        with self._write() as conn:
            row = conn.execute(
                "SELECT failures FROM login_failures WHERE username = ?", (username,)
            ).fetchone()
            failures = 0 if row is None else int(row[0])
            if failures >= LOCKOUT_AFTER:
                return LoginResult(failures=failures, locked=True, already_locked=True)
            if not password_ok:
                failures += 1
                conn.execute(
                    "INSERT INTO login_failures (username, failures, last_failure_at)"
                    " VALUES (?, ?, ?) ON CONFLICT (username) DO UPDATE SET"
                    " failures = excluded.failures, last_failure_at = excluded.last_failure_at",
                    (username, failures, time.time()),
                )
                return LoginResult(failures=failures, locked=failures >= LOCKOUT_AFTER)
            conn.execute("DELETE FROM login_failures WHERE username = ?", (username,))
            access, refresh = self._issue(conn, username, client_id, ttl_s)
        return LoginResult(access_token=access, refresh_token=refresh)

    def is_locked(self, username: str) -> bool:
        with self._lock:
            row = self._conn.execute(
                "SELECT failures FROM login_failures WHERE username = ?", (username,)
            ).fetchone()
        return row is not None and int(row[0]) >= LOCKOUT_AFTER

    def refresh(self, refresh_token: str, *, client_id: str, ttl_s: float) -> tuple[str, str] | str:
        """Swap a live refresh token for new tokens (it is used up); else a reason text."""
        with self._write() as conn:
            row = conn.execute(
                "SELECT * FROM tokens WHERE token = ? AND kind = 'refresh'", (refresh_token,)
            ).fetchone()
            if row is None:
                return "unknown refresh token"
            if row["client_id"] != client_id:
                return "refresh token was issued to another client"
            if row["expires_at"] <= time.time():
                return "refresh token expired; log in again with grant_type=password"
            failures = conn.execute(
                "SELECT failures FROM login_failures WHERE username = ?", (row["username"],)
            ).fetchone()
            if failures is not None and int(failures[0]) >= LOCKOUT_AFTER:
                return "account is locked"
            conn.execute("DELETE FROM tokens WHERE token = ?", (refresh_token,))
            return self._issue(conn, row["username"], client_id, ttl_s)

    def issue_tokens(self, *, username: str, client_id: str, ttl_s: float) -> tuple[str, str]:
        """Issue an access and a refresh token without a login (tests, fuzzing)."""
        with self._write() as conn:
            return self._issue(conn, username, client_id, ttl_s)

    def expire_tokens(self, *, include_refresh: bool = True) -> int:
        """Every live access token (and refresh token) expires now; how many did."""
        now = time.time()
        kinds = ("access", "refresh") if include_refresh else ("access",)
        with self._write() as conn:
            cursor = conn.execute(
                f"UPDATE tokens SET expires_at = ? WHERE expires_at > ?"
                f" AND kind IN ({', '.join('?' * len(kinds))})",
                (now - 1.0, now, *kinds),
            )
            return cursor.rowcount

    def expire_token(self, token: str) -> bool:
        """This one token expires now (kept, so it is answered as expired); True if it lived."""
        now = time.time()
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE tokens SET expires_at = ? WHERE token = ? AND kind = 'access'"
                " AND expires_at > ?",
                (now - 1.0, token, now),
            )
            return cursor.rowcount > 0

    def token_info(self, token: str) -> TokenInfo | None:
        with self._lock:
            row = self._conn.execute("SELECT * FROM tokens WHERE token = ?", (token,)).fetchone()
        if row is None:
            return None
        return TokenInfo(row["kind"], row["username"], row["client_id"], row["expires_at"])

    # ---- admin -------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything: configurations, allocations, tokens and lockouts."""
        with self._write() as conn:
            for table in ("configs", "allocations", "tokens", "login_failures"):
                conn.execute(f"DELETE FROM {table}")

    def seed(
        self,
        configs: list[dict[str, Any]],
        allocations: list[dict[str, Any]],
        *,
        rng: random.Random,
    ) -> bool:
        """Load demo rows in one transaction, only into an empty database. True if loaded."""
        with self._write() as conn:
            if conn.execute("SELECT COUNT(*) FROM configs").fetchone()[0]:
                return False
            if conn.execute("SELECT COUNT(*) FROM allocations").fetchone()[0]:
                return False
            now = _now_iso()
            by_pair: dict[tuple[str, str], tuple[str, int]] = {}
            for config in configs:
                config_id = config.get("coinConfigId") or self._new_config_id(conn, rng)
                conn.execute(
                    "INSERT INTO configs (coin_config_id, company_id, event, configuration,"
                    " amount, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        config_id,
                        config["companyId"],
                        config["event"],
                        config["configuration"],
                        config["amount"],
                        now,
                        now,
                    ),
                )
                by_pair[(config["companyId"], config["event"])] = (config_id, config["amount"])
            for allocation in allocations:
                config_id, amount = by_pair[(allocation["companyId"], allocation["event"])]
                conn.execute(
                    "INSERT INTO allocations (request_id, user_id, company_id, event,"
                    " coin_config_id, amount, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        allocation["requestId"],
                        allocation["userId"],
                        allocation["companyId"],
                        allocation["event"],
                        config_id,
                        amount,
                        now,
                    ),
                )
        return True
