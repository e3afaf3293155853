"""Reading analysts' sheets: every file in the ugly corpus, and the ways bytes arrive."""

from __future__ import annotations

import hashlib
import io
import unicodedata
from pathlib import Path

import pandas as pd
import pytest

from toolkit.bulk import SheetError, read_allocations, read_configs
from toolkit.bulk.reading import WHITESPACE

DATA = Path(__file__).parent / "data"

# file -> (encoding, delimiter, row numbers of the data rows as the spreadsheet shows them)
READABLE = {
    "utf8.csv": ("utf-8", ",", [2, 3, 4]),
    "utf8_bom.csv": ("utf-8-sig", ",", [2, 3, 4]),
    "utf16.csv": ("utf-16-le", "\t", [2, 3, 4]),
    "cp1252.csv": ("cp1252", ",", [2, 3]),
    "semicolon.csv": ("utf-8", ";", [2, 3, 4]),
    "tab.tsv": ("utf-8", "\t", [2, 3, 4]),
    "crlf.csv": ("utf-8", ",", [2, 3, 4]),
    "quoted_commas.csv": ("utf-8", ",", [2, 3, 4, 5]),
    "header_aliases.csv": ("utf-8", ",", [2, 3]),
    "no_configuration_column.csv": ("utf-8", ",", [2, 3, 4]),
    "blank_lines.csv": ("utf-8", ",", [3, 6, 8]),
    "header_only.csv": ("utf-8", ",", []),
    "every_bad_value.csv": ("utf-8", ",", list(range(2, 19))),
    "duplicates.csv": ("utf-8", ",", [2, 3, 4, 5, 6, 7]),
    "warnings.csv": ("utf-8", ",", list(range(2, 11))),
    "configs.xlsx": ("xlsx", "", [2, 3, 5]),
    "cr_only.csv": ("utf-8", ",", [2, 3, 4]),
    "trailing_delimiter.csv": ("utf-8", ",", [2, 3, 4]),
    "nul_in_cell.csv": ("utf-8", ",", [2, 3, 4]),
    "long_cell.csv": ("utf-8", ",", [2, 3]),
    "amount_forms.csv": ("utf-8", ",", list(range(2, 10))),
}


@pytest.mark.parametrize("name", sorted(READABLE))
def test_corpus_file_reads_with_its_encoding_delimiter_and_row_numbers(name):
    encoding, delimiter, rows = READABLE[name]
    sheet = read_configs(DATA / name)
    assert (sheet.encoding, sheet.delimiter) == (encoding, delimiter)
    assert sheet.frame["row"].tolist() == rows
    assert sheet.kind == "configs"
    assert sheet.source_name == name
    assert sheet.sha256 == hashlib.sha256((DATA / name).read_bytes()).hexdigest()
    assert list(sheet.frame.columns[:5]) == ["row", "companyId", "event", "amount", "configuration"]
    assert sheet.frame["row"].dtype == "int64"
    for column in sheet.frame.columns[1:]:
        assert sheet.frame[column].dtype == "str"
        assert not sheet.frame[column].isna().any()


def test_free_text_survives_every_encoding():
    assert read_configs(DATA / "utf8.csv").frame["note"][0] == "Meal card ₹ 6 per swipe"
    assert read_configs(DATA / "utf16.csv").frame["note"][0] == "Meal card ₹ 6 per swipe"
    assert read_configs(DATA / "cp1252.csv").frame["note"].tolist() == ["Café meals", "€ 5 voucher"]
    cp = read_configs(DATA / "cp1252.csv")
    assert any("cp1252" in note for note in cp.notes)


def test_quoted_commas_embedded_quotes_and_newlines_stay_in_their_cell():
    sheet = read_configs(DATA / "quoted_commas.csv")
    assert sheet.extra_columns == ["comment"]
    assert sheet.frame["comment"].tolist() == [
        "lunch, dinner and snacks",
        'she said "twice", so 50',
        "two\nlines",
        "plain",
    ]
    assert sheet.frame["configuration"].tolist()[-1] == "custom"  # normalising is validate's job


def test_header_aliases_and_whitespace_are_understood():
    sheet = read_configs(DATA / "header_aliases.csv")
    assert sheet.columns == {
        "companyId": "Company ID",
        "event": "Event Name",
        "amount": "Coins",
        "configuration": "Type",
    }
    assert sheet.frame["companyId"].tolist() == ["CEKEKCARDS", "CEK0TCW2W8"]


def test_missing_configuration_column_defaults_to_default_and_says_so():
    sheet = read_configs(DATA / "no_configuration_column.csv")
    assert set(sheet.frame["configuration"]) == {"DEFAULT"}
    assert any("No configuration column" in note for note in sheet.notes)


def test_blank_rows_are_dropped_but_keep_counting():
    sheet = read_configs(DATA / "blank_lines.csv")
    assert sheet.frame["event"].tolist() == [
        "MEAL_CARD_PAYMENT",
        "REFERRAL_EVENT",
        "INVOICE_PAYMENT",
    ]
    assert any("blank" in note for note in sheet.notes)


def test_header_only_is_a_valid_empty_sheet():
    sheet = read_configs(DATA / "header_only.csv")
    assert len(sheet) == 0


def test_xlsx_picks_the_configs_worksheet_and_shows_numbers_as_excel_does():
    sheet = read_configs(DATA / "configs.xlsx")
    assert sheet.frame["amount"].tolist() == ["6", "50", "6.5"]
    assert sheet.extra_columns == ["Owner"]
    assert sheet.frame["Owner"].tolist() == ["Asha", "", "Ravi"]
    assert any("Configs" in note for note in sheet.notes)


def test_xlsx_is_recognised_by_its_bytes_not_its_name():
    raw = (DATA / "configs.xlsx").read_bytes()
    sheet = read_configs(raw, filename="export.csv")
    assert sheet.encoding == "xlsx"
    assert sheet.source_name == "export.csv"


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("empty.csv", ["empty", "companyId,event,amount,configuration"]),
        ("binary.bin", ["binary", "companyId,event,amount,configuration"]),
        ("not_a_sheet.csv", ["companyId", "event", "amount", "'name'", "companyId,event,amount"]),
    ],
)
def test_what_cannot_be_a_sheet_raises_one_clear_error(name, words):
    with pytest.raises(SheetError) as caught:
        read_configs(DATA / name)
    assert isinstance(caught.value, ValueError)
    for word in words:
        assert word in str(caught.value)


def test_sources_path_str_bytes_and_file_objects_read_the_same():
    path = DATA / "semicolon.csv"
    raw = path.read_bytes()
    sheets = [
        read_configs(path),
        read_configs(str(path)),
        read_configs(raw, filename="semicolon.csv"),
        read_configs(io.BytesIO(raw), filename="semicolon.csv"),
        read_configs(path.open("rb")),
    ]
    for sheet in sheets[1:]:
        pd.testing.assert_frame_equal(sheet.frame, sheets[0].frame)
        assert sheet.sha256 == sheets[0].sha256
        assert sheet.source_name == "semicolon.csv"
    assert read_configs(raw).source_name == "upload"


def test_a_missing_file_is_a_sheet_error_naming_it(tmp_path):
    with pytest.raises(SheetError, match="no such file"):
        read_configs(tmp_path / "nope.csv")


def test_two_columns_meaning_the_same_field_are_refused():
    with pytest.raises(SheetError, match="two companyId columns"):
        read_configs(b"companyId,company,event,amount\nA,B,E,1\n")


def test_ragged_rows_are_padded_and_surplus_cells_kept():
    sheet = read_configs(b"companyId,event,amount\nA,E\nB,F,2,oops\n")
    assert sheet.frame["amount"].tolist() == ["", "2"]
    assert sheet.extra_columns == ["column D"]
    assert sheet.frame["column D"].tolist() == ["", "oops"]


def test_a_title_above_the_header_is_skipped_and_rows_still_number_as_in_excel():
    sheet = read_configs(b"Coins for March\n\ncompanyId;event;amount\nA;E;1\n")
    assert sheet.header_row == 3
    assert sheet.delimiter == ";"
    assert sheet.frame["row"].tolist() == [4]


def test_na_like_text_stays_text():
    sheet = read_configs(b"companyId,event,amount,configuration\nNA,null,007,N/A\n")
    assert sheet.frame.iloc[0, 1:].tolist() == ["NA", "null", "007", "N/A"]


def test_utf16_without_bom_and_big_endian_are_detected():
    text = "companyId\tevent\tamount\r\nA\tE\t1\r\n"
    assert read_configs(text.encode("utf-16-le")).encoding == "utf-16-le"
    assert read_configs(b"\xfe\xff" + text.encode("utf-16-be")).encoding == "utf-16-be"


def test_allocation_sheet_reads_aliases_and_fills_an_absent_request_id():
    sheet = read_allocations(DATA / "allocations.csv")
    assert list(sheet.frame.columns) == ["row", "companyId", "event", "userId", "requestId"]
    assert sheet.kind == "allocations"
    bare = read_allocations(b"company,event,user\nA,E,U\n")
    assert bare.frame["requestId"].tolist() == [""]
    assert any("requestId" in note for note in bare.notes)
    with pytest.raises(SheetError, match="companyId,event,userId,requestId"):
        read_allocations(DATA / "duplicates.csv")


def test_whitespace_set_is_pythons_and_pyarrows():
    python = {chr(i) for i in range(0x110000) if chr(i).isspace()}
    assert set(WHITESPACE) == python
    cells = pd.Series([f"{c}x{c}" for c in sorted(python)] + ["\u200bx", "\ufeffx"], dtype="str")
    assert cells.str.strip().tolist() == [c.strip() for c in cells]
    assert unicodedata.category("\u200b") == "Cf"  # zero-width space is not whitespace


def test_a_hundred_thousand_rows_are_all_accounted_for(tmp_path):
    n = 100_000
    path = tmp_path / "big.csv"
    ids = pd.Series(range(n)).astype("str")
    frame = pd.DataFrame(
        {
            "companyId": "CEK" + ids,
            "event": "MEAL_CARD_PAYMENT",
            "amount": (ids.str.len()).astype("str"),
            "configuration": "DEFAULT",
        }
    )
    frame.loc[::1000, "amount"] = "6.5"
    frame.to_csv(path, index=False)
    from toolkit.bulk import validate

    result = validate(read_configs(path))
    assert result.frame["row"].tolist() == list(range(2, n + 2))
    assert result.errors == 100
    assert int(result.frame["valid"].sum()) == n - 100


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"PK\x03\x04" + b"\x00" * 60, ["not an .xlsx workbook"]),
        (b"\xd0\xcf\x11\xe0" + b"\x00" * 60, [".xls", "save it as .xlsx or CSV"]),
        (b"\xef\xbb\xbf \r\n", ["empty"]),
    ],
)
def test_other_things_that_are_not_sheets(data, words):
    with pytest.raises(SheetError) as caught:
        read_configs(data)
    for word in words:
        assert word in str(caught.value)


def test_an_undefined_cp1252_byte_does_not_refuse_the_file():
    sheet = read_configs(b"companyId,event,amount,note\nA,E,1,\x81\x80\xe9\n")
    assert sheet.encoding == "cp1252"
    assert sheet.frame["note"][0] == "\x81€é"


def test_text_file_objects_pipes_and_lone_cr_line_ends():
    assert len(read_configs(io.StringIO("companyId,event,amount\nA,E,1\n"))) == 1
    assert read_configs(b"companyId|event|amount\nA|E|1\n").delimiter == "|"
    assert read_configs(b"companyId,event,amount\rA,E,1\rB,F,2\r").frame["row"].tolist() == [2, 3]


def test_extra_columns_never_clash_with_the_frame_columns():
    sheet = read_configs(b"companyId,event,amount,note,note,,row\nA,E,1,x,y,,7\n")
    assert sheet.extra_columns == ["note", "note (2)", "row (2)"]
    assert sheet.frame["row"].tolist() == [2]


def test_a_stray_nul_in_a_cell_is_that_rows_problem_not_the_files():
    sheet = read_configs(DATA / "nul_in_cell.csv")
    assert sheet.frame["companyId"].tolist()[1] == "CEK\x00NUL"
    assert sheet.extra_columns == []  # the trailing delimiters' empty column is not kept


def test_lone_cr_and_trailing_delimiters_read_as_excel_shows_them():
    for name in ("cr_only.csv", "trailing_delimiter.csv"):
        sheet = read_configs(DATA / name)
        assert sheet.frame["configuration"].tolist() == ["DEFAULT", "CUSTOM", "DEFAULT"]
        assert sheet.extra_columns == []
