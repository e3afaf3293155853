"""The audit log: every change the toolkit made or saw, filtered, as a frame.

`AuditLog` is the audit half of `Registry`'s reading (``audit_frame``, ``history``,
``audit_entry``); `RevertResult` is what ``toolkit.sync.revert`` hands back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from toolkit.changes import describe_changes
from toolkit.frames import CONFIGURATION_DTYPE
from toolkit.models import CoinConfig
from toolkit.registry.queries import Queries
from toolkit.registry.rows import _add_filters, _text
from toolkit.registry.schema import AUDIT_COLUMNS

__all__ = ["AuditLog", "RevertResult"]


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


class AuditLog(Queries):
    """The audit log of `Registry`: this server's entries, oldest first."""

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
        _add_filters(
            where,
            params,
            (
                ("action", action),
                ("coin_config_id", coin_config_id),
                ("company_id", company_id),
                ("event", event),
                ("actor", actor),
                ("source", source),
                ("outcome", outcome),
            ),
            since,
            until,
        )
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

    def audit_entry(self, audit_id: int) -> dict[str, Any] | None:
        """One audit entry as stored (its table's columns), or None when there is none."""
        rows = self._read("SELECT * FROM audit WHERE audit_id = ?", (int(audit_id),))
        return rows[0] if rows else None


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
