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


def _metrics(df: pd.DataFrame) -> None:
    amounts = df["amount"].astype("Float64")
    custom = int((df["configuration"].astype("string") == "CUSTOM").sum())
    c1, c2, c3, c4, c5 = st.columns(5)
    c1.metric("Configurations", f"{len(df):,}")
    c2.metric("Companies", f"{df['companyId'].nunique():,}")
    c3.metric("Events", f"{df['event'].nunique():,}")
    median = amounts.median()
    c4.metric(
        "Median coins per event",
        "—" if pd.isna(median) else f"{median:,.0f}",
        help="The typical amount one qualifying event earns, across all configurations shown.",
    )
    c5.metric(
        "CUSTOM overrides",
        f"{custom:,}",
        f"{custom / len(df):.0%} of configurations" if len(df) else None,
        delta_color="off",
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
    df = common.shared_filters(frame, prefix=P)
    if df.empty:
        st.warning("No configuration matches the filters.")
        return
    _metrics(df)

    left, right = st.columns([3, 2])
    with left:
        measure = st.segmented_control(
            "Bars show",
            ["sum", "count"],
            default="sum",
            format_func={"sum": "Coins per event (all companies)", "count": "Configurations"}.get,
            key=f"{P}_measure",
        )
        st.altair_chart(
            charts.amount_per_event_chart(df, measure=measure or "sum"),
            width="stretch",
        )
    with right:
        st.altair_chart(charts.amount_distribution_chart(df), width="stretch")
    st.altair_chart(charts.company_event_heatmap(df), width="stretch")

    per_event, gaps, odd = st.tabs(["Per event", "Coverage gaps", "Outliers"])
    with per_event:
        st.dataframe(frames.amount_per_event(df), hide_index=True)
    with gaps:
        st.caption("Companies missing events that at least half of the companies configure.")
        st.dataframe(frames.coverage(df, min_share=0.5).head(1000), hide_index=True)
    with odd:
        st.caption("Amounts at least 10× above or below their event's median.")
        st.dataframe(frames.outliers(df).head(1000), hide_index=True)


render()
