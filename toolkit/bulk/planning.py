"""The dry run: what a bulk run would do with each row, decided against the registry.

No HTTP. Each valid configuration row becomes ``create`` (pair unknown), ``update`` (known
with other values; only in mode ``upsert``), ``unchanged`` (known with the same values) or
``conflict`` (known with other values in mode ``create``, which never touches existing
pairs); invalid rows become ``invalid`` with their reasons. Allocation rows become
``allocate`` or ``invalid``; a valid row the sheet gives no requestId gets one derived from
the sheet's name and the row's values — not while planning (SHA-256 per row is most of a
large sheet's planning time) but the first time the plan's ``frame`` is read, all at once,
then kept. ``counts``, ``to_send``, ``len`` and ``summary`` need no ids and derive none;
``Plan.head`` derives only the ids of the rows it returns.
The decisions are one merge against the registry's known pairs, not a loop over rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from toolkit.bulk.request_ids import (
    batch_name,
    derive_request_id,
    derive_request_ids,
    sheet_occurrences,
    sheet_request_ids,
)
from toolkit.bulk.seams import KnownPairs
from toolkit.bulk.validation import Validation

__all__ = [
    "ALLOCATION_PLAN_COLUMNS",
    "CONFIG_ACTIONS",
    "CONFIG_PLAN_COLUMNS",
    "MODES",
    "Plan",
    "batch_name",
    "derive_request_id",
    "derive_request_ids",
    "plan",
    "plan_allocations",
]

MODES = ("create", "upsert")
CONFIG_ACTIONS = ("create", "update", "unchanged", "conflict", "invalid")
ALLOCATION_ACTIONS = ("allocate", "invalid")
CONFIG_PLAN_COLUMNS = [
    "row",
    "companyId",
    "event",
    "configuration",
    "amount",
    "action",
    "coinConfigId",
    "before_amount",
    "before_configuration",
    "message",
]
ALLOCATION_PLAN_COLUMNS = [
    "row",
    "companyId",
    "event",
    "userId",
    "requestId",
    "requestId_derived",
    "amount",
    "coinConfigId",
    "action",
    "message",
]


@dataclass(frozen=True, eq=False)
class _PendingIds:
    """The requestIds an allocation plan has still to derive: the sheet's name, where the
    rows that need one sit in the frame (ascending positions) and, in that order, their
    companyId, event and userId. A row's id is the one `sheet_request_ids` gives it among
    these rows, whether all of them are derived (``fill``) or a few (``fill_at``)."""

    sheet_name: str | None
    positions: np.ndarray
    company: pd.Series
    event: pd.Series
    user: pd.Series

    def fill(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` (the whole plan's) with every derived requestId in place."""
        derived = sheet_request_ids(self.sheet_name, self.company, self.event, self.user)
        if len(self.positions) == len(frame):
            column = pd.Series(derived.array, index=frame.index)
        else:
            column = frame["requestId"].copy()
            column.iloc[self.positions] = derived.array
        return frame.assign(requestId=column)

    def fill_at(self, rows: pd.DataFrame, at: np.ndarray) -> pd.DataFrame:
        """``rows`` (the plan's rows at frame positions ``at``) with their derived requestIds
        in place: only these rows are hashed; their occurrences are counted over the rows
        above the last of them (a row's occurrence depends on nothing below it)."""
        found = np.searchsorted(self.positions, at)
        mine = found < len(self.positions)
        mine[mine] = self.positions[found[mine]] == at[mine]
        if not mine.any():
            return rows
        which = found[mine]
        upto = int(which.max()) + 1
        occurrences = sheet_occurrences(
            self.company.iloc[:upto], self.event.iloc[:upto], self.user.iloc[:upto]
        )
        ids = derive_request_ids(
            self.sheet_name,
            self.company.iloc[which],
            self.event.iloc[which],
            self.user.iloc[which],
            pd.Series(occurrences[which]),
        )
        column = rows["requestId"].copy()
        column.iloc[np.flatnonzero(mine)] = ids.array
        return rows.assign(requestId=column)


@dataclass
class Plan:
    """What a run would do, row by row, before anything is sent.

    ``frame`` has one row per input row (see ``CONFIG_PLAN_COLUMNS`` or
    ``ALLOCATION_PLAN_COLUMNS``); ``inputs`` holds the sheet's own columns (all text, with
    ``row``) in the same order, so results can repeat exactly what the analyst gave.
    ``file_sha256``, ``kind`` and ``mode`` (with the server) make the run key that resumes.

    An allocation plan derives its requestIds when ``frame`` is first read (then keeps
    them); ``counts``, ``to_send``, ``len()``, ``summary()`` and ``head()`` do not derive
    them all. Setting ``frame`` (or ``dataclasses.replace(plan, frame=...)``) gives a plan
    that frame, as it is; ``replace`` with other changes reads ``frame``, so derives them.
    """

    frame: pd.DataFrame  # a property (below): the frame with its requestIds derived
    kind: str
    mode: str
    inputs: pd.DataFrame
    file_sha256: str
    source_name: str | None = None
    problems: pd.DataFrame = field(default_factory=pd.DataFrame)
    server_key: str | None = None
    # Where ``frame`` is kept, and the requestIds it still lacks (None: none lacking).
    _frame: pd.DataFrame = field(init=False, repr=False, compare=False)
    _pending: _PendingIds | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def counts(self) -> dict[str, int]:
        """Rows per action, every action of this kind listed (zeros included)."""
        actions = ALLOCATION_ACTIONS if self.kind == "allocations" else CONFIG_ACTIONS
        found = self._frame["action"].value_counts()
        return {a: int(found.get(a, 0)) for a in actions}

    @property
    def to_send(self) -> int:
        """How many rows the run would send to the API."""
        return int(self._frame["action"].isin(["create", "update", "allocate"]).sum())

    @property
    def request_ids_pending(self) -> bool:
        """True while the plan's derived requestIds are still to be worked out (they are
        the first time ``frame`` is read)."""
        return self._pending is not None

    @property
    def decided(self) -> pd.DataFrame:
        """The frame as planned, without deriving requestIds (a derived one is blank until
        ``frame`` is read): for totals and counts that do not need them (coins to send)."""
        return self._frame

    def __len__(self) -> int:
        return len(self._frame)

    def summary(self) -> str:
        """One line an analyst can read: rows and what happens to them."""
        parts = [f"{n} {a}" for a, n in self.counts.items() if n]
        return f"{len(self)} rows: " + (", ".join(parts) if parts else "nothing to do")

    def head(self, n: int = 5, *, actions: Iterable[str] | None = None) -> pd.DataFrame:
        """``frame.head(n)`` — of the rows whose action is one of ``actions``, when given —
        with the requestIds of these rows alone derived, if the plan has not derived them
        all yet: the same rows and values as ``frame`` would give, without hashing a
        million rows to show fifty."""
        frame = self._frame
        if actions is not None:
            frame = frame[frame["action"].isin(list(actions))]
        rows = frame.head(n)
        if self._pending is None:
            return rows
        return self._pending.fill_at(rows, self._frame.index.get_indexer(rows.index))


# ``frame`` is a dataclass field (the generated __init__, ``replace``, repr and fields keep
# it) read and set through this property. It is attached after the class is made: a
# property in the class body would become the field's default.
def _get_frame(plan: Plan) -> pd.DataFrame:
    if plan._pending is not None:
        plan._frame = plan._pending.fill(plan._frame)
        plan._pending = None
    return plan._frame


def _set_frame(plan: Plan, frame: pd.DataFrame) -> None:
    plan._frame = frame
    plan._pending = None


Plan.frame = property(
    _get_frame, _set_frame, doc="The plan, one row per input row (requestIds derived)."
)


# -- shared helpers ------------------------------------------------------------------------


def _file_sha(validation: Validation) -> str:
    if validation.sheet.sha256:
        return validation.sheet.sha256
    # A frame built in a notebook: its content is its identity.
    inputs = validation.inputs.reset_index(drop=True)
    hashed = pd.util.hash_pandas_object(inputs.astype("string"), index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()


def _show(value: Any) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "(blank)"
    return repr(str(value))


def _problem_messages(problems: pd.DataFrame | None) -> tuple[pd.Series, pd.Series]:
    """Per row: the errors joined, and the warnings joined (both indexed by row)."""
    empty = pd.Series(dtype="str")
    if problems is None or len(problems) == 0:
        return empty, empty
    if "message" in problems.columns:
        # validation's own wording ("Row 7, amount '6.5': …"); the row is a column already.
        text = problems["message"].astype("str").str.replace(r"^Row [0-9]+, ", "", regex=True)
    else:
        text = problems["column"].astype("str") + " " + problems["value"].map(_show)
        text = text + ": " + problems["reason"].astype("str")
    severity = problems["severity"].astype("str").str.lower()
    rows = problems["row"].astype("int64")
    is_warning = severity.str.startswith("warn")
    errors = text[~is_warning].groupby(rows[~is_warning]).agg("; ".join)
    warnings = text[is_warning].groupby(rows[is_warning]).agg("; ".join)
    return errors, warnings


def _per_row(messages: pd.Series, frame: pd.DataFrame) -> pd.Series:
    """Messages keyed by row number, aligned with ``frame`` ("" where a row has none)."""
    if messages.empty:
        return pd.Series("", index=frame.index, dtype="str")
    looked_up = messages.astype("str").reindex(frame["row"].to_numpy()).fillna("")
    return pd.Series(looked_up.array, index=frame.index, dtype="str")


def _text_where(mask: pd.Series, yes: str, no: str) -> pd.Series:
    """A text column: ``yes`` where ``mask``, else ``no`` (made in Arrow, not row by row)."""
    large = pa.large_string()
    chosen = pc.if_else(
        pa.array(mask.to_numpy(dtype=bool)), pa.scalar(yes, large), pa.scalar(no, large)
    )
    return pd.Series(pd.array(chosen, dtype="str"), index=mask.index)


def _noted(message: pd.Series, where: pd.Series, note: pd.Series) -> pd.Series:
    """``message`` with ``note`` added where ``where``: after "; " when there is a message."""
    if not where.any():
        return message
    before, added = message[where], note[where]
    out = message.copy()
    out[where] = before.where(before == "", before + "; ") + added
    return out


def _known_configs(registry: KnownPairs | None) -> pd.DataFrame:
    """The registry's known pairs for its server: coinConfigId, companyId, event,
    configuration, amount (one row per pair)."""
    columns = ["coinConfigId", "companyId", "event", "configuration", "amount"]
    if registry is None:
        known = pd.DataFrame({c: pd.Series(dtype="str") for c in columns})
    else:
        known = registry.known_pairs()
    missing = [c for c in columns if c not in known.columns]
    if missing:
        raise TypeError(f"the registry's frame lacks {missing}")
    known = known[columns].dropna(subset=["companyId", "event"])
    # At most one configuration per pair on a server; keep the last one the registry lists.
    known = known.drop_duplicates(subset=["companyId", "event"], keep="last")
    return known.assign(
        companyId=known["companyId"].astype("str"),
        event=known["event"].astype("str"),
        configuration=known["configuration"].astype("str"),
        amount=pd.to_numeric(known["amount"], errors="coerce").astype("Int64"),
    )


# -- configurations ------------------------------------------------------------------------


def plan(
    validation: Validation, registry: KnownPairs | None = None, *, mode: str = "create"
) -> Plan:
    """Decide, without sending anything, what a run would do with each row.

    ``validation`` is what ``toolkit.bulk.validate`` returned; ``registry`` supplies the
    known (companyId, event) pairs of its server (None = nothing known). ``mode`` is
    ``create`` (existing pairs are never touched: a different value is a ``conflict``) or
    ``upsert`` (a different value becomes an ``update``).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    checked = validation.frame.reset_index(drop=True)
    inputs = validation.inputs.reset_index(drop=True)
    errors, warnings = _problem_messages(validation.problems)

    rows = checked["row"].astype("int64")
    valid = checked["valid"].fillna(False).astype("bool").to_numpy()
    base = pd.DataFrame(
        {
            "row": rows,
            "companyId": checked["companyId"].astype("str"),
            "event": checked["event"].astype("str"),
            "configuration": checked["configuration"].astype("str"),
            "amount": pd.to_numeric(checked["amount"], errors="coerce").astype("Int64"),
        }
    )
    known = _known_configs(registry).rename(
        columns={
            "configuration": "before_configuration",
            "amount": "before_amount",
        }
    )
    merged = base.merge(known, on=["companyId", "event"], how="left", validate="many_to_one")
    is_known = merged["coinConfigId"].notna().to_numpy() & valid
    same = (
        merged["before_amount"].eq(merged["amount"]).fillna(False).to_numpy()
        & merged["before_configuration"].eq(merged["configuration"]).fillna(False).to_numpy()
    )
    differs_action = "update" if mode == "upsert" else "conflict"
    action = np.select(
        [~valid, ~is_known, same],
        ["invalid", "create", "unchanged"],
        default=differs_action,
    )
    merged["action"] = pd.array(action, dtype="str")

    # Messages: reasons for invalid rows, before → after for known pairs, warnings for all.
    message = pd.Series("", index=merged.index, dtype="str")
    by_row_errors = _per_row(errors, merged)
    by_row_warnings = _per_row(warnings, merged)
    before = (
        merged["before_configuration"].fillna("?")
        + " "
        + merged["before_amount"].astype("str").fillna("?")
    )
    after = merged["configuration"] + " " + merged["amount"].astype("str").fillna("?")
    change = "already configured as " + merged["coinConfigId"].fillna("") + ": "
    change = change + before + " → " + after
    act = merged["action"]
    message = message.mask(act == "invalid", by_row_errors)
    message = message.mask(
        act == "conflict",
        change + "; not changed in mode create (use mode upsert to update it)",
    )
    message = message.mask(act == "update", change.str.replace("already configured as ", "update "))
    message = message.mask(
        act == "unchanged",
        "already configured as " + merged["coinConfigId"].fillna("") + " with the same values",
    )
    has_warning = by_row_warnings != ""
    joiner = np.where(message != "", "; ", "")
    message = message.mask(has_warning, message + joiner + "warning: " + by_row_warnings)

    # Invalid rows show what they show; their known values would only confuse.
    invalid = act == "invalid"
    merged["coinConfigId"] = merged["coinConfigId"].where(~invalid)
    merged["before_amount"] = merged["before_amount"].where(~invalid)
    merged["before_configuration"] = merged["before_configuration"].where(~invalid)
    merged["message"] = message
    frame = merged[CONFIG_PLAN_COLUMNS]
    return Plan(
        frame=frame,
        kind="configs",
        mode=mode,
        inputs=inputs,
        file_sha256=_file_sha(validation),
        source_name=validation.sheet.source_name or None,
        problems=validation.problems,
        server_key=None if registry is None else registry.server_key,
    )


# -- allocations ---------------------------------------------------------------------------


def plan_allocations(validation: Validation, registry: KnownPairs | None = None) -> Plan:
    """Decide what a bulk allocation would do: ``allocate`` each valid row, ``invalid`` the rest.

    Rows without a requestId get one derived from the sheet's name and the row's own values
    (``derive_request_id``), so an edited or re-sorted sheet never allocates a row twice;
    they are derived when the plan's ``frame`` is first read, not here (see ``Plan``).
    ``amount`` is the configured coins for the pair when the registry knows it (a cost
    estimate; the server decides); the message warns otherwise.
    """
    checked = validation.frame.reset_index(drop=True)
    inputs = validation.inputs.reset_index(drop=True)
    file_sha = _file_sha(validation)
    errors, warnings = _problem_messages(validation.problems)

    rows = checked["row"].astype("int64")
    valid = checked["valid"].fillna(False).astype("bool")
    given = (
        checked["requestId"].astype("str")
        if "requestId" in checked.columns
        else pd.Series(pd.NA, index=checked.index, dtype="str")
    )
    given = given.where(given.str.strip() != "")
    company = checked["companyId"].astype("str")
    event = checked["event"].astype("str")
    user = checked["userId"].astype("str")
    need = given.isna() & valid
    # Derived later (`_PendingIds`): the n-th time the sheet names the same companyId, event
    # and userId without a requestId.
    pending = None
    if need.any():
        everywhere = bool(need.all())
        pending = _PendingIds(
            sheet_name=validation.sheet.source_name or None,
            positions=np.flatnonzero(need.to_numpy()),
            company=company if everywhere else company[need],
            event=event if everywhere else event[need],
            user=user if everywhere else user[need],
        )

    base = pd.DataFrame(
        {
            "row": rows,
            "companyId": company,
            "event": event,
            "userId": user,
            "requestId": given,
            "requestId_derived": need.to_numpy(),
        }
    )
    known = _known_configs(registry)[["companyId", "event", "amount", "coinConfigId"]]
    # One known row per pair (`_known_configs`), so no validate= (it checks the million left
    # keys too): each row stays once, in its place, where the pending ids expect it.
    merged = base.merge(known, on=["companyId", "event"], how="left")
    if len(merged) != len(base):  # pragma: no cover - _known_configs dropped the duplicates
        raise RuntimeError("the registry's known pairs are not unique")
    valid.index = merged.index
    act = _text_where(valid, "allocate", "invalid")
    invalid = ~valid
    unknown_pair = valid & merged["coinConfigId"].isna()
    message = _text_where(
        unknown_pair,
        "warning: no configuration known locally for this company and event "
        "(the server refuses the allocation if none exists)",
        "",
    )
    if invalid.any():
        message = message.mask(invalid, _per_row(errors, merged))
    if len(warnings):
        by_row_warnings = _per_row(warnings, merged)
        message = _noted(message, by_row_warnings != "", "warning: " + by_row_warnings)
    merged["action"] = act
    merged["message"] = message
    merged["amount"] = merged["amount"].where(~invalid)
    merged["coinConfigId"] = merged["coinConfigId"].where(~invalid)
    result = Plan(
        frame=merged[ALLOCATION_PLAN_COLUMNS],
        kind="allocations",
        mode="allocate",
        inputs=inputs,
        file_sha256=file_sha,
        source_name=validation.sheet.source_name or None,
        problems=validation.problems,
        server_key=None if registry is None else registry.server_key,
    )
    result._pending = pending
    return result
