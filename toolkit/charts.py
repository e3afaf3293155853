"""Altair charts of a configurations frame (``toolkit.frames.configs_to_frame``).

Every chart is drawn from a small aggregate computed in pandas, never from the raw rows:
altair embeds its data in the Vega-Lite spec and refuses more than 5,000 rows, and an
aggregate keeps the page light for 100,000 configurations. Long category lists are capped
(top N, chosen by a stated rule) and the subtitle says what was left out.
"""

from __future__ import annotations

from typing import Literal

import altair as alt
import pandas as pd

from toolkit.frames import CONFIGURATION_DTYPE

__all__ = [
    "CONFIGURATION_COLORS",
    "amount_distribution_chart",
    "amount_per_event_chart",
    "company_event_heatmap",
    "event_totals",
    "heatmap_data",
    "histogram_data",
]

CONFIGURATION_COLORS = {"DEFAULT": "#4c78a8", "CUSTOM": "#f58518"}
_CONFIG_SCALE = alt.Scale(
    domain=list(CONFIGURATION_COLORS), range=list(CONFIGURATION_COLORS.values())
)


def _configurations(df: pd.DataFrame) -> pd.Series:
    if "configuration" not in df.columns:
        return pd.Series("DEFAULT", index=df.index, dtype="str")
    values = df["configuration"].astype(CONFIGURATION_DTYPE)
    return values.astype("str").where(values.notna(), "(missing)")


def _title(text: str, notes: list[str]) -> alt.TitleParams:
    return alt.TitleParams(text, subtitle=notes or [""], anchor="start")


# --------------------------------------------------------------------------- amount per event


def event_totals(
    df: pd.DataFrame, *, measure: Literal["sum", "count"] = "sum", top: int = 30
) -> tuple[pd.DataFrame, int]:
    """Coins (``sum``) or configurations (``count``) per event and configuration, for the top
    events by that measure. Returns the aggregate (event, configuration, value, event_total)
    and how many events there were in all."""
    if measure not in ("sum", "count"):
        raise ValueError("measure must be 'sum' or 'count'")
    data = df.loc[df["event"].notna()] if "event" in df.columns else df.iloc[0:0]
    frame = pd.DataFrame(
        {
            "event": data["event"].astype("str") if len(data) else pd.Series([], dtype="str"),
            "configuration": _configurations(data),
            "amount": data["amount"].astype("Int64") if len(data) else pd.Series([], dtype="Int64"),
        }
    )
    grouped = frame.groupby(["event", "configuration"], sort=False)["amount"]
    value = grouped.sum() if measure == "sum" else grouped.size()
    agg = value.astype("int64").rename("value").reset_index()
    totals = agg.groupby("event")["value"].sum()
    n_events = len(totals)
    agg = agg.loc[agg["event"].isin(_top(totals, top))].copy()
    agg["event_total"] = agg["event"].map(totals).astype("int64")
    agg = agg.sort_values(["event_total", "event", "configuration"], ascending=[False, True, True])
    return agg.reset_index(drop=True), n_events


def amount_per_event_chart(
    df: pd.DataFrame, *, measure: Literal["sum", "count"] = "sum", top: int = 30
) -> alt.Chart:
    """Horizontal bars of coins per event (largest first), stacked by DEFAULT / CUSTOM.

    ``measure="sum"`` adds up the configured amounts across companies (the coins one
    occurrence of the event earns in every company); ``"count"`` counts configurations.
    """
    agg, n_events = event_totals(df, measure=measure, top=top)
    notes = []
    if n_events > top:
        notes.append(f"Top {top} of {n_events} events by {measure}; the rest are not shown.")
    if not n_events:
        notes.append("No configurations to show yet.")
    label = "Coins (sum of amounts)" if measure == "sum" else "Configurations"
    order = agg.drop_duplicates("event")["event"].tolist()
    return (
        alt.Chart(agg, title=_title(f"{label} per event", notes))
        .mark_bar()
        .encode(
            x=alt.X("sum(value):Q", title=label),
            # Every bar keeps its label: no overlap thinning, room for long event names.
            y=alt.Y(
                "event:N",
                sort=order,
                title="Event",
                axis=alt.Axis(labelOverlap=False, labelLimit=240),
            ),
            color=alt.Color("configuration:N", scale=_CONFIG_SCALE, title="Configuration"),
            order=alt.Order("configuration:N"),
            tooltip=[
                alt.Tooltip("event:N", title="Event"),
                alt.Tooltip("configuration:N", title="Configuration"),
                alt.Tooltip("value:Q", title=label, format=","),
                alt.Tooltip("event_total:Q", title="Event total", format=","),
            ],
        )
        .properties(height=alt.Step(22))
    )


# --------------------------------------------------------------------------- heatmap


def heatmap_data(
    df: pd.DataFrame, *, top_companies: int = 40, top_events: int = 25
) -> tuple[pd.DataFrame, int, int]:
    """Amount per (company, event): the events most companies configure, and the companies
    that configure most of those events.

    Returns the long aggregate (companyId, event, amount, configuration) and the total
    numbers of companies and events.
    """
    needed = {"companyId", "event", "amount"}
    if not needed <= set(df.columns):
        raise KeyError(f"the frame needs columns {sorted(needed)}")
    data = df.loc[df["companyId"].notna() & df["event"].notna()]
    frame = pd.DataFrame(
        {
            "companyId": data["companyId"].astype("str"),
            "event": data["event"].astype("str"),
            "amount": data["amount"].astype("Int64"),
            "configuration": _configurations(data),
        }
    ).drop_duplicates(["companyId", "event"], keep="last")
    per_event = frame.groupby("event").size()
    events = _top(per_event, top_events)
    # Companies ranked by how many of the shown events they configure: a dense picture.
    in_events = frame.loc[frame["event"].isin(events)]
    per_company = frame.groupby("companyId").size()
    companies = _top(in_events.groupby("companyId").size(), top_companies)
    cells = in_events.loc[in_events["companyId"].isin(companies)]
    cells = cells.sort_values(["companyId", "event"]).reset_index(drop=True)
    return cells, len(per_company), len(per_event)


def _top(counts: pd.Series, n: int) -> list[str]:
    """The ``n`` labels with the largest counts, ties broken by name (stable, repeatable)."""
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [label for label, _ in ordered[:n]]


def company_event_heatmap(
    df: pd.DataFrame, *, top_companies: int = 40, top_events: int = 25
) -> alt.Chart:
    """Companies × events, coloured by amount; an empty cell means "not configured"."""
    cells, n_companies, n_events = heatmap_data(
        df, top_companies=top_companies, top_events=top_events
    )
    notes = []
    if n_companies > top_companies or n_events > top_events:
        notes.append(
            f"Showing the {min(top_companies, n_companies)} of {n_companies} companies and "
            f"{min(top_events, n_events)} of {n_events} events with the most configurations."
        )
    if cells.empty:
        notes.append("No configurations to show yet.")
    cells = cells.assign(amount=cells["amount"].astype("float64"))
    return (
        alt.Chart(cells, title=_title("Coins per company and event", notes))
        .mark_rect()
        .encode(
            x=alt.X("event:N", title="Event", sort="ascending", axis=alt.Axis(labelLimit=200)),
            y=alt.Y("companyId:N", title="Company", sort="ascending"),
            # sqrt: one large amount no longer washes every other cell out to the same pale.
            color=alt.Color(
                "amount:Q", title="Coins", scale=alt.Scale(scheme="blues", type="sqrt")
            ),
            tooltip=[
                alt.Tooltip("companyId:N", title="Company"),
                alt.Tooltip("event:N", title="Event"),
                alt.Tooltip("amount:Q", title="Coins", format=","),
                alt.Tooltip("configuration:N", title="Configuration"),
            ],
        )
        .properties(height=alt.Step(22))  # a readable row per company, however few
    )


# --------------------------------------------------------------------------- distribution


def histogram_data(df: pd.DataFrame, *, bins: int = 30) -> pd.DataFrame:
    """Counts of configurations per amount bin and configuration (bin_start, bin_end,
    configuration, count); integer-aligned bins, at most ``bins`` of them."""
    if bins < 1:
        raise ValueError("bins must be at least 1")
    amounts = df["amount"].astype("Int64") if "amount" in df.columns else pd.Series([], "Int64")
    present = amounts.notna()
    values = amounts[present].to_numpy(dtype="int64")
    configs = _configurations(df.loc[present]).to_numpy(dtype=object)
    columns = {"bin_start": "int64", "bin_end": "int64", "configuration": "str", "count": "int64"}
    if not len(values):
        return pd.DataFrame({k: pd.Series([], dtype=v) for k, v in columns.items()})
    low, high = int(values.min()), int(values.max())
    width = max(1, -(-(high - low + 1) // bins))  # ceil: whole coins per bin
    index = (values - low) // width
    frame = pd.DataFrame({"bin": index, "configuration": configs})
    counts = frame.groupby(["bin", "configuration"]).size().rename("count").reset_index()
    counts["bin_start"] = low + counts["bin"].astype("int64") * width
    counts["bin_end"] = counts["bin_start"] + width
    counts["configuration"] = counts["configuration"].astype("str")
    return counts[list(columns)].astype(columns).sort_values(["bin_start", "configuration"])


def amount_distribution_chart(df: pd.DataFrame, *, bins: int = 30) -> alt.Chart:
    """How amounts are spread: a histogram (binned in pandas), stacked by DEFAULT / CUSTOM."""
    hist = histogram_data(df, bins=bins).reset_index(drop=True)
    notes = [] if len(hist) else ["No amounts to show yet."]
    return (
        alt.Chart(hist, title=_title("Distribution of configured amounts", notes))
        .mark_bar()
        .encode(
            x=alt.X("bin_start:Q", title="Coins", bin="binned"),
            x2="bin_end:Q",
            y=alt.Y(
                "sum(count):Q",
                title="Configurations",
                stack=True,
                axis=alt.Axis(format="d", tickMinStep=1),  # counts: no 0.2 ticks
            ),
            color=alt.Color("configuration:N", scale=_CONFIG_SCALE, title="Configuration"),
            tooltip=[
                alt.Tooltip("bin_start:Q", title="From", format=","),
                alt.Tooltip("bin_end:Q", title="Below", format=","),
                alt.Tooltip("configuration:N", title="Configuration"),
                alt.Tooltip("count:Q", title="Configurations", format=","),
            ],
        )
    )
