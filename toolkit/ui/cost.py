"""What the programme costs and what a change would cost: coins awarded over time, per company
and the top movers; the monthly projection; a what-if panel whose change goes to the normal
review → apply flow as a sheet; budgets.

Every figure comes from `toolkit.cost` over the registry's allocation records and the volumes
(`toolkit.bulk.volumes`): the allocations of the last N days, or a volumes sheet uploaded here.
Heavy work is cached per data version and choice, so a rerun with 1,000,000 allocation records
costs about what it does with 1,000.

The cost lines other pages show, and the cost basis they share, are `toolkit.ui.cost_lines`.
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING, Any, cast

import pandas as pd
import streamlit as st

from toolkit import bulk, charts, cost
from toolkit.bulk import volumes as vol
from toolkit.models import MAX_AMOUNT
from toolkit.ui.caches import FRAME_TTL_S, column_options, data_key
from toolkit.ui.connection import workspace
from toolkit.ui.cost_lines import (
    BUDGETS_KEY,
    DAYS_KEY,
    SHOWN_ROWS,
    VOLUMES_KEY,
    basis,
    basis_key,
    cost_tables,
    settings_value,
    show_line,
)
from toolkit.ui.text import esc, excel_safe_csv

if TYPE_CHECKING:
    from toolkit.workspace import Workspace

P = "cost"  # widget key prefix of this page

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- cached data


@st.cache_resource(ttl=FRAME_TTL_S, show_spinner="Reading the allocations…", max_entries=4)
def _allocations(key: str) -> pd.DataFrame:
    """Every allocation record of this server (shared by sessions: read, never change)."""
    return workspace().registry.allocations_frame(bulk_runs=False)


@st.cache_resource(ttl=FRAME_TTL_S, show_spinner="Adding up…", max_entries=32)
def _awarded_views(
    key: str, period: cost.Period, _value: cost.CoinValue, _records: pd.DataFrame
) -> dict[str, Any]:
    """The awarded section for one data version, period and coin value (all in the key)."""
    value = _value
    counted = cost.awarded(_records, by=[], period=None, value=value)
    per_event = cost.awarded(_records, by="event", period=period, value=value)
    per_company = cost.awarded(_records, by="companyId", period=None, value=value)
    movers = cost.top_movers(_records, by="companyId", period=period, value=value)
    users = _records.loc[_records["status"].isin(cost.COUNTED_STATUSES), "userId"].nunique()
    unconfirmed = int((_records["status"] == "unconfirmed").sum())
    total = counted.iloc[0] if len(counted) else None
    return {
        "allocations": int(total["allocations"]) if total is not None else 0,
        "coins": int(total["coins"]) if total is not None else 0,
        "rupees": float(total["rupees"]) if total is not None else 0.0,
        "unknown": int(total["unknown_coins"]) if total is not None else 0,
        "users": int(users),
        "unconfirmed": unconfirmed,
        "over_time": charts.awarded_over_time_chart(per_event, period=period, value=value),
        "per_company": charts.awarded_per_company_chart(per_company, value=value),
        "movers_chart": charts.movers_chart(movers),
        "movers": movers,
    }


@st.cache_resource(ttl=FRAME_TTL_S, show_spinner="Projecting…", max_entries=16)
def _projection_views(key: str, _basis: vol.CostBasis) -> dict[str, Any]:
    projected = _basis.projection()
    per_company = cost.totals(projected, "companyId")
    per_event = cost.totals(projected, "event")
    return {
        "projection": projected,
        "per_event_chart": charts.monthly_cost_chart(projected, by="event", value=_basis.value),
        "per_company_chart": charts.monthly_cost_chart(
            projected, by="companyId", value=_basis.value
        ),
        "per_company": per_company,
        "per_event": per_event,
        "total_rupees": float(projected["monthly_rupees"].sum()),
        "total_coins": float(projected["monthly_coins"].sum()),
    }


# --------------------------------------------------------------------------- display helpers


def _rupee_metric(slot: Any, label: str, rupees: float, value: cost.CoinValue, **kw: Any) -> None:
    slot.metric(
        label,
        cost.format_inr(rupees),
        help=f"Exactly {cost.format_inr(rupees, exact=True)}; {value.note}.",
        **kw,
    )


# --------------------------------------------------------------------------- the page: inputs


def _read_upload(upload: Any, slot: str, reader: Any) -> Any:
    """Read an uploaded sheet once per content; keep it in the session for every page."""
    if upload is None:
        st.session_state.pop(slot, None)
        return None
    data = upload.getvalue()
    digest = hashlib.sha256(data).hexdigest()[:16]
    held = st.session_state.get(slot)
    if held is None or held[1] != digest:
        try:
            sheet = reader(data, filename=upload.name)
        except bulk.SheetError as exc:
            st.session_state.pop(slot, None)
            st.error(esc(str(exc)), icon=":material/block:")
            return None
        held = (upload.name, digest, sheet)
        st.session_state[slot] = held
    return held[2]


def _show_sheet(sheet: Any, what: str) -> None:
    st.caption(esc(sheet.describe()))
    for note in getattr(sheet.sheet, "notes", []) or []:
        st.caption(":material/info: " + esc(note))
    if sheet.errors:
        st.error(
            f"{sheet.errors:,} row(s) of the {what} sheet have errors and are not counted; "
            "fix them in the file and upload it again.",
            icon=":material/error:",
        )
        st.dataframe(
            sheet.problems[["row", "column", "value", "reason"]].head(SHOWN_ROWS),
            hide_index=True,
            key=f"{P}_{what}_problems",
        )


def _inputs() -> None:
    with st.expander("Volumes and budgets", expanded=False, icon=":material/tune:"):
        left, right = st.columns(2)
        with left:
            st.number_input(
                "Volumes from the allocations of the last … days",
                min_value=1,
                max_value=366,
                value=cost.HISTORY_DAYS,
                step=1,
                key=DAYS_KEY,
                help="Counted per company and event, scaled to an average month (30.44 days).",
            )
            upload = st.file_uploader(
                "…or a volumes sheet (companyId, event, count[, month])",
                type=["csv", "txt", "tsv", "xlsx"],
                key=f"{P}_volumes_file",
            )
            sheet = _read_upload(upload, VOLUMES_KEY, vol.read_volumes)
            if sheet is not None:
                _show_sheet(sheet, "volumes")
        with right:
            upload = st.file_uploader(
                "Budgets: a sheet of companyId, budget (₹ a month)",
                type=["csv", "txt", "tsv", "xlsx"],
                key=f"{P}_budgets_file",
                help="Without one, COINS_MONTHLY_BUDGET applies (one figure for every company, "
                "or CEKEKCARDS=150000,*=50000).",
            )
            sheet = _read_upload(upload, BUDGETS_KEY, vol.read_budgets)
            if sheet is not None:
                _show_sheet(sheet, "budgets")


# --------------------------------------------------------------------------- the page: sections


def _awarded(records: pd.DataFrame, key: str, value: cost.CoinValue) -> None:
    chosen = st.segmented_control("Per", list(cost.PERIODS), default="month", key=f"{P}_period")
    period = cast(cost.Period, chosen or "month")
    views = _awarded_views(f"{key}|{value}", period, value, records)
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Coins awarded", cost.group_indian(views["coins"]), help="All time, this server.")
    _rupee_metric(c2, "Worth", views["rupees"], value)
    c3.metric("Allocations", cost.group_indian(views["allocations"]))
    c4.metric("Users", cost.group_indian(views["users"]))
    if views["unknown"]:
        st.caption(
            f"{views['unknown']:,} allocation(s) were made for a pair whose configuration the "
            "registry did not know: their coins are not counted."
        )
    if views["unconfirmed"]:
        st.caption(
            f"{views['unconfirmed']:,} allocation(s) are unconfirmed (the answer was lost): "
            "not counted until a repeat proves them done."
        )
    st.altair_chart(views["over_time"], width="stretch")
    left, right = st.columns(2)
    with left:
        st.altair_chart(views["per_company"], width="stretch")
    with right:
        st.altair_chart(views["movers_chart"], width="stretch")


def _projection(current: vol.CostBasis, key: str) -> None:
    views = _projection_views(key, current)
    st.caption(f"Volumes: {esc(current.volume_source)} · {current.value.note}.")
    if not current.known:
        st.info(
            "No volumes known yet: nothing to project. Allocations made through the toolkit "
            "count as volumes, or upload a volumes sheet above.",
            icon=":material/info:",
        )
    c1, c2 = st.columns(2)
    _rupee_metric(c1, "Projected monthly cost", views["total_rupees"], current.value)
    c2.metric("Coins a month", cost.group_indian(round(views["total_coins"])))
    left, right = st.columns(2)
    with left:
        st.altair_chart(views["per_event_chart"], width="stretch")
    with right:
        st.altair_chart(views["per_company_chart"], width="stretch")


def _proposal_from_picks(configs: pd.DataFrame) -> pd.DataFrame | None:
    events = column_options(configs, "event")
    c1, c2 = st.columns(2)
    picked_events = c1.multiselect("Events", events, key=f"{P}_wi_events", placeholder="Pick")
    companies = column_options(configs, "companyId")
    picked_companies = c2.multiselect(
        "Companies", companies, key=f"{P}_wi_companies", placeholder="Every company"
    )
    if not picked_events:
        st.caption("Pick one or more events to change.")
        return None
    how = st.radio(
        "New amount",
        ["set", "percent"],
        format_func={"set": "Set every picked amount to", "percent": "Change each by %"}.get,
        key=f"{P}_wi_how",
        horizontal=True,
    )
    rows = configs.loc[configs["event"].isin(picked_events)]
    if picked_companies:
        rows = rows.loc[rows["companyId"].isin(picked_companies)]
    if how == "set":
        amount = st.number_input(
            "Coins per event", 0, MAX_AMOUNT, value=None, step=1, key=f"{P}_wi_amount"
        )
        if amount is None:
            return None
        new = pd.Series(int(amount), index=rows.index)
    else:
        pct = st.number_input(
            "Change by %", -100.0, 10_000.0, value=10.0, step=5.0, key=f"{P}_wi_pct"
        )
        new = (rows["amount"].astype("float64") * (1 + pct / 100)).round()
        too_big = new > MAX_AMOUNT
        if too_big.any():
            st.warning(
                f"{int(too_big.sum()):,} amount(s) would go above {MAX_AMOUNT:,}: left out.",
                icon=":material/warning:",
            )
            new, rows = new[~too_big], rows.loc[~too_big]
    return pd.DataFrame(
        {
            "companyId": rows["companyId"].astype("str"),
            "event": rows["event"].astype("str"),
            "amount": new.astype("int64"),
        }
    )


def _proposal_from_edits(configs: pd.DataFrame) -> pd.DataFrame | None:
    events = column_options(configs, "event")
    picked = st.multiselect("Events to edit", events, key=f"{P}_wi_edit_events")
    if not picked:
        st.caption("Pick the events whose amounts you want to edit.")
        return None
    rows = configs.loc[configs["event"].isin(picked), ["companyId", "event", "amount"]]
    rows = rows.head(SHOWN_ROWS).reset_index(drop=True)
    edited = st.data_editor(
        rows,
        hide_index=True,
        disabled=["companyId", "event"],
        key=f"{P}_wi_editor",
        column_config={
            "amount": st.column_config.NumberColumn(
                "Coins per event", min_value=0, max_value=MAX_AMOUNT, step=1, format="%d"
            )
        },
    )
    return cost.changes_from_edits(rows, edited)


def _proposal_from_sheet(ws: Workspace) -> pd.DataFrame | None:
    upload = st.file_uploader(
        "A configuration sheet (as for Bulk upload)",
        type=["csv", "txt", "tsv", "xlsx"],
        key=f"{P}_wi_sheet",
    )
    if upload is None:
        return None
    try:
        sheet = bulk.read_configs(upload.getvalue(), filename=upload.name)
    except bulk.SheetError as exc:
        st.error(esc(str(exc)), icon=":material/block:")
        return None
    plan = bulk.plan(bulk.validate(sheet, registry=ws.registry), ws.registry, mode="upsert")
    st.caption(esc(plan.summary()) + " (as mode upsert would apply it)")
    return cost.changes_from_plan(plan)


def _what_if(ws: Workspace, current: vol.CostBasis) -> None:
    configs = current.configs
    source = st.radio(
        "Change",
        ["pick", "edit", "sheet"],
        format_func={
            "pick": "Pick events and companies",
            "edit": "Edit amounts",
            "sheet": "A bulk sheet",
        }.get,
        key=f"{P}_wi_source",
        horizontal=True,
    )
    if source == "pick":
        proposal = _proposal_from_picks(configs)
    elif source == "edit":
        proposal = _proposal_from_edits(configs)
    else:
        proposal = _proposal_from_sheet(ws)
    if proposal is None:
        return
    result = current.what_if(proposal)
    summary = result.summary()
    show_line(f"This change {summary}", over=bool(result.newly_over_budget))
    total = result.total
    c1, c2, c3 = st.columns(3)
    _rupee_metric(c1, "Monthly cost now", total["rupees_before"], current.value)
    _rupee_metric(c2, "With the change", total["rupees_after"], current.value)
    c3.metric(
        "Change",
        cost.format_inr(total["rupees_delta"], signed=True),
        cost.format_pct(total["pct"]) or None,
        delta_color="inverse",
        help=f"Exactly {cost.format_inr(total['rupees_delta'], exact=True, signed=True)}; "
        f"{current.value.note}.",
    )
    if not result.changed.empty:
        st.altair_chart(charts.what_if_chart(result.by_company), width="stretch")
        cost_tables(result, f"{P}_wi")
        _handoff(result, configs)


def _handoff(result: cost.WhatIf, configs: pd.DataFrame) -> None:
    """The change as a sheet for Bulk upload (mode upsert): reviewed and applied there."""
    changed = result.changed
    kinds = configs.drop_duplicates(["companyId", "event"], keep="last").set_index(
        ["companyId", "event"]
    )
    configuration = [
        str(kinds["configuration"].get((c, e), "DEFAULT"))
        if "configuration" in kinds.columns
        else "DEFAULT"
        for c, e in zip(changed["companyId"], changed["event"], strict=True)
    ]
    sheet = pd.DataFrame(
        {
            "companyId": changed["companyId"],
            "event": changed["event"],
            "amount": changed["amount_after"].astype("int64"),
            "configuration": configuration,
        }
    )
    st.markdown("**Apply it** — nothing has been sent. Review and apply the change as a sheet:")
    c1, c2 = st.columns(2)
    c1.download_button(
        f"Download the change ({len(sheet):,} row{'s' if len(sheet) != 1 else ''})",
        excel_safe_csv(sheet),
        file_name="what-if-change.csv",
        mime="text/csv",
        key=f"{P}_handoff",
        icon=":material/download:",
        type="primary",
    )
    c2.page_link(
        "toolkit/ui/bulk_upload.py",
        label="Upload it in Bulk upload (mode upsert) to review and apply",
        icon=":material/upload_file:",
    )


def _budgets(current: vol.CostBasis) -> None:
    if not current.budgets:
        st.caption(
            "No budgets set: upload a budget sheet above, or set COINS_MONTHLY_BUDGET "
            "(₹ a month: one figure for every company, or CEKEKCARDS=150000,*=50000)."
        )
        return
    status = current.what_if(current.configs.iloc[0:0])
    over = status.over_budget
    if over:
        st.warning(
            f"{len(over):,} compan{'ies are' if len(over) != 1 else 'y is'} over budget at "
            "the projected monthly cost: "
            + esc(", ".join(over[:10]))
            + (" …" if len(over) > 10 else ""),
            icon=":material/warning:",
        )
    else:
        st.success("Every company with a budget is within it.", icon=":material/check_circle:")
    st.altair_chart(charts.budget_chart(status.by_company), width="stretch")


def render() -> None:
    st.title("Cost")
    ws = workspace()
    value, _ = settings_value()
    st.caption(
        "What the programme has awarded, what a month costs at today's amounts, and what a "
        f"change would cost before anything is sent. {value.sentence}"
    )
    _inputs()
    key = data_key()
    records = _allocations(key)
    current = basis()
    current_key = basis_key()
    awarded_tab, projection_tab, what_if_tab, budget_tab = st.tabs(
        ["Awarded", "Projection", "What-if", "Budgets"]
    )
    with awarded_tab:
        if records.empty:
            st.info(
                "No allocations recorded yet: allocations made through the app, notebooks or "
                "the command line appear here.",
                icon=":material/info:",
            )
        else:
            _awarded(records, key, value)
    with projection_tab:
        _projection(current, current_key)
    with what_if_tab:
        if current.configs.empty:
            st.info("No configurations known yet: nothing to change.", icon=":material/info:")
        else:
            _what_if(ws, current)
    with budget_tab:
        _budgets(current)


if __name__ == "__main__":
    render()
