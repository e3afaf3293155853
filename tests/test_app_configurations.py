"""The Configurations page: inline edits reviewed then applied, the update form's diff, history
with Revert and its refusal, refresh from EnKash and import of ids."""

from __future__ import annotations

import pytest
from test_app_support import button, open_page, point_app_at, sandbox_configs, texts, workspace_for


@pytest.fixture
def seeded(monkeypatch, tmp_path, fresh_sandbox):
    """Three configurations created through the toolkit (so the registry knows them)."""
    ws = workspace_for(tmp_path, fresh_sandbox)
    made = [
        ws.client.create_config(company_id="CEKA", event="EV_A", amount=6),
        ws.client.create_config(company_id="CEKA", event="EV_B", amount=10, configuration="CUSTOM"),
        ws.client.create_config(company_id="CEKB", event="EV_A", amount=20),
    ]
    point_app_at(monkeypatch, tmp_path, fresh_sandbox)
    yield ws, {c.event + "/" + c.company_id: c for c in made}
    ws.close()


def _amounts(handle) -> dict[str, int]:
    held = sandbox_configs(handle)
    return dict(zip(held["coinConfigId"], held["amount"], strict=True))


def test_inline_edits_are_reviewed_then_applied_with_per_row_results(seeded, fresh_sandbox):
    ws, made = seeded
    target = made["EV_A/CEKA"]
    other = made["EV_B/CEKA"]
    at = open_page("configurations")
    order = ws.registry.to_frame()["coinConfigId"].tolist()
    key = at.session_state["cfg_editor_key"]
    at.session_state[key] = {
        "edited_rows": {
            order.index(target.coin_config_id): {"amount": 42},
            order.index(other.coin_config_id): {"configuration": "DEFAULT"},
        },
        "added_rows": [],
        "deleted_rows": [],
    }
    at.run()
    assert "**2 unsaved changes**" in texts(at, "markdown")
    # Nothing is sent before Apply.
    assert _amounts(fresh_sandbox)[target.coin_config_id] == 6
    button(at, "Review changes").click().run()
    review = at.dataframe[-1].value
    rows = dict(zip(review["coinConfigId"], review["change"], strict=True))
    assert rows == {
        target.coin_config_id: "amount 6 → 42",
        other.coin_config_id: "configuration CUSTOM → DEFAULT",
    }
    bodies = dict(zip(review["coinConfigId"], review["PATCH body"], strict=True))
    assert bodies[target.coin_config_id] == "{'amount': 42}"
    assert bodies[other.coin_config_id] == "{'configuration': 'DEFAULT'}"
    button(at, "Apply 2 changes").click().run()
    assert not at.exception
    results = at.dataframe[-1].value
    assert sorted(results["status"]) == ["updated", "updated"]
    assert _amounts(fresh_sandbox)[target.coin_config_id] == 42
    held = sandbox_configs(fresh_sandbox).set_index("coinConfigId")
    assert held.loc[other.coin_config_id, "configuration"] == "DEFAULT"
    # The table shows the new values and the editor starts clean.
    assert "unsaved" not in " ".join(texts(at, "markdown"))


def test_invalid_inline_edit_is_listed_with_its_reason_and_not_sent(seeded, fresh_sandbox):
    ws, made = seeded
    target = made["EV_A/CEKB"]
    at = open_page("configurations")
    order = ws.registry.to_frame()["coinConfigId"].tolist()
    key = at.session_state["cfg_editor_key"]
    at.session_state[key] = {
        "edited_rows": {order.index(target.coin_config_id): {"amount": 2_000_000}},
        "added_rows": [],
        "deleted_rows": [],
    }
    at.run()
    button(at, "Review changes").click().run()
    review = at.dataframe[-1].value
    assert review["problem"].tolist() == ["amount must be at most 1,000,000"]
    assert button(at, "Apply 0 changes").disabled


def test_update_form_shows_before_after_then_patches_and_revert_undoes_it(seeded, fresh_sandbox):
    ws, made = seeded
    cid = made["EV_A/CEKA"].coin_config_id
    at = open_page("configurations")
    at.selectbox(key="cfg_select").set_value(cid).run()
    assert at.text_input(key=f"cfg_upd_{cid}_amount").value == "6"
    at.text_input(key=f"cfg_upd_{cid}_amount").input("15").run()
    at.radio(key=f"cfg_upd_{cid}_configuration").set_value("CUSTOM").run()
    diff = next(
        d.value for d in at.dataframe if list(d.value.columns) == ["field", "before", "after"]
    )
    assert diff.values.tolist() == [["configuration", "DEFAULT", "CUSTOM"], ["amount", "6", "15"]]
    assert _amounts(fresh_sandbox)[cid] == 6  # nothing sent yet
    button(at, "Update").click().run()
    assert not at.exception
    assert any(f"Updated {cid}" in s for s in texts(at, "success"))
    assert _amounts(fresh_sandbox)[cid] == 15

    # History lists the update; Revert puts the old values back through the API.
    history = ws.registry.history(cid)
    update_id = int(history[history["action"] == "update"]["audit_id"].iloc[-1])
    at.selectbox(key=f"cfg_revert_pick_{cid}").set_value(update_id).run()
    button(at, "Revert…").click().run()
    # Asked first, with what goes back: nothing is sent before "Yes, revert".
    preview = next(d.value for d in at.dataframe if "after the revert" in d.value.columns)
    assert preview.values.tolist() == [
        ["amount", "15", "6"],
        ["configuration", "CUSTOM", "DEFAULT"],
    ]
    assert _amounts(fresh_sandbox)[cid] == 15
    button(at, "Yes, revert").click().run()
    assert any(s.startswith("Reverted") for s in texts(at, "success")), texts(at, "error")
    held = sandbox_configs(fresh_sandbox).set_index("coinConfigId")
    assert (held.loc[cid, "amount"], held.loc[cid, "configuration"]) == (6, "DEFAULT")
    # The picker moved on: the entry just reverted is no longer offered.
    offered = at.selectbox(key=f"cfg_revert_pick_{cid}").options
    assert offered and not any(o.startswith(f"#{update_id} ") for o in offered)


def test_revert_is_refused_with_the_reason_when_changed_since(seeded, fresh_sandbox):
    ws, made = seeded
    cid = made["EV_B/CEKA"].coin_config_id
    at = open_page("configurations")
    at.selectbox(key="cfg_select").set_value(cid).run()
    at.text_input(key=f"cfg_upd_{cid}_amount").input("11").run()
    button(at, "Update").click().run()
    update_id = int(ws.registry.history(cid)["audit_id"].iloc[-1])
    ws.client.update_config(cid, amount=99)  # someone else changes it afterwards
    at.run()
    at.selectbox(key=f"cfg_revert_pick_{cid}").set_value(update_id).run()
    button(at, "Revert…").click().run()
    button(at, "Yes, revert").click().run()
    errors = texts(at, "error")
    assert errors and errors[0].startswith("Revert refused"), errors
    assert "changed" in errors[0]
    assert _amounts(fresh_sandbox)[cid] == 99


def test_a_change_made_through_the_cli_or_a_notebook_shows_on_the_next_rerun(seeded, fresh_sandbox):
    # Same registry file, another process (here: another workspace): the cached table used to
    # keep the old amount for up to a minute, and the update form offered it as "before".
    ws, made = seeded
    cid = made["EV_B/CEKA"].coin_config_id
    at = open_page("configurations")
    at.selectbox(key="cfg_select").set_value(cid).run()
    assert at.text_input(key=f"cfg_upd_{cid}_amount").value == "10"
    ws.client.update_config(cid, amount=33)
    at.run()
    table = at.dataframe[0].value.set_index("coinConfigId")
    assert table.loc[cid, "amount"] == "33"
    assert at.text_input(key=f"cfg_upd_{cid}_amount").value == "33"
    # Its history lists that change, with blanks (not "None") where there is nothing to say.
    history = next(d.value for d in at.dataframe if "audit_id" in d.value.columns)
    assert "amount 10 → 33" in history["changes"].tolist()
    assert not history["message"].isna().any()


def test_import_ids_and_refresh_show_progress_results(monkeypatch, tmp_path, fresh_sandbox):
    # Created elsewhere (another registry): unknown to the app until imported.
    elsewhere = workspace_for(tmp_path / "elsewhere", fresh_sandbox)
    made = elsewhere.client.create_config(company_id="CEKX", event="EV_X", amount=3)
    point_app_at(monkeypatch, tmp_path, fresh_sandbox)
    at = open_page("configurations")
    assert any("No configurations known yet" in t for t in texts(at, "info"))
    at.text_area(key="cfg_import_text").input(f"{made.coin_config_id}\nWCC000000000")
    button(at, "Import").click().run()
    assert not at.exception
    assert any("1 imported" in s and "1 unknown" in s for s in texts(at, "success"))
    at.run()
    assert made.coin_config_id in at.dataframe[0].value["coinConfigId"].tolist()
    # Changed outside the toolkit → Refresh reports drift.
    elsewhere.client.update_config(made.coin_config_id, amount=4)
    button(at, "Refresh from EnKash").click().run()
    assert any("1 drift" in s for s in texts(at, "success")), texts(at, "success")
    elsewhere.close()


def test_a_fat_finger_inline_edit_needs_its_own_tick(seeded, fresh_sandbox):
    ws, made = seeded
    big, off = made["EV_A/CEKA"], made["EV_A/CEKB"]  # 6 and 20 coins
    at = open_page("configurations")
    order = ws.registry.to_frame()["coinConfigId"].tolist()
    key = at.session_state["cfg_editor_key"]
    at.session_state[key] = {
        "edited_rows": {
            order.index(big.coin_config_id): {"amount": "600"},  # 100× up
            order.index(off.coin_config_id): {"amount": "0"},  # switched off
        },
        "added_rows": [],
        "deleted_rows": [],
    }
    at.run()
    button(at, "Review changes").click().run()
    review = next(d.value for d in at.dataframe if "check" in d.value.columns)
    checks = dict(zip(review["coinConfigId"], review["check"], strict=True))
    assert checks == {big.coin_config_id: "100× up", off.coin_config_id: "to 0"}
    assert button(at, "Apply 0 changes").disabled  # held back until ticked
    at.checkbox(key=f"cfg_tick_{big.coin_config_id}").check().run()
    button(at, "Apply 1 change").click().run()
    assert not at.exception
    amounts = _amounts(fresh_sandbox)
    assert (amounts[big.coin_config_id], amounts[off.coin_config_id]) == (600, 20)
