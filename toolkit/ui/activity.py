"""The audit log: who changed what, from what, to what, through which surface — filterable,
exportable as CSV."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from toolkit.ui import common

P = "act"  # widget key prefix of this page
SHOWN_ROWS = 2_000


@st.cache_data(ttl=common.FRAME_TTL_S, show_spinner="Reading the audit log…", max_entries=4)
def _audit(key: str) -> pd.DataFrame:
    return common.workspace().registry.audit_frame()


def _column(df: pd.DataFrame, *names: str) -> str | None:
    return next((n for n in names if n in df.columns), None)


def _options(df: pd.DataFrame, column: str | None) -> list[str]:
    if column is None or df.empty:
        return []
    return sorted(str(v) for v in df[column].dropna().unique())


def render() -> None:
    st.title("Activity")
    st.caption(
        "Every create, update, allocation and revert made through the app, notebooks or the "
        "command line on this server, including failures."
    )
    common.workspace()
    key = "audit|" + common.data_key()
    audit = _audit(key)
    if audit.empty:
        st.info("Nothing recorded yet.", icon=":material/info:")
        return

    at_col = _column(audit, "at", "timestamp", "created_at")
    action_col = _column(audit, "action")
    outcome_col = _column(audit, "outcome", "status")
    source_col = _column(audit, "source")
    actor_col = _column(audit, "actor")

    df = common.shared_filters(audit, prefix=P, columns=("company", "event"), cache_key=key)
    c1, c2, c3, c4 = st.columns(4)
    picks = {}
    for col, name, column in (
        (c1, "Action", action_col),
        (c2, "Outcome", outcome_col),
        (c3, "Source", source_col),
        (c4, "Actor", actor_col),
    ):
        if column is not None:
            picks[column] = col.multiselect(
                name, _options(audit, column), key=f"{P}_{name.lower()}", placeholder="All"
            )
    for column, values in picks.items():
        if values:
            df = df[df[column].astype("string").isin(values)]
    d1, d2 = st.columns([1, 3])
    search = d2.text_input(
        "Configuration id or request id contains", key=f"{P}_search", placeholder="WCC…"
    )
    if at_col is not None and not df.empty:
        times = pd.to_datetime(df[at_col], utc=True)
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
        text_cols = [c for c in ("coinConfigId", "coin_config_id", "request_id") if c in df]
        hit = pd.Series(False, index=df.index)
        for column in text_cols:
            hit |= (
                df[column]
                .astype("string")
                .str.upper()
                .str.contains(needle, regex=False)
                .fillna(False)
            )
        df = df[hit]

    if at_col is not None:
        # Newest first; entries of one batch share a time, so the entry number breaks ties.
        order = [at_col] + (["audit_id"] if "audit_id" in df.columns else [])
        df = df.sort_values(order, ascending=False, kind="stable")
    st.caption(
        f"{len(df):,} of {len(audit):,} entries"
        + (f" · showing the latest {SHOWN_ROWS:,}" if len(df) > SHOWN_ROWS else "")
    )
    shown = df.head(SHOWN_ROWS)
    st.dataframe(
        common.blank_missing(shown).style.apply(_outcome_style(outcome_col), axis=1),
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
            "message": st.column_config.TextColumn("Message"),
            "before_amount": st.column_config.NumberColumn("Coins before", format="%d"),
            "after_amount": st.column_config.NumberColumn("Coins after", format="%d"),
            "reverts_audit_id": st.column_config.NumberColumn("Reverts entry", format="%d"),
        },
    )
    st.download_button(
        "Export CSV",
        common.excel_safe_csv(df),
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
    "actor",
    "source",
    "message",
    "reverts_audit_id",
)


def _outcome_style(column: str | None):
    def style(row: pd.Series) -> list[str]:
        value = str(row.get(column, "")) if column else ""
        bad = value.lower() not in ("", "ok", "success", "done", "succeeded", "none", "nan")
        return ["background-color: #FDECEA" if bad else ""] * len(row)

    return style


render()
