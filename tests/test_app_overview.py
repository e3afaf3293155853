"""The Overview page: metrics, and altair charts drawn from pandas aggregates — a programme
larger than Altair's 5,000-row limit renders, and each chart carries only a small aggregate.
Filters chosen here follow the analyst to the other pages."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from test_app_support import PAGES, open_page, point_app_at, texts, vega_charts, workspace_for

from toolkit import cost
from toolkit.client import ApiCall
from toolkit.models import CoinConfig, Configuration
from toolkit.registry import Registry

N_COMPANIES, N_EVENTS = 400, 15  # 6,000 configurations


def seed_registry(path, server_key: str, companies: int, events: int) -> int:
    """Configurations the registry learned (as if fetched), with no HTTP."""
    registry = Registry(path, server_key=server_key, actor="test")
    now = datetime.now(UTC)
    n = 0
    for c in range(companies):
        for e in range(events):
            config = CoinConfig(
                coin_config_id=f"WCC{n:07d}",
                company_id=f"CEK{c:05d}",
                event=f"EVENT_{e:02d}",
                configuration=Configuration.CUSTOM if (c + e) % 4 == 0 else Configuration.DEFAULT,
                amount=(e + 1) * 5 + (c % 7),
            )
            registry.record_call(
                ApiCall(
                    action="get",
                    server_key=server_key,
                    coin_config_id=config.coin_config_id,
                    request={"coinConfigId": config.coin_config_id},
                    result=config,
                    source="test",
                    actor="test",
                    at=now,
                )
            )
            n += 1
    registry.close()
    return n


@pytest.fixture(scope="module")
def big_home(tmp_path_factory, sandbox):
    home = tmp_path_factory.mktemp("big")
    seed_registry(home / "registry.sqlite3", sandbox.url, N_COMPANIES, N_EVENTS)
    return home


def test_overview_metrics_and_charts_from_aggregates(monkeypatch, big_home, sandbox):
    point_app_at(monkeypatch, big_home, sandbox)
    at = open_page("overview")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Configurations"] == f"{N_COMPANIES * N_EVENTS:,}"
    assert metrics["Companies"] == f"{N_COMPANIES:,}"
    assert metrics["Events"] == str(N_EVENTS)
    assert "Monthly cost (projected)" not in metrics  # no volumes known: no cost claimed
    charts = vega_charts(at)
    titles = [str(spec.get("title")) for spec, _ in charts]
    assert len(charts) == 4, titles
    assert not any("sum of amounts" in t for t in titles)  # rates added up mean nothing
    for spec, datasets in charts:
        rows = sum(len(d) for d in datasets)
        assert 0 < rows <= 1_000, (spec.get("title"), rows)  # aggregates, not 6,000 rows
    typical = next(d[0] for s, d in charts if "Typical coins per event" in str(s.get("title")))
    assert len(typical) == N_EVENTS
    for row in typical.itertuples():
        e = int(row.event.rsplit("_", 1)[1])
        amounts = sorted((e + 1) * 5 + (c % 7) for c in range(N_COMPANIES))
        assert (row.min, row.max) == (amounts[0], amounts[-1])
        assert row.median == (amounts[199] + amounts[200]) / 2
        assert row.companies == N_COMPANIES
    companies = next(d[0] for s, d in charts if "Companies configured" in str(s.get("title")))
    assert companies.groupby("event")["value"].sum().eq(N_COMPANIES).all()
    assert any(
        "Monthly cost per event: shown once volumes are known" in t for t in texts(at, "caption")
    )
    # The heatmap is capped at the top companies, and says so.
    heat_spec, heat = next((s, d) for s, d in charts if "company and event" in str(s.get("title")))
    assert heat[0]["companyId"].nunique() <= 40
    assert "Showing the 40 of 400 companies" in str(heat_spec["title"])


def test_with_allocations_known_each_event_shows_its_monthly_cost(
    monkeypatch, tmp_path, fresh_sandbox
):
    with workspace_for(tmp_path, fresh_sandbox) as ws:
        for company, event, coins, n in (
            ("CEKOVA", "MEAL_CARD_PAYMENT", 6, 4),
            ("CEKOVB", "MEAL_CARD_PAYMENT", 10, 1),
            ("CEKOVA", "REFERRAL_EVENT", 100, 2),
        ):
            ws.client.create_config(company_id=company, event=event, amount=coins)
            for i in range(n):
                ws.client.allocate_coins(company_id=company, event=event, user_id=f"EKU{i}")
    point_app_at(monkeypatch, tmp_path, fresh_sandbox)
    monkeypatch.setenv("COINS_RUPEES_PER_COIN", "2")
    at = open_page("overview")
    month = 30.4375 / 30
    monthly = next(m for m in at.metric if m.label == "Monthly cost (projected)")
    assert monthly.value == cost.format_inr((24 + 10 + 200) * month * 2)
    assert "at ₹2 per coin" in monthly.proto.help
    spec, data = next(
        (s, d) for s, d in vega_charts(at) if "Monthly cost per event" in str(s.get("title"))
    )
    per_event = data[0].set_index("event")["monthly_rupees"]
    assert per_event.to_dict() == pytest.approx(
        {"REFERRAL_EVENT": 200 * month * 2, "MEAL_CARD_PAYMENT": 34 * month * 2}
    )
    assert "₹2 per coin" in str(spec["title"])
    table = next(d.value for d in at.dataframe if "median coins" in d.value.columns)
    assert table.set_index("event").loc["MEAL_CARD_PAYMENT", "median coins"] == 8.0


def test_filters_are_shared_across_pages(monkeypatch, big_home, sandbox):
    point_app_at(monkeypatch, big_home, sandbox)
    at = open_page("overview")
    at.multiselect(key="ov_filter_company").set_value(["CEK00001", "CEK00002"]).run()
    assert {m.label: m.value for m in at.metric}["Configurations"] == str(2 * N_EVENTS)
    at.switch_page(PAGES["configurations"]).run()
    assert at.multiselect(key="cfg_filter_company").value == ["CEK00001", "CEK00002"]
    assert any(
        t.startswith(f"{2 * N_EVENTS} of 6,000 configurations") for t in texts(at, "caption")
    )


def test_empty_registry_points_to_the_ways_in(monkeypatch, tmp_path, fresh_sandbox):
    point_app_at(monkeypatch, tmp_path, fresh_sandbox)
    at = open_page("overview")
    assert any("No configurations known yet" in t for t in texts(at, "info"))
    assert not vega_charts(at)
