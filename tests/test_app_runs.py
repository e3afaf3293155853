"""Bulk runs belong to the server: one run per sheet at a time (the journal's lock), a lock
whose holder died is taken over, and the runs list says who started what, and when."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from toolkit.bulk.journal import (
    RunLocked,
    acquire_run_lock,
    list_runs,
    make_lock_key,
    run_lock_holder,
)


def test_the_same_sheet_cannot_be_locked_twice_until_released(tmp_path):
    path = tmp_path / "registry.sqlite3"
    key = make_lock_key("sha-of-file", "configs", "sandbox:x")
    first = acquire_run_lock(path, lock_key=key, run_key="rk", actor="ana@example.com")
    with pytest.raises(RunLocked) as refused:
        acquire_run_lock(path, lock_key=key, run_key="rk", actor="bo@example.com")
    assert "ana@example.com" in str(refused.value)
    assert refused.value.holder.alive
    # Another sheet, or the same sheet on another server, is not blocked.
    other = acquire_run_lock(
        path,
        lock_key=make_lock_key("sha-of-file", "configs", "https://x"),
        run_key="rk2",
        actor="bo@example.com",
    )
    assert first.beat()
    first.release("finished")
    assert not first.beat()  # released: no longer ours
    again = acquire_run_lock(path, lock_key=key, run_key="rk", actor="bo@example.com")
    assert run_lock_holder(path, key).actor == "bo@example.com"
    again.release("finished")
    other.release("finished")
    assert run_lock_holder(path, key) is None


def test_a_lock_whose_process_died_is_taken_over_and_its_attempt_marked_died(tmp_path):
    path = tmp_path / "registry.sqlite3"
    key = make_lock_key("sha", "allocations", "sandbox:y")
    # A real other process takes the lock and exits without releasing it (as kill -9 would).
    script = textwrap.dedent(
        f"""
        from toolkit.bulk.journal import acquire_run_lock
        acquire_run_lock({str(path)!r}, lock_key={key!r}, run_key="rk", actor="gone@example.com")
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    holder = run_lock_holder(path, key)
    assert holder is not None and holder.actor == "gone@example.com" and not holder.alive
    taken = acquire_run_lock(path, lock_key=key, run_key="rk", actor="next@example.com")
    import sqlite3

    with sqlite3.connect(path) as conn:
        outcomes = conn.execute(
            "SELECT actor, outcome FROM bulk_run_starts ORDER BY start_id"
        ).fetchall()
    assert outcomes == [("gone@example.com", "died"), ("next@example.com", None)]
    taken.release("finished")


def test_runs_list_is_empty_for_a_new_file(tmp_path):
    runs = list_runs(tmp_path / "registry.sqlite3")
    assert runs.empty and "started_by" in runs.columns


# -- the app's side: approval, a sheet held by another process, a run whose process died ----

from streamlit.testing.v1 import AppTest  # noqa: E402
from test_app_support import (  # noqa: E402
    APP,
    PAGES,
    TIMEOUT,
    button,
    point_app_at,
    run_to_results,
    sandbox_configs,
    texts,
)

from toolkit import bulk  # noqa: E402

SHEET = (
    b"companyId,event,amount,configuration\r\n"
    b"CEKRUNS1,EV_ONE,5,DEFAULT\r\n"
    b"CEKRUNS1,EV_TWO,6,DEFAULT\r\n"
    b"CEKRUNS2,EV_ONE,7,DEFAULT\r\n"
)
AUTH = {
    "redirect_uri": "http://localhost:8501/oauth2callback",
    "cookie_secret": "a-test-cookie-secret-of-some-length",
    "client_id": "coins-app",
    "client_secret": "not-a-real-secret",
    "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration",
}


def _as(email: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.secrets["auth"] = dict(AUTH)
    at.user = {"is_logged_in": True, "email_verified": True, "email": email}
    at.run()
    at.switch_page(PAGES["bulk_upload"]).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _upload(at: AppTest, data: bytes = SHEET, name: str = "runs.csv") -> AppTest:
    return at.file_uploader(key="bu_file").set_value((name, data, "text/csv")).run()


def test_a_big_run_waits_for_an_approver_then_runs_under_its_starters_name(
    monkeypatch, tmp_path, fresh_sandbox
):
    point_app_at(monkeypatch, tmp_path, fresh_sandbox)
    monkeypatch.setenv("COINS_EDITORS", "ed@corp.example")
    monkeypatch.setenv("COINS_APPROVERS", "ap@corp.example")
    monkeypatch.setenv("COINS_APPROVAL_ROWS", "2")
    editor = _upload(_as("ed@corp.example"))
    assert any("needs an approver" in t for t in texts(editor, "info")), texts(editor, "info")
    button(editor, "Ask an approver — send 3 rows").click().run()
    assert any("Waiting for an approver" in w for w in texts(editor, "warning"))
    assert sandbox_configs(fresh_sandbox).empty  # nothing sent while it waits
    assert not [b for b in editor.button if b.label == "Approve and run"]  # not their own

    # The approver finds it in the runs list of the same server, without the file.
    approver = _as("ap@corp.example")
    assert any("runs.csv" in t and "awaiting approval" in t for t in texts(approver, "text"))
    button(approver, "Open").click().run()
    button(approver, "Approve and run").click().run()
    run_to_results(approver)
    assert len(sandbox_configs(fresh_sandbox)) == 3
    from toolkit.workspace import connect

    with connect(fresh_sandbox.settings(home=tmp_path)) as ws:
        audit = ws.registry.audit_frame(action="create")
        assert set(audit["actor"]) == {"ed@corp.example"}
        runs = list_runs(ws.registry.path)
    assert runs.loc[0, "started_by"] == "ed@corp.example"
    assert runs.loc[0, "approved_by"] == "ap@corp.example"
    assert runs.loc[0, "state"] == "finished"


def test_a_sheet_another_process_is_sending_offers_no_run(monkeypatch, tmp_path, fresh_sandbox):
    point_app_at(monkeypatch, tmp_path, fresh_sandbox)
    sheet = bulk.read_configs(SHEET, filename="runs.csv")
    server_key = fresh_sandbox.url
    lock_key = make_lock_key(sheet.sha256, "configs", server_key)
    # Another process (the CLI, a second app) holds the sheet's lock and is alive.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from toolkit.bulk.journal import acquire_run_lock
                acquire_run_lock({str(tmp_path / "registry.sqlite3")!r}, lock_key={lock_key!r},
                                 run_key="rk", actor="cli-user")
                print("held", flush=True)
                time.sleep(120)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
        at.switch_page(PAGES["bulk_upload"]).run()
        _upload(at)
        warning = " ".join(texts(at, "warning"))
        assert "being sent right now by cli-user" in warning, warning
        assert not [b for b in at.button if b.label.startswith(("Run —", "Resume"))]
    finally:
        holder.kill()
        holder.wait()
    # Its process died: the sheet may run again (the dead lock is taken over).
    at.run()
    assert [b for b in at.button if b.label.startswith("Run — send 3 rows")]


def test_a_run_whose_process_died_is_offered_as_resume_and_sends_only_the_rest(
    monkeypatch, tmp_path, fresh_sandbox
):
    import threading

    from toolkit.bulk.journal import Journal
    from toolkit.workspace import connect

    point_app_at(monkeypatch, tmp_path, fresh_sandbox)
    # A run that sent one row and was killed: the journal still says running, and no one
    # alive holds its lock.
    with connect(fresh_sandbox.settings(home=tmp_path)) as ws:
        plan = bulk.plan(bulk.validate(bulk.read_configs(SHEET, filename="runs.csv")), ws.registry)
        stop = threading.Event()
        fresh_sandbox.set_faults(latency_ms=150)
        first = bulk.run(
            plan,
            ws,
            concurrency=1,
            cancel=stop,
            progress=lambda done, total, counts: stop.set() if counts.get("created") else None,
        )
        fresh_sandbox.clear_faults()
        journal = Journal(ws.registry.path)
        journal.set_state(first.run_id, "running")
        journal.close()
    sent_before = len(sandbox_configs(fresh_sandbox))
    assert 1 <= sent_before < 3
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page(PAGES["bulk_upload"]).run()
    _upload(at)
    # Its rows were written a moment ago by a process that took no lock (as the CLI's runs
    # do): it may still be running, so it is not offered for Resume.
    warning = " ".join(texts(at, "warning"))
    assert "holds no lock" in warning, warning
    assert not [b for b in at.button if b.label.startswith(("Resume", "Run —"))]
    # Quiet for ten minutes: it died.
    import sqlite3

    with sqlite3.connect(tmp_path / "registry.sqlite3") as conn:
        conn.execute(
            "UPDATE bulk_rows SET updated_at = strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now',"
            " '-10 minutes') WHERE run_id = ?",
            (first.run_id,),
        )
    at.run()
    history = at.dataframe[0].value  # the runs list: the dead run reads interrupted
    assert "interrupted" in history["state"].tolist()
    warning = " ".join(texts(at, "warning"))
    assert "interrupted" in warning and "Resume" in warning, warning
    button(at, "Resume").click().run()
    run_to_results(at)
    assert len(sandbox_configs(fresh_sandbox)) == 3  # the rest, and nothing twice
    with connect(fresh_sandbox.settings(home=tmp_path)) as ws:
        creates = ws.registry.audit_frame(action="create")
    assert creates.groupby(["companyId", "event"]).size().max() == 1  # each row audited once


def test_stop_from_any_tab_ends_the_run_and_resume_sends_the_rest(
    monkeypatch, tmp_path, fresh_sandbox
):
    point_app_at(monkeypatch, tmp_path, fresh_sandbox)
    sheet = "companyId,event,amount\r\n" + "".join(
        f"CEKSTOP{i // 10},EV_{i % 10:02d},{i + 1}\r\n" for i in range(30)
    )
    fresh_sandbox.set_faults(latency_ms=200)
    try:
        first = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
        first.switch_page(PAGES["bulk_upload"]).run()
        _upload(first, sheet.encode(), "stop.csv")
        first.slider(key="bu_concurrency").set_value(1).run()
        button(first, "Run — send 30 rows").click().run()
        # Another tab (a fresh session) sees it running, and stops it.
        other = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
        other.switch_page(PAGES["bulk_upload"]).run()
        assert any("stop.csv" in t and "running" in t for t in texts(other, "text"))
        button(other, "Open").click().run()
        button(other, "Stop").click().run()
        run_to_results(other)
    finally:
        fresh_sandbox.clear_faults()
    sent = len(sandbox_configs(fresh_sandbox))
    assert 0 < sent < 30
    assert any("Stopped" in w for w in texts(other, "warning"))
    # The first tab sees the run end too; planned again, Resume sends only the rest.
    run_to_results(first)
    button(first, "Plan this sheet again").click().run()
    button(first, "Resume").click().run()
    run_to_results(first)
    assert len(sandbox_configs(fresh_sandbox)) == 30
