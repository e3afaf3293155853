"""The status of a row after the API answered: one row's work, and the words for each end.

A worker hands a row (`WorkItem`) to `work`, which makes the one or two calls the row needs
(create, or update, or allocate; a create that conflicts looks at the existing configuration
and, in mode upsert, updates it) and turns the answer — or the error — into the row's status,
coinConfigId and message. `work` never raises: a bug ends the row ``failed`` with its
reason, and the driver (`toolkit.bulk.running`) still accounts for it. What an error means
for the whole run (refused credentials stop it, several rows in a row without an answer stop
it) is handed back beside the status, for the driver to decide.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import pandas as pd

from toolkit.bulk.seams import BulkClient
from toolkit.errors import (
    AuthError,
    ConflictError,
    EnKashError,
    LoginUnavailableError,
    TransportError,
    UnconfirmedError,
)
from toolkit.models import CoinConfig, check_configuration

__all__ = [
    "ALLOCATION_STATUSES",
    "CANCELLED_MESSAGE",
    "CONFIG_STATUSES",
    "DEADLINE_MESSAGE",
    "GOOD_STATUSES",
    "SENDING_ACTIONS",
    "THROTTLED_AT_DEADLINE_MESSAGE",
    "UNREACHABLE_ROWS",
    "RowAnswer",
    "Unreachable",
    "WorkItem",
    "is_blank",
    "stop_reason",
    "text_or_none",
    "work",
]

log = logging.getLogger(__name__)

CONFIG_STATUSES = (
    "created",
    "updated",
    "unchanged",
    "unconfirmed",
    "skipped",
    "invalid",
    "failed",
    "conflict",
)
ALLOCATION_STATUSES = (
    "allocated",
    "unchanged",
    "unconfirmed",
    "skipped",
    "invalid",
    "failed",
    "conflict",
)
GOOD_STATUSES = frozenset({"created", "updated", "unchanged", "allocated"})
CANCELLED_MESSAGE = "cancelled — run again to resume"
SENDING_ACTIONS = frozenset({"create", "update", "allocate"})

DEADLINE_MESSAGE = "not sent: the run's deadline passed; run the file again to resume"
THROTTLED_AT_DEADLINE_MESSAGE = (
    "the server was still throttling this row when the run's deadline passed (nothing was "
    "done); run the file again to resume"
)


@dataclass
class WorkItem:
    """One row to send: its plan values (blanks as None, amounts as int) and how many times
    the row was handed out so far, this time included (more than 1: it may have reached the
    server before)."""

    row: int
    action: str
    attempts: int
    values: dict[str, Any] = field(default_factory=dict)


def is_blank(value: Any) -> bool:
    return value is None or (not isinstance(value, str) and pd.isna(value))


def text_or_none(value: Any) -> str | None:
    return None if is_blank(value) else str(value)


def _describe(config: CoinConfig) -> str:
    return f"{config.configuration} {config.amount}"


# -- workers (never raise) -----------------------------------------------------------------


def _create(client: BulkClient, item: WorkItem, mode: str) -> tuple[str, str | None, str]:
    v = item.values
    wanted = CoinConfig(
        company_id=v["companyId"],
        event=v["event"],
        configuration=check_configuration(v["configuration"])[0],
        amount=v["amount"],
    )
    # Sent by an earlier attempt (a crash, an interrupted run, an unconfirmed row): the client
    # re-checks it only where the server's answers make that safe.
    sent_before = item.attempts > 1
    try:
        made = client.create_config(
            company_id=v["companyId"],
            event=v["event"],
            amount=v["amount"],
            configuration=str(wanted.configuration),
            may_exist=sent_before,
        )
        return (
            "created",
            made.coin_config_id,
            "created (confirmed when resuming: the configuration of this pair has the sheet's "
            "values)"
            if sent_before
            else "created",
        )
    except ConflictError as exc:
        existing_id = exc.existing_id
        existing = None
        if existing_id:
            try:
                existing = client.get_config(existing_id)
            except EnKashError as lookup:
                log.info("could not fetch %s after a conflict: %s", existing_id, lookup)
        if existing is None or not existing_id:
            return "conflict", existing_id, f"already configured: {exc}"
        if existing.company_id is None:
            existing = existing.merge(wanted)
        if existing.same_values(wanted):
            return (
                "unchanged",
                existing_id,
                f"already configured as {existing_id} with the same values",
            )
        change = f"already configured as {existing_id}: {_describe(existing)} → {_describe(wanted)}"
        if mode != "upsert":
            return "conflict", existing_id, change + "; not changed in mode create"
        updated = client.update_config(
            existing_id,
            amount=wanted.amount,
            configuration=str(wanted.configuration),
            known=existing,
        )
        return "updated", updated.coin_config_id or existing_id, change.split(": ", 1)[1]


def _update(client: BulkClient, item: WorkItem) -> tuple[str, str | None, str]:
    v = item.values
    configuration = check_configuration(v["configuration"])[0]
    known = CoinConfig(
        coin_config_id=v["coinConfigId"],
        company_id=v["companyId"],
        event=v["event"],
        configuration=check_configuration(v["before_configuration"])[0],
        amount=v["before_amount"],
    )
    updated = client.update_config(
        v["coinConfigId"], amount=v["amount"], configuration=str(configuration), known=known
    )
    return (
        "updated",
        updated.coin_config_id or v["coinConfigId"],
        f"{_describe(known)} → {configuration} {v['amount']}",
    )


def _allocate(client: BulkClient, item: WorkItem) -> tuple[str, str | None, str]:
    v = item.values
    # Sent by an earlier attempt of this file's runs (a crash, a lost answer): the client
    # confirms it by the server's duplicate answer, where the server gives one.
    sent_before = item.attempts > 1
    try:
        done = client.allocate_coins(
            company_id=v["companyId"],
            event=v["event"],
            user_id=v["userId"],
            request_id=v["requestId"],
            # A requestId derived from this sheet's name and this row's values was made by an
            # earlier run of this sheet (an earlier version of the file) when it is a duplicate.
            duplicate_is_done=bool(v["requestId_derived"]),
            sent_before=sent_before,
        )
    except ConflictError as exc:
        return (
            "conflict",
            v["coinConfigId"],
            f"requestId {v['requestId']} was used before this run (by an earlier run or "
            f"elsewhere); nothing allocated ({exc})",
        )
    if done.confirmed:
        when = "confirmed when resuming" if sent_before else "confirmed"
        return (
            "allocated",
            v["coinConfigId"],
            f"allocated ({when}: requestId {v['requestId']} had reached the server before its "
            "answer was lost; the server refused the repeat, nothing allocated twice)",
        )
    if done.already_done:
        return (
            "unchanged",
            v["coinConfigId"],
            f"already allocated by an earlier run of this sheet (requestId {v['requestId']}); "
            "nothing allocated twice",
        )
    return "allocated", v["coinConfigId"], done.message or "allocated"


# Rows in a row that got no usable answer even after the client's retries before the run
# stops: the server is down, and each further row would spend the whole retry budget too.
UNREACHABLE_ROWS = 5


class Unreachable:
    """A row's transport failure: not fatal alone, but several in a row stop the run."""

    def __init__(self, error: TransportError) -> None:
        self.error = error


class RowAnswer(NamedTuple):
    """How a row ended: its status, coinConfigId and message, and what the run should know —
    ``error`` is a fatal error (the run stops) or an `Unreachable` (counted towards several
    rows in a row with no answer), else None."""

    row: int
    status: str
    coin_config_id: str | None
    message: str
    error: EnKashError | Unreachable | None


def work(client: BulkClient, item: WorkItem, mode: str, stop: threading.Event) -> RowAnswer:
    """One row against the API (``mode``: create or upsert, for a create that conflicts);
    never raises. A row whose run stopped before it started is ``skipped``."""
    if stop.is_set():
        return RowAnswer(item.row, "skipped", None, CANCELLED_MESSAGE, None)
    try:
        if item.action == "create":
            status, config_id, message = _create(client, item, mode)
        elif item.action == "update":
            status, config_id, message = _update(client, item)
        else:
            status, config_id, message = _allocate(client, item)
        return RowAnswer(item.row, status, config_id, message, None)
    except UnconfirmedError as exc:
        # The server may have done it: never "failed". Counted towards "the server stopped
        # answering" only when no answer came at all.
        cause = exc.__cause__
        streak = Unreachable(cause) if isinstance(cause, TransportError) else None
        return RowAnswer(item.row, "unconfirmed", None, str(exc), streak)
    except (AuthError, LoginUnavailableError) as exc:
        # No login (refused, or no usable answer from the login): the row was not sent, and
        # running the file again once the login works sends it.
        return RowAnswer(item.row, "skipped", None, stop_reason(exc), exc)
    except TransportError as exc:
        return RowAnswer(
            item.row,
            "failed",
            None,
            f"{exc} — no usable answer; run the file again: it is safe, nothing is done twice",
            Unreachable(exc),
        )
    except EnKashError as exc:
        return RowAnswer(item.row, "failed", None, str(exc), None)
    except Exception as exc:  # a bug must not lose the row; it is logged and reported
        log.exception("row %s failed unexpectedly", item.row)
        return RowAnswer(
            item.row, "failed", None, f"internal error: {type(exc).__name__}: {exc}", None
        )


def stop_reason(fatal: EnKashError | None) -> str:
    """What a row not sent says: cancelled, or the fatal error that stopped the run."""
    if fatal is None:
        return CANCELLED_MESSAGE
    return f"not sent: {fatal}; fix this and run again to resume"
