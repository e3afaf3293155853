"""The programme at a glance: metrics and charts of every known configuration.

Charts come from `toolkit.charts`, which aggregates in pandas first, so 100,000 configurations
draw as a few hundred marks. Filters are shared with the other pages.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from toolkit import charts, frames
from toolkit.ui import common

P = "ov"  # widget key prefix of this page


@st.cache_resource(ttl=common.FRAME_TTL_S, show_spinner="Summarising…", max_entries=16)
def _views(key: str, filters: tuple, measure: str, _df: pd.DataFrame) -> dict:
    """Everything the page draws for one data version, filter choice and measure: computed
    once, then shared by reruns and sessions (charts and small frames, read-only)."""
    return {
        "metrics": {
            "count": len(_df),
            "companies": int(_df["companyId"].nunique()),
            "events": int(_df["event"].nunique()),
            "median": _df["amount"].astype("Float64").median(),
            "custom": int((_df["configuration"].astype("string") == "CUSTOM").sum()),
        },
        "per_event_chart": charts.amount_per_event_chart(_df, measure=measure),
        "distribution_chart": charts.amount_distribution_chart(_df),
        "heatmap": charts.company_event_heatmap(_df),
        "per_event": frames.amount_per_event(_df),
        "coverage": frames.coverage(_df, min_share=0.5).head(1000),
        "outliers": frames.outliers(_df).head(1000),
    }


def _metrics(m: dict) -> None:
    c1, c2, c3, c4, c5 = st.columns(5)
    c1.metric("Configurations", f"{m['count']:,}")
    c2.metric("Companies", f"{m['companies']:,}")
    c3.metric("Events", f"{m['events']:,}")
    median, custom, total = m["median"], m["custom"], m["count"]
    c4.metric(
        "Median coins per event",
        "—" if pd.isna(median) else f"{median:,.0f}",
        help="The typical amount one qualifying event earns, across all configurations shown.",
    )
    c5.metric(
        "CUSTOM overrides",
        f"{custom:,}",
        f"{custom / total:.0%} of configurations" if total else None,
        delta_color="off",
        delta_arrow="off",
    )


def _empty() -> None:
    st.info(
        "No configurations known yet. The API cannot list them, so the toolkit shows what it "
        "created, fetched or was told about.",
        icon=":material/info:",
    )
    c1, c2, c3 = st.columns(3)
    c1.page_link("toolkit/ui/create.py", label="Create one", icon=":material/add_circle:")
    c2.page_link("toolkit/ui/bulk_upload.py", label="Upload a CSV", icon=":material/upload_file:")
    c3.page_link("toolkit/ui/configurations.py", label="Import ids", icon=":material/playlist_add:")


def render() -> None:
    st.title("Overview")
    common.workspace()
    frame = common.configs_frame()
    if frame.empty:
        _empty()
        return
    key = common.data_key()
    df = common.shared_filters(frame, prefix=P, cache_key=key)
    if df.empty:
        st.warning("No configuration matches the filters.")
        return
    measure = st.session_state.get(f"{P}_measure") or "sum"
    views = _views(key, common.filter_signature(), measure, df)
    _metrics(views["metrics"])

    left, right = st.columns([3, 2])
    with left:
        st.segmented_control(
            "Bars show",
            ["sum", "count"],
            default="sum",
            format_func={"sum": "Coins per event (all companies)", "count": "Configurations"}.get,
            key=f"{P}_measure",
        )
        st.altair_chart(views["per_event_chart"], width="stretch")
    with right:
        st.altair_chart(views["distribution_chart"], width="stretch")
    st.altair_chart(views["heatmap"], width="stretch")

    per_event, gaps, odd = st.tabs(["Per event", "Coverage gaps", "Outliers"])
    with per_event:
        st.dataframe(
            views["per_event"],
            hide_index=True,
            column_config={
                "mean": st.column_config.NumberColumn("mean", format="%.1f"),
                "median": st.column_config.NumberColumn("median", format="%.1f"),
            },
        )
    with gaps:
        st.caption("Companies missing events that at least half of the companies configure.")
        st.dataframe(views["coverage"], hide_index=True)
    with odd:
        st.caption("Amounts at least 10× above or below their event's median.")
        st.dataframe(views["outliers"], hide_index=True)


render()
