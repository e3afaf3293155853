"""The audit log: who changed what, from what, to what, through which surface — filterable,
exportable as CSV."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from toolkit.ui.caches import FRAME_TTL_S, column_options, data_key
from toolkit.ui.connection import workspace
from toolkit.ui.filters import shared_filters
from toolkit.ui.text import blank_missing, excel_safe_csv

P = "act"  # widget key prefix of this page
SHOWN_ROWS = 2_000


@st.cache_data(ttl=FRAME_TTL_S, show_spinner="Reading the audit log…", max_entries=4)
def _audit(key: str) -> pd.DataFrame:
    return workspace().registry.audit_frame()


def render() -> None:
    st.title("Activity")
    st.caption(
        "Every create, update, allocation and revert made through the app, notebooks or the "
        "command line on this server, including failures."
    )
    workspace()
    key = "audit|" + data_key()
    audit = _audit(key)
    if audit.empty:
        st.info("Nothing recorded yet.", icon=":material/info:")
        return

    # audit_frame always has every one of the registry's AUDIT_COLUMNS.
    df = shared_filters(audit, prefix=P, columns=("company", "event"), cache_key=key)
    for col, column in zip(st.columns(4), ("action", "outcome", "source", "actor"), strict=True):
        options = column_options(audit, column, cache_key=key)
        values = col.multiselect(
            column.capitalize(), options, key=f"{P}_{column}", placeholder="All"
        )
        if values:
            df = df[df[column].astype("string").isin(values)]
    d1, d2 = st.columns([1, 3])
    search = d2.text_input(
        "Configuration id, request id or user contains",
        key=f"{P}_search",
        placeholder="WCC…",
        max_chars=200,
    )
    if not df.empty:
        times = pd.to_datetime(df["at"], utc=True)
        first, last = times.min().date(), times.max().date()
        days = d1.date_input(
            "Between", value=(first, last), key=f"{P}_days", min_value=None, max_value=None
        )
        if isinstance(days, tuple) and len(days) == 2:
            start = pd.Timestamp(days[0], tz="UTC")
            end = pd.Timestamp(days[1] + dt.timedelta(days=1), tz="UTC")
            df = df[(times >= start) & (times < end)]
    if search.strip():
        needle = search.strip().upper()
        # The request id of an allocation lives in the request that was sent.
        hit = pd.Series(False, index=df.index)
        for column in ("coinConfigId", "request", "userId"):
            text = df[column].map(lambda v: "" if v is None else str(v), na_action="ignore")
            hit |= text.astype("string").str.upper().str.contains(needle, regex=False).fillna(False)
        df = df[hit]

    # Newest first; entries of one batch share a time, so the entry number breaks ties.
    df = df.sort_values(["at", "audit_id"], ascending=False, kind="stable")
    st.caption(
        f"{len(df):,} of {len(audit):,} entries"
        + (f" · showing the latest {SHOWN_ROWS:,}" if len(df) > SHOWN_ROWS else "")
    )
    shown = df.head(SHOWN_ROWS)
    st.dataframe(
        blank_missing(shown).style.apply(_outcome_style, axis=1),
        hide_index=True,
        height=520,
        column_order=[c for c in _SHOWN if c in shown.columns],
        column_config={
            "audit_id": st.column_config.NumberColumn("Entry", format="%d"),
            "at": st.column_config.DatetimeColumn("When (UTC)", format="YYYY-MM-DD HH:mm:ss"),
            "coinConfigId": st.column_config.TextColumn("Id"),
            "companyId": st.column_config.TextColumn("Company"),
            "event": st.column_config.TextColumn("Event"),
            "action": st.column_config.TextColumn("Action"),
            "outcome": st.column_config.TextColumn("Outcome"),
            "changes": st.column_config.TextColumn("Changes"),
            "actor": st.column_config.TextColumn("Actor"),
            "source": st.column_config.TextColumn("Source"),
            "message": st.column_config.TextColumn("Message", width="large"),
            "before_amount": st.column_config.NumberColumn("Coins before", format="%d"),
            "after_amount": st.column_config.NumberColumn("Coins after", format="%d"),
            "userId": st.column_config.TextColumn("User"),
            "coins": st.column_config.NumberColumn(
                "Coins awarded", format="%d", help="What an allocation awarded, as configured then"
            ),
            "requestId": st.column_config.TextColumn("Request id"),
            "bulk_run": st.column_config.TextColumn("Bulk run"),
            "reverts_audit_id": st.column_config.NumberColumn("Reverts entry", format="%d"),
        },
    )
    st.download_button(
        "Export CSV",
        excel_safe_csv(df),
        file_name="coins-activity.csv",
        mime="text/csv",
        key=f"{P}_export",
        icon=":material/download:",
        type="primary",
    )


_SHOWN = (
    "audit_id",
    "at",
    "action",
    "outcome",
    "coinConfigId",
    "companyId",
    "event",
    "changes",
    "before_amount",
    "after_amount",
    "userId",
    "coins",
    "requestId",
    "bulk_run",
    "actor",
    "source",
    "message",
    "reverts_audit_id",
)


def _outcome_style(row: pd.Series) -> list[str]:
    value = str(row.get("outcome", ""))
    bad = value.lower() not in ("", "ok", "success", "done", "succeeded", "none", "nan")
    return ["background-color: #FDECEA" if bad else ""] * len(row)


render()
