"""Hostile values in every field of every form: a message, never an exception, nothing sent;
and whatever a user typed, a file held or a server said is shown as text, never as Markdown
(a link, bold, an icon) or HTML."""

from __future__ import annotations

import re

import pytest
from test_app_support import button, open_page, point_app_at, sandbox_configs, workspace_for

UGLY = {
    "10,000 digits": "9" * 10_000,
    "NUL": "CEK\x00EKCARDS",
    "10,000 characters": "A" * 10_000,
    "HTML": "<script>alert(1)</script><b>bold</b>",
    "markdown": "[x](https://evil.example) **bold** :material/home: $x$",
    "look-alike": "СEKEKCARDS",  # a Cyrillic С
    "full-width digit": "６",
    "right-to-left": "\u202eSDRACKEKEC",
    "negative": "-5",
    "decimal": "6.5",
    "exponent": "1e3",
}
# Markdown that would do something if it were not escaped: a link, emphasis, an icon, HTML.
LIVE = re.compile(r"(?<!\\)\]\(|(?<!\\)\*\*bold|:material/home|(?<!\\)<(script|b)>")


def _markdown_sources(at) -> list[str]:
    out = []
    for kind in ("markdown", "caption", "info", "error", "warning", "success"):
        out += [str(e.value) for e in getattr(at, kind)]
    out += [str(b.label) for b in at.button]
    out += [str(c.label) for c in at.checkbox]
    return out


def _no_live_markdown(at) -> None:
    live = [s for s in _markdown_sources(at) if LIVE.search(s)]
    assert live == [], live[:3]


@pytest.fixture
def app_home(monkeypatch, tmp_path, fresh_sandbox):
    ws = workspace_for(tmp_path, fresh_sandbox)
    made = ws.client.create_config(company_id="CEKUGLY", event="EV_UGLY", amount=6)
    ws.close()
    point_app_at(monkeypatch, tmp_path, fresh_sandbox)
    return made


@pytest.mark.parametrize("name", list(UGLY))
def test_every_create_field_answers_an_ugly_value_with_a_message(app_home, fresh_sandbox, name):
    value = UGLY[name]
    before = len(sandbox_configs(fresh_sandbox))
    for field in ("cr_company", "cr_event", "cr_amount"):
        at = open_page("create")
        good = {"cr_company": "CEKGOOD", "cr_event": "EV_GOOD", "cr_amount": "5"}
        good[field] = value
        for key, typed in good.items():
            at.text_input(key=key).input(typed)
        button(at, "Create").click().run()
        assert not at.exception, (name, field)
        errors = [str(e.value) for e in at.error]
        if name in ("negative", "decimal", "exponent") and field != "cr_amount":
            continue  # e.g. "6.5" is a refused company id too, but say nothing more about it
        assert any("Nothing was sent" in e for e in errors), (name, field, errors)
        assert all(len(e) < 1_000 for e in errors), "a message repeats the 10,000 characters"
        _no_live_markdown(at)
    assert len(sandbox_configs(fresh_sandbox)) == before


@pytest.mark.parametrize("name", list(UGLY))
def test_every_allocate_and_balance_field_answers_an_ugly_value(app_home, name):
    value = UGLY[name]
    for field in ("al_user", "al_request_id"):
        at = open_page("allocate")
        at.selectbox(key="al_company").set_value("CEKUGLY")
        at.selectbox(key="al_event").set_value("EV_UGLY")
        at.text_input(key="al_user").input("EKUSER01")
        at.text_input(key=field).input(value)
        button(at, "Review").click().run()
        assert not at.exception, (name, field)
        if name not in ("negative", "decimal", "exponent"):
            assert any("Nothing was sent" in str(e.value) for e in at.error), (name, field)
        _no_live_markdown(at)
    # (A typed company or event is a new option of a select box, which AppTest cannot type:
    # the browser suite types them.)
    at = open_page("allocate")
    at.text_input(key="al_balance_user").input(value)
    button(at, "Look up").click().run()
    assert not at.exception, name
    if name not in ("negative", "decimal", "exponent", "look-alike", "right-to-left"):
        assert at.error, name
    _no_live_markdown(at)


@pytest.mark.parametrize("name", list(UGLY))
def test_every_configurations_field_answers_an_ugly_value(app_home, fresh_sandbox, name):
    value = UGLY[name]
    made = app_home
    cid = made.coin_config_id
    at = open_page("configurations")
    at.text_input(key="cfg_search").input(value).run()
    assert not at.exception, name
    at.text_input(key="cfg_search").input("").run()
    # (A typed configuration id is a new option of a select box: the browser suite types it.)
    # The update form's fields.
    at.selectbox(key="cfg_select").set_value(cid).run()
    for field in ("amount", "company", "event"):
        at.text_input(key=f"cfg_upd_{cid}_{field}").input(value).run()
        assert not at.exception, (name, field)
        if name not in ("negative", "decimal", "exponent") or field == "amount":
            assert at.error, (name, field)
            assert button(at, "Update").disabled
        _no_live_markdown(at)
        at.text_input(key=f"cfg_upd_{cid}_{field}").input(
            {"amount": "6", "company": "CEKUGLY", "event": "EV_UGLY"}[field]
        ).run()
    # An inline edit of the amount cell, typed as is.
    key = at.session_state["cfg_editor_key"]
    at.session_state[key] = {
        "edited_rows": {0: {"amount": value}},
        "added_rows": [],
        "deleted_rows": [],
    }
    at.run()
    button(at, "Review changes").click().run()
    assert not at.exception, name
    review = next(d.value for d in at.dataframe if "problem" in d.value.columns)
    assert review["problem"].iloc[0], (name, review.to_dict("records"))
    assert button(at, "Apply 0 changes").disabled
    # The import box.
    at.text_area(key="cfg_import_text").input(value)
    button(at, "Import").click().run()
    assert not at.exception, name
    _no_live_markdown(at)
    held = sandbox_configs(fresh_sandbox).set_index("coinConfigId")
    assert held.loc[cid, "amount"] == 6


def test_activity_search_takes_an_ugly_value(app_home):
    for value in UGLY.values():
        at = open_page("activity")
        at.text_input(key="act_search").set_value(value).run()
        assert not at.exception


def test_a_sheets_name_headers_and_cells_are_shown_as_text(app_home, fresh_sandbox):
    at = open_page("bulk_upload")
    sheet = (
        "companyId,event,amount,[x](https://evil.example),**bold**\r\n"
        f"CEKUGLY2,EV_ONE,{'9' * 10_000},a,b\r\n"
        "CEKUGLY2,EV_TWO,<b>6</b>,a,b\r\n"
        "[x](https://evil.example),EV_THREE,5,a,b\r\n"
        "CEKUGLY2,EV_FOUR,5,:material/home:,b\r\n"
    ).encode()
    name = "[x](https://evil.example) **rollout**.csv"
    at.file_uploader(key="bu_file").set_value((name, sheet, "text/csv")).run()
    assert not at.exception
    assert any("evil" in s for s in _markdown_sources(at)), "the names are shown"
    _no_live_markdown(at)
    report = at.dataframe[0].value
    assert report["row"].tolist() == [2, 3, 4]  # each bad row reported, none crashed
    assert sandbox_configs(fresh_sandbox).shape[0] == 1
