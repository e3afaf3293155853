"""Sign-in and roles, as AppTest sees them: with `[auth]` configured a visitor must sign in; a
viewer sees every page and no write control, and a forged widget state writes nothing; an
editor's writes are audited under their e-mail. Served beyond loopback without sign-in (or for
any host name), the app refuses with one line."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest
from test_app_support import (
    APP,
    PAGES,
    TIMEOUT,
    button,
    point_app_at,
    sandbox_configs,
    serve_as_shipped,
    texts,
    workspace_for,
)

AUTH = {
    "redirect_uri": "http://localhost:8501/oauth2callback",
    "cookie_secret": "a-test-cookie-secret-of-some-length",
    "client_id": "coins-app",
    "client_secret": "not-a-real-secret",
    "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration",
}
WRITE_BUTTONS = (
    "Create",
    "Update",
    "Revert…",
    "Yes, revert",
    "Refresh from EnKash",
    "Import",
    "Allocate coins",
    "Review changes",
    "Review",
    "Run",
    "Resume",
)


@pytest.fixture
def shared(monkeypatch, tmp_path, fresh_sandbox):
    """The app as a team shares it: sign-in configured, roles from the environment, and two
    configurations the registry knows."""
    ws = workspace_for(tmp_path, fresh_sandbox)
    made = ws.client.create_config(company_id="CEKROLES", event="EV_ROLE", amount=6)
    ws.client.create_config(company_id="CEKROLES", event="EV_OTHER", amount=8)
    point_app_at(monkeypatch, tmp_path, fresh_sandbox)
    monkeypatch.setenv("COINS_VIEWERS", "viewer@example.com")
    monkeypatch.setenv("COINS_EDITORS", "@corp.example")
    yield ws, made
    ws.close()


def _app(user: dict | None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.secrets["auth"] = dict(AUTH)
    if user is not None:
        at.user = {"is_logged_in": True, "email_verified": True, **user}
    else:
        at.user = {"is_logged_in": False}
    return at.run()


def _labels(at: AppTest) -> list[str]:
    return [str(b.label) for b in at.button]


def test_not_signed_in_sees_only_the_sign_in_page(shared):
    at = _app(None)
    assert not at.exception
    assert _labels(at) == ["Sign in"]
    assert [t.value for t in at.title] == ["EnKash coins"]
    assert not at.dataframe and not at.metric  # not one number of the programme
    for page in PAGES.values():  # a deep link is no way round it
        at.switch_page(page).run()
        assert _labels(at) == ["Sign in"], page


def test_an_address_on_no_list_gets_no_access(shared):
    at = _app({"email": "stranger@elsewhere.example"})
    assert [t.value for t in at.title] == ["No access"]
    assert "stranger@elsewhere.example" in texts(at, "warning")[0]
    assert _labels(at) == ["Sign out"]
    # An unverified e-mail of a listed domain is no better.
    at = _app({"email": "mallory@corp.example", "email_verified": False})
    assert [t.value for t in at.title] == ["No access"]


def test_a_viewer_sees_every_page_and_no_write_control(shared, fresh_sandbox):
    _ws, made = shared
    at = _app({"email": "Viewer@Example.com", "name": "Vi"})
    for name, page in PAGES.items():
        at.switch_page(page).run()
        assert not at.exception, name
        offered = [label for label in _labels(at) if label.startswith(WRITE_BUTTONS)]
        assert offered == [], (name, offered)
        assert not at.get("arrow_data_editor"), name  # tables are read-only
        assert "viewer@example.com" in "\n".join(texts(at.sidebar, "text")), name
    at.switch_page(PAGES["configurations"]).run()
    table = at.dataframe[0].value
    assert made.coin_config_id in table["coinConfigId"].tolist()  # sees everything


def test_a_forged_edit_from_a_viewer_writes_nothing(shared, fresh_sandbox):
    ws, made = shared
    # The editor's table key for these rows, learnt from an editor's session of the same page.
    at = _app({"email": "ed@corp.example"})
    at.switch_page(PAGES["configurations"]).run()
    key = at.session_state["cfg_editor_key"]
    order = ws.registry.to_frame()["coinConfigId"].tolist()
    # The same session now belongs to a viewer, who sends an edit and an open review by hand.
    at.user = {"is_logged_in": True, "email_verified": True, "email": "viewer@example.com"}
    at.session_state[key] = {
        "edited_rows": {order.index(made.coin_config_id): {"amount": "999"}},
        "added_rows": [],
        "deleted_rows": [],
    }
    at.session_state["cfg_reviewing"] = True
    at.run()
    assert not at.exception
    assert not [b for b in _labels(at) if b.startswith(("Apply", "Review"))]
    held = sandbox_configs(fresh_sandbox).set_index("coinConfigId")
    assert held.loc[made.coin_config_id, "amount"] == 6
    audit = ws.registry.audit_frame()
    assert not (audit["actor"] == "viewer@example.com").any()


def test_a_viewers_client_refuses_writes_before_sending(shared, fresh_sandbox):
    """The last line: whatever a page asked, a viewer's workspace cannot write."""
    from toolkit.ui import connection

    ws, made = shared
    conn = connection.Connection(settings=ws.settings, workspace=ws)
    mine = connection.personal_workspace(conn, "viewer@example.com", read_only=True)
    before = len(sandbox_configs(fresh_sandbox))
    with pytest.raises(connection.NotAllowedError):
        mine.client.create_config(company_id="CEKFORGED", event="EV_X", amount=1)
    with pytest.raises(connection.NotAllowedError):
        mine.client.update_config(made.coin_config_id, amount=1)
    with pytest.raises(connection.NotAllowedError):
        mine.client.allocate_coins(
            company_id="CEKROLES", event="EV_ROLE", user_id="EKQZVMQK", request_id="R1"
        )
    assert len(sandbox_configs(fresh_sandbox)) == before
    # Reads still work, on the same token as everyone else.
    assert mine.client.get_config(made.coin_config_id).amount == 6


def test_an_editors_create_is_audited_under_their_email(shared, fresh_sandbox):
    ws, _ = shared
    at = _app({"email": "ed@corp.example", "name": "Ed"})
    at.switch_page(PAGES["create"]).run()
    at.text_input(key="cr_company").input("CEKEDITOR")
    at.text_input(key="cr_event").input("EV_EDITOR")
    at.text_input(key="cr_amount").input("12")
    button(at, "Create").click().run()
    assert not at.exception
    assert any("Created" in s for s in texts(at, "success")), texts(at, "error")
    held = sandbox_configs(fresh_sandbox)
    assert ((held["companyId"] == "CEKEDITOR") & (held["amount"] == 12)).sum() == 1
    audit = ws.registry.audit_frame(action="create")
    mine = audit[audit["companyId"] == "CEKEDITOR"]
    assert mine["actor"].tolist() == ["ed@corp.example"]
    assert mine["source"].tolist() == ["app"]


@pytest.mark.parametrize(
    ("address", "auth", "hosts", "refusal"),
    [
        ("0.0.0.0", False, None, "without sign-in"),
        ("", False, None, "every network interface without sign-in"),
        ("192.168.1.20", True, ["*"], "for any host name"),
        ("0.0.0.0", True, [], "for any host name"),
    ],
)
def test_beyond_loopback_the_app_refuses_with_one_line(
    monkeypatch, tmp_path, address, auth, hosts, refusal
):
    point_app_at(monkeypatch, tmp_path)
    options = {"address": address}
    if hosts is not None:
        options["allowedHosts"] = hosts
    serve_as_shipped(monkeypatch, **options)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    if auth:
        at.secrets["auth"] = dict(AUTH)
    at.run()
    errors = texts(at, "error")
    assert len(errors) == 1 and refusal in errors[0], errors
    assert not at.button and not at.dataframe and not at.metric
    # Nothing was opened: no registry file, no embedded sandbox.
    assert not (tmp_path / "registry.sqlite3").exists()


def test_shared_with_sign_in_and_named_hosts_the_app_asks_to_sign_in(monkeypatch, tmp_path):
    point_app_at(monkeypatch, tmp_path)
    serve_as_shipped(monkeypatch, address="0.0.0.0", allowedHosts=["coins.corp.example"])
    at = _app(None)
    assert not texts(at, "error")
    assert _labels(at) == ["Sign in"]


def test_role_lists_match_whole_addresses_and_domains():
    from toolkit.ui.access import RolePolicy

    policy = RolePolicy.from_sources(
        env={
            "COINS_VIEWERS": "@corp.example, ann@other.example",
            "COINS_EDITORS": "bob@corp.example;corp-ops.example",
            "COINS_APPROVERS": "cy@corp.example",
        }
    )
    assert policy.role_of("ANN@other.example") == "viewer"
    assert policy.role_of("dee@corp.example") == "viewer"
    assert policy.role_of("bob@corp.example") == "editor"
    assert policy.role_of("eve@corp-ops.example") == "editor"
    assert policy.role_of("cy@corp.example") == "approver"
    assert policy.role_of("x@corp.example.evil.io") is None
    assert policy.role_of("x@evilcorp.example") is None
    assert policy.role_of("") is None
    with pytest.raises(ValueError, match="COINS_APPROVAL_ROWS"):
        RolePolicy.from_sources(env={"COINS_APPROVAL_ROWS": "lots"})
    limits = RolePolicy.from_sources(
        env={"COINS_APPROVERS": "cy@corp.example", "COINS_APPROVAL_ROWS": "1,000"}
    )
    assert limits.needs_approval(1000, None) is None
    assert "1,001 rows" in limits.needs_approval(1001, None)
