"""Charts embed small pandas aggregates, never raw rows: 100,000 configurations render."""

from __future__ import annotations

import pandas as pd
import pytest

from toolkit import charts, cost
from toolkit.frames import configs_to_frame

N = 100_000


def _data(chart) -> list[dict]:
    spec = chart.to_dict()  # raises MaxRowsError when more than 5,000 rows are embedded
    datasets = list(spec["datasets"].values())
    assert len(datasets) == 1
    return datasets[0]


def _subtitle(chart) -> str:
    return " ".join(chart.to_dict()["title"]["subtitle"])


@pytest.fixture(scope="module")
def big() -> pd.DataFrame:
    """100,000 configurations: 2,500 companies × 40 events, every 4th CUSTOM."""
    items = [
        {
            "coinConfigId": f"WCC{i:06d}",
            "companyId": f"CEK{i // 40:05d}",
            "event": f"EVENT_{i % 40:02d}",
            "configuration": "CUSTOM" if i % 4 == 0 else "DEFAULT",
            "amount": (i * 7919) % 1000,
        }
        for i in range(N)
    ]
    return configs_to_frame(items)


def test_amount_per_event_chart_holds_one_row_per_event_and_configuration(big):
    chart = charts.amount_per_event_chart(big, top=30)
    rows = _data(chart)
    assert len({r["event"] for r in rows}) == 30
    # events 0, 4, 8… are all CUSTOM here, the others all DEFAULT: one row per event.
    assert len(rows) == 30
    assert "Top 30 of 40 events" in _subtitle(chart)
    totals = [r["event_total"] for r in rows]
    assert totals == sorted(totals, reverse=True)
    assert {r["configuration"] for r in rows} == {"DEFAULT", "CUSTOM"}
    expected = big.groupby("event")["amount"].sum()
    for row in rows:
        assert row["value"] == expected[row["event"]]


def test_amount_per_event_chart_counts_both_configurations_per_event():
    frame = configs_to_frame(
        [
            {"companyId": "A", "event": "E1", "configuration": "DEFAULT", "amount": 5},
            {"companyId": "B", "event": "E1", "configuration": "CUSTOM", "amount": 50},
            {"companyId": "A", "event": "E2", "configuration": "DEFAULT", "amount": 1},
        ]
    )
    rows = _data(charts.amount_per_event_chart(frame, measure="count"))
    assert sorted((r["event"], r["configuration"], r["value"]) for r in rows) == [
        ("E1", "CUSTOM", 1),
        ("E1", "DEFAULT", 1),
        ("E2", "DEFAULT", 1),
    ]


def test_company_event_heatmap_caps_companies_and_events(big):
    chart = charts.company_event_heatmap(big, top_companies=40, top_events=25)
    rows = _data(chart)
    assert len(rows) == 40 * 25
    assert len({r["companyId"] for r in rows}) == 40
    assert len({r["event"] for r in rows}) == 25
    assert "40 of 2500 companies" in _subtitle(chart)


def test_amount_distribution_chart_is_binned_in_pandas(big):
    chart = charts.amount_distribution_chart(big, bins=20)
    rows = _data(chart)
    assert len({r["bin_start"] for r in rows}) <= 20
    assert len(rows) <= 40
    assert sum(r["count"] for r in rows) == N
    assert all(r["bin_end"] > r["bin_start"] for r in rows)


def test_histogram_bins_are_whole_coins_and_count_every_amount():
    frame = configs_to_frame(
        [{"event": "E", "configuration": "DEFAULT", "amount": a} for a in (0, 1, 2, 3, 10)]
        + [{"event": "E", "configuration": "DEFAULT"}]
    )
    hist = charts.histogram_data(frame, bins=4)
    assert hist["count"].sum() == 5  # the missing amount is not counted
    assert hist["bin_start"].tolist() == [0, 3, 9]
    assert (hist["bin_end"] - hist["bin_start"]).eq(3).all()


@pytest.mark.parametrize(
    "make",
    [
        charts.amount_per_event_chart,
        charts.company_event_heatmap,
        charts.amount_distribution_chart,
    ],
)
def test_charts_of_no_configurations_render_with_a_note(make):
    chart = make(configs_to_frame([]))
    assert _data(chart) == []
    assert "No" in _subtitle(chart)


# --------------------------------------------------------------------------- measures and cost


def test_typical_amount_chart_is_the_median_and_range_per_event_across_companies(big):
    chart = charts.typical_amount_chart(big, top=30)
    rows = _data(chart)
    assert len(rows) == 30  # one row per event shown, not 100,000 configurations
    assert "The 30 of 40 events most companies configure" in _subtitle(chart)
    amounts = big.groupby("event")["amount"]
    for row in rows:
        event = row["event"]
        assert row["median"] == amounts.median()[event]
        assert (row["min"], row["max"]) == (amounts.min()[event], amounts.max()[event])
        assert row["companies"] == 2_500


def test_companies_per_event_counts_companies_not_coins():
    frame = configs_to_frame(
        [
            {"companyId": "A", "event": "E1", "configuration": "DEFAULT", "amount": 5},
            {"companyId": "B", "event": "E1", "configuration": "CUSTOM", "amount": 500},
            {"companyId": "C", "event": "E1", "configuration": "DEFAULT", "amount": 7},
            {"companyId": "A", "event": "E2", "configuration": "DEFAULT", "amount": 1},
        ]
    )
    rows = _data(charts.companies_per_event_chart(frame))
    assert sorted((r["event"], r["configuration"], r["value"]) for r in rows) == [
        ("E1", "CUSTOM", 1),
        ("E1", "DEFAULT", 2),
        ("E2", "DEFAULT", 1),
    ]
    measures = charts.event_measures(frame)
    assert measures.set_index("event").loc[
        "E1", ["companies", "median", "min", "max"]
    ].tolist() == [
        3,
        7.0,
        5.0,
        500.0,
    ]


def test_monthly_cost_chart_caps_the_bars_and_keeps_every_rupee(big):
    volumes = big[["companyId", "event"]].assign(monthly_count=10.0)
    projected = cost.projection(big, volumes, value=cost.CoinValue.of(0.5))
    chart = charts.monthly_cost_chart(projected, by="companyId", top=25)
    rows = _data(chart)
    assert len(rows) == 26 and rows[-1]["companyId"] == "(other 2475)"
    assert sum(r["monthly_rupees"] for r in rows) == pytest.approx(big["amount"].sum() * 5.0)
    assert "₹0.5 per coin" in _subtitle(chart)
    top = rows[0]
    assert top["exact"] == cost.format_inr(top["monthly_rupees"], exact=True)
    assert "lakh" in top["text"] or top["text"].startswith("₹")
    assert "1e5" in str(chart.to_dict()["encoding"]["x"]["axis"]["labelExpr"])


def test_coins_awarded_over_time_are_aggregated_before_plotting():
    n = 200_000
    at = pd.Timestamp("2025-01-01", tz="UTC") + pd.to_timedelta(
        pd.Series(range(n)) * (180 * 86_400 // n), unit="s"
    )
    records = pd.DataFrame(
        {
            "at": at,
            "companyId": pd.Series([f"CEK{i % 300:04d}" for i in range(n)], dtype="str"),
            "event": pd.Series([f"EVENT_{i % 12:02d}" for i in range(n)], dtype="str"),
            "coins": pd.array([(i % 12) + 1 for i in range(n)], dtype="Int64"),
            "status": pd.Series(["allocated"] * n, dtype="str"),
        }
    )
    per_event = cost.awarded(records, by="event", period="month")
    chart = charts.awarded_over_time_chart(per_event, period="month", top_events=8)
    rows = _data(chart)
    assert len({r["when"] for r in rows}) == 6 and len(rows) <= 6 * 9
    assert {r["event"] for r in rows} >= {"(other 4)"}
    assert sum(r["coins"] for r in rows) == int(records["coins"].sum())
    per_company = cost.awarded(records, by="companyId", period=None)
    rows = _data(charts.awarded_per_company_chart(per_company, top=15))
    assert len(rows) == 15


def test_what_if_and_budget_charts_show_the_moved_companies():
    configs = configs_to_frame(
        [
            {"companyId": "CEKA", "event": "E", "amount": 10},
            {"companyId": "CEKB", "event": "E", "amount": 10},
        ]
    )
    volumes = pd.DataFrame({"companyId": ["CEKA", "CEKB"], "event": ["E", "E"], "count": [100, 1]})
    result = cost.what_if(
        configs,
        volumes,
        cost.single_change("CEKA", "E", 30),
        budgets=cost.Budgets(default=2_000),
    )
    rows = _data(charts.what_if_chart(result.by_company))
    assert [(r["companyId"], r["when"], r["rupees"]) for r in rows] == [
        ("CEKA", "before", 1_000),
        ("CEKA", "after", 3_000),
    ]
    budget_rows = _data(charts.budget_chart(result.by_company))
    assert [(r["companyId"], r["status"]) for r in budget_rows] == [
        ("CEKA", "over"),
        ("CEKB", "within"),
    ]


@pytest.mark.parametrize(
    "make",
    [
        lambda: charts.typical_amount_chart(configs_to_frame([])),
        lambda: charts.companies_per_event_chart(configs_to_frame([])),
        lambda: charts.monthly_cost_chart(cost.projection(configs_to_frame([]), None)),
        lambda: charts.movers_chart(
            cost.top_movers(pd.DataFrame(columns=["at", "companyId", "coins"]))
        ),
    ],
)
def test_cost_charts_of_nothing_render_with_a_note(make):
    chart = make()
    assert _data(chart) == []
    assert "No" in _subtitle(chart)
