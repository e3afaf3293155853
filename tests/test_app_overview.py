"""The Overview page: metrics, and altair charts drawn from pandas aggregates — a programme
larger than Altair's 5,000-row limit renders, and each chart carries only a small aggregate.
Filters chosen here follow the analyst to the other pages."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from test_app_support import PAGES, open_page, point_app_at, texts, vega_charts

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
    charts = vega_charts(at)
    assert len(charts) == 3
    titles = [str(spec.get("title")) for spec, _ in charts]
    assert any("per event" in t for t in titles)
    assert any("company and event" in t for t in titles)
    assert any("Distribution" in t for t in titles)
    for spec, datasets in charts:
        rows = sum(len(d) for d in datasets)
        assert 0 < rows <= 1_000, (spec.get("title"), rows)  # aggregates, not 6,000 rows
    bars = next(d[0] for spec, d in charts if "per event" in str(spec.get("title")))
    assert set(bars.columns) >= {"event", "configuration", "value"}
    assert bars["value"].sum() == sum((e + 1) * 5 + (c % 7) for c in range(400) for e in range(15))
    # The heatmap is capped at the top companies, and says so.
    heat_spec, heat = next((s, d) for s, d in charts if "company and event" in str(s.get("title")))
    assert heat[0]["companyId"].nunique() <= 40
    assert "Showing the 40 of 400 companies" in str(heat_spec["title"])


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
