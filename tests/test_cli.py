"""The `coins` command line, run in process against a real sandbox over loopback.

Every command's happy path and its error path; ugly sheets through bulk-create with every row
accounted for. Exit statuses as a process, kill -9 and bad credentials are in
test_cli_process.py.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_cli_support import (
    Outcome,
    assert_one_line_error,
    read_results,
    sandbox_env,
    write_configs,
)

from toolkit.cli import main

Coins = Callable[..., Outcome]


@pytest.fixture
def env(fresh_sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = sandbox_env(fresh_sandbox, tmp_path / "home")
    for name in list(os.environ):
        if name.startswith(("ENKASH_", "COINS_")):
            monkeypatch.delenv(name)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)  # no stray .env; default result files land here
    return values


@pytest.fixture
def coins(env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> Coins:
    def run(*argv: str) -> Outcome:
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err)

    return run


def server_configs(handle: Any) -> list[dict[str, Any]]:
    return handle.app.sandbox.store.list_configs()


def pairs(handle: Any) -> dict[tuple[str, str], int]:
    return {(c["companyId"], c["event"]): c["amount"] for c in server_configs(handle)}


# --------------------------------------------------------------------------- single calls


def test_create_get_update_history_and_revert_round_trip(coins: Coins, fresh_sandbox: Any) -> None:
    made = coins(
        "create", "--company", "CEKCLI", "--event", "MEAL_CARD_PAYMENT", "--amount", "6",
        "--format", "json",
    )  # fmt: skip
    assert made.code == 0, made.err
    config_id = made.json()["coinConfigId"]
    assert made.json() == {
        "coinConfigId": config_id,
        "companyId": "CEKCLI",
        "event": "MEAL_CARD_PAYMENT",
        "configuration": "DEFAULT",
        "amount": 6,
    }

    got = coins("get", config_id)
    assert got.code == 0
    assert config_id in got.out and "MEAL_CARD_PAYMENT" in got.out

    updated = coins("update", config_id, "--amount", "10", "--configuration", "custom")
    assert updated.code == 0, updated.err
    assert "6 → 10" in updated.out
    assert "DEFAULT → CUSTOM" in updated.out
    assert pairs(fresh_sandbox)[("CEKCLI", "MEAL_CARD_PAYMENT")] == 10

    history = coins("history", config_id, "--format", "json").json()
    assert [h["action"] for h in history] == ["create", "update"]
    update_audit = history[1]["audit_id"]

    reverted = coins("revert", str(update_audit))
    assert reverted.code == 0, reverted.err
    assert "10 → 6" in reverted.out
    assert server_configs(fresh_sandbox)[0]["amount"] == 6
    assert server_configs(fresh_sandbox)[0]["configuration"] == "DEFAULT"

    again = coins("revert", str(update_audit))
    assert again.code == 1
    assert_one_line_error(again.err, contains="not reverted")


def test_single_call_errors_are_one_line_with_exit_1_or_2(coins: Coins) -> None:
    missing = coins("get", "WCC000000")
    assert missing.code == 1
    assert_one_line_error(missing.err, contains="not found")

    args = ("create", "--company", "CEKDUP", "--event", "REFERRAL_EVENT", "--amount", "3")
    assert coins(*args).code == 0
    conflict = coins(*args[:-1], "4")
    assert conflict.code == 1
    assert_one_line_error(conflict.err, contains="already exists")

    bad_amount = coins("create", "--company", "CEKX", "--event", "E", "--amount", "6.5")
    assert bad_amount.code == 2
    assert "whole number" in bad_amount.err

    bad_company = coins("create", "--company", "cek-x", "--event", "MEAL", "--amount", "6")
    assert bad_company.code == 1
    assert_one_line_error(bad_company.err, contains="companyId")

    nothing = coins("update", "WCC1")
    assert nothing.code == 2
    assert_one_line_error(nothing.err, contains="nothing to change")

    assert coins("history", "WCC000000").code == 1
    assert coins("no-such-command").code == 2
    assert coins().code == 2


def test_allocate_prints_its_request_id_and_never_allocates_twice(
    coins: Coins, fresh_sandbox: Any
) -> None:
    store = fresh_sandbox.app.sandbox.store
    coins("create", "--company", "CEKALLOC", "--event", "MEAL_CARD_PAYMENT", "--amount", "5")
    base = ("allocate", "--company", "CEKALLOC", "--event", "MEAL_CARD_PAYMENT", "--user", "EKU1")

    first = coins(*base)
    assert first.code == 0, first.err
    assert first.out.startswith("request id: COIN_REQ")

    again = [coins(*base, "--request-id", "REQ-CLI-1") for _ in range(2)]
    assert [a.code for a in again] == [0, 0]
    assert "request id: REQ-CLI-1" in again[1].out
    assert "nothing allocated twice" in again[1].out
    assert store.balance("EKU1") == 10

    assert coins("balance", "EKU1").out.strip() == "10"
    assert coins("balance", "EKU1", "--format", "json").json() == {"userId": "EKU1", "balance": 10}
    assert coins("balance", "NEWUSER").out.strip() == "0"

    unconfigured = coins("allocate", "--company", "CEKNONE", "--event", "X", "--user", "EKU1")
    assert unconfigured.code == 1
    assert_one_line_error(unconfigured.err)


def test_configs_lists_what_the_toolkit_knows_in_three_formats(coins: Coins) -> None:
    for company, amount in (("CEKONE", "1"), ("CEKTWO", "2")):
        coins("create", "--company", company, "--event", "INVOICE_PAYMENT", "--amount", amount)

    table = coins("configs")
    assert table.code == 0
    assert "CEKONE" in table.out and "CEKTWO" in table.out

    as_json = coins("configs", "--format", "json", "--company", "CEKTWO").json()
    assert [(c["companyId"], c["amount"]) for c in as_json] == [("CEKTWO", 2)]

    as_csv = coins("--format", "csv", "configs", "--event", "INVOICE_PAYMENT").out.splitlines()
    assert as_csv[0].startswith("coinConfigId,companyId,event,configuration,amount")
    assert len(as_csv) == 3

    assert coins("configs", "--event", "NOTHING", "--format", "json").json() == []


def test_import_ids_and_refresh_report_unknown_ids_and_drift(
    coins: Coins, fresh_sandbox: Any, tmp_path: Path
) -> None:
    store = fresh_sandbox.app.sandbox.store
    # Made outside the toolkit: only its id reaches the analyst.
    outside = store.create_config(
        company_id="CEKOUT", event="MEAL_CARD_PAYMENT", configuration="DEFAULT", amount=4
    )
    ids = tmp_path / "export.csv"
    ids.write_text(f"Name,coinConfigId\nfirst,{outside['coinConfigId']}\nghost,WCC000000\n")

    imported = coins("import-ids", str(ids), "--format", "json")
    assert imported.code == 1  # one id is unknown to the server
    statuses = {r["coinConfigId"]: r["status"] for r in imported.json()}
    assert statuses == {outside["coinConfigId"]: "imported", "WCC000000": "unknown"}
    assert coins("configs", "--format", "json").json()[0]["companyId"] == "CEKOUT"

    plain = tmp_path / "ids.txt"
    plain.write_text(f"\n{outside['coinConfigId']}\n\n")
    assert coins("import-ids", str(plain)).code == 0

    store.update_config(outside["coinConfigId"], {"amount": 9})
    refreshed = coins("refresh")
    assert refreshed.code == 0, refreshed.err
    assert "drift" in refreshed.out and "amount 4 → 9" in refreshed.out

    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    assert coins("import-ids", str(empty)).code == 2


# --------------------------------------------------------------------------- sheets

UGLY_ROWS = [
    ("CEKA", "MEAL_CARD_PAYMENT", "6"),
    ("CEKB", "MEAL_CARD_PAYMENT", " 7 "),
    ("CEKC", "MEAL_CARD_PAYMENT", "6.5"),
    ("CEKD", "MEAL_CARD_PAYMENT", "abc"),
    ("CEKE", "MEAL_CARD_PAYMENT", "-5"),
    ("CEKF", "MEAL_CARD_PAYMENT", "2000000"),
    ("cek-g", "MEAL_CARD_PAYMENT", "6"),
    ("CEKH", "meal card", "6"),
    ("CEKA", "MEAL_CARD_PAYMENT", "8"),  # the same pair again: invalid, names row 2
    ("CEKI", "REFERRAL_EVENT", "0"),  # a warning, still created
    ("CEKJ", "", "5"),  # a missing value
]
UGLY_VALID = {
    ("CEKA", "MEAL_CARD_PAYMENT"): 6,
    ("CEKB", "MEAL_CARD_PAYMENT"): 7,
    ("CEKI", "REFERRAL_EVENT"): 0,
}


def test_validate_lists_every_problem_by_spreadsheet_row(coins: Coins, tmp_path: Path) -> None:
    sheet = write_configs(tmp_path / "ugly.csv", UGLY_ROWS)
    found = coins("validate", str(sheet), "--format", "json")
    assert found.code == 1
    report = found.json()
    assert report["counts"] == {"valid": 3, "invalid": 8}
    errors = {(p["row"], p["column"]) for p in report["problems"] if p["severity"] == "error"}
    assert {(4, "amount"), (5, "amount"), (6, "amount"), (7, "amount"), (8, "companyId")} <= errors
    assert (9, "event") in errors

    table = coins("validate", str(sheet))
    assert table.code == 1
    assert "must be a whole number" in table.out

    clean = write_configs(tmp_path / "clean.csv", [("CEKA", "MEAL_CARD_PAYMENT", "6")])
    assert coins("validate", str(clean)).code == 0

    allocations = tmp_path / "alloc.csv"
    allocations.write_text("companyId,event,userId\nCEKA,MEAL_CARD_PAYMENT,EKU1\n")
    assert coins("validate", "--allocations", str(allocations)).code == 0


def test_plan_and_dry_run_preview_without_sending(
    coins: Coins, fresh_sandbox: Any, tmp_path: Path
) -> None:
    coins("create", "--company", "CEKA", "--event", "MEAL_CARD_PAYMENT", "--amount", "5")
    sheet = write_configs(
        tmp_path / "plan.csv",
        [("CEKA", "MEAL_CARD_PAYMENT", "6"), ("CEKB", "MEAL_CARD_PAYMENT", "6")],
    )
    before = server_configs(fresh_sandbox)

    plan = coins("plan", str(sheet), "--format", "json").json()
    assert plan["counts"] == {"create": 1, "conflict": 1}
    assert plan["exit_status"] == 1
    assert [r["action"] for r in plan["rows"]] == ["conflict", "create"]

    upsert = coins("plan", str(sheet), "--mode", "upsert")
    assert upsert.code == 0
    assert "update" in upsert.out and "5 → DEFAULT 6" in upsert.out

    dry = coins("bulk-create", str(sheet), "--dry-run", "--mode", "upsert")
    assert dry.code == 0
    assert "dry run: nothing was sent" in dry.out
    assert server_configs(fresh_sandbox) == before
    assert not (tmp_path / "plan.results.csv").exists()


def test_plan_says_what_an_earlier_run_of_the_same_file_left_and_that_a_rerun_resumes_it(
    coins: Coins, tmp_path: Path
) -> None:
    sheet = write_configs(
        tmp_path / "again.csv",
        [
            ("CEKA", "MEAL_CARD_PAYMENT", "6"),
            ("CEKB", "MEAL_CARD_PAYMENT", "6"),
            ("cekc", "X", "1"),
        ],
    )
    assert "earlier_run" not in coins("plan", str(sheet), "--format", "json").json()

    assert coins("bulk-create", str(sheet)).code == 1  # the third row is invalid

    plan = coins("plan", str(sheet), "--format", "json").json()
    assert "2 created" in plan["earlier_run"] and "1 invalid" in plan["earlier_run"]
    assert "running it again resumes that run" in plan["earlier_run"]
    shown = coins("bulk-create", str(sheet), "--dry-run")
    assert "earlier run: run " in shown.out and "rows it finished are not sent again" in shown.out
    # A changed file is another run: nothing to say about the first.
    sheet.write_text(sheet.read_text() + "CEKD,MEAL_CARD_PAYMENT,6\n")
    assert "earlier_run" not in coins("plan", str(sheet), "--format", "json").json()


def _ugly_sheets(tmp_path: Path) -> dict[str, Path]:
    """The same rows written the ways spreadsheets write them."""
    lines = ["companyId,event,amount,configuration,note"]
    for company, event, amount in UGLY_ROWS:
        lines.append(f'{company},{event},"{amount}",default,"a note, with a comma"')
    lines.insert(3, "")  # a blank line in the middle
    text = "\r\n".join(lines) + "\r\n"
    sheets = {
        "utf8-bom-crlf.csv": ("\ufeff" + text).encode("utf-8"),
        "utf16-tab.csv": text.replace(",", "\t").replace('"a note\t with a comma"', "x")
        .encode("utf-16"),
        "cp1252-semicolon.csv": text.replace(",", ";").replace("a note; with", "café, with")
        .replace("Company", "Company").encode("cp1252"),
        "aliases.csv": text.replace("companyId,event,amount", "Company ID,Event Name,coins")
        .encode("utf-8"),
    }  # fmt: skip
    paths = {}
    for name, data in sheets.items():
        paths[name] = tmp_path / name
        paths[name].write_bytes(data)
    return paths


@pytest.mark.parametrize(
    "name", ["utf8-bom-crlf.csv", "utf16-tab.csv", "cp1252-semicolon.csv", "aliases.csv"]
)
def test_bulk_create_of_an_ugly_sheet_accounts_for_every_row(
    name: str, coins: Coins, fresh_sandbox: Any, tmp_path: Path
) -> None:
    sheet = _ugly_sheets(tmp_path)[name]
    done = coins("bulk-create", str(sheet), "--concurrency", "4")
    assert done.code == 1, done.err  # invalid rows
    assert "Traceback" not in done.err
    assert "rows in = rows out: 11 = 11" in done.out

    results = read_results(sheet.with_name(sheet.stem + ".results.csv"))
    assert [int(r["row"]) for r in results] == [2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13]
    statuses = [r["status"] for r in results]
    assert statuses.count("created") == 3
    assert statuses.count("invalid") == 8
    assert pairs(fresh_sandbox) == UGLY_VALID

    # The same command again: nothing new on the server, every row still accounted for.
    again = coins("bulk-create", str(sheet), "--format", "json")
    assert again.code == 1
    assert again.json()["rows_out"] == 11
    assert again.json()["sent"] == 0
    assert pairs(fresh_sandbox) == UGLY_VALID


def test_bulk_create_xlsx_with_a_results_path_and_formulas_neutralised(
    coins: Coins, fresh_sandbox: Any, tmp_path: Path
) -> None:
    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["companyId", "event", "amount", "comment"])
    sheet.append(["CEKX1", "MEAL_CARD_PAYMENT", 6, "@SUM(1+1)"])
    sheet.append(["CEKX2", "MEAL_CARD_PAYMENT", 8, "+fine"])
    path = tmp_path / "upload.xlsx"
    book.save(path)
    out = tmp_path / "out" / "results.csv"

    done = coins("bulk-create", str(path), "--results", str(out), "--rps", "50")
    assert done.code == 0, done.err
    assert f"results: {out}" in done.out
    results = read_results(out)
    assert [r["status"] for r in results] == ["created", "created"]
    assert [r["comment"] for r in results] == ["'@SUM(1+1)", "'+fine"]
    assert pairs(fresh_sandbox) == {
        ("CEKX1", "MEAL_CARD_PAYMENT"): 6,
        ("CEKX2", "MEAL_CARD_PAYMENT"): 8,
    }


def test_header_only_sheet_is_fine_and_not_a_sheet_is_a_fatal_error(
    coins: Coins, tmp_path: Path
) -> None:
    header_only = tmp_path / "header.csv"
    header_only.write_text("companyId,event,amount\n")
    done = coins("bulk-create", str(header_only), "--format", "json")
    assert done.code == 0, done.err
    assert done.json()["rows_in"] == done.json()["rows_out"] == 0

    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    binary = tmp_path / "picture.csv"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("name,age\nann,3\n")
    for path in (empty, binary, wrong, tmp_path / "missing.csv", tmp_path):
        for command in ("validate", "plan", "bulk-create"):
            failed = coins(command, str(path))
            assert failed.code == 2, (command, path, failed.err)
            assert_one_line_error(failed.err)
            assert not path.with_name(path.stem + ".results.csv").exists()


def test_bulk_allocate_allocates_each_row_once_even_when_run_twice(
    coins: Coins, fresh_sandbox: Any, tmp_path: Path
) -> None:
    store = fresh_sandbox.app.sandbox.store
    coins("create", "--company", "CEKA", "--event", "MEAL_CARD_PAYMENT", "--amount", "5")
    sheet = tmp_path / "alloc.csv"
    sheet.write_text(
        "companyId,event,userId,requestId\n"
        "CEKA,MEAL_CARD_PAYMENT,EKU1,\n"
        "CEKA,MEAL_CARD_PAYMENT,EKU1,\n"
        "CEKA,MEAL_CARD_PAYMENT,EKU2,MYREQ1\n"
        "CEKA,MEAL_CARD_PAYMENT,bad user!,\n"
    )
    dry = coins("bulk-allocate", str(sheet), "--dry-run")
    assert dry.code == 1 and store.list_allocations() == []

    first = coins("bulk-allocate", str(sheet))
    assert first.code == 1, first.err  # the bad user id
    assert "rows in = rows out: 4 = 4" in first.out
    results = read_results(tmp_path / "alloc.results.csv")
    assert [r["status"] for r in results] == ["allocated", "allocated", "allocated", "invalid"]
    assert results[2]["requestId"] == "MYREQ1"
    assert (store.balance("EKU1"), store.balance("EKU2")) == (10, 5)

    coins("bulk-allocate", str(sheet))
    assert (store.balance("EKU1"), store.balance("EKU2")) == (10, 5)
    assert len(store.list_allocations()) == 3


DATA = Path(__file__).resolve().parent / "data"
CORPUS = sorted(
    p.name
    for p in DATA.glob("*")
    if p.suffix in (".csv", ".tsv", ".xlsx", ".bin") and not p.name.startswith("allocations")
)


@pytest.mark.parametrize("name", CORPUS)
def test_every_corpus_file_through_bulk_create(
    name: str, coins: Coins, fresh_sandbox: Any, tmp_path: Path
) -> None:
    """Rows in = rows out, the sandbox holds exactly the valid rows, or one fatal line."""
    sheet = tmp_path / name
    sheet.write_bytes((DATA / name).read_bytes())
    checked = coins("validate", str(sheet), "--format", "json")
    done = coins("bulk-create", str(sheet), "--format", "json")
    if done.code == 2:  # not a configuration sheet at all
        assert checked.code == 2
        assert_one_line_error(done.err)
        assert server_configs(fresh_sandbox) == []
        return
    counts = checked.json()["counts"]
    summary = done.json()
    assert done.code == (1 if counts["invalid"] else 0), done.err
    assert summary["rows_in"] == summary["rows_out"] == counts["valid"] + counts["invalid"]
    results = read_results(Path(summary["results"]))
    assert len(results) == summary["rows_in"]
    created = {r["coinConfigId"] for r in results if r["status"] == "created"}
    assert len(created) == counts["valid"]
    assert {c["coinConfigId"] for c in server_configs(fresh_sandbox)} == created


def test_a_results_path_that_cannot_work_is_refused_before_sending(
    coins: Coins, fresh_sandbox: Any, tmp_path: Path
) -> None:
    sheet = write_configs(tmp_path / "in.csv", [("CEKR", "MEAL_CARD_PAYMENT", "6")])
    for results in (sheet, tmp_path):
        refused = coins("bulk-create", str(sheet), "--results", str(results))
        assert refused.code == 2
        assert_one_line_error(refused.err, contains="--results")
    assert server_configs(fresh_sandbox) == []
    assert sheet.read_text().startswith("companyId,event,amount")


def test_bulk_create_lists_the_rows_that_need_a_look_at_the_terminal(
    coins: Coins, tmp_path: Path
) -> None:
    sheet = tmp_path / "sheet.csv"
    sheet.write_text("companyId,event,amount\nCEKEKCARDS,MEAL_CARD_PAYMENT,6\nCEKEKCARDS,BAD,6.5\n")

    result = coins("bulk-create", str(sheet))

    assert result.code == 1
    assert "rows that need a look (1):" in result.out
    assert "must be a whole number of coins (no decimals)" in result.out


def test_the_rows_that_need_a_look_show_the_whole_reason_and_a_shortened_cell(
    coins: Coins, tmp_path: Path
) -> None:
    sheet = tmp_path / "sheet.csv"
    sheet.write_text(
        "companyId,event,amount\n"
        "CEKEKCARDS,MEAL_CARD_PAYMENT,6\n"
        "CEKEKCARDS,MEAL_CARD_PAYMENT,8\n"
        "cekekcards,MEAL_CARD_PAYMENT,6\n" + "CEK" + "X" * 500 + ",MEAL_CARD_PAYMENT,6\n"
    )

    for command in ("bulk-create", "validate"):
        result = coins(command, str(sheet))
        assert result.code == 1
        assert "first seen on row 2 with amount 6; this row says 8" in result.out
        assert "(e.g. CEKEKCARDS); did you mean CEKEKCARDS?" in result.out
        assert "… (503 chars)': must be 1-32 upper-case letters" in result.out or (
            command == "validate" and "must be 1-32 upper-case letters" in result.out
        )


def test_a_sheet_the_app_is_running_is_refused_saying_who_runs_it(
    coins: Coins, fresh_sandbox: Any, tmp_path: Path
) -> None:
    """The CLI takes the app's lock on the sheet: while the app holds it (here parked for an
    approver, as the Bulk page does) the command line sends nothing and says who holds it."""
    from toolkit import bulk
    from toolkit.bulk.runlocks import acquire_run_lock, run_lock_holder
    from toolkit.settings import Settings
    from toolkit.ui.runs import lock_key_for
    from toolkit.workspace import connect

    sheet = write_configs(
        tmp_path / "locked.csv",
        [("CEKLOCK1", "MEAL_CARD_PAYMENT", "6"), ("CEKLOCK2", "REFERRAL_EVENT", "3")],
    )
    with connect(Settings.from_env(), source="app") as ws:  # the app, on the same home
        plan = bulk.plan(bulk.validate(bulk.read_configs(sheet), registry=ws.registry), ws.registry)
        lock_key, run_key = lock_key_for(ws, plan)
        app_lock = acquire_run_lock(
            ws.registry.path,
            lock_key=lock_key,
            run_key=run_key,
            actor="approver-ana",
            source_name="locked.csv",
        )
        registry_path = ws.registry.path

    for mode in ("create", "upsert"):  # any mode of the same sheet: the same lock
        refused = coins("bulk-create", str(sheet), "--mode", mode)
        assert refused.code == 1, refused.err
        line = assert_one_line_error(refused.err, contains="this sheet is already running")
        assert "approver-ana" in line and f"process {os.getpid()}" in line
        assert "nothing was sent" in line
        assert refused.out == ""
    assert pairs(fresh_sandbox) == {}
    assert not (tmp_path / "locked.results.csv").exists()
    assert coins("bulk-create", str(sheet), "--dry-run").code == 0  # sends nothing: no lock

    app_lock.release("rejected")
    done = coins("bulk-create", str(sheet))
    assert done.code == 0, done.err
    assert pairs(fresh_sandbox) == {
        ("CEKLOCK1", "MEAL_CARD_PAYMENT"): 6,
        ("CEKLOCK2", "REFERRAL_EVENT"): 3,
    }
    assert run_lock_holder(registry_path, lock_key) is None  # the CLI gave its lock back
