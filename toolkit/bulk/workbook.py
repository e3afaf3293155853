"""Reading an .xlsx workbook within limits, for `toolkit.bulk.reading`.

Nothing in a workbook is trusted. Before any XML is parsed, the ZIP directory is checked: how
many parts, each part's unpacked size (``COINS_MAX_XLSX_PART_MB``) and how much it expands
(``COINS_MAX_XLSX_RATIO``), encryption. Every part is then streamed, never unpacked past the
size the directory declares, through defusedxml with DTDs forbidden (so no entity expansion,
no external reference), and each chunk is checked before the parser sees it: no run of text
longer than the longest cell may be. A worksheet is first scanned for its number of rows with
values (refused early past ``COINS_MAX_ROWS``), then read row by row, in order, keeping only
what the rows hold: a declared ``<dimension>`` is ignored, missing cells are not padded, and
the read stops at the last row with a value, so formatting-only rows after the data cost
nothing. Values read as Excel shows them (``openpyxl``'s rules for numbers, dates, booleans,
shared and inline strings, cached formula results).
"""

from __future__ import annotations

import io
import posixpath
import re
import zipfile
import zlib
from array import array
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree
from xml.etree.ElementTree import Element, ParseError

import numpy as np
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse

from toolkit.bulk.layouts import SheetError
from toolkit.settings import Limits

__all__ = ["EXCEL_COLUMNS", "EXCEL_ROWS", "Worksheet", "read_workbook"]

EXCEL_ROWS = 1_048_576  # the most rows and columns an Excel worksheet can have
EXCEL_COLUMNS = 16_384
MAX_PARTS = 10_000  # an .xlsx has a few dozen parts; a ZIP with more is not one
MAX_SHEETS_SEARCHED = 64  # worksheets looked at for the header
MAX_DEPTH = 64  # a worksheet's XML is 7 elements deep
META_PART_BYTES = 16_000_000  # workbook.xml, styles.xml, relationships: read whole
RATIO_FLOOR = 1_000_000  # the expansion ratio is judged for parts that unpack past this
_CHUNK = 1 << 20
_SCAN_CARRY = 8 << 20

_MAIN = "officeDocument"
_WORKSHEET = "/worksheet"
_SHARED = "/sharedStrings"
_STYLES = "/styles"


def _refuse(message: str) -> SheetError:
    return SheetError(message)


def _mb(size: int) -> str:
    return f"{size / 1_000_000:,.1f} MB"


@dataclass
class Worksheet:
    """One worksheet as read: the header row and the data rows under it (text only)."""

    title: str
    header_row: int  # the spreadsheet's row number of the header (1 = first row)
    header: list[str]
    columns: list[list[str] | dict[int, str]]  # per column: dense list, or sparse {row index: text}
    rows: array[int]  # spreadsheet row numbers of the data rows (rows with a value)
    blank_rows: int  # rows between the header and the last data row that hold no value
    worksheets: int  # how many worksheets the workbook has
    notes: list[str] = field(default_factory=list)


# -- a part, streamed and checked --------------------------------------------------------


class _Part(io.RawIOBase):
    """A ZIP member unpacked as it is read. Each chunk is checked before anyone sees it: a run
    of bytes without markup longer than ``max_run`` (a text longer than a cell may be) stops
    the read. zipfile never hands out more than the directory declared, and checks the CRC."""

    def __init__(self, book: _Book, path: str, label: str) -> None:
        super().__init__()
        self.book = book
        self.label = label
        try:
            self._src = book.zip.open(path)
        except (KeyError, RuntimeError, NotImplementedError, zipfile.BadZipFile, OSError) as exc:
            raise book.damaged(label, exc) from exc
        self._run = 0
        self.max_run = 10 * book.limits.max_cell_chars + 1024  # UTF-8 and &#x…; both fit
        self.read_bytes = 0
        self._pending = b""

    def readable(self) -> bool:
        return True

    def peek_head(self, size: int = 1 << 16) -> bytes:
        """The first ``size`` bytes (checked), kept to be read again."""
        while len(self._pending) < size:
            data = self.chunk(size - len(self._pending))
            if not data:
                break
            self._pending += data
        return self._pending[:size]

    def readinto(self, buffer: Any) -> int:  # a writable buffer (bytearray, memoryview)
        if self._pending:
            data, self._pending = self._pending[: len(buffer)], self._pending[len(buffer) :]
        else:
            data = self.chunk(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def chunk(self, size: int = _CHUNK) -> bytes:
        try:
            data = self._src.read(size)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError) as exc:
            raise self.book.damaged(self.label, exc) from exc
        if data:
            self.read_bytes += len(data)
            self._check(data)
        return data

    def _check(self, data: bytes) -> None:
        marks = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 0x3C)  # "<"
        if not len(marks):
            longest = self._run = self._run + len(data)
        else:
            longest = max(self._run + int(marks[0]), int(np.diff(marks).max(initial=1)) - 1)
            self._run = len(data) - int(marks[-1]) - 1
        if longest > self.max_run:
            raise _refuse(
                f"{self.book.name}: {self.label} holds a text of at least {longest:,} bytes, "
                f"longer than a cell may be ({self.book.limits.max_cell_chars:,} characters, "
                "COINS_MAX_CELL_CHARS); the workbook was not read."
            )

    def close(self) -> None:
        try:
            self._src.close()
        finally:
            super().close()


# -- the workbook --------------------------------------------------------------------------


class _Book:
    def __init__(self, raw: bytes, name: str, limits: Limits, expected: str) -> None:
        self.name = name
        self.limits = limits
        self.expected = expected
        try:
            self.zip = zipfile.ZipFile(io.BytesIO(raw))
            infos = self.zip.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as exc:
            raise _refuse(
                f"{name} is a ZIP file but not an .xlsx workbook (the ZIP is damaged: {exc}). "
                f"{expected}."
            ) from exc
        self._check_directory(infos)
        self.infos = {info.filename: info for info in infos}
        self.names = {info.filename.replace("\\", "/").lower(): info.filename for info in infos}
        self._strings: _SharedStrings | None = None
        main = self._main_part()
        self.main = main
        rels = self._relationships(main)
        self.sheets: list[tuple[str, str]] = []
        self.epoch_1904 = False
        for tag, attrib in self._elements(main, "the workbook part", ("sheet", "workbookPr")):
            if tag == "workbookPr":
                self.epoch_1904 = attrib.get("date1904", "").lower() in ("1", "true")
                continue
            rid = next((v for k, v in attrib.items() if k.endswith("}id")), None)
            kind, target = rels.get(rid or "", ("", ""))
            if kind.endswith(_WORKSHEET) and target in self.infos:
                self.sheets.append((attrib.get("name", target), target))
        self.strings_path = next((t for k, t in rels.values() if k.endswith(_SHARED)), None)
        styles = next((t for k, t in rels.values() if k.endswith(_STYLES)), None)
        self.date_styles, self.timedelta_styles = self._styles(styles)

    # -- checks ------------------------------------------------------------------------

    def _check_directory(self, infos: list[zipfile.ZipInfo]) -> None:
        name, limits = self.name, self.limits
        if len(infos) > MAX_PARTS:
            raise _refuse(
                f"{name} holds {len(infos):,} files; an .xlsx workbook has a few dozen (refused "
                "as a ZIP bomb, nothing was unpacked). Save the sheet again from Excel."
            )
        for info in infos:
            if info.flag_bits & 0x1:
                raise _refuse(
                    f"{name} is encrypted (password-protected); remove the password in Excel "
                    "and save it again, or save it as CSV."
                )
            size = info.file_size
            if size > limits.max_xlsx_part_bytes:
                raise _refuse(
                    f"{name}: the part {info.filename} would unpack to {_mb(size)}, more than "
                    f"the {limits.max_xlsx_part_mb:,g} MB limit (COINS_MAX_XLSX_PART_MB); nothing "
                    "was unpacked. Split the sheet, save it as CSV, or raise the limit."
                )
            ratio = size / max(info.compress_size, 1)
            if size >= RATIO_FLOOR and ratio > limits.max_xlsx_ratio:
                raise _refuse(
                    f"{name}: the part {info.filename} would expand {ratio:,.0f} times "
                    f"({_mb(info.compress_size)} to {_mb(size)}), more than the "
                    f"{limits.max_xlsx_ratio:,g} times a workbook's parts do "
                    "(COINS_MAX_XLSX_RATIO); refused as a ZIP bomb, nothing was unpacked."
                )

    def damaged(self, label: str, exc: BaseException) -> Exception:
        reason = str(exc).strip() or type(exc).__name__
        if isinstance(exc, DefusedXmlException):
            reason = (
                "it declares a DTD or XML entities, which workbooks never do (the shape of an "
                "XML bomb)"
            )
        elif isinstance(exc, ParseError):
            reason = f"it is not well-formed XML ({reason})"
        return _refuse(
            f"{self.name} is a damaged or hostile workbook: {label} cannot be read, {reason}. "
            "Open it in Excel and save it again, or save it as CSV."
        )

    # -- parts -------------------------------------------------------------------------

    def _path(self, path: str) -> str | None:
        return self.names.get(path.replace("\\", "/").lstrip("/").lower())

    def _main_part(self) -> str:
        rels = self._relationships("")
        target = next((t for k, t in rels.values() if k.endswith(_MAIN)), None)
        found = self._path(target) if target else self._path("xl/workbook.xml")
        if found is None:
            found = self._path("xl/workbook.xml")
        if found is not None and found.lower().endswith(".xml"):
            return found
        if self._path("xl/workbook.bin"):
            what = "an .xlsb (binary) workbook"
        elif self._path("word/document.xml"):
            what = "a Word document"
        elif self._path("ppt/presentation.xml"):
            what = "a PowerPoint file"
        elif self._path("content.xml") and self._path("mimetype"):
            what = "an OpenDocument (.ods) file"
        else:
            what = "a ZIP file but not an .xlsx workbook"
        raise _refuse(f"{self.name} is {what}. Save it as .xlsx or CSV. {self.expected}.")

    def _relationships(self, part: str) -> dict[str, tuple[str, str]]:
        """Id -> (type, target part) of ``part``'s relationships ("" = the package's)."""
        folder, base = posixpath.split(part)
        rels = self._path(posixpath.join(folder, "_rels", base + ".rels"))
        if rels is None:
            return {}
        out: dict[str, tuple[str, str]] = {}
        for _, attrib in self._elements(rels, f"the part {rels}", ("Relationship",)):
            if attrib.get("TargetMode", "").lower() == "external":
                continue
            target = attrib.get("Target", "")
            if target.startswith("/"):
                resolved = target[1:]
            else:
                resolved = posixpath.normpath(posixpath.join(folder, target))
            out[attrib.get("Id", "")] = (attrib.get("Type", ""), self._path(resolved) or "")
        return out

    def _elements(
        self, path: str, label: str, wanted: tuple[str, ...]
    ) -> Iterator[tuple[str, dict[str, str]]]:
        """(local name, attributes) of the ``wanted`` elements of a small part, streamed."""
        self._small(path, label)
        root = None
        for event, element in self._parse(path, label, ("start", "end")):
            if root is None:
                root = element
            if event != "end":
                continue
            tag = _local(element.tag)
            if tag in wanted:
                yield tag, dict(element.attrib)
            element.clear()

    def _small(self, path: str, label: str) -> None:
        """Refuse a part that is read whole but is far bigger than such a part ever is."""
        if self.infos[path].file_size > min(META_PART_BYTES, self.limits.max_xlsx_part_bytes):
            raise _refuse(
                f"{self.name}: {label} ({path}) would unpack to "
                f"{_mb(self.infos[path].file_size)}; such a part is a few kilobytes in a "
                f"workbook (at most {_mb(META_PART_BYTES)} is read). Save it again from Excel."
            )

    @contextmanager
    def _starts(self, path: str, label: str) -> Iterator[Iterator[tuple[str, Element]]]:
        """The elements of a big checked part (a worksheet, the shared texts) as they start:
        one event an element, read by the C parser when the part is plain (see `_parse`)."""
        part = _Part(self, path, label)
        try:
            if _plain(part.peek_head()):
                yield ElementTree.iterparse(part, events=("start",))
            else:
                yield iterparse(part, events=("start",), forbid_dtd=True)
        except (DefusedXmlException, ParseError) as exc:
            raise self.damaged(label, exc) from exc
        finally:
            part.close()

    def _parse(
        self, path: str, label: str, events: tuple[str, ...]
    ) -> Iterator[tuple[str, Element]]:
        """The events of a checked part; DTDs (so entities and external references) and
        nesting deeper than MAX_DEPTH refused; any failure a `SheetError` naming the part.

        A plain part (UTF-8, no DTD before its root element, as every workbook writes them)
        goes to the C parser, which then cannot meet an entity declaration; anything else to
        defusedxml, which refuses the DTD itself.
        """
        part = _Part(self, path, label)
        depth = 0
        if _plain(part.peek_head()):
            parsed = ElementTree.iterparse(part, events=("start", "end"))
        else:
            parsed = iterparse(part, events=("start", "end"), forbid_dtd=True)
        try:
            for event, element in parsed:
                if event == "start":
                    depth += 1
                    if depth > MAX_DEPTH:
                        raise _refuse(
                            f"{self.name} is a damaged or hostile workbook: {label} nests its "
                            f"XML more than {MAX_DEPTH} levels deep (a worksheet needs 7)."
                        )
                else:
                    depth -= 1
                if event in events:
                    yield event, element
        except (DefusedXmlException, ParseError) as exc:
            raise self.damaged(label, exc) from exc
        finally:
            part.close()

    # -- styles and shared strings -------------------------------------------------------

    def _styles(self, path: str | None) -> tuple[frozenset[int], frozenset[int]]:
        """Which cell styles show numbers as dates (openpyxl's rule), and which as durations."""
        if not path:
            return frozenset(), frozenset()
        from openpyxl.styles.numbers import BUILTIN_FORMATS, is_date_format, is_timedelta_format

        self._small(path, "the styles part")
        custom: dict[int, str] = {}
        formats: list[int] = []
        inside = False
        for event, element in self._parse(path, "the styles part", ("start", "end")):
            tag = _local(element.tag)
            if tag == "cellXfs":
                inside = event == "start"
            elif event == "end" and tag == "numFmt":
                custom[_int(element.get("numFmtId"))] = element.get("formatCode", "")
            elif event == "end" and tag == "xf" and inside:
                formats.append(_int(element.get("numFmtId")))
            if event == "end" and tag in ("xf", "numFmt"):
                element.clear()
        dates, durations = set(), set()
        for style, fmt_id in enumerate(formats):
            code = custom.get(fmt_id) or BUILTIN_FORMATS.get(fmt_id)
            if is_date_format(code):
                dates.add(style)
            if is_timedelta_format(code):
                durations.add(style)
        return frozenset(dates), frozenset(durations)

    @property
    def strings(self) -> _SharedStrings:
        if self._strings is None:
            self._strings = _SharedStrings(self, self.strings_path)
        return self._strings

    # -- worksheets ----------------------------------------------------------------------

    def count_elements(self, path: str, label: str, root: bytes, name: bytes) -> int:
        """How many ``name`` elements a part holds, counted in its bytes (no XML parsed)."""
        part = _Part(self, path, label)
        total = 0
        tail = b""
        prefix: bytes | None = None
        try:
            while data := part.chunk():
                buffer = tail + data
                if prefix is None:
                    prefix = _root_prefix(buffer, root)
                    start = b"<" + prefix + name
                total += sum(buffer.count(start + c) for c in _AFTER_NAME)
                tail = buffer[-(len(start) + 1) :]
                # an element split across two chunks is whole in tail + next chunk; one that
                # ends the tail was counted already, so drop it from the carry
                if any(tail.endswith(start + c) for c in _AFTER_NAME):
                    tail = b""
            return total
        finally:
            part.close()

    def count_rows(self, path: str, title: str) -> int:
        """How many rows of the worksheet hold a value, from the bytes (no XML parsed);
        refused as soon as that passes the limit."""
        limit = self.limits.max_rows + 20  # a title and the header may sit above the data
        part = _Part(self, path, f"worksheet '{title}'")
        rows = 0
        carry = b""
        prefix: bytes | None = None
        try:
            while True:
                data = part.chunk()
                if prefix is None:
                    prefix = _root_prefix(carry + data, b"worksheet")
                    start = b"<" + prefix + b"row"
                    marks = [
                        np.frombuffer(b"<" + prefix + tag, dtype=np.uint8)
                        for tag in (b"row", b"v", b"is")
                    ]
                buffer = carry + data
                if data:
                    cut = buffer.rfind(start)
                    if cut <= 0 and len(buffer) < _SCAN_CARRY:
                        carry = buffer
                        continue
                    if cut > 0:
                        buffer, carry = buffer[:cut], buffer[cut:]
                    else:
                        carry = b""
                rows += _rows_with_values(buffer, *marks)
                if rows > limit:
                    raise _refuse(
                        f"{self.name}: worksheet '{title}' has more than "
                        f"{self.limits.max_rows:,} rows with values, the limit (COINS_MAX_ROWS); "
                        "nothing was read. Split the sheet, or raise COINS_MAX_ROWS."
                    )
                if not data:
                    return rows
        finally:
            part.close()

    def rows(
        self, path: str, title: str, *, last_row: int | None = None, expected: int | None = None
    ) -> Iterator[tuple[int, list[tuple[int, str]]]]:
        """(row number, [(column index from 0, text), ...]) for each row with a value, in order.

        Stops after row ``last_row``, or once ``expected`` rows with values were seen (the rest
        is formatting: padding rows), or where the rows end. No cell is invented: a gap stays a
        gap. A row is handled when the next element after it starts, so one event an element.
        """
        label = f"worksheet '{title}'"
        cell_limit = self.limits.max_cell_chars
        tags: _Tags | None = None
        sheet_data = None
        pending = None  # the row being read: complete once something after it starts
        counter = seen = count = 0  # row number; rows with values; elements in the row / above
        with self._starts(path, label) as parsed:
            for _, element in parsed:
                if tags is None:
                    tags = _Tags(element.tag)
                tag = element.tag
                if tag != tags.row and not (
                    tag in tags.after_rows and not _inside(element, pending)
                ):
                    count += 1
                    if count > _MAX_ELEMENTS:
                        where = f"row {counter + 1:,} of {label}" if pending is not None else label
                        raise _refuse(
                            f"{self.name} is a damaged or hostile workbook: {where} holds more "
                            f"than {_MAX_ELEMENTS:,} XML elements, more than a row can need."
                        )
                    if tag == tags.sheet_data:
                        sheet_data, count = element, 0
                    continue
                if pending is not None:
                    counter = self._row_number(pending, counter, label)
                    values = self._values(pending, tags, counter, label, cell_limit)
                    _drop(pending, sheet_data)
                    pending = None
                    if last_row is not None and counter > last_row:
                        return
                    if values:
                        yield counter, values
                        seen += 1
                        if expected is not None and seen >= expected:
                            return
                    if last_row is not None and counter >= last_row:
                        return
                if tag != tags.row:
                    return  # past the rows: the rest of the worksheet is not data
                pending, count = element, 0
            if pending is not None:  # the last row, when nothing follows sheetData
                counter = self._row_number(pending, counter, label)
                values = self._values(pending, tags, counter, label, cell_limit)  # type: ignore[arg-type]
                if values and (last_row is None or counter <= last_row):
                    yield counter, values

    def _row_number(self, element: Element, counter: int, label: str) -> int:
        raw = element.get("r")
        if raw is None:
            number = counter + 1
        else:
            try:
                number = int(float(raw)) if "." in raw else int(raw)
            except ValueError:
                raise _refuse(
                    f"{self.name} is a damaged workbook: {label} has a row numbered {raw[:20]!r}."
                ) from None
        if number < 1 or number > EXCEL_ROWS or number <= counter:
            raise _refuse(
                f"{self.name} is a damaged or hostile workbook: {label} has a row numbered "
                f"{number:,} after row {counter:,} (a worksheet's rows run 1 to {EXCEL_ROWS:,}, "
                "in order)."
            )
        return number

    def _values(
        self, row: Element, tags: _Tags, number: int, label: str, cell_limit: int
    ) -> list[tuple[int, str]]:
        values: list[tuple[int, str]] = []
        column = 0
        for cell in row:
            if cell.tag != tags.c:
                continue
            ref = cell.get("r")
            if ref:
                found = _column_index(ref)
                if found is None or found > EXCEL_COLUMNS:
                    raise _refuse(
                        f"{self.name} is a damaged or hostile workbook: {label} row {number:,} "
                        f"has a cell at {ref[:20]!r}, beyond the last column a worksheet can "
                        "have (XFD)."
                    )
                column = found
            else:
                column += 1
            text = self._cell(cell, tags, number, column, label)
            if text:
                if len(text) > cell_limit:
                    raise _refuse(
                        f"{self.name}: {label} row {number:,}, column {_letters(column)} holds "
                        f"{len(text):,} characters, more than the {cell_limit:,} a cell may "
                        "(COINS_MAX_CELL_CHARS); nothing was read."
                    )
                values.append((column - 1, text))
        return values

    def _cell(self, cell: Element, tags: _Tags, number: int, column: int, label: str) -> str:
        kind = cell.get("t")
        if kind == "inlineStr":
            for child in cell:
                if child.tag == tags.is_:
                    return _rich_text(child, tags)
            return ""
        value = None
        for child in cell:
            if child.tag == tags.v:
                value = child.text
                break
        if value is None or value == "":
            return ""
        if kind is None or kind == "n":
            return self._number(value, cell.get("s"))
        if kind == "s":
            strings = self.strings  # read on first use (its own refusals pass through)
            try:
                return strings[int(value)]
            except (ValueError, IndexError):
                raise _refuse(
                    f"{self.name} is a damaged workbook: {label} row {number:,}, column "
                    f"{_letters(column)} refers to shared text {value[:20]!r}, which the "
                    "workbook does not hold."
                ) from None
        if kind == "b":
            return "TRUE" if value.strip() not in ("0", "false", "") else "FALSE"
        if kind == "d":
            from openpyxl.utils.datetime import from_ISO8601

            try:
                return from_ISO8601(value).isoformat()
            except (ValueError, TypeError):
                return value
        return value  # "str" (a formula's text) and "e" (#N/A, #DIV/0!): as written

    def _number(self, value: str, style: str | None) -> str:
        try:
            number: int | float = (
                float(value) if ("." in value or "e" in value or "E" in value) else int(value)
            )
        except ValueError:
            return value
        if style and style.isdigit():
            index = int(style)
            if index in self.date_styles:
                from openpyxl.utils.datetime import (
                    CALENDAR_MAC_1904,
                    CALENDAR_WINDOWS_1900,
                    from_excel,
                )

                epoch = CALENDAR_MAC_1904 if self.epoch_1904 else CALENDAR_WINDOWS_1900
                try:
                    moment = from_excel(number, epoch, timedelta=index in self.timedelta_styles)
                except (OverflowError, ValueError):
                    return "#VALUE!"  # openpyxl's answer for a date out of range
                return moment.isoformat() if hasattr(moment, "isoformat") else str(moment)
        if isinstance(number, float):
            if number != number or number in (float("inf"), float("-inf")):
                return value
            return str(int(number)) if number.is_integer() else str(number)
        return str(number)


class _SharedStrings:
    """The workbook's shared texts, kept as one UTF-8 buffer and offsets (a few bytes a text,
    however many there are), decoded on use with a small cache."""

    def __init__(self, book: _Book, path: str | None) -> None:
        self._blob = bytearray()
        self._ends = array("q")
        self._cache: dict[int, str] = {}
        if not path:
            return
        limit = 4 * book.limits.max_rows + 1_000
        if book.count_elements(path, "the shared texts part", b"sst", b"si") > limit:
            raise _refuse(
                f"{book.name}: the workbook holds more than {limit:,} distinct texts, more "
                "than a sheet within the row limit can use (COINS_MAX_ROWS); nothing was read."
            )
        label = "the shared texts part"
        tags: _Tags | None = None
        root = pending = None
        count = 0
        with book._starts(path, label) as parsed:
            for _, element in parsed:
                if tags is None:
                    root, tags = element, _Tags(element.tag)
                    continue
                if element.tag != tags.si:
                    count += 1
                    if count > _MAX_ELEMENTS:
                        raise _refuse(
                            f"{book.name} is a damaged or hostile workbook: a text in {label} "
                            f"holds more than {_MAX_ELEMENTS:,} XML elements."
                        )
                    continue
                if pending is not None:
                    self._add(pending, tags)
                    _drop(pending, root)
                pending, count = element, 0
            if pending is not None and tags is not None:
                self._add(pending, tags)

    def _add(self, element: Element, tags: _Tags) -> None:
        text = _rich_text(element, tags).replace("x005F_", "")  # openpyxl's rule
        self._blob += text.encode("utf-8", "surrogatepass")
        self._ends.append(len(self._blob))

    def __len__(self) -> int:
        return len(self._ends)

    def __getitem__(self, index: int) -> str:
        text = self._cache.get(index)
        if text is None:
            if index < 0:
                raise IndexError(index)
            start = self._ends[index - 1] if index else 0
            text = self._blob[start : self._ends[index]].decode("utf-8", "surrogatepass")
            if len(self._cache) > 200_000:
                self._cache.clear()
            self._cache[index] = text
        return text


# -- reading a worksheet ----------------------------------------------------------------


def read_workbook(
    raw: bytes,
    name: str,
    *,
    limits: Limits,
    expected: str,
    preferred: str,
    find_header: Callable[[list[tuple[str, ...]]], tuple[int | None, int, bool]],
    search_rows: int = 20,
) -> Worksheet:
    """The worksheet that holds the sheet: the first whose top ``search_rows`` rows name every
    required column (``find_header`` says), else the best candidate; sheets whose name
    contains ``preferred`` are looked at first."""
    book = _Book(raw, name, limits, expected)
    try:
        return _read(book, find_header, preferred, search_rows)
    finally:
        book.zip.close()


def _read(
    book: _Book,
    find_header: Callable[[list[tuple[str, ...]]], tuple[int | None, int, bool]],
    preferred: str,
    search_rows: int,
) -> Worksheet:
    if not book.sheets:
        raise _refuse(f"{book.name} is an empty workbook (no worksheet). {book.expected}.")
    order = sorted(book.sheets, key=lambda s: preferred not in _sheet_key(s[0]))
    chosen: tuple[str, str, int, int] | None = None  # title, path, score, header index
    for title, path in order[:MAX_SHEETS_SEARCHED]:
        records: list[tuple[str, ...]] = [() for _ in range(search_rows)]
        for number, values in book.rows(path, title, last_row=search_rows):
            records[number - 1] = _positional(values)
        if not any(any(c.strip() for c in r) for r in records):
            if chosen is None:
                chosen = (title, path, -2, 0)  # blank at the top: any other sheet is better
            continue
        index, score, complete = find_header(records)
        score = score if index is not None else -1
        if chosen is None or score > chosen[2]:
            chosen = (title, path, score, index or 0)
        if complete:
            chosen = (title, path, score, index or 0)
            break
    assert chosen is not None
    title, path, _, index = chosen
    expected = book.count_rows(path, title)
    if expected == 0:
        raise _refuse(f"{book.name} is an empty workbook. {book.expected}.")
    sheet = _data(book, title, path, index + 1, expected)
    sheet.worksheets = len(book.sheets)
    return sheet


def _data(book: _Book, title: str, path: str, header_row: int, expected: int) -> Worksheet:
    limits = book.limits
    header: list[str] = []
    dense: list[list[str]] = []  # the header's columns, one entry per data row
    sparse: dict[int, dict[int, str]] = {}  # columns right of the header: {row index: text}
    rows = array("i")
    width = right = 0  # the header's columns; one past the rightmost column with a value
    last = header_row
    for number, values in book.rows(path, title, expected=expected):
        if number < header_row:
            continue
        if number == header_row:
            header = list(_positional(values))
            while header and not header[-1].strip():
                header.pop()
            width = right = len(header)
            dense = [[] for _ in range(width)]
            continue
        n = len(rows)
        if n >= limits.max_rows:
            raise _refuse(
                f"{book.name}: worksheet '{title}' has more than {limits.max_rows:,} data rows "
                f"(row {number:,} is one too many), the limit (COINS_MAX_ROWS); nothing was read."
            )
        rows.append(number)
        last = number
        present = dict(values)
        for i, column in enumerate(dense):
            column.append(present.pop(i, ""))
        for i, text in present.items():  # beyond the header's columns
            if i >= limits.max_columns:
                raise _refuse(
                    f"{book.name}: worksheet '{title}' row {number:,} has a value in column "
                    f"{_letters(i + 1)} (column {i + 1:,}), beyond the limit of "
                    f"{limits.max_columns:,} columns (COINS_MAX_COLUMNS); the header names "
                    f"{width:,}. Nothing was read."
                )
            sparse.setdefault(i, {})[n] = text
            right = max(right, i + 1)
        if right * len(rows) > limits.max_cells:
            raise _refuse(
                f"{book.name}: worksheet '{title}' reaches {len(rows):,} rows × {right:,} "
                f"columns by row {number:,}, more than the {limits.max_cells:,} cells allowed "
                "(COINS_MAX_CELLS); nothing was read."
            )
    if len(header) > limits.max_columns:
        raise _refuse(
            f"{book.name}: the header row (row {header_row}) of worksheet '{title}' has "
            f"{len(header):,} columns, more than the {limits.max_columns:,} allowed "
            "(COINS_MAX_COLUMNS); nothing was read."
        )
    columns: list[list[str] | dict[int, str]] = [*dense]
    columns.extend(sparse.get(i, {}) for i in range(width, right))
    return Worksheet(
        title=title,
        header_row=header_row,
        header=header,
        columns=columns,
        rows=rows,
        blank_rows=max(last - header_row - len(rows), 0),
        worksheets=0,
    )


# -- small helpers -----------------------------------------------------------------------


_MAX_ELEMENTS = 8 * EXCEL_COLUMNS  # in one row (cells, values, rich-text runs), or above them
_AFTER_ROWS = [
    "sheetCalcPr",
    "sheetProtection",
    "protectedRanges",
    "scenarios",
    "autoFilter",
    "sortState",
    "dataConsolidate",
    "customSheetViews",
    "mergeCells",
    "phoneticPr",
    "conditionalFormatting",
    "dataValidations",
    "hyperlinks",
    "printOptions",
    "pageMargins",
    "pageSetup",
    "headerFooter",
    "rowBreaks",
    "colBreaks",
    "customProperties",
    "cellWatches",
    "ignoredErrors",
    "smartTags",
    "drawing",
    "legacyDrawing",
    "legacyDrawingHF",
    "drawingHF",
    "picture",
    "oleObjects",
    "controls",
    "webPublishItems",
    "tableParts",
    "extLst",
]


class _Tags:
    """The element names of one part, in its namespace (strict or transitional, any prefix)."""

    def __init__(self, root_tag: str) -> None:
        ns = root_tag[: root_tag.index("}") + 1] if root_tag.startswith("{") else ""
        self.row, self.c, self.v = ns + "row", ns + "c", ns + "v"
        self.is_, self.t, self.r = ns + "is", ns + "t", ns + "r"
        self.si, self.sheet_data = ns + "si", ns + "sheetData"
        # what a worksheet holds after its rows: once one starts, the rows are over
        self.after_rows = frozenset(ns + name for name in _AFTER_ROWS)


def _inside(element: Element, row: Element | None) -> bool:
    """Whether ``element`` (just started) sits in ``row``: it is then on the row's chain of
    last children, where the parser is."""
    node = row
    while node is not None and len(node):
        node = node[-1]
        if node is element:
            return True
    return False


def _drop(element: Element, parent: Element | None) -> None:
    """Let go of a handled element (rows and shared texts are read once)."""
    if parent is None:
        element.clear()
        return
    try:
        parent.remove(element)
    except (ValueError, AttributeError):
        element.clear()


def _local(tag: str) -> str:
    return tag[tag.rfind("}") + 1 :]


def _int(text: str | None) -> int:
    try:
        return int(text or 0)
    except ValueError:
        return -1


def _rich_text(element: Element, tags: _Tags) -> str:
    """A string item's text: its ``t``, or its runs' ``t`` (phonetic hints left out)."""
    parts = []
    for child in element:
        if child.tag == tags.t:
            parts.append(child.text or "")
        elif child.tag == tags.r:
            for grand in child:
                if grand.tag == tags.t:
                    parts.append(grand.text or "")
    return "".join(parts)


def _positional(values: list[tuple[int, str]]) -> tuple[str, ...]:
    if not values:
        return ()
    out = [""] * (values[-1][0] + 1 if values else 0)
    for i, text in values:
        if i >= len(out):
            out.extend([""] * (i + 1 - len(out)))
        out[i] = text
    return tuple(out)


_REF = re.compile(r"\$?([A-Za-z]{1,3})\$?\d*$")


_COLUMN_OF: dict[str, int] = {}  # "B" -> 2, filled as letters are met


def _column_index(ref: str) -> int | None:
    """The column (1 = A) of a cell reference such as ``B12``; None when it is not one."""
    letters = ref.rstrip("0123456789")
    index = _COLUMN_OF.get(letters)
    if index is not None and len(letters) < len(ref):
        return index
    match = _REF.match(ref)
    if match is None:
        return None
    index = 0
    for char in match.group(1).upper():
        index = index * 26 + ord(char) - 64
    if len(_COLUMN_OF) < 20_000 and letters.isalpha() and letters.isupper():
        _COLUMN_OF[letters] = index
    return index


def _letters(column: int) -> str:
    letters = ""
    while column:
        column, rem = divmod(column - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


_AFTER_NAME = (b" ", b">", b"/", b"\n", b"\r", b"\t")  # what may follow "<row"


def _sheet_key(title: str) -> str:
    return re.sub(r"[\s_\-.]+", "", title).casefold()


_XML_DECLARATION = re.compile(rb"\A(?:\xef\xbb\xbf)?\s*<\?xml\b([^>]*)\?>")
_ENCODING = re.compile(rb"""encoding\s*=\s*["']([^"']*)["']""")
_FIRST_ELEMENT = re.compile(rb"<[A-Za-z_]")


def _plain(head: bytes) -> bool:
    """Whether a part is plain UTF-8 XML with nothing but comments and processing
    instructions before its root element (no DTD): safe for the C parser."""
    if b"\x00" in head[:4096]:
        return False  # UTF-16 or UTF-32: defusedxml reads it
    declaration = _XML_DECLARATION.match(head)
    if declaration:
        encoding = _ENCODING.search(declaration.group(1))
        if encoding and encoding.group(1).lower() not in (b"utf-8", b"utf8", b"us-ascii"):
            return False
    root = _FIRST_ELEMENT.search(head)
    if root is None:
        return False
    return b"<!" not in head[: root.start()].replace(b"<!--", b"")


def _root_prefix(head: bytes, root: bytes) -> bytes:
    """The namespace prefix a part's elements carry (``x:`` in some exports), from its root."""
    match = re.search(rb"<([A-Za-z_][\w.-]*:)?" + root + rb"[\s>]", head)
    return match.group(1) or b"" if match else b""


_NAME_END = np.frombuffer(b" >/\t\n\r", dtype=np.uint8)  # what may follow an element name


def _starts_of(data: np.ndarray, mark: np.ndarray) -> np.ndarray:
    """Where the element ``mark`` (``<row``, ``<v`` …) starts in ``data``: the bytes, then a
    character that ends a name (so ``<rowBreaks`` is not ``<row``)."""
    size = len(data) - len(mark)
    if size <= 0:
        return np.empty(0, dtype=np.int64)
    at = np.flatnonzero(data[:size] == mark[0])
    for offset in range(1, len(mark)):
        at = at[data[at + offset] == mark[offset]]
    return at[np.isin(data[at + len(mark)], _NAME_END)]


def _rows_with_values(buffer: bytes, row: np.ndarray, value: np.ndarray, inline: np.ndarray) -> int:
    """How many rows starting in ``buffer`` hold a value (a ``<v>`` or an inline ``<is>``):
    a row of only empty, styled cells is formatting, not data."""
    data = np.frombuffer(buffer, dtype=np.uint8)
    rows = _starts_of(data, row)
    if not len(rows):
        return 0
    values = np.concatenate((_starts_of(data, value), _starts_of(data, inline)))
    owners = np.searchsorted(rows, values, side="right") - 1
    return len(np.unique(owners[owners >= 0]))
