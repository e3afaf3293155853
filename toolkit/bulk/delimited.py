"""Text sheets (CSV, TSV, semicolon or pipe separated) in any common encoding, to cells.

The bytes are decoded (a BOM, UTF-16 without one, UTF-8, else cp1252 as browsers read it) and
kept as UTF-8; the delimiter is the one under which a header row appears among the first rows;
the shape (columns of the header, data rows, the longest possible cell) is checked against the
limits from the bytes, before anything is parsed. Then pyarrow parses (every cell text, blank
lines kept so positions stay row numbers), or pandas' C parser for ragged rows, or the csv
module for anything else. `toolkit.bulk.reading` makes a `Sheet` of the cells.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from toolkit.bulk.layouts import (
    HEADER_SEARCH_ROWS,
    TRIM,
    Layout,
    SheetError,
    expected,
    find_header,
    shown_names,
)
from toolkit.settings import Limits

__all__ = ["DELIMITERS", "Cells", "read_delimited"]

DELIMITERS = (",", ";", "\t", "|")


def _latin1_fallback(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeDecodeError):
        raise error
    return error.object[error.start : error.end].decode("latin-1"), error.end


_LATIN1_FALLBACK = "toolkit.bulk.latin1"
codecs.register_error(_LATIN1_FALLBACK, _latin1_fallback)


@dataclass
class Cells:
    """A text file's cells: ``body`` (a frame of str, columns 0..n-1, one row per line after
    the header), the ``header`` as written, each body row's spreadsheet ``rows`` number, and
    how the file was read."""

    body: pd.DataFrame
    header: list[str]
    rows: np.ndarray
    encoding: str
    delimiter: str
    notes: list[str]
    header_row: int


def read_delimited(raw: bytes, name: str, layout: Layout, limits: Limits) -> Cells:
    """The cells of a text sheet's bytes; `SheetError` when it is no text, or past a limit."""
    data, encoding, head = _decode(raw, name, layout)
    del raw  # the UTF-8 bytes are all that is kept
    notes = []
    if encoding == "cp1252":
        notes.append(f"Not UTF-8: read as {encoding} (a Windows/Excel export).")
    delimiter, skip = _sniff(head, layout)
    _check_shape(data, head, delimiter, skip, name, limits)
    cells = _parse_csv(data, delimiter, skip, name, limits)
    header = list(cells.iloc[0]) if len(cells) else []
    body = cells.iloc[1:]
    rows = np.arange(skip + 2, skip + 2 + len(body), dtype="int64")
    return Cells(
        body=body,
        header=[str(h) for h in header],
        rows=rows,
        encoding=encoding,
        delimiter=delimiter,
        notes=notes,
        header_row=skip + 1,
    )


def _decode(raw: bytes, name: str, layout: Layout) -> tuple[bytes, str, str]:
    """Returns the file as UTF-8 bytes, its encoding, and the decoded head (64 KB) for
    sniffing. UTF-8 files are checked in chunks and never held as one big str."""
    boms = (
        (b"\xff\xfe\x00\x00", "utf-32-le"),
        (b"\x00\x00\xfe\xff", "utf-32-be"),
        (b"\xef\xbb\xbf", "utf-8-sig"),
        (b"\xff\xfe", "utf-16-le"),
        (b"\xfe\xff", "utf-16-be"),
    )
    encoding = None
    body = raw
    for bom, candidate in boms:
        if raw.startswith(bom):
            encoding, body = candidate, raw[len(bom) :]
            break
    if encoding is None:
        sample = raw[:4096]
        # UTF-16 without a BOM has a NUL in every other byte; a stray NUL or two in a cell
        # (a database export) is the row's problem, for validation to name, not the file's.
        if sample.count(0) > 0.1 * len(sample):
            half = max(len(sample) // 2, 1)
            even, odd = sample[0::2].count(0), sample[1::2].count(0)
            if odd > 0.3 * half and even < 0.02 * half:
                encoding = "utf-16-le"
            elif even > 0.3 * half and odd < 0.02 * half:
                encoding = "utf-16-be"
            else:
                raise SheetError(_binary_message(name, layout))
    if encoding is not None and encoding != "utf-8-sig":
        try:
            data = body.decode(encoding).encode("utf-8")
        except UnicodeDecodeError as exc:
            raise SheetError(f"{name} starts like {encoding} text but is not valid") from exc
    elif _is_utf8(body):
        data, encoding = body, encoding or "utf-8"
    elif encoding is not None:
        raise SheetError(f"{name} starts like {encoding} text but is not valid")
    else:
        # The five bytes cp1252 leaves undefined decode as their latin-1 code points, as
        # browsers do (WHATWG windows-1252), so no file is refused for one odd byte.
        data = raw.decode("cp1252", errors=_LATIN1_FALLBACK).encode("utf-8")
        encoding = "cp1252"
    head = data[: 65536 * 4].decode("utf-8", errors="ignore")[:65536]
    if not head.strip(TRIM) and not data.decode("utf-8", errors="replace").strip(TRIM):
        raise SheetError(f"{name} is empty. {expected(layout)}, then one row per line.")
    controls = sum(1 for ch in head if ch < " " and ch not in "\t\n\r\x0c")
    if controls > 0.01 * len(head) + 8:  # a few stray ones are cells' problems
        raise SheetError(_binary_message(name, layout))
    return data, encoding, head


def _is_utf8(data: bytes) -> bool:
    """Whether ``data`` is valid UTF-8, checked a chunk at a time (no full-size copy)."""
    if data.isascii():
        return True
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    step = 1 << 20
    try:
        for start in range(0, len(view), step):
            decoder.decode(view[start : start + step], final=start + step >= len(view))
    except UnicodeDecodeError:
        return False
    return True


def _binary_message(name: str, layout: Layout) -> str:
    return (
        f"{name} is not a text or .xlsx sheet (it looks like binary data). "
        f"Save it as CSV (UTF-8) or .xlsx. {expected(layout)}."
    )


def _sniff(text: str, layout: Layout) -> tuple[str, int]:
    """Pick the delimiter under which a header row appears; return it and the rows above it."""
    head = text[:65536]
    best: tuple[int, int, int] | None = None  # (score, fields, -rank)
    choice = (",", 0)
    for rank, delimiter in enumerate(DELIMITERS):
        records = []
        reader = csv.reader(io.StringIO(head), delimiter=delimiter)
        try:
            for record in reader:
                records.append(record)
                if len(records) >= HEADER_SEARCH_ROWS:
                    break
        except csv.Error:
            continue
        index, score = find_header(records, layout)
        if index is None:
            continue
        key = (score, len(records[index]), -rank)
        if best is None or key > best:
            best, choice = key, (delimiter, index)
    if best is not None and best[0] > 0:
        return choice
    # No known column under any delimiter: the most frequent one on the first line is as good a
    # guess as any; the header check then names what is missing.
    first = next((line for line in head.splitlines() if line.strip(TRIM)), "")
    delimiter = max(DELIMITERS, key=first.count)
    skip = next((i for i, line in enumerate(head.splitlines()) if line.strip(TRIM)), 0)
    return (delimiter if first.count(delimiter) else ","), skip


def _line_span(data: bytes, skip: int) -> tuple[int, int]:
    """Where line ``skip`` (0 = the first) starts and ends in ``data``."""
    start = 0
    for _ in range(skip):
        start = data.find(b"\n", start) + 1
    end = data.find(b"\n", start)
    return start, end if end >= 0 else len(data)


def _check_shape(
    data: bytes, head: str, delimiter: str, skip: int, name: str, limits: Limits
) -> None:
    """Refuse, before parsing, a header wider than the column limit or more data rows than
    the row limit (counted from the bytes; exactly, by the csv module, when cells are quoted)."""
    start, end = _line_span(data, skip)
    width = data.count(delimiter.encode(), start, end) + 1
    if width > limits.max_columns:
        names: list[str] = []
        with contextlib.suppress(csv.Error, StopIteration, UnicodeDecodeError):
            line = data[start : min(end, start + (1 << 20))].decode("utf-8")
            names = [n.strip(TRIM) for n in next(csv.reader([line], delimiter=delimiter))]
            names = [n or "(blank)" for n in names]
        listed = f": {shown_names(names, total=width)}" if names else ""
        raise SheetError(
            f"{name}: the header row (row {skip + 1}) has {width:,} columns{listed}; more than "
            f"the {limits.max_columns:,} a sheet may have (COINS_MAX_COLUMNS). Nothing was read."
        )
    _check_runs(data, delimiter, name, limits)
    newline = b"\n" if b"\n" in data else b"\r"
    lines = data.count(newline) + 1
    if lines <= limits.max_rows + skip + 1:
        return  # cannot be more rows than that
    if b'"' in data:  # a line end inside quotes is part of a cell, not a new row
        lines = _line_ends_outside_quotes(data, newline) + 1
    rows = lines - _blank_lines(data, newline, delimiter) - skip - 1
    if rows > limits.max_rows:
        raise SheetError(
            f"{name} has more than {limits.max_rows:,} data rows, the limit (COINS_MAX_ROWS); "
            "nothing was read. Split it into smaller files, or raise COINS_MAX_ROWS."
        )


def _check_runs(data: bytes, delimiter: str, name: str, limits: Limits) -> None:
    """Refuse, before parsing, a cell that is surely too long: bytes with no delimiter and no
    line end between them belong to one cell, and a character is at most 4 bytes.

    A run longer than ``most`` covers a whole block of ``most / 2`` bytes, so only blocks with
    no delimiter and no line end at all are looked at closely (``find`` stops at the first).
    """
    most = 4 * limits.max_cell_chars
    size = len(data)
    marks = (delimiter.encode(), b"\n", b"\r")
    block = max(most // 2, 1)
    for start in range(0, size, block):
        end = min(start + block, size)
        if any(data.find(mark, start, end) >= 0 for mark in marks):
            continue
        left = max(data.rfind(mark, 0, start) for mark in marks)
        right = min((at for mark in marks if (at := data.find(mark, end)) >= 0), default=size)
        if right - left - 1 > most:
            _refuse_run(data, left + 1, name, limits)


def _refuse_run(data: bytes, position: int, name: str, limits: Limits) -> None:
    line = data.count(b"\n", 0, position) + 1
    raise SheetError(
        f"{name} row {line:,}: a cell of more than {limits.max_cell_chars:,} characters, the "
        "most a cell may hold (COINS_MAX_CELL_CHARS); nothing was read."
    )


def _line_ends_outside_quotes(data: bytes, newline: bytes) -> int:
    """Line ends that end a record: those after an even number of quotes (a doubled quote
    inside a quoted cell counts twice, so it changes nothing), a chunk at a time."""
    step = 2 << 20
    ends = 0
    inside = 0  # 1 while within quotes at the start of the chunk
    for start in range(0, len(data), step):
        chunk = np.frombuffer(
            data, dtype=np.uint8, count=min(step, len(data) - start), offset=start
        )
        quotes = np.flatnonzero(chunk == 0x22)
        breaks = np.flatnonzero(chunk == newline[0])
        ends += int(((np.searchsorted(quotes, breaks) + inside) % 2 == 0).sum())
        inside = (inside + len(quotes)) % 2
    return ends


def _blank_lines(data: bytes, newline: bytes, delimiter: str) -> int:
    """Lines with nothing but spaces and delimiters, counted a chunk at a time."""
    noise = (b" \t\x0b\x0c\r" if newline == b"\n" else b" \t\x0b\x0c\n") + delimiter.encode()
    pair = re.compile(re.escape(newline) + b"(?=" + re.escape(newline) + b")")
    blank = 0
    step = 2 << 20
    previous = newline  # the file starts as if after a line end
    for start in range(0, len(data), step):
        chunk = previous + data[start : start + step].translate(None, noise)
        blank += len(pair.findall(chunk))
        previous = chunk[-1:]
    return blank + (previous == newline)  # a last, empty line


def _csv_records(
    data: bytes, delimiter: str, name: str, *, skip: int = 0
) -> Iterator[tuple[int, list[str]]]:
    """(row number, cells) of each record, streamed by the csv module (any quoting, ragged
    rows); a cell past the module's field limit is refused as too long."""
    stream = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", newline="")
    reader = csv.reader(stream, delimiter=delimiter)
    index = 0
    begins = 1  # the line the next record starts on
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise SheetError(
                f"{name} row {begins:,}: a cell runs on to line {reader.line_num:,} ({exc}); "
                "is a quote left open? Nothing was read."
            ) from None
        index += 1
        if index > skip:
            yield index, record
        begins = reader.line_num + 1


def _parse_csv(data: bytes, delimiter: str, skip: int, name: str, limits: Limits) -> pd.DataFrame:
    """Records (header first) as a frame of str with columns 0..n-1; missing cells are ""."""
    try:
        return _parse_pyarrow(data, delimiter, skip)
    except (pa.ArrowInvalid, ValueError):
        pass  # ragged rows: the C parser pads short ones
    try:
        # skip_blank_lines=False keeps blank records, so positions stay row numbers;
        # na_filter=False keeps "NA", "null" and "" as the text they are.
        return pd.read_csv(
            io.BytesIO(data),
            sep=delimiter,
            header=None,
            dtype=str,
            na_filter=False,
            skip_blank_lines=False,
            skiprows=skip,
            engine="c",
            encoding="utf-8",
        )
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    except (pd.errors.ParserError, ValueError):
        # More cells than the header, or odd quoting: the csv module takes anything; slow,
        # but only such files pay for it.
        return _records_frame(_csv_records(data, delimiter, name, skip=skip), name, limits)


def _parse_pyarrow(data: bytes, delimiter: str, skip: int) -> pd.DataFrame:
    """The fast path: pyarrow's parser, every column text, blank lines kept (row numbers)."""
    from pyarrow import csv as pa_csv

    start = 0
    for _ in range(skip):
        start = data.find(b"\n", start) + 1
    end = data.find(b"\n", start)
    width = data[start : end if end >= 0 else len(data)].count(delimiter.encode()) + 1
    table = pa_csv.read_csv(
        io.BytesIO(data),
        read_options=pa_csv.ReadOptions(autogenerate_column_names=True, skip_rows=skip),
        parse_options=pa_csv.ParseOptions(
            delimiter=delimiter,
            # Values spanning lines need the slower serial scan; only quoted files can have them.
            newlines_in_values=b'"' in data,
            ignore_empty_lines=False,
        ),
        convert_options=pa_csv.ConvertOptions(
            column_types={f"f{i}": pa.string() for i in range(width + 1)},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
    if any(not pa.types.is_string(t) for t in table.schema.types):
        raise ValueError("a column was not read as text")
    return pd.DataFrame(
        {
            i: pd.Series(pd.arrays.ArrowStringArray(col)).astype("str")
            for i, col in enumerate(table.columns)
        }
    )


def _records_frame(
    records: Iterable[tuple[int, list[str]]], name: str, limits: Limits
) -> pd.DataFrame:
    """(row number, cells) records as a frame; a row wider than the column limit, or more
    cells than the cell limit, is refused as soon as it is seen."""
    columns: list[list[str]] = []
    header_width = None
    for count, (number, record) in enumerate(records, start=1):
        if header_width is None:
            header_width = len(record)
        if len(record) > len(columns):
            if len(record) > limits.max_columns:
                raise SheetError(
                    f"{name} row {number:,} has {len(record):,} cells, more than the "
                    f"{limits.max_columns:,} columns a sheet may have (COINS_MAX_COLUMNS); the "
                    f"header row has {header_width:,}. Nothing was read."
                )
            columns.extend([""] * (count - 1) for _ in range(len(record) - len(columns)))
        if count * len(columns) > limits.max_cells:
            raise SheetError(
                f"{name} reaches {count:,} rows × {len(columns):,} columns by row {number:,}, "
                f"more than the {limits.max_cells:,} cells allowed (COINS_MAX_CELLS); nothing "
                "was read."
            )
        for i, column in enumerate(columns):
            column.append(record[i] if i < len(record) else "")
    return pd.DataFrame({i: pd.Series(col, dtype="str") for i, col in enumerate(columns)})
