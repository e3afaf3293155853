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


# -- limits ----------------------------------------------------------------------------------


def small(**changes):
    from toolkit.settings import Limits

    return Limits(**changes)


def test_a_file_past_the_size_limit_is_refused_by_path_bytes_and_file_object(tmp_path):
    from toolkit.bulk.reading import check_size

    raw = b"companyId,event,amount\n" + b"CEKEKCARDS,MEAL_CARD_PAYMENT,5\n" * 40_000
    path = tmp_path / "big.csv"
    path.write_bytes(raw)
    limits = small(max_file_mb=1)
    for source in (path, raw):
        with pytest.raises(SheetError, match=r"1\.2 MB, more than the 1 MB.*COINS_MAX_FILE_MB"):
            read_configs(source, filename="big.csv", limits=limits)
    with pytest.raises(SheetError, match=r"is more than the 1 MB.*COINS_MAX_FILE_MB"):
        read_configs(io.BytesIO(raw), filename="big.csv", limits=limits)  # read up to the limit
    with pytest.raises(SheetError, match="COINS_MAX_FILE_MB"):
        check_size(len(raw), "big.csv", limits=limits)
    assert len(read_configs(path, limits=small(max_file_mb=2))) == 40_000


@pytest.mark.parametrize("quoted", [False, True])
def test_more_data_rows_than_the_limit_are_refused_blank_lines_not_counted(quoted):
    cell = '"E, F"' if quoted else "E"
    body = "".join(f"C{i},{cell},5\n" for i in range(10))
    raw = ("companyId,event,amount\n" + body + "\n,,\n" * 30).encode()
    with pytest.raises(SheetError, match=r"more than 9 data rows.*COINS_MAX_ROWS"):
        read_configs(raw, limits=small(max_rows=9))
    assert len(read_configs(raw, limits=small(max_rows=10))) == 10


def test_a_quoted_cell_spanning_lines_is_one_row_for_the_row_limit():
    raw = b'companyId,event,amount,note\nC1,E,5,"one\ntwo\nthree\nfour"\nC2,E,6,x\n'
    assert read_configs(raw, limits=small(max_rows=2)).frame["row"].tolist() == [2, 3]


def test_a_wide_header_is_counted_not_listed():
    names = ["companyId", "event", "amount"] + [f"extra{i}" for i in range(5_000)]
    with pytest.raises(SheetError) as caught:
        read_configs((",".join(names) + "\nC,E,5\n").encode(), limits=small(max_columns=100))
    message = str(caught.value)
    assert "5,003 columns" in message and "4,995 more" in message and "COINS_MAX_COLUMNS" in message
    assert "extra4999" not in message and len(message) < 600


def test_a_row_wider_than_the_column_limit_is_refused_naming_it():
    raw = b"companyId,event,amount\nC,E,5\nC,E,6," + b",".join([b"x"] * 500) + b"\n"
    with pytest.raises(SheetError, match=r"row 3 has 503 cells.*header row has 3"):
        read_configs(raw, limits=small(max_columns=100))


def test_extra_columns_beyond_twenty_are_counted_in_the_note():
    names = ["companyId", "event", "amount"] + [f"x{i}" for i in range(30)]
    sheet = read_configs((",".join(names) + "\nC,E,5" + ",v" * 30 + "\n").encode())
    note = next(n for n in sheet.notes if n.startswith("Extra columns"))
    assert "x19" in note and "x20" not in note and "10 more (30 in all)" in note


def test_more_cells_than_the_cell_limit_are_refused():
    raw = ("companyId,event,amount,a,b\n" + "C,E,5,x,y\n" * 30).encode()
    with pytest.raises(SheetError, match=r"30 rows × 5 columns.*COINS_MAX_CELLS"):
        read_configs(raw, limits=small(max_cells=100))


def test_a_cell_past_the_length_limit_is_refused_naming_its_row_and_column():
    raw = b"companyId,event,amount\nC,E,5\nC," + b"E" * 300 + b",6\n"
    with pytest.raises(SheetError, match=r"row 3, column B \('event'\): a cell of 300 char"):
        read_configs(raw, limits=small(max_cell_chars=100))
    # a cell past four times the limit (in bytes) is refused from the bytes, before parsing
    with pytest.raises(SheetError, match=r"row 3: a cell of more than 50 characters"):
        read_configs(raw, limits=small(max_cell_chars=50))


def _xlsx(rows, **sheet_kwargs) -> bytes:
    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    for ref, value in sheet_kwargs.items():
        sheet[ref] = value
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_xlsx_limits_name_the_row_and_column():
    header = ["companyId", "event", "amount"]
    wide = _xlsx([header, ["C", "E", 5]], J3="far")
    with pytest.raises(SheetError, match=r"row 3 has a value in column J.*COINS_MAX_COLUMNS"):
        read_configs(wide, limits=small(max_columns=5))
    long = _xlsx([header, ["C", "E" * 300, 5]])
    with pytest.raises(SheetError, match=r"row 2, column B holds 300 characters"):
        read_configs(long, limits=small(max_cell_chars=100))
    many = _xlsx([header] + [["C", "E", i] for i in range(20)])
    with pytest.raises(SheetError, match="COINS_MAX_ROWS"):
        read_configs(many, limits=small(max_rows=10))
    assert len(read_configs(many, limits=small(max_rows=20))) == 20


def test_xlsx_parts_are_checked_before_any_is_unpacked():
    raw = _xlsx([["companyId", "event", "amount"], ["C", "E", 5]])
    with pytest.raises(SheetError, match=r"would unpack to .*COINS_MAX_XLSX_PART_MB"):
        read_configs(raw, limits=small(max_xlsx_part_mb=0.001))


def test_xlsx_values_read_as_excel_shows_them_with_gaps_and_far_cells():
    import datetime

    header = ["Company ID", "Event Name", "Coins", "when", "flag", "ratio"]
    raw = _xlsx(
        [
            ["A title"],
            [],
            header,
            ["CEK1", "E_ONE", 6, datetime.datetime(2026, 1, 2, 3, 4, 5), True, 0.25],
            ["CEK2", "E_TWO", 6.0, datetime.date(2026, 5, 6), False, 1e20],
            [],
            ["CEK3", "E_3", "007"],
        ],
        H10="farther",
    )
    sheet = read_configs(raw)
    frame = sheet.frame
    assert frame["row"].tolist() == [4, 5, 7, 10]
    assert frame["amount"].tolist() == ["6", "6", "007", ""]
    assert frame["when"].tolist()[:2] == ["2026-01-02T03:04:05", "2026-05-06T00:00:00"]
    assert frame["flag"].tolist()[:2] == ["TRUE", "FALSE"]
    assert frame["ratio"].tolist()[:2] == ["0.25", "100000000000000000000"]
    assert frame["column H"].tolist() == ["", "", "", "farther"]
    assert sheet.header_row == 3
    assert "Skipped 3 blank rows." in sheet.notes
