"""Write the ugly-file corpus in this folder: `python tests/data/make_corpus.py`.

Each file is one way an analyst's sheet arrives in real life (Excel exports, hand edits,
uploads of the wrong thing). The files are committed; this script documents how each was made
and regenerates them byte for byte (the .xlsx aside: its ZIP timestamps change).
"""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent

GOOD = [
    ("CEKEKCARDS", "MEAL_CARD_PAYMENT", "6", "DEFAULT"),
    ("CEKEKCARDS", "REFERRAL_EVENT", "50", "CUSTOM"),
    ("CEK0TCW2W8", "INVOICE_PAYMENT", "10", "DEFAULT"),
]


def lines(rows: list[tuple[str, ...]], sep: str = ",", eol: str = "\n") -> str:
    """Rows as a spreadsheet writes them: cells with the delimiter or quotes get quoted."""
    out = io.StringIO()
    csv.writer(out, delimiter=sep, lineterminator=eol).writerows(rows)
    return out.getvalue()


HEADER = ("companyId", "event", "amount", "configuration")


def text_files() -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    note_rows = [
        (*GOOD[0], "Meal card ₹ 6 per swipe"),
        (*GOOD[1], "Referral bonus, paid once"),
        (*GOOD[2], "Invoices — all vendors"),
    ]
    with_note = [(*HEADER, "note"), *note_rows]
    files["utf8.csv"] = lines(with_note).encode("utf-8")
    files["utf8_bom.csv"] = b"\xef\xbb\xbf" + lines([HEADER, *GOOD]).encode("utf-8")
    # Excel "Unicode text": UTF-16 LE with a BOM, tab-separated, CRLF.
    files["utf16.csv"] = lines(with_note, sep="\t", eol="\r\n").encode("utf-16")
    files["cp1252.csv"] = lines(
        [
            (*HEADER, "note"),
            (*GOOD[0], "Café meals"),
            (*GOOD[1], "€ 5 voucher"),
        ]
    ).encode("cp1252")
    files["semicolon.csv"] = lines([HEADER, *GOOD], sep=";").encode()
    files["tab.tsv"] = lines([HEADER, *GOOD], sep="\t").encode()
    files["crlf.csv"] = lines([HEADER, *GOOD], eol="\r\n").encode()
    files["quoted_commas.csv"] = (
        b"companyId,event,amount,configuration,comment\r\n"
        b'CEKEKCARDS,MEAL_CARD_PAYMENT,6,DEFAULT,"lunch, dinner and snacks"\r\n'
        b'CEKEKCARDS,REFERRAL_EVENT,50,CUSTOM,"she said ""twice"", so 50"\r\n'
        b'CEK0TCW2W8,INVOICE_PAYMENT,10,DEFAULT,"two\nlines"\r\n'
        b'"CEK0TCW2W8","CASHBACK_EVENT","3","custom",plain\r\n'
    )
    files["header_aliases.csv"] = lines(
        [
            (" Company ID ", "Event Name", "Coins", "Type"),
            ("CEKEKCARDS", "MEAL_CARD_PAYMENT", "6", "default"),
            ("CEK0TCW2W8", "INVOICE_PAYMENT", "10", "Custom"),
        ]
    ).encode()
    files["no_configuration_column.csv"] = lines(
        [("company_id", "event_name", "amount"), *(g[:3] for g in GOOD)]
    ).encode()
    files["blank_lines.csv"] = (
        b"companyId,event,amount,configuration\n"
        b"\n"
        b"CEKEKCARDS,MEAL_CARD_PAYMENT,6,DEFAULT\n"
        b",,,\n"
        b"   \n"
        b"CEKEKCARDS,REFERRAL_EVENT,50,CUSTOM\n"
        b" , , , \n"
        b"CEK0TCW2W8,INVOICE_PAYMENT,10,DEFAULT\n"
        b"\n"
        b"\n"
    )
    files["header_only.csv"] = b"companyId,event,amount,configuration\r\n"
    files["empty.csv"] = b""
    rng = random.Random(4)
    files["binary.bin"] = bytes(rng.randrange(256) for _ in range(2048))
    files["not_a_sheet.csv"] = lines(
        [("name", "email", "phone"), ("Asha", "asha@example.com", "98450 00000")]
    ).encode()
    files["every_bad_value.csv"] = lines(
        [
            HEADER,
            ("CEKEKCARDS", "MEAL_CARD_PAYMENT", "6.5", "DEFAULT"),  # 2 decimals
            ("CEKEKCARDS", "EVENT_ABC", "abc", "DEFAULT"),  # 3 not a number
            ("CEKEKCARDS", "EVENT_EXP", "1e3", "DEFAULT"),  # 4 exponent
            ("CEKEKCARDS", "EVENT_NEG", "-5", "DEFAULT"),  # 5 negative
            ("CEKEKCARDS", "EVENT_BIG", "1000001", "DEFAULT"),  # 6 above the cap
            ("CEKEKCARDS", "EVENT_PLUS", "+6", "default"),  # 7 fine: +6, default
            ("CEKEKCARDS", "EVENT_SPACE", " 6 ", "Custom"),  # 8 fine: " 6 "
            ("CEKEKCARDS", "EVENT_CONF", "6", "SPECIAL"),  # 9 configuration
            ("cekekcards", "EVENT_CASE", "6", "DEFAULT"),  # 10 lower-case company
            ("CEKEKCARDS", "meal card payment", "6", "DEFAULT"),  # 11 event as words
            ("CEK-EK", "EVENT_DASH", "6", "DEFAULT"),  # 12 company punctuation
            ("", "EVENT_NO_COMPANY", "6", "DEFAULT"),  # 13 missing company
            ("CEKEKCARDS", "", "6", "DEFAULT"),  # 14 missing event
            ("CEKEKCARDS", "EVENT_NO_AMOUNT", "", "DEFAULT"),  # 15 missing amount
            ("CEKEKCARDS", "EVENT_NO_CONF", "6", ""),  # 16 missing configuration
            ("", "", "", "x"),  # 17 everything wrong at once
            ("CEKEKCARDS", "1ST_EVENT", "1,000", "DEFAULT"),  # 18 digit first; thousands sep
        ]
    ).encode()
    files["duplicates.csv"] = lines(
        [
            HEADER,
            ("CEKEKCARDS", "MEAL_CARD_PAYMENT", "6", "DEFAULT"),  # 2
            ("CEKEKCARDS", "REFERRAL_EVENT", "50", "CUSTOM"),  # 3
            ("CEKEKCARDS", "MEAL_CARD_PAYMENT", "6", "DEFAULT"),  # 4 same as 2
            ("CEKEKCARDS", "MEAL_CARD_PAYMENT", "8", "DEFAULT"),  # 5 same pair, other amount
            ("CEK0TCW2W8", "MEAL_CARD_PAYMENT", "6", "DEFAULT"),  # 6 other company: fine
            (" CEKEKCARDS ", "REFERRAL_EVENT ", "50", "custom"),  # 7 same as 3 once trimmed
        ]
    ).encode()
    files["warnings.csv"] = lines(
        [
            HEADER,
            ("CEKEKCARDS", "MEAL_CARD_PAYMENT", "6", "DEFAULT"),  # 2
            ("CEK0TCW2W8", "MEAL_CARD_PAYMENT", "5", "DEFAULT"),  # 3
            ("CEK0000001", "MEAL_CARD_PAYMENT", "7", "DEFAULT"),  # 4
            ("CEK0000002", "MEAL_CARD_PAYMENT", "600", "CUSTOM"),  # 5 100x the median
            ("CEK0000003", "MEAL_CARD_PAYMENT", "0", "CUSTOM"),  # 6 switched off
            ("CEK0000004", "REFERRAL_EVENT", "100", "DEFAULT"),  # 7
            ("CEK0000005", "REFERRAL_EVENT", "90", "DEFAULT"),  # 8
            ("CEK0000006", "REFERRAL_EVENT", "110", "DEFAULT"),  # 9
            ("CEK0000007", "REFERRAL_EVENT", "5", "CUSTOM"),  # 10 a tenth or less
        ]
    ).encode()
    files["allocations.csv"] = lines(
        [
            ("Company ID", "event", "User ID", "Request ID"),
            ("CEKEKCARDS", "MEAL_CARD_PAYMENT", "EKQZVMQK", "COIN_REQ1234567"),
            ("CEKEKCARDS", "MEAL_CARD_PAYMENT", "EK6CYE6K", ""),
            ("CEK0TCW2W8", "INVOICE_PAYMENT", "user.name@corp", "REQ-2"),
        ]
    ).encode()
    files["allocations_bad.csv"] = lines(
        [
            ("companyId", "event", "userId", "requestId"),
            ("CEKEKCARDS", "MEAL_CARD_PAYMENT", "EKQZVMQK", "REQ1"),  # 2
            ("CEKEKCARDS", "MEAL_CARD_PAYMENT", "EK6CYE6K", "REQ1"),  # 3 requestId reused
            ("cekekcards", "MEAL_CARD_PAYMENT", "EK6CYE6K", "REQ3"),  # 4 company case
            ("CEKEKCARDS", "MEAL_CARD_PAYMENT", "", "REQ4"),  # 5 missing user
            ("CEKEKCARDS", "MEAL_CARD_PAYMENT", "user with spaces", "REQ5"),  # 6 bad user
            ("CEKEKCARDS", "MEAL_CARD_PAYMENT", "EKQZVMQK", "REQ 6"),  # 7 bad request id
            ("CEKEKCARDS", "MEAL_CARD_PAYMENT", "EKQZVMQK", ""),  # 8 repeat of 2: warning
        ]
    ).encode()
    # Old Mac Excel: lone CR line ends.
    files["cr_only.csv"] = lines([HEADER, *GOOD], eol="\r").encode()
    # Some exports end every line with the delimiter (an empty last column).
    files["trailing_delimiter.csv"] = "".join(
        ",".join(r) + ",\r\n" for r in [HEADER, *GOOD]
    ).encode()
    # A database export with a stray NUL in one cell: that row is invalid, the rest go through.
    files["nul_in_cell.csv"] = lines(
        [HEADER, GOOD[0], ("CEK\x00NUL", *GOOD[1][1:]), GOOD[2]]
    ).encode()
    # A cell pasted with a whole paragraph: the message must still show the reason.
    files["long_cell.csv"] = lines([HEADER, GOOD[0], ("CEK" + "X" * 300, *GOOD[1][1:])]).encode()
    files["amount_forms.csv"] = lines(
        [
            HEADER,
            ("CEKAF01", "MEAL_CARD_PAYMENT", " 6 ", "DEFAULT"),  # 2 fine: trimmed
            ("CEKAF02", "MEAL_CARD_PAYMENT", "06", "DEFAULT"),  # 3 fine: leading zero
            ("CEKAF03", "MEAL_CARD_PAYMENT", "6.0", "DEFAULT"),  # 4 decimals (models' rule)
            ("CEKAF04", "MEAL_CARD_PAYMENT", "£5", "DEFAULT"),  # 5 currency sign
            ("CEKAF05", "MEAL_CARD_PAYMENT", "-0", "DEFAULT"),  # 6 negative zero
            ("CEKAF06", "MEAL_CARD_PAYMENT", "1,000", "DEFAULT"),  # 7 thousands separator
            ("CEKAF07", "MEAL_CARD_PAYMENT", "\uff16", "DEFAULT"),  # 8 full-width digit
            ("CEKAF08", "MEAL_CARD_PAYMENT", "0000000000000000000000007", "DEFAULT"),  # 9 fine
        ]
    ).encode()
    return files


def write_xlsx(path: Path) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    notes = book.active
    notes.title = "Read me"
    notes.append(["Coins for March; the data is on the next sheet."])
    sheet = book.create_sheet("Configs")
    sheet.append(["Company ID", "Event Name", "Coins", "Configuration", "Owner"])
    sheet.append(["CEKEKCARDS", "MEAL_CARD_PAYMENT", 6, "DEFAULT", "Asha"])
    sheet.append(["CEKEKCARDS", "REFERRAL_EVENT", 50.0, "custom", None])  # 6.0-style float
    sheet.append([None, None, None, None, None])  # a blank row, still counted
    sheet.append(["CEK0TCW2W8", "INVOICE_PAYMENT", 6.5, "DEFAULT", "Ravi"])  # 5: decimals
    book.save(path)


def main() -> None:
    for name, data in text_files().items():
        (HERE / name).write_bytes(data)
    write_xlsx(HERE / "configs.xlsx")


if __name__ == "__main__":
    main()
