"""The registry's SQLite schema (named migrations) and the columns of the frames it gives."""

from __future__ import annotations

from toolkit import db

__all__ = [
    "ALLOCATION_COLUMNS",
    "ALLOCATION_STATUSES",
    "AUDIT_COLUMNS",
    "MIGRATIONS",
    "REPORT_COLUMNS",
    "REVERTIBLE_ACTIONS",
]

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
# Audit actions a revert can undo (a successful one, with before-values).
REVERTIBLE_ACTIONS = frozenset({"update", "revert", "drift"})
