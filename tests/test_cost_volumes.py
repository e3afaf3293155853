"""Volumes and budget sheets, read by the bulk reader: any encoding, delimiter or .xlsx, every
row accounted for, every bad row answered by row, column and reason."""

from __future__ import annotations

import io

import openpyxl
import pandas as pd
import pytest

from toolkit.bulk.volumes import SheetError, read_budgets, read_volumes

GOOD = (
    "companyId,event,count\n"
    "CEKEKCARDS,MEAL_CARD_PAYMENT,1200\n"
    "CEKEKCARDS,REFERRAL_EVENT,40\n"
    "CEK0TCW2W8,MEAL_CARD_PAYMENT,300\n"
)


def test_a_volumes_sheet_gives_each_pairs_monthly_count():
    sheet = read_volumes(GOOD.encode(), filename="volumes.csv")
    assert sheet.valid_rows == 3 and sheet.errors == 0 and sheet.problems.empty
    assert sheet.monthly.values.tolist() == [
        ["CEK0TCW2W8", "MEAL_CARD_PAYMENT", 300.0],
        ["CEKEKCARDS", "MEAL_CARD_PAYMENT", 1200.0],
        ["CEKEKCARDS", "REFERRAL_EVENT", 40.0],
    ]
    assert "No month column" in " ".join(sheet.sheet.notes)
    assert sheet.describe().startswith("volumes.csv: 3 volume rows, utf-8, delimiter comma")


def test_months_are_averaged_over_the_months_the_sheet_covers():
    text = (
        "Company ID\tEvent Name\tVolume\tMonth\r\n"
        "CEKEKCARDS\tMEAL_CARD_PAYMENT\t1,000\t2025-03\r\n"
        "CEKEKCARDS\tMEAL_CARD_PAYMENT\t1,400\t2025-04-01\r\n"
        "CEKEKCARDS\tREFERRAL_EVENT\t30\tApr 2025\r\n"  # nothing in March: 30 over 2 months
    )
    sheet = read_volumes(text.encode("utf-16"), filename="by-month.tsv")
    assert sheet.sheet.encoding.startswith("utf-16") and sheet.months == ["2025-03", "2025-04"]
    monthly = dict(zip(sheet.monthly["event"], sheet.monthly["monthly_count"], strict=True))
    assert monthly == {"MEAL_CARD_PAYMENT": 1_200.0, "REFERRAL_EVENT": 15.0}


def test_bad_rows_are_answered_by_row_column_and_reason_and_none_is_lost():
    text = (
        "companyId;event;count;month;notes\r\n"
        "CEKEKCARDS;MEAL_CARD_PAYMENT;1200;2025-03;ok\r\n"
        "cekekcards;MEAL_CARD_PAYMENT;10;2025-03;lower-case id\r\n"
        "CEKEKCARDS;meal card;10;2025-03;bad event\r\n"
        "CEKEKCARDS;REFERRAL_EVENT;lots;2025-03;not a number\r\n"
        "CEKEKCARDS;REFERRAL_EVENT;-5;2025-03;negative\r\n"
        "\r\n"
        "CEKEKCARDS;INVOICE_PAYMENT;5;March;no year\r\n"
        "CEKEKCARDS;INVOICE_PAYMENT;5;;no month\r\n"
        "CEKEKCARDS;MEAL_CARD_PAYMENT;7;2025-03-15;same month again\r\n"
        "CEKEKCARDS;INVOICE_PAYMENT;;2025-03;no count\r\n"
        "Café;INVOICE_PAYMENT;5;2025-03;accent\r\n"
    )
    sheet = read_volumes(text.encode("cp1252"), filename="volumes.csv")
    assert len(sheet.frame) == 10  # every data row, the blank line aside
    assert sheet.frame["row"].tolist() == [2, 3, 4, 5, 6, 8, 9, 10, 11, 12]
    problems = {
        (r, c): reason for r, c, reason in sheet.problems[["row", "column", "reason"]].values
    }
    assert "did you mean CEKEKCARDS?" in problems[(3, "companyId")]
    assert "upper snake case" in problems[(4, "event")]
    assert problems[(5, "count")].startswith("must be a number")
    assert problems[(6, "count")] == "must be 0 or more"
    assert problems[(8, "month")].startswith("must be a month")
    assert problems[(9, "month")] == "is missing (other rows give a month)"
    assert problems[(10, "companyId")] == "the same companyId, event and month as row 2"
    assert problems[(11, "count")] == "is missing"
    assert (12, "companyId") in problems
    messages = sheet.problems["message"].tolist()
    assert "Row 6, count '-5': must be 0 or more" in messages
    # Only row 2 counts; each bad row's own line names its reasons.
    assert sheet.valid_rows == 1 and sheet.errors == 9
    assert sheet.monthly.values.tolist() == [["CEKEKCARDS", "MEAL_CARD_PAYMENT", 1200.0]]
    row5 = sheet.frame.loc[sheet.frame["row"] == 5, "message"].item()
    assert row5 == "count 'lots': must be a number of occurrences (e.g. 1200)"


def test_an_xlsx_workbook_is_read_like_a_csv(tmp_path):
    book = openpyxl.Workbook()
    ws = book.active
    ws.title = "volumes"
    ws.append(["company", "event", "occurrences", "month"])
    ws.append(["CEKEKCARDS", "MEAL_CARD_PAYMENT", 1200, pd.Timestamp("2025-03-01").to_pydatetime()])
    ws.append(["CEKEKCARDS", "MEAL_CARD_PAYMENT", 800.0, "2025-04"])
    path = tmp_path / "volumes.xlsx"
    book.save(path)
    sheet = read_volumes(path)
    assert sheet.sheet.encoding == "xlsx" and sheet.errors == 0
    assert sheet.months == ["2025-03", "2025-04"]
    assert sheet.monthly["monthly_count"].tolist() == [1000.0]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"companyId,event,amount\nCEKA,E,1\n", "no count column"),
        (b"", "is empty"),
        (b"\x00\x01\x02\x03" * 100, "not a text or .xlsx sheet"),
    ],
)
def test_what_cannot_be_a_volumes_sheet_is_refused_in_one_sentence(data, expected):
    with pytest.raises(SheetError, match=expected):
        read_volumes(io.BytesIO(data), filename="v.csv")


def test_a_budget_sheet_gives_budgets_per_company_and_a_default():
    sheet = read_budgets(
        b'companyId,Monthly budget\nCEKEKCARDS,"1,50,000"\n*,50000\nbad id,x\nCEKEKCARDS,9\n',
        filename="budgets.csv",
    )
    assert sheet.budgets.per_company == {"CEKEKCARDS": 150_000.0}
    assert sheet.budgets.default == 50_000.0
    assert sheet.frame["valid"].tolist() == [True, True, False, False]
    rows = sheet.problems.groupby("row")["column"].agg(list).to_dict()
    assert rows == {4: ["companyId", "budget"], 5: ["companyId"]}
    assert "the same companyId as row 2" in sheet.frame["message"].iloc[3]
