"""The app's shell: the sandbox banner on every page, a masked sidebar, one login attempt."""

from __future__ import annotations

import sqlite3

import requests
from streamlit.testing.v1 import AppTest
from test_app_support import APP, PAGES, TIMEOUT, all_text, point_app_at, texts

from toolkit.settings import SANDBOX_CREDENTIALS
from toolkit.ui.shell import SANDBOX_BANNER


def test_embedded_sandbox_banner_on_every_page_and_secrets_never_shown(monkeypatch, tmp_path):
    point_app_at(monkeypatch, tmp_path)  # no ENKASH_BASE_URL: the embedded sandbox
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    for page in PAGES.values():
        at.switch_page(page).run()
        assert not at.exception
        assert any(SANDBOX_BANNER in text for text in texts(at, "info")), page
        shown = all_text(at) + "\n".join(texts(at.sidebar, "caption"))
        assert SANDBOX_CREDENTIALS["client_secret"] not in shown
        assert SANDBOX_CREDENTIALS["password"] not in shown
        assert SANDBOX_CREDENTIALS["username"] not in shown  # masked: an•••••@example.com
    sidebar = "\n".join(texts(at.sidebar, "caption"))
    assert "embedded sandbox" in sidebar
    assert "@example.com" in sidebar
    assert "Token: valid" in sidebar
    # The server check: what the doctor learnt about this server, in sentences.
    checked = "\n".join(texts(at.sidebar, "text"))
    assert "Creates:" in checked and "Allocations:" in checked
    # The embedded sandbox was seeded with demo data, and the registry learned its ids.
    at.switch_page(PAGES["overview"]).run()
    assert int(at.metric[0].value.replace(",", "")) > 20
    assert (tmp_path / "sandbox.sqlite3").exists()


def test_with_enkash_settings_there_is_no_sandbox_banner(monkeypatch, tmp_path, fresh_sandbox):
    point_app_at(monkeypatch, tmp_path, fresh_sandbox)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert not any(SANDBOX_BANNER in text for text in texts(at, "info"))
    sidebar = "\n".join(texts(at.sidebar, "caption"))
    assert fresh_sandbox.url in sidebar
    assert fresh_sandbox.credentials["client_secret"] not in sidebar


def _failed_logins(handle, username: str) -> int:
    with sqlite3.connect(handle.db_path) as conn:
        row = conn.execute(
            "SELECT failures FROM login_failures WHERE username = ?", (username,)
        ).fetchone()
    return row[0] if row else 0


def test_bad_credentials_one_clear_message_and_exactly_one_login_attempt(
    monkeypatch, tmp_path, fresh_sandbox
):
    point_app_at(monkeypatch, tmp_path, fresh_sandbox, password="wrong-password")
    username = fresh_sandbox.credentials["username"]
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    for page in ("create", "allocate", "configurations", "overview"):
        at.switch_page(PAGES[page]).run()
        assert not at.exception
        errors = texts(at, "error")
        assert len(errors) == 1, errors
        assert "refused the credentials" in errors[0]
        assert "wrong-password" not in errors[0]
    # Submitting a form does not log in again either.
    at.switch_page(PAGES["create"]).run()
    at.text_input(key="cr_company").input("CEKEKCARDS")
    at.text_input(key="cr_event").input("MEAL_CARD_PAYMENT")
    at.text_input(key="cr_amount").input("6")
    at.button[0].click().run()
    assert _failed_logins(fresh_sandbox, username) == 1
    # Not locked: the right password still works (a lock needs three failures).
    creds = fresh_sandbox.credentials
    answer = requests.post(
        fresh_sandbox.url + "/oauth/token",
        auth=(creds["client_id"], creds["client_secret"]),
        data={
            "username": username,
            "password": creds["password"],
            "grant_type": "password",
            "clientId": creds["client_id"],
        },
        timeout=10,
    )
    assert answer.status_code == 200
