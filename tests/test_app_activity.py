"""The Activity page: the audit log with filters and an Excel-safe CSV export."""

from __future__ import annotations

from test_app_support import open_page, point_app_at, texts, workspace_for


def test_audit_log_filters_and_export(monkeypatch, tmp_path, fresh_sandbox):
    ws = workspace_for(tmp_path, fresh_sandbox)
    first = ws.client.create_config(company_id="CEKACT1", event="EV_A", amount=6)
    ws.client.create_config(company_id="CEKACT2", event="EV_B", amount=8)
    ws.client.update_config(first.coin_config_id, amount=7)
    ws.close()
    point_app_at(monkeypatch, tmp_path, fresh_sandbox)

    at = open_page("activity")
    assert not at.exception
    log = at.dataframe[0].value
    assert {"create", "update"} <= set(log["action"])
    assert any(t.startswith(f"{len(log)} of {len(log)} entries") for t in texts(at, "caption"))
    at.multiselect(key="act_action").set_value(["update"]).run()
    only = at.dataframe[0].value
    assert only["action"].tolist() == ["update"]
    assert only["coinConfigId"].tolist() == [first.coin_config_id]
    assert only["changes"].tolist()[0] == "amount 6 → 7"
    at.multiselect(key="act_action").set_value([]).run()
    at.multiselect(key="act_filter_company").set_value(["CEKACT2"]).run()
    assert set(at.dataframe[0].value["companyId"]) == {"CEKACT2"}
    export = at.get("download_button")[0]
    assert export.proto.label == "Export CSV"
    secret = fresh_sandbox.credentials["client_secret"]
    assert all(secret not in str(v) for v in log.astype(str).to_numpy().ravel())


def test_search_finds_an_allocation_by_its_request_id(monkeypatch, tmp_path, fresh_sandbox):
    ws = workspace_for(tmp_path, fresh_sandbox)
    ws.client.create_config(company_id="CEKACT3", event="EV_C", amount=5)
    ws.client.allocate_coins(
        company_id="CEKACT3", event="EV_C", user_id="EKACT01", request_id="COIN_REQ_FINDME"
    )
    ws.close()
    point_app_at(monkeypatch, tmp_path, fresh_sandbox)

    at = open_page("activity")
    at.text_input(key="act_search").set_value("coin_req_findme").run()

    found = at.dataframe[0].value
    assert not at.exception
    assert found["action"].tolist() == ["allocate"]


def test_an_allocation_shows_its_user_coins_and_bulk_run_and_blanks_not_none(
    monkeypatch, tmp_path, fresh_sandbox
):
    ws = workspace_for(tmp_path, fresh_sandbox)
    ws.client.create_config(company_id="CEKACT4", event="EV_D", amount=9)
    ws.client.allocate_coins(
        company_id="CEKACT4", event="EV_D", user_id="EKACT04", request_id="COIN_REQ_SHOWN"
    )
    ws.close()
    point_app_at(monkeypatch, tmp_path, fresh_sandbox)

    at = open_page("activity")
    log = at.dataframe[0].value
    allocation = log[log["action"] == "allocate"].iloc[0]
    assert (allocation["userId"], allocation["coins"]) == ("EKACT04", 9)
    assert allocation["requestId"] == "COIN_REQ_SHOWN"
    shown = log.astype(str).to_numpy().ravel().tolist()
    assert "None" not in shown and "nan" not in shown
    # The user id finds it too.
    at.text_input(key="act_search").set_value("ekact04").run()
    assert at.dataframe[0].value["action"].tolist() == ["allocate"]
