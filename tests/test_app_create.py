"""The Create page: bulk rules next to the fields, a create, a conflict with the existing one."""

from __future__ import annotations

from test_app_support import open_page, point_app_at, sandbox_configs, texts


def _fill(at, *, company="", event="", configuration="DEFAULT", amount=None):
    at.text_input(key="cr_company").input(company)
    at.text_input(key="cr_event").input(event)
    at.radio(key="cr_configuration").set_value(configuration)
    at.text_input(key="cr_amount").input("" if amount is None else str(amount))
    return at.button[0].click().run()  # the form's Create button


def test_invalid_fields_get_messages_next_to_them_and_nothing_is_sent(
    monkeypatch, tmp_path, fresh_sandbox
):
    point_app_at(monkeypatch, tmp_path, fresh_sandbox)
    at = open_page("create")
    _fill(at, company="cek kcards", event="meal card", amount=None)
    errors = texts(at, "error")
    assert any(e.startswith("Company id must be 1-32 upper-case") for e in errors), errors
    assert any(e.startswith("Event must be upper snake case") for e in errors), errors
    assert any(e == "Coins per event is missing" for e in errors), errors
    assert any("Nothing was sent" in e for e in errors)
    assert sandbox_configs(fresh_sandbox).empty


def test_amounts_a_number_box_would_refuse_get_the_bulk_reason_not_a_silent_no_op(
    monkeypatch, tmp_path, fresh_sandbox
):
    # A number widget with a 0..1,000,000 range kept the form from submitting on -5 (the old
    # messages stayed on screen) and rounded 6.5; the field now says why, as bulk does.
    point_app_at(monkeypatch, tmp_path, fresh_sandbox)
    at = open_page("create")
    for typed, reason in (
        ("-5", "Coins per event must be 0 or more"),
        ("6.5", "Coins per event must be a whole number of coins (no decimals)"),
        ("2000000", "Coins per event must be at most 1,000,000"),
        ("six", "Coins per event must be a whole number"),
    ):
        _fill(at, company="CEKEKCARDS", event="MEAL_CARD_PAYMENT", amount=typed)
        errors = texts(at, "error")
        assert any(e.startswith(reason) for e in errors), (typed, errors)
    assert sandbox_configs(fresh_sandbox).empty


def test_create_shows_the_new_configuration_and_the_sandbox_holds_it(
    monkeypatch, tmp_path, fresh_sandbox
):
    point_app_at(monkeypatch, tmp_path, fresh_sandbox)
    at = open_page("create")
    _fill(at, company="CEKEKCARDS", event="MEAL_CARD_PAYMENT", configuration="CUSTOM", amount=6)
    assert not at.exception
    success = texts(at, "success")
    assert success and success[0].startswith("Created **WCC"), success
    held = sandbox_configs(fresh_sandbox)
    assert held[["companyId", "event", "configuration", "amount"]].values.tolist() == [
        ["CEKEKCARDS", "MEAL_CARD_PAYMENT", "CUSTOM", 6]
    ]
    assert held["coinConfigId"][0] in success[0]


def test_conflict_shows_the_existing_configuration(monkeypatch, tmp_path, fresh_sandbox):
    point_app_at(monkeypatch, tmp_path, fresh_sandbox)
    at = open_page("create")
    _fill(at, company="CEKEKCARDS", event="MEAL_CARD_PAYMENT", amount=6)
    existing_id = sandbox_configs(fresh_sandbox)["coinConfigId"][0]
    _fill(at, company="CEKEKCARDS", event="MEAL_CARD_PAYMENT", amount=9)
    assert not at.exception
    warning = texts(at, "warning")
    assert warning and "already has a configuration" in warning[0] and existing_id in warning[0]
    table = at.dataframe[-1].value
    assert table["coinConfigId"].tolist() == [existing_id, "(your form)"]
    assert table["amount"].tolist() == [6, 9]
    assert len(sandbox_configs(fresh_sandbox)) == 1
    # From the conflict straight to the existing configuration.
    next(b for b in at.button if b.label == "Open it in Configurations").click().run()
    assert at.session_state["selected_config_id"] == existing_id
