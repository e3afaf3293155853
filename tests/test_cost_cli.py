"""`coins cost` and the plan's cost line, run in process against a real sandbox: figures worked
out by hand from the allocations made, a volumes sheet, a what-if sheet and budgets."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_cli_support import Outcome, assert_one_line_error, sandbox_env

from toolkit import cost
from toolkit.cli import command_names, main
from toolkit.workspace import connect

Coins = Callable[..., Outcome]
MONTH = 30.4375 / 30
PROGRAMME = [  # company, event, coins configured, allocations made
    ("CEKCLIA", "MEAL_CARD_PAYMENT", 6, 3),
    ("CEKCLIA", "REFERRAL_EVENT", 100, 2),
    ("CEKCLIB", "MEAL_CARD_PAYMENT", 10, 4),
]


@pytest.fixture
def coins(
    fresh_sandbox: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Coins:
    for name in list(os.environ):
        if name.startswith(("ENKASH_", "COINS_")):
            monkeypatch.delenv(name)
    for name, value in sandbox_env(fresh_sandbox, tmp_path / "home").items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    with connect(source="test") as ws:
        for company, event, amount, n in PROGRAMME:
            ws.client.create_config(company_id=company, event=event, amount=amount)
            for i in range(n):
                ws.client.allocate_coins(company_id=company, event=event, user_id=f"EKU{i}")

    def run(*argv: str) -> Outcome:
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err)

    return run


def test_cost_is_a_documented_command():
    assert "cost" in command_names()


def test_projection_per_company_and_event_from_the_last_30_days(coins: Coins) -> None:
    out = coins("cost", "--format", "json")
    assert out.code == 0, out.err
    data = out.json()
    rows = {r["companyId"]: r for r in data["rows"]}
    assert rows["CEKCLIA"]["awarded_coins"] == 3 * 6 + 2 * 100
    assert rows["CEKCLIA"]["monthly_rupees"] == pytest.approx(218 * MONTH)
    assert rows["CEKCLIB"]["monthly_coins"] == pytest.approx(40 * MONTH)
    assert data["monthly_rupees"] == pytest.approx(258 * MONTH)
    assert data["value_assumed"] is True and "assumes ₹1 per coin" in data["value"]
    assert data["volumes"].startswith("9 allocations in the 30 days to")

    events = coins("cost", "--by", "event", "--format", "csv")
    assert events.code == 0
    lines = events.out.splitlines()
    assert lines[0].startswith("event,monthly_count,monthly_coins,monthly_rupees,awarded_coins")
    assert any(line.startswith("REFERRAL_EVENT,") for line in lines)

    table = coins("cost")
    assert f"projected monthly cost: {cost.format_inr(258 * MONTH)}" in table.out
    assert "assumes ₹1 per coin" in table.out


def test_coins_awarded_per_month_at_the_configured_value(
    coins: Coins, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COINS_RUPEES_PER_COIN", "0.5")
    out = coins("cost", "--by", "month", "--format", "json")
    assert out.code == 0, out.err
    data = out.json()
    (month,) = data["rows"]
    assert (month["allocations"], month["coins"], month["rupees"]) == (9, 258, 129.0)
    assert data["value"] == "at ₹0.5 per coin" and data["value_assumed"] is False


def test_what_if_of_a_sheet_says_before_after_delta_and_who_goes_over_budget(
    coins: Coins, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sheet = tmp_path / "raise.csv"
    sheet.write_text(
        "companyId,event,amount\nCEKCLIA,REFERRAL_EVENT,150\nCEKCLIB,MEAL_CARD_PAYMENT,10\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("COINS_MONTHLY_BUDGET", "CEKCLIA=250,*=1000")
    out = coins("cost", "--what-if", str(sheet), "--format", "json")
    assert out.code == 0, out.err
    data = out.json()
    delta = 2 * 50 * MONTH
    assert data["total"]["rupees_delta"] == pytest.approx(delta)
    assert data["newly_over_budget"] == ["CEKCLIA"]  # ₹221 → ₹322 against ₹250
    (row,) = data["rows"]  # CEKCLIB's amount stays 10: no change
    assert row["companyId"] == "CEKCLIA" and row["over_budget_after"] is True
    assert data["line"] == (
        f"This sheet raises monthly cost by {cost.format_inr(delta)}, "
        f"{cost.format_pct(delta / (258 * MONTH))}; CEKCLIA over budget (assumes ₹1 per coin)"
    )
    table = coins("cost", "--what-if", str(sheet), "--by", "event")
    assert "REFERRAL_EVENT" in table.out and data["line"] in table.out


def test_the_plan_says_what_the_sheet_costs_a_month(coins: Coins, tmp_path: Path) -> None:
    sheet = tmp_path / "raise.csv"
    sheet.write_text("companyId,event,amount\nCEKCLIB,MEAL_CARD_PAYMENT,20\n", encoding="utf-8")
    out = coins("plan", str(sheet), "--mode", "upsert", "--format", "json")
    assert out.code == 0, out.err
    delta = 4 * 10 * MONTH
    assert out.json()["monthly_cost"].startswith(
        f"This sheet raises monthly cost by {cost.format_inr(delta)}"
    )
    volumes = tmp_path / "volumes.csv"
    volumes.write_text("companyId,event,count\nCEKCLIB,MEAL_CARD_PAYMENT,10000\n", encoding="utf-8")
    table = coins("plan", str(sheet), "--mode", "upsert", "--volumes", str(volumes))
    assert "monthly cost: This sheet raises monthly cost by ₹1 lakh, +100%" in table.out


def test_bad_volume_rows_are_listed_by_row_and_exit_1(coins: Coins, tmp_path: Path) -> None:
    volumes = tmp_path / "volumes.csv"
    volumes.write_text(
        "companyId,event,count\nCEKCLIA,MEAL_CARD_PAYMENT,100\ncekclia,MEAL_CARD_PAYMENT,x\n",
        encoding="utf-8",
    )
    out = coins("cost", "--volumes", str(volumes))
    assert out.code == 1
    assert "rows left out (2 problems)" in out.out
    assert "did you mean CEKCLIA?" in out.out
    assert f"projected monthly cost: {cost.format_inr(600)}" in out.out  # only row 2 counts
    problems = coins("cost", "--volumes", str(volumes), "--format", "json").json()["problems"]
    assert [(p["row"], p["column"]) for p in problems] == [(3, "companyId"), (3, "count")]


def test_unreadable_sheets_and_options_that_do_not_fit_are_one_line_errors(
    coins: Coins, tmp_path: Path
) -> None:
    missing = coins("cost", "--volumes", str(tmp_path / "nope.csv"))
    assert missing.code == 2
    assert_one_line_error(missing.err, contains="no such file")
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("a,b\n1,2\n", encoding="utf-8")
    refused = coins("cost", "--volumes", str(wrong))
    assert refused.code == 2
    assert_one_line_error(refused.err, contains="not a volumes sheet")
    both = coins("cost", "--by", "month", "--what-if", str(wrong))
    assert both.code == 2
    assert_one_line_error(both.err, contains="--by month")
