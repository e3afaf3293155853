"""Write the hostile-input corpus into a folder: `python tests/data/make_hostile.py OUT [NAME…]`.

Nothing here is committed as a file: the bombs are made at test time (``tests/test_hostile_*``
build them once per session). Each entry is one way a sheet can attack the reader — the
issue's own five (a declared-huge .xlsx, a 1 GiB shared string, 100,000 columns, a 210 MB
upload, 6 million rows) and more: XML bombs and external entities in any part and encoding,
ZIP bombs, lying sizes, deep nesting, giant cells and lines, sparse far-away cells. ``words``
are what the refusal must say (row, column or part, and the variable that sets the limit);
``env`` sets smaller limits where the same shape at the default limits would only cost test
time.
"""

from __future__ import annotations

import os
import random
import struct
import sys
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
RNS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
HEADER = ("companyId", "event", "amount")


@dataclass(frozen=True)
class Hostile:
    name: str
    why: str
    words: tuple[str, ...]
    make: Callable[[Path], None]
    env: dict[str, str] = field(default_factory=dict)
    issue: bool = False  # one of the files the issue names (2 s / 300 MB each)


# -- xlsx plumbing ---------------------------------------------------------------------------

CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" '
    'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-'
    'officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-'
    'officedocument.spreadsheetml.worksheet+xml"/>'
    "</Types>"
)
PACKAGE_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>'
)
WORKBOOK = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    f'<workbook xmlns="{NS}" xmlns:r="{RNS}"><sheets>'
    '<sheet name="configs" sheetId="1" r:id="rId1"/></sheets></workbook>'
)
WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/worksheet" Target="worksheets/sheet1.xml"/>'
    '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/sharedStrings" Target="sharedStrings.xml"/>'
    '<Relationship Id="rId3" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/styles" Target="styles.xml"/>'
    "</Relationships>"
)
STYLES = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    f'<styleSheet xmlns="{NS}"><cellXfs count="1"><xf numFmtId="0"/></cellXfs></styleSheet>'
)
SHEET_START = f'<?xml version="1.0" encoding="UTF-8"?>\n<worksheet xmlns="{NS}">'


def inline(ref: str, text: str) -> str:
    return f'<c r="{ref}" t="inlineStr"><is><t>{text}</t></is></c>'


def header_row() -> str:
    cells = "".join(inline(f"{col}1", name) for col, name in zip("ABC", HEADER, strict=True))
    return f'<row r="1">{cells}</row>'


def sheet(rows: Iterable[str], *, dimension: str | None = None) -> Iterator[bytes]:
    yield SHEET_START.encode()
    if dimension:
        yield f'<dimension ref="{dimension}"/>'.encode()
    yield b"<sheetData>"
    batch: list[str] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= 20_000:
            yield "".join(batch).encode()
            batch = []
    yield "".join(batch).encode()
    yield b"</sheetData></worksheet>"


def workbook(
    path: Path,
    sheet_parts: Iterable[bytes],
    *,
    shared: Iterable[bytes] | None = None,
    styles: Iterable[bytes] | None = None,
    extra: dict[str, Iterable[bytes]] | None = None,
    level: int = 6,
) -> None:
    """An .xlsx whose big parts are written as they are produced (never held whole)."""
    parts: dict[str, Iterable[bytes]] = {
        "[Content_Types].xml": [CONTENT_TYPES.encode()],
        "_rels/.rels": [PACKAGE_RELS.encode()],
        "xl/workbook.xml": [WORKBOOK.encode()],
        "xl/_rels/workbook.xml.rels": [WORKBOOK_RELS.encode()],
        "xl/styles.xml": styles if styles is not None else [STYLES.encode()],
        "xl/worksheets/sheet1.xml": sheet_parts,
    }
    if shared is not None:
        parts["xl/sharedStrings.xml"] = shared
    parts.update(extra or {})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=level) as book:
        for name, chunks in parts.items():
            with book.open(name, "w", force_zip64=True) as out:
                for chunk in chunks:
                    out.write(chunk)


def repeated(block: bytes, total: int) -> Iterator[bytes]:
    while total > 0:
        yield block[:total]
        total -= len(block)


# -- the issue's five ------------------------------------------------------------------------


def padding_dimension(path: Path) -> None:
    """1.6 KB that declares A1:XFD200000, one cell in row 200,000 (column XFD)."""
    rows = [header_row(), '<row r="200000">' + inline("XFD200000", "x") + "</row>"]
    workbook(path, sheet(rows, dimension="A1:XFD200000"))


def huge_shared_string(path: Path) -> None:
    """About 1 MB holding one shared string of 1 GiB."""
    size = 1 << 30

    def strings() -> Iterator[bytes]:
        yield (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<sst xmlns="{NS}" count="1" '
            'uniqueCount="1"><si><t>'
        ).encode()
        yield from repeated(b"A" * (1 << 22), size)
        yield b"</t></si></sst>"

    rows = [header_row(), '<row r="2"><c r="A2" t="s"><v>0</v></c></row>']
    workbook(path, sheet(rows), shared=strings(), level=9)


def columns_100k(path: Path) -> None:
    """1.3 MB: a header of 100,000 columns."""
    names = list(HEADER) + [f"column_{i:06d}" for i in range(len(HEADER), 100_000)]
    path.write_text(",".join(names) + "\nCEKEKCARDS,MEAL_CARD_PAYMENT,5\n")


def big_upload(path: Path) -> None:
    """210 MB of ordinary rows."""
    line = b"CEKEKCARDS,MEAL_CARD_PAYMENT,5,DEFAULT\n"
    block = line * (1 << 15)
    with path.open("wb") as out:
        out.write(b"companyId,event,amount,configuration\n")
        for chunk in repeated(block, 210_000_000):
            out.write(chunk)


def rows_6m(path: Path) -> None:
    """About 70 MB: 6,000,000 rows of shared-string cells."""

    def rows() -> Iterator[str]:
        yield header_row()
        for n in range(2, 6_000_002):
            yield (
                f'<row r="{n}"><c r="A{n}" t="s"><v>0</v></c><c r="B{n}" t="s"><v>1</v></c>'
                f'<c r="C{n}"><v>{n % 50}</v></c></row>'
            )

    shared = [
        (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<sst xmlns="{NS}">'
            "<si><t>CEKEKCARDS</t></si><si><t>MEAL_CARD_PAYMENT</t></si></sst>"
        ).encode()
    ]
    workbook(path, sheet(rows()), shared=shared, level=1)


# -- more shapes ------------------------------------------------------------------------------


def padding_dimension_column_a(path: Path) -> None:
    """(Not refused.) The same declared size, its one far cell in column A: read cheaply."""
    rows = [header_row(), '<row r="200000">' + inline("A200000", "CEKFAR") + "</row>"]
    workbook(path, sheet(rows, dimension="A1:XFD200000"))


def rows_2m_compact(path: Path) -> None:
    """2,000,000 short rows: under the part limit, over the row limit."""

    def rows() -> Iterator[str]:
        yield header_row()
        for n in range(2, 2_000_002):
            yield f'<row r="{n}"><c r="C{n}"><v>5</v></c></row>'

    workbook(path, sheet(rows()), level=1)


BILLION_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
        for i in range(1, 10)
    )
    + "]>"
)


def billion_laughs_sheet(path: Path) -> None:
    xml = (
        BILLION_LAUGHS + f'<worksheet xmlns="{NS}"><sheetData>{header_row()}'
        '<row r="2">' + inline("A2", "&lol9;") + "</row></sheetData></worksheet>"
    )
    workbook(path, [xml.encode()])


def billion_laughs_workbook_part(path: Path) -> None:
    workbook(
        path,
        sheet([header_row()]),
        extra={"xl/workbook.xml": [(BILLION_LAUGHS + WORKBOOK.split("\n", 1)[1]).encode()]},
    )


def external_entity_shared(path: Path) -> None:
    shared = (
        '<?xml version="1.0"?>\n<!DOCTYPE sst [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        f'<sst xmlns="{NS}"><si><t>&xxe;</t></si></sst>'
    )
    rows = [header_row(), '<row r="2"><c r="A2" t="s"><v>0</v></c></row>']
    workbook(path, sheet(rows), shared=[shared.encode()])


def entity_in_utf16(path: Path) -> None:
    xml = (
        BILLION_LAUGHS.replace('<?xml version="1.0"?>', '<?xml version="1.0" encoding="UTF-16"?>')
        + f'<worksheet xmlns="{NS}"><sheetData>{header_row()}</sheetData></worksheet>'
    )
    workbook(path, [xml.encode("utf-16")])


def entity_in_latin1(path: Path) -> None:
    xml = (
        BILLION_LAUGHS.replace(
            '<?xml version="1.0"?>', '<?xml version="1.0" encoding="ISO-8859-1"?>'
        )
        + f'<worksheet xmlns="{NS}"><sheetData>{header_row()}</sheetData></worksheet>'
    )
    workbook(path, [xml.encode("latin-1")])


def malformed(path: Path) -> None:
    xml = SHEET_START + "<sheetData>" + header_row() + '<row r="2"><c r="A2" t="inlineStr"><is>'
    workbook(path, [xml.encode()])


def zip_bomb_part(path: Path) -> None:
    """A workbook with a 100 MB 'image' of zeros packed 1,000 times smaller."""
    workbook(
        path,
        sheet([header_row()]),
        extra={"xl/media/image1.png": repeated(b"\0" * (1 << 22), 100_000_000)},
        level=9,
    )


def many_parts(path: Path) -> None:
    extra = {f"xl/media/pad{i}.bin": [b"x"] for i in range(12_000)}
    workbook(path, sheet([header_row()]), extra=extra, level=1)


def deep_nesting(path: Path) -> None:
    depth = 200_000
    xml = (
        SHEET_START
        + "<sheetData>"
        + header_row()
        + '<row r="2"><c r="A2" t="inlineStr"><is>'
        + "<x>" * depth
        + "</x>" * depth
        + "</is></c></row></sheetData></worksheet>"
    )
    workbook(path, [xml.encode()])


def long_inline_text(path: Path) -> None:
    """4 MB of varied letters in one cell: ZIP checks pass, the text run does not."""
    rng = random.Random(3)
    text = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(4_000_000))
    rows = [header_row(), '<row r="2">' + inline("A2", text) + "</row>"]
    workbook(path, sheet(rows))


def long_cell_xlsx(path: Path) -> None:
    rows = [
        header_row(),
        '<row r="2">' + inline("A2", "CEKEKCARDS") + inline("B2", "E" * 40_000) + "</row>",
    ]
    workbook(path, sheet(rows))


def long_cell_csv(path: Path) -> None:
    path.write_text(
        "companyId,event,amount\nCEKEKCARDS,MEAL_CARD_PAYMENT,5\nCEKEKCARDS,"
        + "E" * 40_000
        + ",6\n"
    )


def giant_line_csv(path: Path) -> None:
    """60 MB on one line, no delimiter."""
    with path.open("wb") as out:
        for chunk in repeated(b"abcdefghij" * 100_000, 60_000_000):
            out.write(chunk)


def sparse_far_cells(path: Path) -> None:
    """25,000 rows each with one value in column 1,000: 25,000,000 cells once padded."""

    def rows() -> Iterator[str]:
        yield header_row()
        for n in range(2, 25_002):
            yield f'<row r="{n}"><c r="ALL{n}"><v>1</v></c></row>'

    workbook(path, sheet(rows()))


def rows_2m_csv(path: Path) -> None:
    with path.open("wb") as out:
        out.write(b"companyId,event,amount\n")
        for chunk in repeated(b"C,E,5\n" * 100_000, 6 * 2_000_000):
            out.write(chunk)


def rows_quoted_csv(path: Path) -> None:
    with path.open("wb") as out:
        out.write(b"companyId,event,amount\n")
        for chunk in repeated(b'C,"E, F",5\n' * 100_000, 11 * 1_100_000):
            out.write(chunk)


def unclosed_quote_csv(path: Path) -> None:
    path.write_text('companyId,event,amount\nCEKEKCARDS,"never closed,5\n' + "x,y,z\n" * 100_000)


def styles_bomb(path: Path) -> None:
    def styles() -> Iterator[bytes]:
        yield f'<?xml version="1.0"?>\n<styleSheet xmlns="{NS}"><cellXfs>'.encode()
        rng = random.Random(5)
        for _ in range(60):
            yield "".join(
                f'<xf numFmtId="{rng.randint(0, 200)}" fontId="{rng.randint(0, 99)}"/>'
                for _ in range(10_000)
            ).encode()
        yield b"</cellXfs></styleSheet>"

    workbook(path, sheet([header_row()]), styles=styles())


def encrypted(path: Path) -> None:
    workbook(path, sheet([header_row()]))
    raw = bytearray(path.read_bytes())
    # Set the "encrypted" flag on every entry, local headers and central directory alike.
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = 0
        while (start := raw.find(signature, start)) >= 0:
            flags = struct.unpack_from("<H", raw, start + offset)[0]
            struct.pack_into("<H", raw, start + offset, flags | 0x1)
            start += 4
    path.write_bytes(bytes(raw))


def lying_size(path: Path) -> None:
    """The directory says the worksheet unpacks to 64 bytes; it is longer."""
    rows = [header_row()] + [
        f'<row r="{n}">{inline(f"A{n}", "CEKEKCARDS")}</row>' for n in range(2, 400)
    ]
    workbook(path, sheet(rows), level=6)
    raw = bytearray(path.read_bytes())
    name = b"xl/worksheets/sheet1.xml"
    for signature, size_at, name_len_at, name_at in (
        (b"PK\x03\x04", 22, 26, 30),
        (b"PK\x01\x02", 24, 28, 46),
    ):
        start = 0
        while (start := raw.find(signature, start)) >= 0:
            length = struct.unpack_from("<H", raw, start + name_len_at)[0]
            named = raw[start + name_at : start + name_at + length] == name
            if named and struct.unpack_from("<I", raw, start + size_at)[0] != 0xFFFFFFFF:
                struct.pack_into("<I", raw, start + size_at, 64)
            start += 4
    path.write_bytes(bytes(raw))


def row_beyond_excel(path: Path) -> None:
    rows = [header_row(), '<row r="2000000">' + inline("A2000000", "CEKEKCARDS") + "</row>"]
    workbook(path, sheet(rows))


def cell_beyond_xfd(path: Path) -> None:
    rows = [header_row(), '<row r="2">' + inline("ZZZ2", "x") + "</row>"]
    workbook(path, sheet(rows))


def shared_strings_flood(path: Path) -> None:
    """500,000 distinct texts: with COINS_MAX_ROWS=100000 more than 4 × the rows can use."""

    def strings() -> Iterator[bytes]:
        yield f'<?xml version="1.0"?>\n<sst xmlns="{NS}">'.encode()
        for start in range(0, 500_000, 10_000):
            yield "".join(f"<si><t>{i}</t></si>" for i in range(start, start + 10_000)).encode()
        yield b"</sst>"

    rows = [header_row(), '<row r="2"><c r="A2" t="s"><v>0</v></c></row>']
    workbook(path, sheet(rows), shared=strings())


def not_a_workbook(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("notes.txt", "hello")


def word_document(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", "<document/>")


CORPUS: list[Hostile] = [
    Hostile(
        "padding_dimension.xlsx",
        "declares A1:XFD200000, one cell at XFD200000",
        ("row 200,000", "XFD", "COINS_MAX_COLUMNS"),
        padding_dimension,
        issue=True,
    ),
    Hostile(
        "huge_shared_string.xlsx",
        "one shared string of 1 GiB in 1 MB",
        ("sharedStrings.xml", "COINS_MAX_XLSX_PART_MB"),
        huge_shared_string,
        issue=True,
    ),
    Hostile(
        "columns_100k.csv",
        "a header of 100,000 columns",
        ("100,000 columns", "COINS_MAX_COLUMNS", "99,992 more"),
        columns_100k,
        issue=True,
    ),
    Hostile(
        "big_upload.csv",
        "a 210 MB upload",
        ("210.0 MB", "COINS_MAX_FILE_MB"),
        big_upload,
        issue=True,
    ),
    Hostile(
        "rows_6m.xlsx",
        "6,000,000 rows in about 70 MB",
        ("sheet1.xml", "COINS_MAX_XLSX_PART_MB"),
        rows_6m,
        issue=True,
    ),
    Hostile(
        "rows_2m_compact.xlsx",
        "2,000,000 short rows under the part limit",
        ("worksheet 'configs'", "1,048,576 rows", "COINS_MAX_ROWS"),
        rows_2m_compact,
    ),
    Hostile(
        "billion_laughs_sheet.xlsx",
        "entity expansion in a worksheet",
        ("worksheet 'configs'", "DTD"),
        billion_laughs_sheet,
    ),
    Hostile(
        "billion_laughs_workbook.xlsx",
        "entity expansion in workbook.xml",
        ("workbook part", "DTD"),
        billion_laughs_workbook_part,
    ),
    Hostile(
        "external_entity.xlsx",
        "an external entity (file:///etc/passwd) in shared strings",
        ("shared texts", "DTD"),
        external_entity_shared,
    ),
    Hostile(
        "entity_utf16.xlsx",
        "entity expansion in a UTF-16 worksheet",
        ("worksheet 'configs'", "DTD"),
        entity_in_utf16,
    ),
    Hostile(
        "entity_latin1.xlsx",
        "entity expansion in an ISO-8859-1 worksheet",
        ("worksheet 'configs'", "DTD"),
        entity_in_latin1,
    ),
    Hostile(
        "malformed.xlsx",
        "a worksheet cut off mid-cell",
        ("damaged", "worksheet 'configs'", "not well-formed XML"),
        malformed,
    ),
    Hostile(
        "zip_bomb_part.xlsx",
        "a 100 MB part packed 1,000 times smaller",
        ("xl/media/image1.png", "COINS_MAX_XLSX_RATIO"),
        zip_bomb_part,
    ),
    Hostile("many_parts.xlsx", "12,000 parts", ("12,00", "files"), many_parts),
    Hostile(
        "deep_nesting.xlsx",
        "200,000 nested elements in one cell (its packing ratio allowed)",
        ("row 2", "XML elements"),
        deep_nesting,
        env={"COINS_MAX_XLSX_RATIO": "100000"},
    ),
    Hostile(
        "long_inline_text.xlsx",
        "4 MB of text in one cell",
        ("worksheet 'configs'", "COINS_MAX_CELL_CHARS"),
        long_inline_text,
    ),
    Hostile(
        "long_cell.xlsx",
        "a 40,000-character cell",
        ("row 2", "column B", "40,000 characters", "COINS_MAX_CELL_CHARS"),
        long_cell_xlsx,
    ),
    Hostile(
        "long_cell.csv", "a 40,000-character cell", ("row 3", "COINS_MAX_CELL_CHARS"), long_cell_csv
    ),
    Hostile(
        "giant_line.csv", "60 MB on one line", ("row 1", "COINS_MAX_CELL_CHARS"), giant_line_csv
    ),
    Hostile(
        "sparse_far_cells.xlsx",
        "one value per row in column 1,000",
        ("COINS_MAX_CELLS",),
        sparse_far_cells,
    ),
    Hostile("rows_2m.csv", "2,000,000 short rows", ("1,048,576", "COINS_MAX_ROWS"), rows_2m_csv),
    Hostile(
        "rows_quoted.csv",
        "1,100,000 rows with quoted cells",
        ("1,048,576", "COINS_MAX_ROWS"),
        rows_quoted_csv,
    ),
    Hostile("unclosed_quote.csv", "a quote never closed", ("row",), unclosed_quote_csv),
    Hostile("styles_bomb.xlsx", "600,000 cell styles", ("xl/styles.xml",), styles_bomb),
    Hostile("encrypted.xlsx", "the ZIP's entries flagged encrypted", ("encrypted",), encrypted),
    Hostile(
        "lying_size.xlsx",
        "a worksheet longer than the directory says",
        ("damaged", "worksheet 'configs'"),
        lying_size,
    ),
    Hostile("row_beyond_excel.xlsx", "row 2,000,000", ("2,000,000", "1,048,576"), row_beyond_excel),
    Hostile("cell_beyond_xfd.xlsx", "a cell at ZZZ2", ("ZZZ2", "XFD"), cell_beyond_xfd),
    Hostile(
        "shared_strings_flood.xlsx",
        "500,000 distinct texts",
        ("distinct texts", "COINS_MAX_ROWS"),
        shared_strings_flood,
        env={"COINS_MAX_ROWS": "100000"},
    ),
    Hostile(
        "not_a_workbook.xlsx", "a ZIP of something else", ("not an .xlsx workbook",), not_a_workbook
    ),
    Hostile("word_document.xlsx", "a Word document renamed", ("Word document",), word_document),
]
BY_NAME = {h.name: h for h in CORPUS}
# Read, not refused: declared-huge but holding one far row in column A.
CHEAP = {"padding_dimension_a.xlsx": padding_dimension_column_a}


def write(folder: Path, names: Iterable[str] | None = None) -> dict[str, Path]:
    """Write the corpus (or the ``names`` of it) into ``folder``; return name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    made = {}
    makers: dict[str, Callable[[Path], None]] = {h.name: h.make for h in CORPUS} | CHEAP
    for name in names if names is not None else makers:
        path = folder / name
        if not path.exists():
            tmp = folder / (name + ".partial")
            makers[name](tmp)
            os.replace(tmp, path)
        made[name] = path
    return made


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "hostile")
    for name, path in write(out, sys.argv[2:] or None).items():
        print(f"{path.stat().st_size:>14,}  {name}")
