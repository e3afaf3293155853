"""The sidebar's Server check: the kept server profile in sentences, and Run check — the doctor
run from the app, as `coins doctor` runs it: the embedded sandbox without asking (on a private
copy), EnKash's write probes only with a scratch company and an explicit yes. The result is
shown, the profile kept and followed; errors are messages; a viewer gets no Run check."""

from __future__ import annotations

import pandas as pd
from streamlit.testing.v1 import AppTest
from test_app_support import (
    APP,
    TIMEOUT,
    button,
    point_app_at,
    sandbox_configs,
    texts,
    workspace_for,
)

from toolkit.doctor import PROBE_EVENT
from toolkit.profiles import load_profile

SCRATCH = "ZZSCRATCH1"


def _sidebar(at: AppTest) -> str:
    parts = []
    for kind in ("caption", "text", "success", "error", "markdown"):
        parts += texts(at.sidebar, kind)
    return "\n".join(parts)


def _labels(at: AppTest) -> list[str]:
    return [str(b.label) for b in at.button]


def _probe_configs(handle) -> pd.DataFrame:
    configs = sandbox_configs(handle)
    return configs[configs["event"] == PROBE_EVENT]


def test_against_enkash_the_write_checks_need_a_scratch_company_and_a_yes(
    monkeypatch, tmp_path, fresh_sandbox
):
    point_app_at(monkeypatch, tmp_path, fresh_sandbox)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert "Not checked yet" in _sidebar(at)
    at.text_input(key="server_check_scratch").input(SCRATCH).run()
    # Named, but not confirmed: the check cannot start, and nothing was sent.
    assert button(at, "Run check").disabled
    sure = at.checkbox(key=f"server_check_sure_{SCRATCH}")
    assert SCRATCH in sure.label and "No coin is awarded" in sure.label
    assert _probe_configs(fresh_sandbox).empty
    sure.check().run()
    button(at, "Run check").click().run()
    assert not at.exception
    shown = _sidebar(at)
    assert "Checked" in shown
    assert "Created on the server:" in shown and "(amount 0)" in shown
    # What the doctor learnt is kept and shown as the server's profile from now on.
    made = _probe_configs(fresh_sandbox)
    assert list(made["companyId"]) == [SCRATCH] and list(made["amount"]) == [0]
    ws = workspace_for(tmp_path, fresh_sandbox)
    try:
        kept = load_profile(tmp_path, ws.client.server_key)
    finally:
        ws.close()
    assert kept is not None and kept.create_repeat == "refused_names_id"
    assert kept.allocate_repeat == "refused"
    assert "Not checked yet" not in shown
    assert all(line in shown for line in kept.describe())
    # The app's own client follows it: the shared connection is the one the pages use.
    from toolkit.ui.connection import connection

    conn = connection()
    assert conn.workspace is not None
    assert conn.workspace.client.profile.create_repeat == "refused_names_id"
    assert fresh_sandbox.credentials["client_secret"] not in shown
    assert fresh_sandbox.credentials["password"] not in shown


def test_without_a_scratch_company_only_the_reading_checks_run(
    monkeypatch, tmp_path, fresh_sandbox
):
    point_app_at(monkeypatch, tmp_path, fresh_sandbox)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert "stays unknown" in _sidebar(at)
    button(at, "Run check").click().run()
    assert not at.exception
    shown = _sidebar(at)
    assert "Checked" in shown and "Created on the server:\n  - nothing" in shown
    assert _probe_configs(fresh_sandbox).empty
    ws = workspace_for(tmp_path, fresh_sandbox)
    try:
        kept = load_profile(tmp_path, ws.client.server_key)
    finally:
        ws.close()
    assert kept is not None and kept.create_repeat == "unknown"  # the cautious case


def test_a_scratch_company_that_is_no_company_id_is_refused_before_anything_is_sent(
    monkeypatch, tmp_path, fresh_sandbox
):
    point_app_at(monkeypatch, tmp_path, fresh_sandbox)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    for typed in ("zzscratch1", "not a company!", "[x](https://evil.example)", "C" * 10_000):
        at.text_input(key="server_check_scratch").input(typed).run()
        assert not at.exception
        errors = texts(at.sidebar, "error")
        assert any(e.startswith("Scratch company id ") for e in errors), errors
        assert button(at, "Run check").disabled
        assert not at.sidebar.checkbox  # no yes to give
    assert _probe_configs(fresh_sandbox).empty


def test_a_server_that_fails_the_check_gives_a_message_not_a_traceback(
    monkeypatch, tmp_path, fresh_sandbox
):
    point_app_at(monkeypatch, tmp_path, fresh_sandbox)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.text_input(key="server_check_scratch").input(SCRATCH).run()
    at.checkbox(key=f"server_check_sure_{SCRATCH}").check().run()
    fresh_sandbox.set_faults(drop_rate=1.0)  # every API call: the connection closes unanswered
    try:
        button(at, "Run check").click().run()
    finally:
        fresh_sandbox.clear_faults()
    assert not at.exception
    errors = texts(at.sidebar, "error")
    assert any(e.startswith("The check could not finish") for e in errors), errors
    assert "Traceback" not in "\n".join(errors)
    assert "Not checked yet" in _sidebar(at)  # no profile was kept from a failed check


def test_the_embedded_sandbox_is_checked_without_asking_and_nothing_is_created_in_it(
    monkeypatch, tmp_path
):
    point_app_at(monkeypatch, tmp_path)  # no ENKASH_BASE_URL: the embedded sandbox
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert not at.sidebar.text_input  # no scratch company to name: it is ours
    before = _sidebar(at)
    assert "Creates:" in before
    button(at, "Run check").click().run()
    assert not at.exception
    shown = _sidebar(at)
    assert "Checked" in shown and "private sandbox" in shown
    assert "Created on the server:\n  - nothing" in shown
    from toolkit.ui.connection import connection

    ws = connection().workspace
    assert ws is not None
    assert ws.registry.find("ZZDOCTOR", PROBE_EVENT) is None


def test_refused_credentials_offer_no_check_and_a_viewer_sees_none(
    monkeypatch, tmp_path, fresh_sandbox
):
    point_app_at(monkeypatch, tmp_path, fresh_sandbox, password="wrong-password")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert "Run check" not in _labels(at)  # a refused login is never tried again

    from test_app_roles import AUTH

    point_app_at(monkeypatch, tmp_path, fresh_sandbox)
    monkeypatch.setenv("COINS_VIEWERS", "viewer@example.com")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.secrets["auth"] = dict(AUTH)
    at.user = {"is_logged_in": True, "email_verified": True, "email": "viewer@example.com"}
    at.run()
    assert not at.exception
    assert "Server check" in [e.label for e in at.sidebar.expander]
    assert "Run check" not in _labels(at)
    assert not at.sidebar.text_input
