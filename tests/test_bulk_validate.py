"""Validating sheets: every corpus file's rows accounted for, with exactly the expected problems."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from toolkit.bulk import read_allocations, read_configs, validate, validate_allocations

DATA = Path(__file__).parent / "data"
DUP = "companyId, event"

# file -> {(row, column, severity)}; rows absent here must be valid and problem-free.
EXPECTED = {
    "utf8.csv": set(),
    "utf8_bom.csv": set(),
    "utf16.csv": set(),
    "cp1252.csv": set(),
    "semicolon.csv": set(),
    "tab.tsv": set(),
    "crlf.csv": set(),
    "quoted_commas.csv": set(),
    "header_aliases.csv": set(),
    "no_configuration_column.csv": set(),
    "blank_lines.csv": set(),
    "header_only.csv": set(),
    "configs.xlsx": {(5, "amount", "error")},
    "every_bad_value.csv": {
        (2, "amount", "error"),
        (3, "amount", "error"),
        (4, "amount", "error"),
        (5, "amount", "error"),
        (6, "amount", "error"),
        (9, "configuration", "error"),
        (10, "companyId", "error"),
        (11, "event", "error"),
        (12, "companyId", "error"),
        (13, "companyId", "error"),
        (14, "event", "error"),
        (15, "amount", "error"),
        (16, "configuration", "error"),
        (17, "companyId", "error"),
        (17, "event", "error"),
        (17, "amount", "error"),
        (17, "configuration", "error"),
        (18, "event", "error"),
        (18, "amount", "error"),
    },
    "duplicates.csv": {(4, DUP, "error"), (5, DUP, "error"), (7, DUP, "error")},
    "warnings.csv": {(5, "amount", "warning"), (6, "amount", "warning"), (10, "amount", "warning")},
}


def _found(result):
    return {(r.row, r.column, r.severity) for r in result.problems.itertuples()}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_row_is_accounted_for_with_the_expected_problems(name):
    sheet = read_configs(DATA / name)
    result = validate(sheet)
    # Rows in = rows out: each sheet row exactly once, in order, valid or not.
    assert result.frame["row"].tolist() == sheet.frame["row"].tolist()
    assert result.frame.index.equals(sheet.frame.index)
    assert _found(result) == EXPECTED[name]
    error_rows = {row for row, _, severity in EXPECTED[name] if severity == "error"}
    assert set(result.frame.loc[~result.frame["valid"], "row"]) == error_rows
    assert result.errors == sum(1 for *_, s in EXPECTED[name] if s == "error")
    assert result.problems["row"].is_monotonic_increasing


def test_frame_and_problem_shapes():
    result = validate(read_configs(DATA / "every_bad_value.csv"))
    frame = result.frame
    assert list(frame.columns) == [
        "row",
        "companyId",
        "event",
        "amount",
        "configuration",
        "valid",
        "message",
    ]
    assert frame["amount"].dtype == "Int64"
    assert frame["valid"].dtype == bool
    assert frame["row"].dtype == "int64"
    assert list(result.problems.columns) == [
        "row",
        "column",
        "value",
        "severity",
        "reason",
        "message",
    ]
    row7 = frame[frame["row"] == 7].iloc[0]  # "+6" and "default" are fine, normalised
    assert (row7["amount"], row7["configuration"], row7["valid"]) == (6, "DEFAULT", True)
    row8 = frame[frame["row"] == 8].iloc[0]  # " 6 " and "Custom"
    assert (row8["amount"], row8["configuration"]) == (6, "CUSTOM")
    assert pd.isna(frame.loc[frame["row"] == 2, "amount"].iloc[0])


def test_messages_name_row_column_value_and_the_models_reason():
    messages = validate(read_configs(DATA / "every_bad_value.csv")).messages()
    assert "Row 2, amount '6.5': must be a whole number of coins (no decimals)" in messages
    assert "Row 5, amount '-5': must be 0 or more" in messages
    assert "Row 6, amount '1000001': must be at most 1,000,000" in messages
    assert "Row 15, amount: is missing" in messages
    assert any(
        m.startswith("Row 10, companyId 'cekekcards'") and "CEKEKCARDS?" in m for m in messages
    )
    assert any(m.startswith("Row 11, event") and "MEAL_CARD_PAYMENT?" in m for m in messages)


def test_every_problem_of_a_row_is_reported_and_joined_on_the_row():
    result = validate(read_configs(DATA / "every_bad_value.csv"))
    row17 = result.frame.loc[result.frame["row"] == 17, "message"].iloc[0]
    assert row17.count(";") == 3
    assert result.frame.loc[result.frame["row"] == 7, "message"].iloc[0] == ""


def test_duplicates_name_the_first_row_and_differing_amounts():
    messages = validate(read_configs(DATA / "duplicates.csv")).messages()
    assert messages[0].endswith("first seen on row 2")
    assert messages[1].endswith("first seen on row 2 with amount 6; this row says 8")
    assert "first seen on row 3" in messages[2]


def test_outliers_use_known_medians_when_given():
    sheet = read_configs(DATA / "warnings.csv")
    result = validate(sheet, known_medians={"MEAL_CARD_PAYMENT": 100})
    found = _found(result)
    # Against 100, the 5-7 coin rows are the odd ones and 600 is ordinary.
    assert {(2, "amount", "warning"), (3, "amount", "warning"), (4, "amount", "warning")} <= found
    assert (5, "amount", "warning") not in found
    assert "in the registry" in result.problems["message"].iloc[0]


def test_a_dataframe_validates_like_the_sheet_it_came_from():
    frame = pd.DataFrame(
        {
            "Company ID": ["CEKEKCARDS", "cek"],
            "event": ["MEAL_CARD_PAYMENT", "EV"],
            "coins": [6, 7.5],
        }
    )
    result = validate(frame)
    assert result.frame["row"].tolist() == [2, 3]
    assert result.frame["valid"].tolist() == [True, False]
    assert result.frame["configuration"].tolist()[0] == "DEFAULT"
    assert {(r.row, r.column) for r in result.problems.itertuples()} == {
        (3, "companyId"),
        (3, "amount"),
    }


def test_summary_counts_and_lists_problems():
    result = validate(read_configs(DATA / "duplicates.csv"))
    text = result.summary()
    assert text.splitlines()[0] == (
        "duplicates.csv: 6 configuration rows, 3 valid, 3 with errors (3 errors, 0 warnings)."
    )
    assert "Row 4" in text
    assert result.ok is False and result.warnings == 0


def test_allocations_good_file_is_clean_and_request_ids_optional():
    result = validate_allocations(read_allocations(DATA / "allocations.csv"))
    assert result.ok
    assert list(result.frame.columns) == [
        "row",
        "companyId",
        "event",
        "userId",
        "requestId",
        "valid",
        "message",
    ]
    assert result.frame["requestId"].isna().tolist() == [False, True, False]


def test_allocations_bad_file_reports_each_problem():
    sheet = read_allocations(DATA / "allocations_bad.csv")
    result = validate(sheet)  # validate() hands allocation sheets on
    assert result.kind == "allocations"
    assert result.frame["row"].tolist() == sheet.frame["row"].tolist()
    assert _found(result) == {
        (3, "requestId", "error"),
        (4, "companyId", "error"),
        (5, "userId", "error"),
        (6, "userId", "error"),
        (7, "requestId", "error"),
        (7, "userId", "warning"),
        (8, "userId", "warning"),
    }
    assert "already used on row 2" in result.messages("error")[0]
    assert result.frame["valid"].tolist() == [True, False, False, False, False, False, True]


def test_a_long_cell_is_shortened_in_messages_so_the_reason_still_shows():
    checked = validate(read_configs(DATA / "long_cell.csv"))
    (message,) = checked.messages()
    assert message.startswith("Row 3, companyId 'CEKXXX")
    assert "… (303 chars)': must be 1-32 upper-case letters or digits" in message
    assert len(message) < 160
    assert checked.problems["value"].iloc[0] == "CEK" + "X" * 300  # the cell itself, whole
    assert checked.frame["message"].iloc[1] == message.removeprefix("Row 3, ")


def test_control_characters_are_visible_in_messages():
    checked = validate(read_configs(DATA / "nul_in_cell.csv"))
    assert checked.frame["valid"].tolist() == [True, False, True]
    assert checked.messages() == [
        "Row 3, companyId 'CEK\\0NUL': must be 1-32 upper-case letters or digits (e.g. CEKEKCARDS)"
    ]


def test_amounts_as_spreadsheets_write_them():
    checked = validate(read_configs(DATA / "amount_forms.csv"))
    frame = checked.frame
    # "6.0" is what a column formatted with decimals exports: still a whole number of coins.
    assert frame.loc[frame["valid"], "amount"].tolist() == [6, 6, 6, 7]
    reasons = dict(zip(checked.problems["value"], checked.problems["reason"], strict=True))
    assert "6.0" not in reasons
    assert reasons["-0"] == "must be 0 or more"
    for value in ("£5", "1,000", "\uff16"):
        assert reasons[value] == "must be a whole number of coins (digits only, e.g. 6)"
