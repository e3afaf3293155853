"""The Allocate & balances page: one allocation with a generated request id, balance lookup,
validation messages, and bulk allocation from a CSV (validate → plan → run → results)."""

from __future__ import annotations

import pytest
import requests
from test_app_support import button, open_page, point_app_at, run_to_results, texts, workspace_for


@pytest.fixture
def configured(monkeypatch, tmp_path, fresh_sandbox):
    ws = workspace_for(tmp_path, fresh_sandbox)
    ws.client.create_config(company_id="CEKALLOC", event="MEAL_CARD_PAYMENT", amount=6)
    ws.client.create_config(company_id="CEKALLOC", event="REFERRAL_EVENT", amount=50)
    ws.close()
    point_app_at(monkeypatch, tmp_path, fresh_sandbox)
    return fresh_sandbox


def _allocations(handle) -> list[dict]:
    return requests.get(handle.url + "/_sandbox/allocations", timeout=10).json()["payload"]


def test_allocate_shows_the_generated_request_id_and_the_new_balance(configured):
    at = open_page("allocate")
    request_id = at.text_input(key="al_request_id").value
    assert request_id.startswith("COIN_REQ")
    at.selectbox(key="al_company").set_value("CEKALLOC")
    at.selectbox(key="al_event").set_value("MEAL_CARD_PAYMENT")
    at.text_input(key="al_user").input("EKQZVMQK")
    button(at, "Review").click().run()
    # The coins it awards are shown before anything is sent, and the user id is new here.
    assert any("Award 6 coins" in m and "EKQZVMQK" in m for m in texts(at, "markdown"))
    assert any("No allocation to EKQZVMQK is recorded" in w for w in texts(at, "warning"))
    assert _allocations(configured) == []
    button(at, "Allocate 6 coins").click().run()
    assert not at.exception
    success = texts(at, "success")
    assert success and request_id in success[0], success
    assert next(m.value for m in at.metric if m.label == "Balance of EKQZVMQK") == "6 coins"
    made = _allocations(configured)
    assert [(a["requestId"], a["userId"]) for a in made] == [(request_id, "EKQZVMQK")]
    # The next allocation gets a new request id.
    assert at.text_input(key="al_request_id").value not in ("", request_id)


def test_allocation_fields_are_checked_before_sending(configured):
    at = open_page("allocate")
    at.text_input(key="al_user").input("not a user id")
    button(at, "Review").click().run()
    errors = texts(at, "error")
    assert any(e.startswith("Company id is missing") for e in errors), errors
    assert any(e.startswith("User id must be 1-64 characters") for e in errors), errors
    assert _allocations(configured) == []


def test_balance_lookup(configured):
    at = open_page("allocate")
    at.text_input(key="al_balance_user").input("EKNOBODY")
    button(at, "Look up").click().run()
    assert next(m.value for m in at.metric if m.label == "Balance of EKNOBODY") == "0 coins"
    assert any("No allocation to EKNOBODY" in c for c in texts(at, "caption"))


def test_a_lower_case_user_id_of_a_known_user_gets_a_did_you_mean(configured):
    at = open_page("allocate")
    at.selectbox(key="al_company").set_value("CEKALLOC")
    at.selectbox(key="al_event").set_value("REFERRAL_EVENT")
    at.text_input(key="al_user").input("EKKNOWN1")
    button(at, "Review").click().run()
    button(at, "Allocate 50 coins").click().run()
    assert texts(at, "success"), texts(at, "error")
    at.text_input(key="al_balance_user").input("ekknown1")
    button(at, "Look up").click().run()
    assert next(m.value for m in at.metric if m.label == "Balance of ekknown1") == "0 coins"
    assert any("Did you mean EKKNOWN1?" in c for c in texts(at, "caption")), texts(at, "caption")


def test_a_new_request_id_without_reloading(configured):
    at = open_page("allocate")
    first = at.text_input(key="al_request_id").value
    button(at, "New request id").click().run()
    second = at.text_input(key="al_request_id").value
    assert second.startswith("COIN_REQ") and second != first


def test_bulk_allocation_from_a_csv(configured):
    at = open_page("allocate")
    sheet = (
        b"companyId,event,userId\r\n"
        b"CEKALLOC,MEAL_CARD_PAYMENT,EKUSER01\r\n"
        b"CEKALLOC,REFERRAL_EVENT,EKUSER01\r\n"
        b"CEKALLOC,MEAL_CARD_PAYMENT,bad user\r\n"
    )
    at.file_uploader(key="al_bulk_file").set_value(("awards.csv", sheet, "text/csv")).run()
    assert not at.exception
    assert next(m.value for m in at.metric if m.label == "Allocate") == "2"
    button(at, "Run — send 2 rows").click().run()
    run_to_results(at)
    results = at.dataframe[-1].value
    assert sorted(results["status"]) == ["allocated", "allocated", "invalid"]
    assert len(_allocations(configured)) == 2
    at.text_input(key="al_balance_user").input("EKUSER01")
    button(at, "Look up").click().run()
    assert next(m.value for m in at.metric if m.label == "Balance of EKUSER01") == "56 coins"


def test_an_allocation_whose_answer_was_lost_says_to_check_before_sending_again(
    configured, monkeypatch
):
    """No Server check kept: this server's answers cannot confirm a repeated request id, so
    the page does not tell the analyst that sending it again is safe."""
    monkeypatch.setenv("ENKASH_TIMEOUT_S", "0.3")
    at = open_page("allocate")
    request_id = at.text_input(key="al_request_id").value
    at.selectbox(key="al_company").set_value("CEKALLOC")
    at.selectbox(key="al_event").set_value("MEAL_CARD_PAYMENT")
    at.text_input(key="al_user").input("EKQZVMQK")
    button(at, "Review").click().run()
    configured.set_faults(slow_after_commit_rate=1.0, slow_after_commit_ms=600)
    try:
        button(at, "Allocate 6 coins").click().run()
    finally:
        configured.clear_faults()
    assert not at.exception
    warning = "\n".join(texts(at, "warning"))
    assert "Unconfirmed" in warning and request_id in warning
    assert "cannot confirm a repeat" in warning and "check the user's balance" in warning
    assert "never allocated twice" not in warning
    made = _allocations(configured)
    assert [(a["requestId"], a["userId"]) for a in made] == [(request_id, "EKQZVMQK")]
    assert at.text_input(key="al_request_id").value == request_id  # kept, to look it up
