"""The cost basis every page uses and the cost lines other pages show: the monthly cost delta
of a bulk plan (Bulk upload, Allocate), of an update (Configurations) and of inline edits
(the review). Every figure comes from `toolkit.bulk.volumes.cost_basis` (the volumes: a sheet
uploaded on the Cost page, else the last N days of allocations); a line never breaks the page
it sits on.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import pandas as pd
import streamlit as st

from toolkit import cost
from toolkit.bulk import volumes as vol
from toolkit.models import check_amount
from toolkit.ui.caches import FRAME_TTL_S, data_key
from toolkit.ui.connection import connection, workspace
from toolkit.ui.text import esc

if TYPE_CHECKING:
    from toolkit.bulk import Plan

__all__ = [
    "BUDGETS_KEY",
    "DAYS_KEY",
    "SHOWN_ROWS",
    "VOLUMES_KEY",
    "basis",
    "basis_key",
    "cost_tables",
    "edits_cost",
    "held",
    "money_table",
    "plan_cost",
    "review_cost",
    "settings_value",
    "show_line",
    "update_cost",
]

log = logging.getLogger(__name__)

P = "cost"  # the Cost page's widget key prefix (the sheets it holds are read by every page)
SHOWN_ROWS = 1_000
VOLUMES_KEY = f"{P}_volumes_sheet"  # session_state: (name, digest, VolumeSheet), for every page
BUDGETS_KEY = f"{P}_budgets_sheet"  # session_state: (name, digest, BudgetSheet)
DAYS_KEY = f"{P}_days"


def settings_value() -> tuple[cost.CoinValue, str | None]:
    settings = connection().settings
    value = cost.CoinValue.from_settings(settings)
    return value, getattr(settings, "monthly_budget", None)


def held(slot: str) -> tuple[str, Any]:
    """(digest, sheet) of a sheet uploaded on the Cost page, or ("", None)."""
    held = st.session_state.get(slot)
    return (held[1], held[2]) if held else ("", None)


@st.cache_resource(ttl=FRAME_TTL_S, show_spinner="Working out volumes…", max_entries=16)
def _basis(key: str, _volumes: Any, _budgets: Any) -> vol.CostBasis:
    """One basis per data version, days, sheets and settings (all in ``key``)."""
    ws = workspace()
    days = int(key.rsplit("|days=", 1)[1].split("|", 1)[0])
    settings = connection().settings
    return vol.cost_basis(ws.registry, settings, volumes=_volumes, budgets=_budgets, days=days)


def basis_key() -> str:
    """What the cost basis depends on: data version, days, uploaded sheets and settings."""
    value, budget = settings_value()
    days = int(st.session_state.get(DAYS_KEY) or cost.HISTORY_DAYS)
    volumes, _ = held(VOLUMES_KEY)
    budgets, _ = held(BUDGETS_KEY)
    return (
        f"{data_key()}|days={days}|v={volumes}|b={budgets}"
        f"|value={value.rupees_per_coin}:{value.assumed}|budget={budget}"
    )


def basis() -> vol.CostBasis:
    """The cost basis every page uses: this server's configurations, the volumes (a sheet
    uploaded on the Cost page, else the last N days of allocations) and the budgets."""
    return _basis(basis_key(), held(VOLUMES_KEY)[1], held(BUDGETS_KEY)[1])


# --------------------------------------------------------------------------- display helpers


def money_table(frame: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """A table for people (`toolkit.cost.for_people`) with the page's column labels."""
    shown = cost.for_people(frame[list(columns)])
    return shown.rename(columns=columns).reset_index(drop=True)


def show_line(text: str, *, over: bool) -> None:
    """One cost line: a warning when it goes over a budget, else a note."""
    icon = ":material/warning:" if over else ":material/payments:"
    (st.warning if over else st.info)(esc(text), icon=icon)


def cost_tables(result: cost.WhatIf, prefix: str) -> None:
    changed = result.changed
    st.caption(
        f"{len(changed):,} pair(s) change · before → after per company and per event, "
        f"{result.value.short_note}."
    )
    moved = result.by_company.loc[result.by_company["rupees_delta"] != 0]
    st.dataframe(
        money_table(
            moved.head(SHOWN_ROWS),
            {
                "companyId": "Company",
                "rupees_before": "₹ a month before",
                "rupees_after": "₹ a month after",
                "rupees_delta": "Change (₹)",
                "pct": "Change %",
                "budget": "Budget",
                "over_budget_after": "Over budget",
            },
        ),
        hide_index=True,
        key=f"{prefix}_by_company",
    )


# --------------------------------------------------------------------------- lines for other pages


def plan_cost(plan: Plan) -> None:
    """The plan's cost line (Bulk upload, Allocate): the monthly cost delta of a configuration
    sheet when volumes are known, the coins an allocation sheet awards; nothing otherwise."""
    try:
        if getattr(plan, "kind", "configs") == "allocations":
            _allocation_plan_cost(plan)
            return
        current = basis()
        text = current.plan_line(plan)
        if text is None:
            st.caption(
                ":material/payments: Monthly cost: unknown until volumes are known (the "
                "allocations of the last days, or a volumes sheet on the **Cost** page)."
            )
            return
        result = current.plan_delta(plan)
        show_line(text, over=bool(result and result.newly_over_budget))
        if result is not None:
            with st.expander("Cost by company", expanded=False):
                cost_tables(result, f"{P}_plan")
    except Exception:  # a cost line never breaks the page it sits on
        log.exception("the plan's cost line failed")
        st.caption("Monthly cost: could not be worked out.")


def _allocation_plan_cost(plan: Plan) -> None:
    value, _ = settings_value()
    frame = plan.decided  # the amounts: no requestId needed
    sending = frame.loc[frame["action"] == "allocate"]
    coins = float(pd.to_numeric(sending["amount"], errors="coerce").fillna(0).sum())
    unknown = int(sending["amount"].isna().sum())
    text = (
        f"This sheet awards {cost.format_coins(coins)} ≈ "
        f"{cost.format_inr(coins * value.rupees_per_coin)} ({value.short_note})"
    )
    if unknown:
        text += f"; {unknown:,} row(s) name a pair with no configuration known here"
    show_line(text, over=False)


def update_cost(company_id: str | None, event: str | None, amount: int | None) -> None:
    """The single update form's cost line, for a new amount of one (company, event)."""
    if not company_id or not event or amount is None:
        return
    try:
        current = basis()
        text = current.update_line(company_id, event, int(amount))
        if text is None:
            return
        result = current.what_if(cost.single_change(company_id, event, int(amount)))
        show_line(text, over=bool(result.newly_over_budget))
    except Exception:
        log.exception("the update form's cost line failed")


def edits_cost(before: pd.DataFrame, after: pd.DataFrame) -> None:
    """The inline-edit review's cost line: frames with companyId, event and amount, before and
    after the edits."""
    try:
        current = basis()
        text = current.edits_line(before, after)
        if text is None:
            return
        result = current.what_if(cost.changes_from_edits(before, after))
        show_line(text, over=bool(result.newly_over_budget))
    except Exception:
        log.exception("the review's cost line failed")


def review_cost(edits: pd.DataFrame) -> None:
    """The inline-edit review's cost line, from its edits (companyId, event, amount_before,
    amount_after as typed): amounts that do not pass the rules are left out (the review says
    why they cannot be sent)."""
    try:
        typed = edits["amount_after"].map(lambda v: check_amount(v)[0] if pd.notna(v) else None)
        valid = typed.notna()
        if not valid.any():
            return
        before = pd.DataFrame(
            {
                "companyId": edits.loc[valid, "companyId"],
                "event": edits.loc[valid, "event"],
                "amount": edits.loc[valid, "amount_before"],
            }
        )
        edits_cost(before, before.assign(amount=typed[valid].astype("int64")))
    except Exception:
        log.exception("the review's cost line failed")
