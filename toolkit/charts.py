"""Altair charts of a configurations frame (``toolkit.frames.configs_to_frame``).

Every chart is drawn from a small aggregate computed in pandas, never from the raw rows:
altair embeds its data in the Vega-Lite spec and refuses more than 5,000 rows, and an
aggregate keeps the page light for 100,000 configurations. Long category lists are capped
(top N, chosen by a stated rule) and the subtitle says what was left out.

Rupee figures follow `toolkit.cost`: axes in lakh (L) and crore (cr), tooltips with the figure
written out the Indian way (₹1,20,000), and a subtitle saying what a coin is taken to be worth.
"""

from __future__ import annotations

from typing import Literal

import altair as alt
import pandas as pd

from toolkit import cost
from toolkit.frames import CONFIGURATION_DTYPE, amount_per_event

__all__ = [
    "CONFIGURATION_COLORS",
    "RUPEE_AXIS",
    "amount_distribution_chart",
    "amount_per_event_chart",
    "awarded_over_time_chart",
    "awarded_per_company_chart",
    "budget_chart",
    "companies_per_event_chart",
    "company_event_heatmap",
    "event_measures",
    "event_totals",
    "heatmap_data",
    "histogram_data",
    "monthly_cost_chart",
    "movers_chart",
    "typical_amount_chart",
    "what_if_chart",
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


# --------------------------------------------------------------------------- per-event measures

# Vega cannot group digits the Indian way: the axis says lakh (L) and crore (cr) instead.
RUPEE_AXIS = alt.Axis(
    labelExpr=(
        "abs(datum.value) >= 1e7 ? '₹' + format(datum.value / 1e7, '.2~f') + ' cr'"
        " : abs(datum.value) >= 1e5 ? '₹' + format(datum.value / 1e5, '.2~f') + ' L'"
        " : '₹' + format(datum.value, ',.0f')"
    )
)


def _rupee_texts(frame: pd.DataFrame, column: str, prefix: str = "") -> pd.DataFrame:
    """Tooltip texts for a rupee column: short (₹1.2 lakh) and exact (₹1,20,000)."""
    values = frame[column]
    frame[f"{prefix}text"] = [cost.format_inr(v) for v in values]
    frame[f"{prefix}exact"] = [cost.format_inr(v, exact=True) for v in values]
    return frame


def event_measures(df: pd.DataFrame, projection: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per event, what means something across companies: how many companies configure it, the
    typical amount (median) with its range (min–max), and — given a `toolkit.cost.projection`
    — the monthly coins and rupees. Most configured events first."""
    stats = amount_per_event(df)
    out = pd.DataFrame(
        {
            "event": stats["event"].astype("str"),
            "companies": stats["companies"].astype("int64"),
            "custom": stats["custom"].astype("int64"),
            "median": stats["median"].astype("float64"),
            "min": stats["min"].astype("float64"),
            "max": stats["max"].astype("float64"),
        }
    )
    if projection is not None:
        per_event = projection.groupby("event")[["monthly_coins", "monthly_rupees"]].sum()
        out = out.merge(per_event, left_on="event", right_index=True, how="left")
        out[["monthly_coins", "monthly_rupees"]] = out[["monthly_coins", "monthly_rupees"]].fillna(
            0.0
        )
    order = out.sort_values(["companies", "event"], ascending=[False, True]).index
    return out.loc[order].reset_index(drop=True)


def typical_amount_chart(df: pd.DataFrame, *, top: int = 30) -> alt.LayerChart | alt.FacetChart:
    """The typical amount per event across companies: a dot at the median, a line from the
    lowest to the highest amount; the events most companies configure first."""
    measures = event_measures(df)
    n_events = len(measures)
    shown = measures.head(top).copy()
    notes = []
    if n_events > top:
        notes.append(f"The {top} of {n_events} events most companies configure.")
    if not n_events:
        notes.append("No configurations to show yet.")
    order = shown["event"].tolist()
    base = alt.Chart(shown)
    y = alt.Y(
        "event:N", sort=order, title="Event", axis=alt.Axis(labelOverlap=False, labelLimit=240)
    )
    tooltip = [
        alt.Tooltip("event:N", title="Event"),
        alt.Tooltip("median:Q", title="Median coins", format=",.1~f"),
        alt.Tooltip("min:Q", title="Lowest", format=","),
        alt.Tooltip("max:Q", title="Highest", format=","),
        alt.Tooltip("companies:Q", title="Companies", format=","),
    ]
    rule = base.mark_rule(color="#9ab").encode(
        x=alt.X("min:Q", title="Coins per event"), x2="max:Q", y=y, tooltip=tooltip
    )
    dot = base.mark_point(filled=True, size=70, color="#4c78a8").encode(
        x="median:Q", y=y, tooltip=tooltip
    )
    title = _title("Typical coins per event (median, min–max)", notes)
    return alt.layer(rule, dot, title=title).properties(height=alt.Step(22))


def companies_per_event_chart(df: pd.DataFrame, *, top: int = 30) -> alt.Chart:
    """How many companies configure each event (bars split into DEFAULT and CUSTOM)."""
    agg, n_events = event_totals(df, measure="count", top=top)
    notes = []
    if n_events > top:
        notes.append(f"The {top} of {n_events} events most companies configure.")
    if not n_events:
        notes.append("No configurations to show yet.")
    order = agg.drop_duplicates("event")["event"].tolist()
    return (
        alt.Chart(agg, title=_title("Companies configured per event", notes))
        .mark_bar()
        .encode(
            x=alt.X("sum(value):Q", title="Companies", axis=alt.Axis(format="d", tickMinStep=1)),
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
                alt.Tooltip("value:Q", title="Companies", format=","),
                alt.Tooltip("event_total:Q", title="All companies", format=","),
            ],
        )
        .properties(height=alt.Step(22))
    )


def monthly_cost_chart(
    frame: pd.DataFrame,
    *,
    by: Literal["event", "companyId"] = "event",
    value: cost.CoinValue | None = None,
    top: int = 25,
    title: str | None = None,
) -> alt.Chart:
    """Projected monthly cost per event (or company) from a `toolkit.cost.projection`,
    largest first; the rest are summed into one "other" bar. The coin's value is the
    projection's own unless ``value`` is given."""
    value = value or cost.CoinValue.from_attrs(frame.attrs) or cost.CoinValue()
    per = frame.groupby(by, as_index=False)[["monthly_coins", "monthly_rupees"]].sum()
    per = per.sort_values(["monthly_rupees", by], ascending=[False, True])
    n = len(per)
    shown = per.head(top).copy()
    if n > top:
        rest = per.iloc[top:]
        shown.loc[len(shown)] = [
            f"(other {n - top})",
            rest["monthly_coins"].sum(),
            rest["monthly_rupees"].sum(),
        ]
    shown = _rupee_texts(shown.reset_index(drop=True), "monthly_rupees")
    label = "event" if by == "event" else "company"
    notes = [f"Volume × configured amount; {value.short_note}."]
    if n > top:
        plural = "events" if by == "event" else "companies"
        notes.append(f"The {top} of {n} {plural} that cost most; the rest as one bar.")
    if not n or not shown["monthly_rupees"].any():
        notes.append("No volumes known: nothing to project.")
    return (
        alt.Chart(shown, title=_title(title or f"Monthly cost per {label} (projected)", notes))
        .mark_bar(color="#54a24b")
        .encode(
            x=alt.X("monthly_rupees:Q", title="₹ a month", axis=RUPEE_AXIS),
            y=alt.Y(
                f"{by}:N",
                sort=shown[by].tolist(),
                title=label.capitalize(),
                axis=alt.Axis(labelOverlap=False, labelLimit=240),
            ),
            tooltip=[
                alt.Tooltip(f"{by}:N", title=label.capitalize()),
                alt.Tooltip("text:N", title="₹ a month"),
                alt.Tooltip("exact:N", title="Exactly"),
                alt.Tooltip("monthly_coins:Q", title="Coins a month", format=",.0f"),
            ],
        )
        .properties(height=alt.Step(22))
    )


# --------------------------------------------------------------------------- coins awarded


def _period_label(period: pd.Series, kind: str) -> pd.Series:
    stamps = pd.to_datetime(period)
    return stamps.dt.strftime("%Y-%m" if kind == "month" else "%Y-%m-%d").astype("str")


def awarded_over_time_chart(
    per_event: pd.DataFrame,
    *,
    period: str = "month",
    value: cost.CoinValue | None = None,
    top_events: int = 8,
) -> alt.Chart:
    """Coins awarded per day, week or month, stacked by event: the top events by coins, the
    rest as "other". ``per_event`` is ``toolkit.cost.awarded(…, by="event", period=…)``."""
    value = value or cost.CoinValue()
    data = per_event.copy()
    totals = data.groupby("event")["coins"].sum()
    keep = set(_top(totals, top_events))
    n_events = len(totals)
    data["event"] = data["event"].where(data["event"].isin(keep), f"(other {n_events - len(keep)})")
    data = data.groupby(["period", "event"], as_index=False)[
        ["coins", "rupees", "allocations"]
    ].sum()
    data["when"] = _period_label(data["period"], period)
    data = _rupee_texts(data.drop(columns=["period"]), "rupees")
    notes = [f"UTC {period}s; {value.short_note}."]
    if n_events > top_events:
        notes.append(f"The {top_events} of {n_events} events that awarded most; the rest as other.")
    if data.empty:
        notes.append("No allocations recorded yet.")
    return (
        alt.Chart(data, title=_title(f"Coins awarded per {period}, by event", notes))
        .mark_bar()
        .encode(
            x=alt.X("when:O", title=period.capitalize(), sort="ascending"),
            y=alt.Y("sum(coins):Q", title="Coins", stack=True),
            color=alt.Color("event:N", title="Event", scale=alt.Scale(scheme="tableau10")),
            order=alt.Order("event:N"),
            tooltip=[
                alt.Tooltip("when:O", title=period.capitalize()),
                alt.Tooltip("event:N", title="Event"),
                alt.Tooltip("coins:Q", title="Coins", format=","),
                alt.Tooltip("allocations:Q", title="Allocations", format=","),
                alt.Tooltip("exact:N", title="₹"),
            ],
        )
    )


def awarded_per_company_chart(
    per_company: pd.DataFrame, *, value: cost.CoinValue | None = None, top: int = 15
) -> alt.Chart:
    """Coins awarded per company (``toolkit.cost.awarded(…, period=None)``), the top ones."""
    value = value or cost.CoinValue()
    data = per_company.sort_values(["coins", "companyId"], ascending=[False, True])
    n = len(data)
    data = _rupee_texts(data.head(top).reset_index(drop=True), "rupees")
    notes = [value.short_note.capitalize() + "."]
    if n > top:
        notes.append(f"The {top} of {n} companies that were awarded most.")
    if not n:
        notes.append("No allocations recorded yet.")
    return (
        alt.Chart(data, title=_title("Coins awarded per company", notes))
        .mark_bar(color="#4c78a8")
        .encode(
            x=alt.X("coins:Q", title="Coins"),
            y=alt.Y("companyId:N", sort=data["companyId"].tolist(), title="Company"),
            tooltip=[
                alt.Tooltip("companyId:N", title="Company"),
                alt.Tooltip("coins:Q", title="Coins", format=","),
                alt.Tooltip("allocations:Q", title="Allocations", format=","),
                alt.Tooltip("exact:N", title="₹"),
            ],
        )
        .properties(height=alt.Step(22))
    )


def movers_chart(movers: pd.DataFrame, *, by: str = "companyId") -> alt.Chart:
    """Change in coins awarded between the last two periods (``toolkit.cost.top_movers``):
    green up, red down."""
    data = movers.copy()
    data["direction"] = data["change"].map(lambda c: "up" if c > 0 else "down").astype("str")
    notes = []
    periods = movers.attrs.get("periods")
    if periods:
        notes.append(f"From the period starting {periods[0]} to the one starting {periods[1]}.")
    if data.empty:
        notes.append("Nothing to compare yet: allocations in two periods are needed.")
    return (
        alt.Chart(data, title=_title("Top movers", notes))
        .mark_bar()
        .encode(
            x=alt.X("change:Q", title="Change in coins awarded"),
            y=alt.Y(
                f"{by}:N", sort=data[by].tolist(), title="Company" if by == "companyId" else by
            ),
            color=alt.Color(
                "direction:N",
                scale=alt.Scale(domain=["up", "down"], range=["#54a24b", "#e45756"]),
                legend=None,
            ),
            tooltip=[
                alt.Tooltip(f"{by}:N"),
                alt.Tooltip("previous:Q", title="Before", format=","),
                alt.Tooltip("latest:Q", title="Latest", format=","),
                alt.Tooltip("change:Q", title="Change", format="+,"),
                alt.Tooltip("pct:Q", title="Change %", format="+.0%"),
            ],
        )
        .properties(height=alt.Step(22))
    )


# --------------------------------------------------------------------------- what-if, budgets


def what_if_chart(frame: pd.DataFrame, *, by: str = "companyId", top: int = 20) -> alt.Chart:
    """Monthly cost before and after a change, per company or event (``WhatIf.by_company`` /
    ``by_event``): the ones the change moves most, side by side."""
    data = frame.loc[frame["rupees_delta"] != 0] if (frame["rupees_delta"] != 0).any() else frame
    data = data.reindex(data["rupees_delta"].abs().sort_values(ascending=False).index).head(top)
    long = pd.DataFrame(
        {
            by: list(data[by]) * 2,
            "when": ["before"] * len(data) + ["after"] * len(data),
            "rupees": list(data["rupees_before"]) + list(data["rupees_after"]),
        }
    )
    long = _rupee_texts(long, "rupees")
    label = "Company" if by == "companyId" else "Event"
    notes = []
    if len(frame) > top:
        notes.append(f"The {min(top, len(data))} {label.lower()}s the change moves most.")
    return (
        alt.Chart(long, title=_title(f"Monthly cost per {label.lower()}: before and after", notes))
        .mark_bar()
        .encode(
            x=alt.X("rupees:Q", title="₹ a month", axis=RUPEE_AXIS),
            y=alt.Y(f"{by}:N", sort=data[by].tolist(), title=label),
            yOffset=alt.YOffset("when:N", sort=["before", "after"]),
            color=alt.Color(
                "when:N",
                sort=["before", "after"],
                scale=alt.Scale(domain=["before", "after"], range=["#bab0ac", "#f58518"]),
                title="",
            ),
            tooltip=[
                alt.Tooltip(f"{by}:N", title=label),
                alt.Tooltip("when:N", title=""),
                alt.Tooltip("text:N", title="₹ a month"),
                alt.Tooltip("exact:N", title="Exactly"),
            ],
        )
        .properties(height=alt.Step(14))
    )


def budget_chart(by_company: pd.DataFrame, *, top: int = 25) -> alt.LayerChart | alt.FacetChart:
    """Projected monthly cost against each company's budget (companies with a budget, the
    closest to or furthest over it first); red when over."""
    data = by_company.loc[by_company["budget"].notna()].copy()
    data["use"] = data["rupees_after"] / data["budget"].where(data["budget"] > 0)
    data = data.sort_values("use", ascending=False, na_position="first").head(top)
    data["status"] = data["over_budget_after"].map({True: "over", False: "within"}).astype("str")
    data = _rupee_texts(data.reset_index(drop=True), "rupees_after")
    data = _rupee_texts(data, "budget", prefix="budget_")
    notes = [] if len(data) else ["No budgets set (COINS_MONTHLY_BUDGET or a budget sheet)."]
    base = alt.Chart(data)
    y = alt.Y("companyId:N", sort=data["companyId"].tolist(), title="Company")
    bars = base.mark_bar().encode(
        x=alt.X("rupees_after:Q", title="₹ a month", axis=RUPEE_AXIS),
        y=y,
        color=alt.Color(
            "status:N",
            scale=alt.Scale(domain=["within", "over"], range=["#4c78a8", "#e45756"]),
            title="Budget",
        ),
        tooltip=[
            alt.Tooltip("companyId:N", title="Company"),
            alt.Tooltip("exact:N", title="Projected ₹ a month"),
            alt.Tooltip("budget_exact:N", title="Budget"),
        ],
    )
    ticks = base.mark_tick(color="black", thickness=2).encode(x="budget:Q", y=y)
    title = _title("Monthly cost against budget", notes)
    return alt.layer(bars, ticks, title=title).properties(height=alt.Step(22))
