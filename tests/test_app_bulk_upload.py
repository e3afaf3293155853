"""The Bulk upload page: upload → validation report → plan → run → results, and resume."""

from __future__ import annotations

import threading

from test_app_support import (
    button,
    open_page,
    point_app_at,
    run_to_results,
    sandbox_configs,
    texts,
    workspace_for,
)

from toolkit import bulk

SHEET = (
    b"companyId,event,amount,configuration,note\r\n"
    b"CEKBULK1,EV_ONE,5,DEFAULT,first\r\n"
    b"CEKBULK1,EV_TWO,6.5,DEFAULT,decimal amount\r\n"
    b"cek bulk,EV_ONE,7,DEFAULT,bad company\r\n"
    b"CEKBULK2,EV_ONE,8,custom,lower-case configuration is fine\r\n"
    b"CEKBULK2,EV_TWO,9,DEFAULT,\r\n"
    b"CEKBULK3,EV_ONE,10,DEFAULT,\r\n"
)


def _metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def _upload(at, data: bytes, name: str = "rollout.csv"):
    return at.file_uploader(key="bu_file").set_value((name, data, "text/csv")).run()


def test_upload_validates_plans_runs_and_accounts_for_every_row(
    monkeypatch, tmp_path, fresh_sandbox
):
    point_app_at(monkeypatch, tmp_path, fresh_sandbox)
    at = open_page("bulk_upload")
    assert at.get("download_button"), "the template CSV is offered"
    _upload(at, SHEET)
    assert not at.exception
    # 1 · Check: counts, the two bad rows shown with their cells highlighted.
    assert (_metric(at, "Rows"), _metric(at, "Valid"), _metric(at, "Rows with errors")) == (
        "6",
        "4",
        "2",
    )
    report = at.dataframe[0]
    assert report.value["row"].tolist() == [3, 4]
    assert "decimal" in report.value["problems"][0] or "whole number" in report.value["problems"][0]
    styles = str(report.proto.arrow_data.styler.styles)
    assert "F8C9C4" in styles.upper(), "the cells at fault are highlighted"
    # 2 · Plan: counts per action, nothing sent yet.
    assert (_metric(at, "Create"), _metric(at, "Invalid")) == ("4", "2")
    assert sandbox_configs(fresh_sandbox).empty
    # 3 · Run → 4 · Results: rows in = rows out.
    button(at, "Run — send 4 rows").click().run()
    run_to_results(at)
    results = at.dataframe[-1].value
    assert len(results) == 6
    assert sorted(results["status"]) == ["created"] * 4 + ["invalid"] * 2
    assert results["note"].tolist()[0] == "first"  # the analyst's own columns come back
    held = sandbox_configs(fresh_sandbox).set_index(["companyId", "event"])
    assert held["amount"].to_dict() == {
        ("CEKBULK1", "EV_ONE"): 5,
        ("CEKBULK2", "EV_ONE"): 8,
        ("CEKBULK2", "EV_TWO"): 9,
        ("CEKBULK3", "EV_ONE"): 10,
    }
    assert held.loc[("CEKBULK2", "EV_ONE"), "configuration"] == "CUSTOM"
    labels = [d.proto.label for d in at.get("download_button")]
    assert "Download results (CSV)" in labels
    # After the run the plan stays as it was (4 to create), the results beside it row by row,
    # and the Run section no longer offers to send the 4 rows.
    assert (_metric(at, "Create"), _metric(at, "Invalid")) == ("4", "2")
    assert results["planned"].tolist() == [
        "create",
        "invalid",
        "invalid",
        "create",
        "create",
        "create",
    ]
    assert not [b for b in at.button if b.label.startswith(("Run —", "Resume"))]
    # Uploading it again later (or in another tab) finds the same run, not a new plan.
    at.file_uploader(key="bu_file").set_value(None).run()
    assert any("rollout.csv" in t and "finished" in t for t in texts(at, "text")), texts(at, "text")
    _upload(at, SHEET)
    assert _metric(at, "Create") == "4"
    button(at, "Plan this sheet again").click().run()
    assert any("already run" in text for text in texts(at, "info")), texts(at, "info")
    assert _metric(at, "Unchanged") == "4"


def test_upload_of_a_sheet_that_is_not_one_says_what_is_missing(
    monkeypatch, tmp_path, fresh_sandbox
):
    point_app_at(monkeypatch, tmp_path, fresh_sandbox)
    at = open_page("bulk_upload")
    _upload(at, b"name,city\r\nAsha,Pune\r\n", "people.csv")
    assert not at.exception
    errors = texts(at, "error")
    assert errors and "companyId" in errors[0]


def test_an_interrupted_run_of_the_same_file_resumes_without_sending_twice(
    monkeypatch, tmp_path, fresh_sandbox
):
    # A run of the file stopped after two rows (as Stop or a crash would leave it).
    ws = workspace_for(tmp_path, fresh_sandbox)
    sheet = bulk.read_configs(SHEET, filename="rollout.csv")
    plan = bulk.plan(bulk.validate(sheet), ws.registry)
    stop = threading.Event()
    fresh_sandbox.set_faults(latency_ms=150)  # slow enough for progress to see the first row
    first = bulk.run(
        plan,
        ws,
        concurrency=1,
        cancel=stop,
        progress=lambda done, total, counts: stop.set() if counts.get("created") else None,
    )
    fresh_sandbox.clear_faults()
    assert first.cancelled
    done_before = int(first.counts.get("created", 0))
    assert 1 <= done_before < 4
    ws.close()

    point_app_at(monkeypatch, tmp_path, fresh_sandbox)
    at = open_page("bulk_upload")
    _upload(at, SHEET)
    warning = " ".join(texts(at, "warning"))
    assert "did not finish" in warning and "Resume" in warning
    button(at, "Resume").click().run()
    run_to_results(at)
    results = at.dataframe[-1].value
    assert len(results) == 6
    assert (results["status"] == "created").sum() + (results["status"] == "unchanged").sum() == 4
    assert len(sandbox_configs(fresh_sandbox)) == 4  # nothing created twice


def test_a_rows_problems_can_be_read_in_full(monkeypatch, tmp_path, fresh_sandbox):
    point_app_at(monkeypatch, tmp_path, fresh_sandbox)
    at = open_page("bulk_upload")
    sheet = (
        b"companyId,event,amount\r\n"
        b"CEKFULL1,EV_ONE,5\r\n"
        b"cekfull1,meal card payment,6.5\r\n"
        b"CEKFULL1,EV_ONE,7\r\n"
    )
    _upload(at, sheet)
    assert any("Pick a row" in c for c in texts(at, "caption"))
    at.session_state["bu_problem_pick"] = {"selection": {"rows": [0], "columns": []}}
    at.run()
    detail = "\n".join(texts(at, "text"))
    assert detail.startswith("Row 3:"), detail
    assert "did you mean CEKFULL1?" in detail
    assert "did you mean MEAL_CARD_PAYMENT?" in detail


LOST = b"companyId,event,amount\r\nCEKLOST1,EV_ONE,4\r\nCEKLOST2,EV_ONE,5\r\n"


def _run_losing_answers(at, handle, label: str):
    """Press ``label`` while the server does each write and then loses the answer (it is
    slower than the client waits)."""
    handle.set_faults(slow_after_commit_rate=1.0, slow_after_commit_ms=600)
    try:
        button(at, label).click().run()
        run_to_results(at)
    finally:
        handle.clear_faults()
    return at.dataframe[-1].value


def test_rows_whose_answer_was_lost_are_unconfirmed_and_the_page_says_what_to_do(
    monkeypatch, tmp_path, fresh_sandbox
):
    """No server check kept for this server: its answers cannot confirm a repeat, so a create
    whose answer was lost is never sent again; the page says so and what to do instead."""
    point_app_at(monkeypatch, tmp_path, fresh_sandbox)
    monkeypatch.setenv("ENKASH_TIMEOUT_S", "0.3")
    at = open_page("bulk_upload")
    _upload(at, LOST, "lost.csv")
    results = _run_losing_answers(at, fresh_sandbox, "Run — send 2 rows")
    assert not at.exception
    assert results["status"].tolist() == ["unconfirmed", "unconfirmed"]
    assert results["message"].str.contains("Check in EnKash whether CEKLOST").all()
    assert _metric(at, "Unconfirmed") == "2"
    assert not any(m.label in ("Created", "Failed") for m in at.metric)
    warning = "\n".join(texts(at, "warning"))
    assert "2 row(s) are unconfirmed" in warning
    assert "cannot confirm a repeat" in warning  # why running it again will not settle them
    assert "Import ids" in warning and "Server check" in warning  # what to do instead
    assert "nothing is done twice" not in warning
    made = sandbox_configs(fresh_sandbox)
    assert sorted(made["companyId"]) == ["CEKLOST1", "CEKLOST2"]  # the server did each once

    # Running the sheet again (the server answers now) sends neither row a second time.
    button(at, "Plan this sheet again").click().run()
    assert "2 unconfirmed" in " ".join(texts(at, "warning"))
    button(at, "Resume").click().run()
    run_to_results(at)
    again = at.dataframe[-1].value
    assert again["status"].tolist() == ["unconfirmed", "unconfirmed"]
    assert len(sandbox_configs(fresh_sandbox)) == 2  # never created twice


def test_on_a_server_whose_answers_confirm_a_repeat_running_again_settles_them(
    monkeypatch, tmp_path, fresh_sandbox
):
    """The Server check has learnt that a second create of a pair is refused naming its id: the
    page says running the sheet again settles unconfirmed rows, and it does."""
    from dataclasses import replace

    from conftest import sandbox_profile

    from toolkit.profiles import save_profile

    point_app_at(monkeypatch, tmp_path, fresh_sandbox)
    monkeypatch.setenv("ENKASH_TIMEOUT_S", "0.3")
    ws = workspace_for(tmp_path, fresh_sandbox)
    save_profile(tmp_path, replace(sandbox_profile(fresh_sandbox), server_key=ws.client.server_key))
    ws.close()
    at = open_page("bulk_upload")
    _upload(at, LOST, "settled.csv")
    results = _run_losing_answers(at, fresh_sandbox, "Run — send 2 rows")  # every answer lost
    assert not at.exception
    assert results["status"].tolist() == ["unconfirmed", "unconfirmed"]
    warning = "\n".join(texts(at, "warning"))
    assert "Run the same sheet again to settle them" in warning
    assert "cannot confirm a repeat" not in warning
    button(at, "Plan this sheet again").click().run()
    button(at, "Resume").click().run()
    run_to_results(at)
    again = at.dataframe[-1].value
    assert again["status"].tolist() == ["created", "created"]  # confirmed by the repeat's answer
    assert not any("unconfirmed" in w for w in texts(at, "warning"))
    assert len(sandbox_configs(fresh_sandbox)) == 2  # never created twice
