"""Charts embed small pandas aggregates, never raw rows: 100,000 configurations render."""

from __future__ import annotations

import pandas as pd
import pytest

from toolkit import charts
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
