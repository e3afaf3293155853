"""No formula leaves the toolkit: every CSV and .xlsx it writes goes through one neutraliser,
look-alike characters included, and values from the server or the registry are as untrusted
as the analyst's own cells."""

from __future__ import annotations

import csv
import io
import sys
import unicodedata
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from test_cli_support import run_coins

from toolkit import exports
from toolkit.bulk import write_results
from toolkit.exports import (
    LOOKALIKE_PREFIXES,
    csv_bytes,
    is_risky,
    neutral_text,
    neutralise,
    write_csv,
    write_excel,
)

ATTACKS = [
    '=HYPERLINK("http://evil.example","click")',
    "@SUM(1+1)",
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "\t=1+1",
    "\r=1+1",
    "\n=1+1",
    "＝HYPERLINK(1)",  # full-width equals
    "＋1",
    "－1",
    "＠SUM(1)",
    "\ufe62" + "1",  # small plus
    "\ufe66" + "1",  # small equals
    "\ufe63" + "1",  # small hyphen-minus
    "\ufe6b" + "SUM(1)",  # small commercial at
    "\uff0d" + "1",  # full-width hyphen-minus
    "\u2212" + "1",  # minus sign
    "\u2013" + "1",  # en dash
    "\u207a" + "1",  # superscript plus
    "\u208c" + "1",  # subscript equals
    "\u2796" + "1",  # heavy minus sign
    "\u200b=1+1",  # zero-width space in front
    "\ufeff=1+1",  # a BOM in front
    "   =1+1",  # spaces in front
    "\u00a0@SUM(1)",  # no-break space in front
    "\u202e=1+1",  # a bidi override in front
]
HARMLESS = ["CEKEKCARDS", "MEAL_CARD_PAYMENT", "a=b", "5", "₹ café", "", "'=already quoted"]


def test_every_character_that_normalises_to_a_formula_sign_or_is_a_dash_is_covered() -> None:
    """The look-alike list is derived again from this Python's Unicode database."""
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        if char in "=+-@":
            continue
        folded = unicodedata.normalize("NFKC", char)[:1]
        if folded in ("=", "+", "-", "@", "\u2212") or unicodedata.category(char) == "Pd":
            assert char in LOOKALIKE_PREFIXES, f"U+{code:04X} {unicodedata.name(char, '')}"


@pytest.mark.parametrize("value", ATTACKS)
def test_a_risky_cell_gets_a_leading_apostrophe(value: str) -> None:
    assert is_risky(value)
    assert neutral_text(value) == "'" + value


@pytest.mark.parametrize("value", HARMLESS)
def test_harmless_text_is_left_as_it_is(value: str) -> None:
    assert not is_risky(value)
    assert neutral_text(value) == value


@pytest.mark.parametrize("dtype", ["str", object])
def test_frames_of_either_text_dtype_are_neutralised_like_single_values(dtype: object) -> None:
    values = [*ATTACKS, *HARMLESS]
    frame = pd.DataFrame({"cell": pd.Series(values, dtype=dtype), "n": range(len(values))})
    out = neutralise(frame)
    assert out["cell"].tolist() == [neutral_text(v) for v in values]
    assert out["n"].tolist() == list(range(len(values)))  # numbers untouched


def test_headers_are_neutralised_too() -> None:
    out = neutralise(pd.DataFrame({"＝cmd": ["x"], "ok": ["y"]}))
    assert list(out.columns) == ["'＝cmd", "ok"]


def _cells(raw: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))


def test_results_and_csv_exports_hold_no_formula(tmp_path: Path) -> None:
    frame = pd.DataFrame({"note": ATTACKS, "status": "created"})
    for raw in (
        write_results(frame, tmp_path / "r.csv").read_bytes(),
        write_csv(frame, tmp_path / "e.csv").read_bytes(),
        csv_bytes(frame),  # the app's downloads
    ):
        assert [row[0] for row in _cells(raw)[1:]] == ["'" + v for v in ATTACKS]


def test_the_excel_export_holds_text_not_formulas(tmp_path: Path) -> None:
    at = pd.to_datetime(["2026-11-26T19:24:19+05:30"] * len(ATTACKS), utc=True)
    frame = pd.DataFrame({"note": ATTACKS, "at": at, "ctrl": "bell\x07"})
    path = write_excel({"notes=": frame, "second": frame.head(1)}, tmp_path / "x.xlsx")
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["notes=", "second"]
    sheet = book["notes="]
    cells = [row[0] for row in sheet.iter_rows(min_row=2)]
    assert all(cell.data_type == "s" for cell in cells)  # no formula cell
    # (XML reads a carriage return back as a line feed)
    assert [cell.value for cell in cells] == ["'" + v.replace("\r", "\n") for v in ATTACKS]
    assert sheet.cell(row=2, column=2).value.isoformat() == "2026-11-26T13:54:19"  # a UTC date
    assert sheet.cell(row=2, column=3).value == "bell\ufffd"


def test_the_app_download_and_activity_export_use_the_same_neutraliser() -> None:
    from toolkit.ui import text

    frame = pd.DataFrame({"message": ["＝1+1", "ok"]})
    assert text.excel_safe_csv(frame) == exports.csv_bytes(frame)


# -- the CLI's --format csv ----------------------------------------------------------------


def _csv_rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_cli_validate_csv_neutralises_the_analysts_cells(tmp_path: Path) -> None:
    sheet = tmp_path / "evil.csv"
    sheet.write_text(
        "companyId,event,amount\n"
        '=HYPERLINK("http://evil.example"),MEAL_CARD_PAYMENT,5\n'
        "CEKEKCARDS,＝cmd,6\n"
        "CEKEKCARDS,MEAL_CARD_PAYMENT,@SUM(1+1)\n",
        encoding="utf-8",
    )
    outcome = run_coins(
        "validate",
        str(sheet),
        "--format",
        "csv",
        env={"COINS_HOME": str(tmp_path / "h")},
        cwd=tmp_path,
    )
    assert outcome.code == 1, outcome.err
    rows = _csv_rows(outcome.out)
    values = [row[rows[0].index("value")] for row in rows[1:]]
    assert values and all(v.startswith("'") for v in values if is_risky(v.lstrip("'")))
    assert not any(is_risky(cell) for row in rows for cell in row)


def test_cli_history_csv_neutralises_what_the_registry_holds(tmp_path: Path) -> None:
    env = {"COINS_HOME": str(tmp_path / "h"), "COINS_ACTOR": '=HYPERLINK("http://evil")'}
    made = run_coins(
        "create",
        "--company",
        "CEKEVIL01",
        "--event",
        "MEAL_CARD_PAYMENT",
        "--amount",
        "5",
        "--format",
        "json",
        env=env,
        cwd=tmp_path,
    )
    assert made.code == 0, made.err
    config_id = made.json()["coinConfigId"]
    for argv in (("history", config_id), ("configs",), ("get", config_id)):
        outcome = run_coins(*argv, "--format", "csv", env=env, cwd=tmp_path)
        assert outcome.code == 0, (argv, outcome.err)
        rows = _csv_rows(outcome.out)
        assert len(rows) >= 2, argv
        assert not any(is_risky(cell) for row in rows for cell in row), argv
    history = _csv_rows(
        run_coins("history", config_id, "--format", "csv", env=env, cwd=tmp_path).out
    )
    actors = [row[history[0].index("actor")] for row in history[1:]]
    assert actors and all(a == "'" + env["COINS_ACTOR"] for a in actors)
