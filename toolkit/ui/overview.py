"""The programme at a glance: metrics and charts of every known configuration.

Per event it shows what means something across companies — the typical amount (median, with
its range), how many companies configure it and, when volumes are known (allocations of the
last days, or a volumes sheet on the Cost page), what it costs a month — not a sum of per-event
rates. Charts come from `toolkit.charts`, which aggregates in pandas first, so 100,000
configurations draw as a few hundred marks. Filters are shared with the other pages.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from toolkit import charts, cost, frames
from toolkit.bulk.volumes import CostBasis
from toolkit.ui import cost_lines
from toolkit.ui.caches import FRAME_TTL_S, configs_frame, data_key
from toolkit.ui.connection import workspace
from toolkit.ui.filters import filter_signature, shared_filters

P = "ov"  # widget key prefix of this page


@st.cache_resource(ttl=FRAME_TTL_S, show_spinner="Summarising…", max_entries=16)
def _views(
    key: str,
    filters: tuple[Any, ...],
    basis_key: str,
    _df: pd.DataFrame,
    _basis: CostBasis,
) -> dict[str, Any]:
    """Everything the page draws for one data version, filter choice and cost basis: computed
    once, then shared by reruns and sessions (charts and small frames, read-only)."""
    projected = cost.projection(_df, _basis.volumes, value=_basis.value) if _basis.known else None
    return {
        "metrics": {
            "count": len(_df),
            "companies": int(_df["companyId"].nunique()),
            "events": int(_df["event"].nunique()),
            "median": _df["amount"].astype("Float64").median(),
            "custom": int((_df["configuration"].astype("string") == "CUSTOM").sum()),
            "monthly": None if projected is None else float(projected["monthly_rupees"].sum()),
        },
        "typical_chart": charts.typical_amount_chart(_df),
        "companies_chart": charts.companies_per_event_chart(_df),
        "cost_chart": None
        if projected is None
        else charts.monthly_cost_chart(projected, by="event", value=_basis.value),
        "distribution_chart": charts.amount_distribution_chart(_df),
        "heatmap": charts.company_event_heatmap(_df),
        "per_event": _per_event_table(charts.event_measures(_df, projected)),
        "coverage": frames.coverage(_df, min_share=0.5).head(1000),
        "outliers": frames.outliers(_df).head(1000),
    }


def _per_event_table(measures: pd.DataFrame) -> pd.DataFrame:
    out = measures.rename(
        columns={
            "companies": "companies",
            "custom": "CUSTOM",
            "median": "median coins",
            "min": "lowest",
            "max": "highest",
        }
    )
    if "monthly_rupees" in out.columns:
        out["₹ a month"] = [cost.format_inr(v, exact=True) for v in out["monthly_rupees"]]
        out = out.drop(columns=["monthly_rupees"])
    return out


def _metrics(m: dict[str, Any], value: cost.CoinValue) -> None:
    cols = st.columns(6 if m["monthly"] is not None else 5)
    c1, c2, c3, c4, c5 = cols[:5]
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
    if m["monthly"] is not None:
        cols[5].metric(
            "Monthly cost (projected)",
            cost.format_inr(m["monthly"]),
            help=f"Exactly {cost.format_inr(m['monthly'], exact=True)}: volume × configured "
            f"amount, {value.note}. Details on the Cost page.",
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
    workspace()
    frame = configs_frame()
    if frame.empty:
        _empty()
        return
    key = data_key()
    df = shared_filters(frame, prefix=P, cache_key=key)
    if df.empty:
        st.warning("No configuration matches the filters.")
        return
    basis = cost_lines.basis()
    views = _views(key, filter_signature(), cost_lines.basis_key(), df, basis)
    _metrics(views["metrics"], basis.value)

    left, right = st.columns([3, 2])
    with left:
        st.altair_chart(views["typical_chart"], width="stretch")
    with right:
        st.altair_chart(views["companies_chart"], width="stretch")
    if views["cost_chart"] is not None:
        st.altair_chart(views["cost_chart"], width="stretch")
    else:
        st.caption(
            ":material/payments: Monthly cost per event: shown once volumes are known — "
            "allocations made through the toolkit, or a volumes sheet on the **Cost** page."
        )
    st.altair_chart(views["heatmap"], width="stretch")
    st.altair_chart(views["distribution_chart"], width="stretch")

    per_event, gaps, odd = st.tabs(["Per event", "Coverage gaps", "Outliers"])
    with per_event:
        st.dataframe(
            views["per_event"],
            hide_index=True,
            column_config={
                "median coins": st.column_config.NumberColumn(format="%.1f"),
                "lowest": st.column_config.NumberColumn(format="%d"),
                "highest": st.column_config.NumberColumn(format="%d"),
                "monthly_coins": st.column_config.NumberColumn("coins a month", format="%.0f"),
            },
        )
    with gaps:
        st.caption("Companies missing events that at least half of the companies configure.")
        st.dataframe(views["coverage"], hide_index=True)
    with odd:
        st.caption("Amounts at least 10× above or below their event's median.")
        st.dataframe(views["outliers"], hide_index=True)


render()
