"""The Cost page under AppTest: coins awarded from the registry's real allocation records, the
monthly projection from their volumes, a what-if worked out before anything is sent, a volumes
sheet whose bad rows are answered by row, budgets, and the plan's cost line on Bulk upload."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest
from test_app_support import APP, TIMEOUT, all_text, point_app_at, texts, vega_charts, workspace_for

from toolkit import cost

PAGE = "toolkit/ui/cost.py"
MONTH = 30.4375 / 30  # the last 30 days, scaled to an average month
# (company, event, coins configured, allocations made)
PROGRAMME = [
    ("CEKCOSTA", "MEAL_CARD_PAYMENT", 6, 3),
    ("CEKCOSTA", "REFERRAL_EVENT", 100, 2),
    ("CEKCOSTB", "MEAL_CARD_PAYMENT", 10, 4),
]
AWARDED = sum(coins * n for _, _, coins, n in PROGRAMME)  # 258


@pytest.fixture
def programme(tmp_path, fresh_sandbox):
    """Configurations and allocations made through the toolkit, as a notebook would."""
    with workspace_for(tmp_path, fresh_sandbox) as ws:
        for company, event, coins, n in PROGRAMME:
            ws.client.create_config(company_id=company, event=event, amount=coins)
            for i in range(n):
                ws.client.allocate_coins(company_id=company, event=event, user_id=f"EKU{i}")
    return tmp_path


def open_cost(monkeypatch, home, handle, **env: str) -> AppTest:
    point_app_at(monkeypatch, home, handle)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metric(at: AppTest, label: str):
    return next(m for m in at.metric if m.label == label)


def test_awarded_and_projected_figures_come_from_the_allocation_records(
    monkeypatch, programme, fresh_sandbox
):
    at = open_cost(monkeypatch, programme, fresh_sandbox)
    assert metric(at, "Coins awarded").value == str(AWARDED)
    assert metric(at, "Allocations").value == "9"
    assert metric(at, "Users").value == "4"
    worth = metric(at, "Worth")
    assert worth.value == f"₹{AWARDED}"
    assert "assumes ₹1 per coin" in worth.proto.help
    assert "assumes ₹1 per coin" in all_text(at)
    projected = AWARDED * MONTH
    monthly = metric(at, "Projected monthly cost")
    assert monthly.value == cost.format_inr(projected)
    assert cost.format_inr(projected, exact=True) in monthly.proto.help
    assert any("allocations in the 30 days to" in t for t in texts(at, "caption"))
    # Charts carry aggregates: one row per month and event, per company, per event.
    charts = {str(spec.get("title", {}).get("text")): data for spec, data in vega_charts(at)}
    over_time = charts["Coins awarded per month, by event"][0]
    assert over_time["coins"].sum() == AWARDED and len(over_time) == 2
    per_event = charts["Monthly cost per event (projected)"][0].set_index("event")
    assert per_event.loc["REFERRAL_EVENT", "monthly_rupees"] == pytest.approx(200 * MONTH)


def test_a_coin_worth_half_a_rupee_halves_every_rupee_figure_and_says_so(
    monkeypatch, programme, fresh_sandbox
):
    at = open_cost(monkeypatch, programme, fresh_sandbox, COINS_RUPEES_PER_COIN="0.5")
    assert metric(at, "Worth").value == f"₹{AWARDED // 2}"
    assert "at ₹0.5 per coin" in all_text(at)
    assert "assumes ₹1" not in all_text(at)


def test_what_if_shows_the_delta_before_anything_is_sent(monkeypatch, programme, fresh_sandbox):
    at = open_cost(monkeypatch, programme, fresh_sandbox, COINS_MONTHLY_BUDGET="CEKCOSTA=300")
    at.multiselect(key="cost_wi_events").set_value(["REFERRAL_EVENT"]).run()
    at.number_input(key="cost_wi_amount").set_value(150).run()
    assert not at.exception
    delta = 2 * 50 * MONTH
    before = AWARDED * MONTH
    line = next(t for t in texts(at, "warning") if t.startswith("This change"))
    assert cost.format_inr(delta) in line and f"+{delta / before:.0%}" in line
    assert "CEKCOSTA over budget" in line  # 218 × 1.01 ≈ ₹221 → ₹322, over its ₹300
    assert metric(at, "Change").value == cost.format_inr(delta, signed=True)
    table = next(d.value for d in at.dataframe if "₹ a month after" in d.value.columns)
    assert table["Company"].tolist() == ["CEKCOSTA"]
    assert table["Over budget"].tolist() == ["yes"]
    # Nothing was sent: the sandbox still has the old amount; the change goes on as a sheet.
    with workspace_for(programme, fresh_sandbox) as ws:
        assert ws.registry.find("CEKCOSTA", "REFERRAL_EVENT").amount == 100
    labels = [d.proto.label for d in at.get("download_button")]
    assert "Download the change (1 row)" in labels


def test_a_volumes_sheet_replaces_history_and_its_bad_rows_are_answered_by_row(
    monkeypatch, programme, fresh_sandbox
):
    at = open_cost(monkeypatch, programme, fresh_sandbox)
    sheet = (
        b"companyId,event,count\r\n"
        b"CEKCOSTA,MEAL_CARD_PAYMENT,20000\r\n"
        b"cekcostb,MEAL_CARD_PAYMENT,5\r\n"
        b"CEKCOSTB,MEAL_CARD_PAYMENT,lots\r\n"
    )
    at.file_uploader(key="cost_volumes_file").set_value(("march.csv", sheet, "text/csv")).run()
    assert not at.exception
    problems = next(d.value for d in at.dataframe if "reason" in d.value.columns)
    assert problems["row"].tolist() == [3, 4]
    assert problems["column"].tolist() == ["companyId", "count"]
    assert any("2 row(s) of the volumes sheet have errors" in t for t in texts(at, "error"))
    # Only the valid row counts: 20,000 meal payments × 6 coins.
    assert metric(at, "Projected monthly cost").value == "₹1.2 lakh"
    assert "₹1,20,000" in metric(at, "Projected monthly cost").proto.help


def test_the_bulk_plan_shows_the_monthly_cost_delta_of_the_sheet(
    monkeypatch, programme, fresh_sandbox
):
    point_app_at(monkeypatch, programme, fresh_sandbox)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    at.switch_page("toolkit/ui/bulk_upload.py").run()
    sheet = b"companyId,event,amount\r\nCEKCOSTB,MEAL_CARD_PAYMENT,20\r\nCEKCOSTA,NEW_EVENT,5\r\n"
    at.file_uploader(key="bu_file").set_value(("raise.csv", sheet, "text/csv")).run()
    at.radio(key="bu_mode").set_value("upsert").run()
    assert not at.exception
    delta = 4 * 10 * MONTH  # CEKCOSTB's meal payments go from 10 to 20 coins
    line = next(t for t in texts(at, "info") if t.startswith("This sheet"))
    assert f"raises monthly cost by {cost.format_inr(delta)}" in line
    assert "1 changed pair has no known volume" in line  # the new event has no history


def test_with_no_allocations_the_page_says_where_figures_will_come_from(
    monkeypatch, tmp_path, fresh_sandbox
):
    at = open_cost(monkeypatch, tmp_path, fresh_sandbox)
    assert any("No allocations recorded yet" in t for t in texts(at, "info"))
    assert any("No volumes known yet" in t for t in texts(at, "info"))


def _configurations_page(monkeypatch, home, handle) -> AppTest:
    point_app_at(monkeypatch, home, handle)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    at.switch_page("toolkit/ui/configurations.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_update_form_says_what_the_new_amount_costs_a_month(
    monkeypatch, programme, fresh_sandbox
):
    with workspace_for(programme, fresh_sandbox) as ws:
        cid = ws.registry.find("CEKCOSTA", "MEAL_CARD_PAYMENT").coin_config_id
    at = _configurations_page(monkeypatch, programme, fresh_sandbox)
    at.selectbox(key="cfg_select").set_value(cid).run()
    at.text_input(key=f"cfg_upd_{cid}_amount").input("9").run()
    assert not at.exception
    delta = 3 * 3 * MONTH  # 3 meal payments a month (from history), 6 → 9 coins
    line = next(t for t in texts(at, "info") if t.startswith("This change"))
    assert f"raises monthly cost by {cost.format_inr(delta)}" in line
    assert "(assumes ₹1 per coin)" in line


def test_the_inline_edit_review_says_what_the_edits_cost_a_month(
    monkeypatch, programme, fresh_sandbox
):
    at = _configurations_page(monkeypatch, programme, fresh_sandbox)
    with workspace_for(programme, fresh_sandbox) as ws:
        order = ws.registry.to_frame()
    target = order.index[
        (order["companyId"] == "CEKCOSTB") & (order["event"] == "MEAL_CARD_PAYMENT")
    ][0]
    key = at.session_state["cfg_editor_key"]
    at.session_state[key] = {
        "edited_rows": {int(target): {"amount": "5"}},
        "added_rows": [],
        "deleted_rows": [],
    }
    at.run()
    next(b for b in at.button if b.label == "Review changes").click().run()
    assert not at.exception
    delta = 4 * 5 * MONTH  # 4 meal payments a month at CEKCOSTB, 10 → 5 coins
    line = next(t for t in texts(at, "info") if t.startswith("These edits"))
    assert f"lowers monthly cost by {cost.format_inr(delta)}" in line


def test_an_allocation_plan_says_what_it_awards_in_coins_and_rupees(
    monkeypatch, programme, fresh_sandbox
):
    point_app_at(monkeypatch, programme, fresh_sandbox)
    monkeypatch.setenv("COINS_RUPEES_PER_COIN", "0.5")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    at.switch_page("toolkit/ui/allocate.py").run()
    sheet = (
        b"companyId,event,userId\r\n"
        b"CEKCOSTA,REFERRAL_EVENT,EKNEW1\r\n"
        b"CEKCOSTA,REFERRAL_EVENT,EKNEW2\r\n"
        b"CEKCOSTB,MEAL_CARD_PAYMENT,EKNEW1\r\n"
    )
    at.file_uploader(key="al_bulk_file").set_value(("award.csv", sheet, "text/csv")).run()
    assert not at.exception
    line = next(t for t in texts(at, "info") if t.startswith("This sheet awards"))
    assert line == "This sheet awards 210 coins ≈ ₹105 (₹0.5 per coin)"
