"""Where cost figures come from: volumes sheets, budget sheets, and the allocation history.

A **volumes sheet** says how often each event happens: ``companyId, event, count[, month]``
(one count per company, event and month; without a month column each count is one month's).
A **budget sheet** gives each company's monthly budget in rupees: ``companyId, budget``. Both
are read by the bulk reader (`toolkit.bulk.reading`: any common encoding and delimiter, .xlsx,
header spellings, spreadsheet row numbers) and checked row by row: every row ends valid or with
its reasons (rows in = rows out), and only valid rows count.

`cost_basis` gathers what `toolkit.cost` needs for one registry — the known configurations,
the volumes (a sheet, or the allocations of the last N days scaled to a month), the value of a
coin and the budgets from settings — so that every surface states a plan's or an update's cost
delta the same way.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any, TypeAlias

import numpy as np
import pandas as pd

from toolkit import cost
from toolkit.bulk.layouts import COMMON_ALIASES, Layout, SheetError, aliases
from toolkit.bulk.planning import Plan
from toolkit.bulk.reading import Sheet, read_sheet
from toolkit.bulk.seams import CostRegistry
from toolkit.models import check_company_id, check_event
from toolkit.settings import Settings

__all__ = [
    "BUDGET_HEADER",
    "VOLUME_HEADER",
    "BudgetSheet",
    "CostBasis",
    "SheetError",
    "VolumeSheet",
    "cost_basis",
    "read_budgets",
    "read_volumes",
]

log = logging.getLogger(__name__)

VOLUME_HEADER = "companyId,event,count,month"
BUDGET_HEADER = "companyId,budget"
PROBLEM_COLUMNS = ["row", "column", "value", "severity", "reason", "message"]

Source = str | os.PathLike[str] | bytes | bytearray | memoryview | IO[Any]

_VOLUMES = Layout(
    kind="volumes",
    label="a volumes",
    header=VOLUME_HEADER,
    required=("companyId", "event", "count"),
    optional=("month",),
    aliases=aliases(
        {
            **COMMON_ALIASES,
            "count": (
                "count",
                "volume",
                "volumes",
                "occurrences",
                "events",
                "monthly count",
                "count per month",
                "events per month",
            ),
            "month": ("month", "period", "year month"),
        }
    ),
    default_note={"month": ("", "No month column: each count is read as one month's volume.")},
)
_BUDGETS = Layout(
    kind="budgets",
    label="a budget",
    header=BUDGET_HEADER,
    required=("companyId", "budget"),
    optional=(),
    aliases=aliases(
        {
            "companyId": COMMON_ALIASES["companyId"],
            "budget": (
                "budget",
                "monthly budget",
                "budget per month",
                "budget (₹)",
                "budget inr",
                "budget rupees",
                "rupees",
            ),
        }
    ),
    default_note={},
)
_NUMBER = re.compile(r"^\+?(\d+(\.\d*)?|\.\d+)$")
_MONTH_FORMATS = ("%Y-%m", "%Y-%m-%d", "%Y/%m", "%m/%Y", "%b %Y", "%B %Y", "%b-%Y", "%Y%m")


# --------------------------------------------------------------------------- checking rows


class _Problems:
    """Problems found in a sheet's columns, as (row, column, value, severity, reason)."""

    def __init__(self, rows: np.ndarray) -> None:
        self.rows = rows
        self.parts: list[pd.DataFrame] = []
        self.errors = np.zeros(len(rows), dtype=bool)

    def add(self, column: str, values: pd.Series, reasons: pd.Series) -> None:
        """``reasons`` aligned with ``values``: "" where the cell is fine."""
        bad = (reasons != "").to_numpy(dtype=bool)
        if not bad.any():
            return
        self.errors |= bad
        self.parts.append(
            pd.DataFrame(
                {
                    "row": self.rows[bad],
                    "column": column,
                    "value": values[bad].astype("str").to_numpy(),
                    "severity": "error",
                    "reason": reasons[bad].astype("str").to_numpy(),
                }
            )
        )

    def frame(self) -> pd.DataFrame:
        if not self.parts:
            out = pd.DataFrame({c: pd.Series([], dtype="str") for c in PROBLEM_COLUMNS})
            out["row"] = pd.Series([], dtype="int64")
            return out
        out = pd.concat(self.parts, ignore_index=True)
        out = out.sort_values("row", kind="stable", ignore_index=True)
        for column in ("column", "value", "severity", "reason"):
            out[column] = out[column].astype("str")
        value = out["value"].str.slice(0, 60)
        shown = (" '" + value + "': ").where(out["value"] != "", ": ")
        out["message"] = "Row " + out["row"].astype("str") + ", " + out["column"] + shown
        out["message"] = out["message"] + out["reason"]
        out["row"] = out["row"].astype("int64")
        return out[PROBLEM_COLUMNS]


def _checked(
    values: pd.Series, check: Callable[[str], tuple[str | None, str | None]]
) -> tuple[pd.Series, pd.Series]:
    """A scalar check from `toolkit.models` over the distinct values only: (value, reason)."""
    distinct = pd.unique(values.to_numpy())
    results = {v: check(v) for v in distinct}
    normal = values.map(lambda v: results[v][0] or "")
    reasons = values.map(lambda v: results[v][1] or "")
    return normal.astype("str"), reasons.astype("str")


def _numbers(values: pd.Series, what: str) -> tuple[pd.Series, pd.Series]:
    """Non-negative numbers (decimals allowed, thousands commas and ₹ ignored) and reasons."""
    text = values.astype("str").str.replace(",", "", regex=False).str.replace("₹", "").str.strip()
    plain = text.str.match(_NUMBER).fillna(False).astype("bool")
    number = pd.to_numeric(text.where(plain), errors="coerce").astype("float64")
    reasons = pd.Series("", index=values.index, dtype="str")
    reasons = reasons.mask(text == "", "is missing")
    negative = text.str.match(r"^-\s*(\d|\.\d)").fillna(False).astype("bool")
    reasons = reasons.mask((text != "") & negative, "must be 0 or more")
    reasons = reasons.mask((text != "") & ~negative & number.isna(), f"must be {what}")
    return number.where(reasons == ""), reasons


def _months(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Months as "YYYY-MM" ("" when blank) and reasons (2025-03, 2025-03-01, Mar 2025, …)."""
    text = values.astype("str").str.strip()
    distinct = {v: _month(v) for v in pd.unique(text.to_numpy()) if v}
    month = text.map(lambda v: distinct.get(v, "") or "").astype("str")
    bad = (text != "") & (month == "")
    reasons = pd.Series("", index=values.index, dtype="str").mask(
        bad, "must be a month such as 2025-03 (or a date in that month)"
    )
    return month, reasons


def _month(text: str) -> str:
    candidate = text[:10] if re.match(r"^\d{4}-\d\d-\d\dT", text) else text
    for pattern in _MONTH_FORMATS:
        try:
            stamp = pd.to_datetime(candidate, format=pattern)
        except (ValueError, TypeError):
            continue
        return f"{stamp.year:04d}-{stamp.month:02d}"
    return ""


def _duplicates(keys: pd.DataFrame, valid: np.ndarray, rows: np.ndarray) -> pd.Series:
    """For each valid row repeating an earlier valid row's keys: "same … as row N"."""
    reasons = pd.Series("", index=keys.index, dtype="str")
    subset = keys.loc[valid]
    repeated = subset.duplicated(keep="first")
    if not repeated.any():
        return reasons
    first_row = (
        pd.Series(rows[valid], index=subset.index)
        .groupby([subset[c] for c in subset.columns], sort=False)
        .transform("first")
    )
    columns = list(keys.columns)
    names = columns[0] if len(columns) == 1 else ", ".join(columns[:-1]) + " and " + columns[-1]
    text = "the same " + names + " as row " + first_row.astype("int64").astype("str")
    reasons.loc[repeated[repeated].index] = text[repeated].to_numpy()
    return reasons


# --------------------------------------------------------------------------- volumes


@dataclass
class VolumeSheet:
    """A volumes sheet as read and checked.

    ``frame``: one row per data row — ``row``, ``companyId``, ``event``, ``count`` (float),
    ``month`` ("YYYY-MM" or ""), ``valid``, ``message`` (its reasons, "" when valid).
    ``problems``: one row per problem (row, column, value, severity, reason, message).
    ``monthly``: companyId, event, monthly_count — the valid rows per pair, averaged over the
    months the sheet covers (each count is a month's when there is no month column).
    """

    sheet: Sheet
    frame: pd.DataFrame
    problems: pd.DataFrame
    monthly: pd.DataFrame
    months: list[str] = field(default_factory=list)

    @property
    def valid_rows(self) -> int:
        return int(self.frame["valid"].sum())

    @property
    def errors(self) -> int:
        return int((~self.frame["valid"]).sum())

    def describe(self) -> str:
        """What was read and how, and the months it covers."""
        text = self.sheet.describe_as("volume")
        if self.months:
            span = (
                self.months[0] if len(self.months) == 1 else f"{self.months[0]}…{self.months[-1]}"
            )
            text += f"; {len(self.months)} month{'s' if len(self.months) != 1 else ''} ({span})"
        return text

    @property
    def source(self) -> str:
        """Where the volumes come from, for the figures' captions."""
        pairs = len(self.monthly)
        plural = "s" if pairs != 1 else ""
        return f"the volumes sheet {self.sheet.source_name} ({pairs:,} pair{plural})"

    def summary(self) -> str:
        n = len(self.frame)
        line = f"{n:,} rows: {self.valid_rows:,} valid"
        if self.errors:
            line += f", {self.errors:,} with errors (not counted)"
        return line


def read_volumes(source: Source, *, filename: str | None = None) -> VolumeSheet:
    """Read and check a volumes sheet (``companyId, event, count[, month]``).

    ``source`` is a path, an upload's bytes or a binary file; ``filename`` names it in messages.
    Raises `SheetError` when it cannot be such a sheet at all; row problems are reported per
    row (``problems``, ``frame["message"]``), never raised.
    """
    sheet = read_sheet(source, filename, _VOLUMES)
    data = sheet.frame
    rows = data["row"].to_numpy(dtype="int64")
    problems = _Problems(rows)
    company, company_reasons = _checked(data["companyId"], check_company_id)
    problems.add("companyId", data["companyId"], company_reasons)
    event, event_reasons = _checked(data["event"], check_event)
    problems.add("event", data["event"], event_reasons)
    count, count_reasons = _numbers(data["count"], "a number of occurrences (e.g. 1200)")
    problems.add("count", data["count"], count_reasons)
    month, month_reasons = _months(data["month"])
    with_month = month != ""
    if with_month.any() and not with_month.all():
        missing = (data["month"].astype("str").str.strip() == "") & (month_reasons == "")
        month_reasons = month_reasons.mask(missing, "is missing (other rows give a month)")
    problems.add("month", data["month"], month_reasons)
    valid = ~problems.errors
    keys = pd.DataFrame({"companyId": company, "event": event})
    if with_month.any():
        keys["month"] = month
    problems.add(
        "companyId",
        data["companyId"],
        _duplicates(keys, valid, rows),
    )
    valid = ~problems.errors
    problem_frame = problems.frame()
    messages = _messages(problem_frame, rows)
    frame = pd.DataFrame(
        {
            "row": rows,
            "companyId": company.where(company != "", data["companyId"]).to_numpy(),
            "event": event.where(event != "", data["event"]).to_numpy(),
            "count": count.to_numpy(dtype="float64"),
            "month": month.to_numpy(),
            "valid": valid,
            "message": messages,
        }
    )
    for column in ("companyId", "event", "month", "message"):
        frame[column] = frame[column].astype("str")
    good = frame.loc[frame["valid"]]
    months = sorted(m for m in good["month"].unique() if m)
    span = max(len(months), 1)
    monthly = good.groupby(["companyId", "event"], as_index=False, sort=True)["count"].sum()
    monthly = monthly.rename(columns={"count": "monthly_count"})
    monthly["monthly_count"] = monthly["monthly_count"].astype("float64") / span
    if len(frame) != len(data):  # rows in = rows out, always
        raise RuntimeError(f"volumes: {len(data)} rows read but {len(frame)} accounted for")
    return VolumeSheet(
        sheet=sheet, frame=frame, problems=problem_frame, monthly=monthly, months=months
    )


def _messages(problems: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    if problems.empty:
        return np.full(len(rows), "", dtype=object)
    text = problems["message"].str.replace(r"^Row [0-9]+, ", "", regex=True)
    joined = text.groupby(problems["row"]).agg("; ".join)
    return pd.Series(rows).map(joined).fillna("").to_numpy(dtype=object)


# --------------------------------------------------------------------------- budgets


@dataclass
class BudgetSheet:
    """A budget sheet as read and checked: ``frame`` (row, companyId, budget, valid,
    message), ``problems``, and ``budgets`` (`toolkit.cost.Budgets` of the valid rows; a
    companyId of ``*`` sets the budget of every company not listed)."""

    sheet: Sheet
    frame: pd.DataFrame
    problems: pd.DataFrame
    budgets: cost.Budgets

    def describe(self) -> str:
        return self.sheet.describe_as("budget")

    @property
    def errors(self) -> int:
        return int((~self.frame["valid"]).sum())


# Budgets as `cost_basis` takes them: parsed, a budget sheet as read, a frame, or a sheet.
BudgetSource: TypeAlias = cost.Budgets | BudgetSheet | pd.DataFrame | Source


def read_budgets(source: Source, *, filename: str | None = None) -> BudgetSheet:
    """Read and check a budget sheet (``companyId, budget`` in rupees a month); see
    `read_volumes`."""
    sheet = read_sheet(source, filename, _BUDGETS)
    data = sheet.frame
    rows = data["row"].to_numpy(dtype="int64")
    problems = _Problems(rows)
    raw = data["companyId"].astype("str")
    company, reasons = _checked(raw, check_company_id)
    star = raw.str.strip() == "*"
    company = company.mask(star, "*")
    problems.add("companyId", raw, reasons.mask(star, ""))
    budget, budget_reasons = _numbers(data["budget"], "rupees a month (e.g. 150000)")
    problems.add("budget", data["budget"], budget_reasons)
    valid = ~problems.errors
    problems.add("companyId", raw, _duplicates(pd.DataFrame({"companyId": company}), valid, rows))
    valid = ~problems.errors
    problem_frame = problems.frame()
    frame = pd.DataFrame(
        {
            "row": rows,
            "companyId": company.where(company != "", raw).astype("str").to_numpy(),
            "budget": budget.to_numpy(dtype="float64"),
            "valid": valid,
            "message": _messages(problem_frame, rows),
        }
    )
    frame["companyId"] = frame["companyId"].astype("str")
    frame["message"] = frame["message"].astype("str")
    budgets = cost.Budgets.from_frame(frame.loc[frame["valid"]])
    return BudgetSheet(sheet=sheet, frame=frame, problems=problem_frame, budgets=budgets)


# --------------------------------------------------------------------------- the basis


@dataclass
class CostBasis:
    """What cost figures of one registry rest on: ``configs`` (companyId, event, amount),
    ``volumes`` (companyId, event, monthly_count), where the volumes come from, the value of
    a coin and the budgets. Its methods are `toolkit.cost` applied to them."""

    configs: pd.DataFrame
    volumes: pd.DataFrame
    volume_source: str
    value: cost.CoinValue
    budgets: cost.Budgets

    @property
    def known(self) -> bool:
        """True when some volume is known (else no cost can be told)."""
        return bool(len(self.volumes)) and float(self.volumes["monthly_count"].sum()) > 0

    def projection(self) -> pd.DataFrame:
        return cost.projection(self.configs, self.volumes, value=self.value)

    def what_if(self, changes: pd.DataFrame) -> cost.WhatIf:
        return cost.what_if(
            self.configs, self.volumes, changes, value=self.value, budgets=self.budgets
        )

    def plan_delta(self, plan: Plan) -> cost.WhatIf | None:
        """The monthly cost delta of a configuration plan; None when no volume is known or
        the plan is not one of configurations."""
        if not self.known or getattr(plan, "kind", "configs") != "configs":
            return None
        return self.what_if(cost.changes_from_plan(plan))

    def plan_line(self, plan: Plan, *, subject: str = "This sheet") -> str | None:
        """ "This sheet raises monthly cost by ₹1.2 lakh, +18%; CEKEKCARDS over budget (…)",
        or None when volumes are unknown."""
        result = self.plan_delta(plan)
        return None if result is None else f"{subject} {result.summary()}"

    def update_line(self, company_id: str, event: str, amount: int) -> str | None:
        """The single update form's line ("This change raises monthly cost by …")."""
        if not self.known:
            return None
        result = self.what_if(cost.single_change(company_id, event, amount))
        return f"This change {result.summary()}"

    def edits_line(self, before: pd.DataFrame, after: pd.DataFrame) -> str | None:
        """The inline-edit review's line, for a table before and after editing."""
        if not self.known:
            return None
        result = self.what_if(cost.changes_from_edits(before, after))
        return f"These edits {result.summary()}"


def _volume_frame(volumes: VolumeSheet | pd.DataFrame | Source) -> tuple[pd.DataFrame, str]:
    if isinstance(volumes, VolumeSheet):
        return volumes.monthly, volumes.source
    if isinstance(volumes, pd.DataFrame):
        return volumes, str(volumes.attrs.get("source") or "the volumes given")
    sheet = read_volumes(volumes)
    return sheet.monthly, sheet.source


def _budgets(budgets: BudgetSource | None, settings: Settings) -> cost.Budgets:
    if isinstance(budgets, cost.Budgets):
        return budgets
    if isinstance(budgets, BudgetSheet):
        return budgets.budgets
    if isinstance(budgets, pd.DataFrame):
        return cost.Budgets.from_frame(budgets)
    if budgets is not None:
        return read_budgets(budgets).budgets
    return cost.Budgets.parse(getattr(settings, "monthly_budget", None))


def cost_basis(
    registry: CostRegistry,
    settings: Settings | None = None,
    *,
    volumes: VolumeSheet | pd.DataFrame | Source | None = None,
    budgets: BudgetSource | None = None,
    days: int = cost.HISTORY_DAYS,
    now: pd.Timestamp | str | None = None,
) -> CostBasis:
    """The basis of cost figures for ``registry``'s server.

    ``volumes``: a `VolumeSheet`, a frame (companyId, event, monthly_count) or a sheet's path
    or bytes; None = the registry's allocations of the last ``days`` days, scaled to a month.
    ``budgets``: `Budgets`, a `BudgetSheet`, a frame or a sheet; None = ``COINS_MONTHLY_BUDGET``.
    ``settings`` (default: the registry's environment) gives the value of a coin.
    """
    if settings is None:
        settings = Settings.from_env()
    if volumes is None:
        end = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
        end = end.tz_localize("UTC") if end.tzinfo is None else end
        history = registry.allocations_frame(
            since=end - pd.Timedelta(days=days), until=end, bulk_runs=False
        )
        frame = cost.volumes_from_history(history, days=days, now=end)
        volume_frame, source = frame, str(frame.attrs["source"])
    else:
        volume_frame, source = _volume_frame(volumes)
    return CostBasis(
        configs=registry.known_pairs(),
        volumes=volume_frame,
        volume_source=source,
        value=cost.CoinValue.from_settings(settings),
        budgets=_budgets(budgets, settings),
    )
