"""The Cost page and the plan's cost line, read in a real headless Chromium: the app started as
`streamlit run app.py` on a fresh COINS_HOME (the embedded sandbox), allocations made through
the toolkit on the same files, then the figures, a what-if and a bulk plan as an analyst sees
them. Reuses the browser helpers of the end-to-end test (test_browser_support.py): skipped without
Chromium, except when COINS_REQUIRE_BROWSER=1."""

from __future__ import annotations

import re

import pytest
from test_browser_support import (
    app_env,
    chromium,
    evidence,
    idle,
    new_page,
    no_traceback,
    open_page,
    require_browser,
    rerun_done,
    run_states,
    shot,
    streamlit_app,
)

from toolkit import cost
from toolkit.settings import Settings
from toolkit.workspace import connect

pytestmark = pytest.mark.browser

COMPANY = "CEKBRWSR"
MONTH = 30.4375 / 30
ALLOCATIONS = 3


def _seed(home) -> None:
    """A configuration and three allocations made through the toolkit on the app's files."""
    with connect(Settings(home=home, actor="browser-test"), source="test") as ws:
        ws.client.create_config(company_id=COMPANY, event="REFERRAL_EVENT", amount=100)
        for i in range(ALLOCATIONS):
            ws.client.allocate_coins(company_id=COMPANY, event="REFERRAL_EVENT", user_id=f"EKB{i}")


@pytest.fixture(scope="module")
def app_server(tmp_path_factory):
    require_browser()
    home = tmp_path_factory.mktemp("coins-home")
    log = tmp_path_factory.mktemp("logs") / "streamlit.log"
    with streamlit_app(app_env(home), log) as (url, _):
        yield url, home


def _pick(pg, label: str, option: str) -> None:
    box = pg.locator('[data-testid="stMultiSelect"]').filter(has_text=label).first
    box.click()
    pg.keyboard.type(option)
    states = run_states(pg)
    pg.keyboard.press("Enter")
    pg.keyboard.press("Escape")
    rerun_done(pg, states)


def test_the_cost_page_and_the_plans_cost_line_in_a_browser(app_server):
    url, home = app_server
    with chromium() as browser:
        pg = new_page(browser)
        open_page(pg, url, "", "Overview")  # the app's first run imports the sandbox's demo data
        _seed(home)
        with evidence(pg, "cost-page"):
            _cost_page(pg, url)
        with evidence(pg, "cost-plan"):
            _plan_line(pg, url)


def _cost_page(pg, url: str) -> None:
    open_page(pg, url, "cost", "Cost")
    awarded = pg.locator('[data-testid="stMetric"]').filter(has_text="Coins awarded").first
    awarded.wait_for()
    assert "300" in awarded.inner_text()
    assert pg.get_by_text(re.compile("Rupee figures assume ₹1 per coin")).first.is_visible()
    no_traceback(pg)

    pg.get_by_role("tab", name="What-if").click()
    _pick(pg, "Events", "REFERRAL_EVENT")
    _pick(pg, "Companies", COMPANY)
    amount = pg.get_by_role("spinbutton", name="Coins per event")
    amount.fill("150")
    states = run_states(pg)
    amount.press("Enter")
    rerun_done(pg, states)
    delta = cost.format_inr(ALLOCATIONS * 50 * MONTH)
    line = pg.get_by_text(re.compile(r"This change raises monthly cost by")).first
    line.wait_for()
    assert delta in line.inner_text() and "assumes ₹1 per coin" in line.inner_text()
    assert pg.get_by_role("button", name=re.compile(r"Download the change")).is_visible()
    no_traceback(pg)
    shot(pg, "07-cost-what-if")


def _plan_line(pg, url: str) -> None:
    """The bulk plan of a sheet raising the same pair: its cost line next to the counts."""
    open_page(pg, url, "bulk-upload", "Bulk upload")
    sheet = f"companyId,event,amount\r\n{COMPANY},REFERRAL_EVENT,120\r\n".encode()
    pg.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
        files=[{"name": "raise.csv", "mimeType": "text/csv", "buffer": sheet}]
    )
    pg.get_by_text("2 · Plan (dry run)").wait_for()
    idle(pg)
    states = run_states(pg)
    pg.get_by_text("update it to the file's values").click()
    rerun_done(pg, states)
    plan_line = pg.get_by_text(re.compile(r"This sheet raises monthly cost by")).first
    plan_line.wait_for()
    assert cost.format_inr(ALLOCATIONS * 20 * MONTH) in plan_line.inner_text()
    no_traceback(pg)
    shot(pg, "08-bulk-plan-cost")
