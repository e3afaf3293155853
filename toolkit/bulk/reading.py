"""Reading analysts' sheets: CSV/TSV bytes in any common encoding, or .xlsx, into a `Sheet`.

A sheet is text only: every cell is a trimmed `str` ("" when empty), every data row keeps the
row number the analyst's spreadsheet shows (header = row 1, blank rows counted but dropped), and
the columns carry canonical names (``companyId``, ``event``, ...). Judging the values is
`toolkit.bulk.validation`'s job; reading refuses only what cannot be a sheet at all, and what
is past the limits (`toolkit.settings.Limits`: file size, rows, columns, cells, cell length,
and for .xlsx each part's unpacked size and ratio), with one message naming the row, column or
part and the variable that sets the limit. A refused file is refused whole, before it costs
memory: nothing is half-read.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import hashlib
import io
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from toolkit.settings import Limits

__all__ = [
    "ALLOCATION_HEADER",
    "CONFIG_HEADER",
    "WHITESPACE",
    "Sheet",
    "SheetError",
    "check_size",
    "read_allocations",
    "read_configs",
    "sheet_from_frame",
]

CONFIG_HEADER = "companyId,event,amount,configuration"
ALLOCATION_HEADER = "companyId,event,userId,requestId"

# Exactly the characters Python's str.isspace()/str.strip() treat as whitespace. pyarrow's
# utf8_trim_whitespace (pandas' str.strip() without arguments) trims the same set, so trimming
# cells here agrees with the scalar rules in models.py; a test keeps both facts honest.
WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_TRIM = WHITESPACE + "\ufeff"  # a stray BOM (files concatenated by hand) is never content

_DELIMITERS = (",", ";", "\t", "|")
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe", "": "none (xlsx)"}
_HEADER_SEARCH_ROWS = 20
_RESERVED = ("row", "valid", "message")
_NOUN = {"configs": "configuration", "allocations": "allocation"}


def _latin1_fallback(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeDecodeError):
        raise error
    return error.object[error.start : error.end].decode("latin-1"), error.end


_LATIN1_FALLBACK = "toolkit.bulk.latin1"
codecs.register_error(_LATIN1_FALLBACK, _latin1_fallback)


class SheetError(ValueError):
    """The input cannot be read as a sheet of this kind, or is past a limit; the message says
    why (row, column or part) and what to send instead."""


@dataclass(frozen=True)
class _Layout:
    kind: str
    label: str
    header: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    aliases: dict[str, str]  # normalised header text -> canonical column
    default_note: dict[str, tuple[str, str]]  # optional column -> (fill value, note)

    @property
    def columns(self) -> tuple[str, ...]:
        return self.required + self.optional


def _aliases(table: dict[str, tuple[str, ...]]) -> dict[str, str]:
    return {_header_key(alias): canonical for canonical, names in table.items() for alias in names}


def _header_key(text: str) -> str:
    """`Company ID`, `company_id`, `companyId` and ` COMPANY-ID ` all compare equal."""
    return re.sub(r"[\s_\-.]+", "", text.strip(_TRIM)).casefold()


_COMMON = {
    "companyId": ("companyId", "company_id", "Company ID", "company"),
    "event": ("event", "Event Name", "event_name"),
}
_LAYOUTS = {
    "configs": _Layout(
        kind="configs",
        label="a configuration",
        header=CONFIG_HEADER,
        required=("companyId", "event", "amount"),
        optional=("configuration",),
        aliases=_aliases(
            {
                **_COMMON,
                "amount": ("amount", "coins", "coin"),
                "configuration": ("configuration", "config", "type", "configuration type"),
            }
        ),
        default_note={
            "configuration": (
                "DEFAULT",
                "No configuration column: every row is read as DEFAULT.",
            )
        },
    ),
    "allocations": _Layout(
        kind="allocations",
        label="an allocation",
        header=ALLOCATION_HEADER,
        required=("companyId", "event", "userId"),
        optional=("requestId",),
        aliases=_aliases(
            {
                **_COMMON,
                "userId": ("userId", "user_id", "User ID", "user"),
                "requestId": ("requestId", "request_id", "Request ID"),
            }
        ),
        default_note={
            "requestId": (
                "",
                "No requestId column: request ids will be derived from the file and row, "
                "so running the file again never allocates twice.",
            )
        },
    ),
}


@dataclass(eq=False)
class Sheet:
    """A sheet as read: text cells under canonical column names, plus how it was read.

    ``frame`` columns: ``row`` (int64, the spreadsheet row number), the layout's columns in
    canonical order (``str``; an absent optional column is filled: configuration=DEFAULT,
    requestId=""), then the extra columns as written in the header (``str``). No NaN anywhere.
    """

    frame: pd.DataFrame
    source_name: str
    encoding: str
    delimiter: str
    extra_columns: list[str]
    notes: list[str]
    sha256: str
    kind: str
    header_row: int = 1
    columns: dict[str, str] = field(default_factory=dict)  # canonical -> header as written

    def __len__(self) -> int:
        return len(self.frame)

    def describe(self) -> str:
        """One line for a log or a page: what was read and how."""
        if self.encoding == "xlsx":
            how = "Excel workbook"
        else:
            delimiter = _DELIMITER_NAMES.get(self.delimiter, repr(self.delimiter))
            how = f"{self.encoding}, delimiter {delimiter}"
        return (
            f"{self.source_name}: {len(self):,} {_NOUN[self.kind]} "
            f"row{'s' if len(self) != 1 else ''}, {how}, header on row {self.header_row}"
        )

    def __repr__(self) -> str:
        return f"Sheet({self.describe()})"


def read_configs(
    source: str | os.PathLike[str] | bytes | bytearray | memoryview | IO[Any],
    *,
    filename: str | None = None,
    limits: Limits | None = None,
) -> Sheet:
    """Read a configuration sheet (companyId, event, amount[, configuration]).

    ``source`` is a path, the bytes of an upload, or a binary file object; ``filename`` names it
    in messages (an upload has no path). ``limits`` default to `Limits.from_env()` (the
    ``COINS_MAX_*`` variables). Raises `SheetError` when it cannot be such a sheet or is past
    a limit.
    """
    return _read(source, filename, _LAYOUTS["configs"], limits)


def read_allocations(
    source: str | os.PathLike[str] | bytes | bytearray | memoryview | IO[Any],
    *,
    filename: str | None = None,
    limits: Limits | None = None,
) -> Sheet:
    """Read an allocation sheet (companyId, event, userId[, requestId]); see `read_configs`."""
    return _read(source, filename, _LAYOUTS["allocations"], limits)


def sheet_from_frame(frame: pd.DataFrame, *, kind: str = "configs", name: str = "frame") -> Sheet:
    """Treat a DataFrame built in a notebook as a sheet: same aliases, trimming and checks.

    A ``row`` column is kept as the row numbers; otherwise rows are numbered 2, 3, ... as if the
    frame had been saved with a header. Numbers become text as a spreadsheet shows them.
    """
    layout = _LAYOUTS[kind]
    rows = None
    data = frame
    if "row" in frame.columns:
        rows = pd.to_numeric(frame["row"], errors="coerce").fillna(0).astype("int64").to_numpy()
        data = frame.drop(columns=["row"])
    header = [str(c) for c in data.columns]
    cells = pd.DataFrame({i: _as_text(data.iloc[:, i]) for i in range(data.shape[1])})
    if rows is None:
        rows = np.arange(2, len(cells) + 2, dtype="int64")
    digest = hashlib.sha256(
        pd.util.hash_pandas_object(cells, index=False).to_numpy().tobytes()
    ).hexdigest()
    return _build(
        cells,
        header,
        rows,
        layout,
        source_name=name,
        encoding="frame",
        delimiter="",
        notes=[],
        sha256=digest,
        header_row=1,
    )


# -- bytes in --------------------------------------------------------------------------------


def _too_big(name: str, size: int | None, limits: Limits) -> SheetError:
    """``size`` None: only known to be past the limit (a stream read up to it)."""
    what = f"is {size / 1_000_000:,.1f} MB, more" if size is not None else "is more"
    return SheetError(
        f"{name} {what} than the {limits.max_file_mb:,g} MB a sheet may be "
        "(COINS_MAX_FILE_MB); it was not read. Split it into smaller files, or raise "
        "COINS_MAX_FILE_MB."
    )


def check_size(size: int, name: str, *, limits: Limits | None = None) -> None:
    """Refuse a file by its size alone (an upload, before its bytes are copied): `SheetError`
    when it is past ``COINS_MAX_FILE_MB``."""
    limits = limits or Limits.from_env()
    if size > limits.max_file_bytes:
        raise _too_big(name, size, limits)


def _raw_bytes(source: Any, filename: str | None, limits: Limits) -> tuple[bytes, str]:
    """The file's bytes, refused by size before they are read where the size is known."""
    most = limits.max_file_bytes
    data: Any
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        name = filename or path.name
        try:
            size = path.stat().st_size
            if path.is_file() and size > most:
                raise _too_big(name, size, limits)
            with path.open("rb") as handle:
                data = handle.read(most + 1)
        except FileNotFoundError as exc:
            raise SheetError(f"{path}: no such file") from exc
        except IsADirectoryError as exc:
            raise SheetError(f"{path} is a folder, not a sheet") from exc
        except OSError as exc:
            raise SheetError(f"{path} cannot be read: {exc.strerror or exc}") from exc
    elif isinstance(source, bytes | bytearray | memoryview):
        data, name = source, filename or "upload"
        if len(data) > most:
            raise _too_big(name, len(data), limits)
    elif hasattr(source, "read"):
        name = filename or os.path.basename(str(getattr(source, "name", "") or "")) or "upload"
        known = getattr(source, "size", None)  # an upload (Streamlit) knows its size
        if isinstance(known, int) and known > most:
            raise _too_big(name, known, limits)
        data = source.read(most + 1)
        if isinstance(data, str):  # a text-mode file object: already decoded
            data = data.encode("utf-8")
    else:
        raise TypeError(f"cannot read a sheet from {type(source).__name__}")
    if len(data) > most:  # a stream, a pipe or a growing file: more than the limit arrived
        raise _too_big(name, None, limits)
    return bytes(data), name


def _read(
    source: Any, filename: str | None, layout: _Layout, limits: Limits | None = None
) -> Sheet:
    limits = limits or Limits.from_env()
    raw, name = _raw_bytes(source, filename, limits)
    digest = hashlib.sha256(raw).hexdigest()
    if raw.startswith(b"PK\x03\x04"):
        return _read_xlsx(raw, name, digest, layout, limits)
    if raw.startswith(b"\xd0\xcf\x11\xe0"):
        raise SheetError(
            f"{name} is an old Excel .xls workbook (or a password-protected one); save it as "
            f".xlsx or CSV with the header {layout.header}"
        )
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
    return _build(
        body,
        [str(h) for h in header],
        rows,
        layout,
        source_name=name,
        encoding=encoding,
        delimiter=delimiter,
        notes=notes,
        sha256=digest,
        header_row=skip + 1,
        limits=limits,
    )


def _expected(layout: _Layout) -> str:
    optional = ", ".join(layout.optional)
    return f"Expected a header like: {layout.header} ({optional} optional)"


def _decode(raw: bytes, name: str, layout: _Layout) -> tuple[bytes, str, str]:
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
    if not head.strip(_TRIM) and not data.decode("utf-8", errors="replace").strip(_TRIM):
        raise SheetError(f"{name} is empty. {_expected(layout)}, then one row per line.")
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


def _binary_message(name: str, layout: _Layout) -> str:
    return (
        f"{name} is not a text or .xlsx sheet (it looks like binary data). "
        f"Save it as CSV (UTF-8) or .xlsx. {_expected(layout)}."
    )


def _sniff(text: str, layout: _Layout) -> tuple[str, int]:
    """Pick the delimiter under which a header row appears; return it and the rows above it."""
    head = text[:65536]
    best: tuple[int, int, int] | None = None  # (score, fields, -rank)
    choice = (",", 0)
    for rank, delimiter in enumerate(_DELIMITERS):
        records = []
        reader = csv.reader(io.StringIO(head), delimiter=delimiter)
        try:
            for record in reader:
                records.append(record)
                if len(records) >= _HEADER_SEARCH_ROWS:
                    break
        except csv.Error:
            continue
        index, score = _find_header(records, layout)
        if index is None:
            continue
        key = (score, len(records[index]), -rank)
        if best is None or key > best:
            best, choice = key, (delimiter, index)
    if best is not None and best[0] > 0:
        return choice
    # No known column under any delimiter: the most frequent one on the first line is as good a
    # guess as any; the header check then names what is missing.
    first = next((line for line in head.splitlines() if line.strip(_TRIM)), "")
    delimiter = max(_DELIMITERS, key=first.count)
    skip = next((i for i, line in enumerate(head.splitlines()) if line.strip(_TRIM)), 0)
    return (delimiter if first.count(delimiter) else ","), skip


def _find_header(records: Sequence[Sequence[str]], layout: _Layout) -> tuple[int | None, int]:
    """The first record naming every required column, else the best-scoring non-blank one."""
    best_index, best_score = None, -1
    for index, record in enumerate(records):
        if not any(cell.strip(_TRIM) for cell in record):
            continue
        found = {layout.aliases.get(_header_key(cell)) for cell in record} - {None}
        if set(layout.required) <= found:
            return index, len(found)
        if len(found) > best_score:
            best_index, best_score = index, len(found)
    return best_index, max(best_score, 0)


def _line_span(data: bytes, skip: int) -> tuple[int, int]:
    """Where line ``skip`` (0 = the first) starts and ends in ``data``."""
    start = 0
    for _ in range(skip):
        start = data.find(b"\n", start) + 1
    end = data.find(b"\n", start)
    return start, end if end >= 0 else len(data)


def _shown(names: list[str], most: int = 8, total: int | None = None) -> str:
    """A few names (each cut to 40 characters), then how many more: a 100,000-column header
    is counted, not listed."""
    total = len(names) if total is None else total
    shown = ", ".join(repr(n if len(n) <= 40 else n[:39] + "…") for n in names[:most])
    return shown + (f" and {total - most:,} more" if total > most else "")


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
            names = [n.strip(_TRIM) for n in next(csv.reader([line], delimiter=delimiter))]
            names = [n or "(blank)" for n in names]
        listed = f": {_shown(names, total=width)}" if names else ""
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


# -- xlsx ------------------------------------------------------------------------------------


def _cell_text(value: Any) -> str:
    """A cell as Excel shows it: 6.0 stored as a float is the whole number 6."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value)


def _read_xlsx(raw: bytes, name: str, digest: str, layout: _Layout, limits: Limits) -> Sheet:
    try:
        from toolkit.bulk.workbook import read_workbook  # only xlsx uploads pay for it
    except ImportError as exc:  # defusedxml is a pinned requirement; say so if it is missing
        raise SheetError(
            f"{name} is an .xlsx workbook, and reading one safely needs the {exc.name} "
            "package, which is not installed (make install installs it); or save the "
            "sheet as CSV."
        ) from exc

    def find_header(records: list[tuple[str, ...]]) -> tuple[int | None, int, bool]:
        index, score = _find_header(records, layout)
        complete = index is not None and set(layout.required) <= {
            layout.aliases.get(_header_key(c)) for c in records[index]
        }
        return index, score, complete

    sheet = read_workbook(
        raw,
        name,
        limits=limits,
        expected=_expected(layout),
        preferred="config" if layout.kind == "configs" else "alloc",
        find_header=find_header,
        search_rows=_HEADER_SEARCH_ROWS,
    )
    notes = [f"Read worksheet '{sheet.title}'."] if sheet.worksheets > 1 else []
    n = len(sheet.rows)
    cells = pd.DataFrame(
        {i: _column_series(column, n) for i, column in enumerate(sheet.columns)},
        index=pd.RangeIndex(n),
    )
    return _build(
        cells,
        sheet.header + [""] * max(len(sheet.columns) - len(sheet.header), 0),
        np.asarray(sheet.rows, dtype="int64"),
        layout,
        source_name=name,
        encoding="xlsx",
        delimiter="",
        notes=notes,
        sha256=digest,
        header_row=sheet.header_row,
        limits=limits,
        blank_rows=sheet.blank_rows,
    )


def _column_series(column: list[str] | dict[int, str], n: int) -> pd.Series:
    if isinstance(column, list):
        return pd.Series(column, dtype="str")
    values = np.full(n, "", dtype=object)  # a sparse column right of the header
    for position, text in column.items():
        values[position] = text
    return pd.Series(values, dtype="str")


# -- cells to a sheet ------------------------------------------------------------------------


def _as_text(series: pd.Series) -> pd.Series:
    """A frame column as str with "" for missing; integral floats print as whole numbers."""
    if pd.api.types.is_string_dtype(series.dtype) and not pd.api.types.is_object_dtype(
        series.dtype
    ):
        return series.fillna("").astype("str")
    if pd.api.types.is_bool_dtype(series.dtype) or pd.api.types.is_object_dtype(series.dtype):
        return pd.Series([_cell_text(v) if not _is_na(v) else "" for v in series], dtype="str")
    if pd.api.types.is_float_dtype(series.dtype):
        return pd.Series(
            [_cell_text(float(v)) if not _is_na(v) else "" for v in series], dtype="str"
        )
    return series.astype("str").where(series.notna(), "")


def _is_na(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _excel_column(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def _check_limits(
    trimmed: dict[int, pd.Series],
    header: list[str],
    rows: np.ndarray,
    keep: np.ndarray,
    source_name: str,
    limits: Limits,
    header_row: int,
) -> None:
    """The exact checks, once the cells are read: data rows, cells and the longest cell."""
    for i, title in enumerate(header):
        if len(title) > limits.max_cell_chars:
            raise SheetError(
                f"{source_name}: the header row (row {header_row}), column {_excel_column(i)} "
                f"holds {len(title):,} characters, more than the {limits.max_cell_chars:,} a "
                "cell may hold (COINS_MAX_CELL_CHARS); nothing was read."
            )
    n = int(keep.sum())
    if n > limits.max_rows:
        raise SheetError(
            f"{source_name} has {n:,} data rows, more than the {limits.max_rows:,} allowed "
            "(COINS_MAX_ROWS); nothing was read. Split it into smaller files, or raise "
            "COINS_MAX_ROWS."
        )
    if len(trimmed) > limits.max_columns:
        raise SheetError(
            f"{source_name} has {len(trimmed):,} columns, more than the {limits.max_columns:,} "
            "allowed (COINS_MAX_COLUMNS); nothing was read."
        )
    if n * len(trimmed) > limits.max_cells:
        raise SheetError(
            f"{source_name} has {n:,} rows × {len(trimmed):,} columns, more than the "
            f"{limits.max_cells:,} cells allowed (COINS_MAX_CELLS); nothing was read."
        )
    for i, column in trimmed.items():
        if not len(column):
            continue
        # Bytes are never fewer than characters: the byte lengths (offsets only) rule out
        # nearly every column without looking at its text.
        if int(pc.max(pc.binary_length(pa.array(column.array))).as_py() or 0) <= (
            limits.max_cell_chars
        ):
            continue
        lengths = column.str.len()
        if int(lengths.max()) <= limits.max_cell_chars:
            continue
        at = int(np.argmax(lengths.to_numpy(dtype="int64") > limits.max_cell_chars))
        title = header[i] if i < len(header) and header[i] else ""
        where = f"column {_excel_column(i)}" + (f" ({title!r})" if title else "")
        raise SheetError(
            f"{source_name} row {int(rows[at]):,}, {where}: a cell of {int(lengths.iloc[at]):,} "
            f"characters, more than the {limits.max_cell_chars:,} a cell may hold "
            "(COINS_MAX_CELL_CHARS); nothing was read."
        )


def _kept(column: pd.Series, keep: np.ndarray, skipped: int) -> pd.Series:
    column = column[keep] if skipped else column
    return column.reset_index(drop=True)


def _build(
    cells: pd.DataFrame,
    header: list[str],
    rows: np.ndarray,
    layout: _Layout,
    *,
    source_name: str,
    encoding: str,
    delimiter: str,
    notes: list[str],
    sha256: str,
    header_row: int,
    limits: Limits | None = None,
    blank_rows: int = 0,
) -> Sheet:
    """Trim, drop blank rows, map the header to canonical names, fill absent optional columns.

    With ``limits`` (a file, not a frame already in memory) the rows, cells and cell lengths
    are checked first. ``blank_rows`` are blank rows the reader already left out.
    """
    header = [h.strip(_TRIM) for h in header]
    trimmed = {
        i: cells.iloc[:, i].astype("str").str.strip().fillna("") for i in range(cells.shape[1])
    }
    # A row is blank when every cell is; most rows are ruled out by their first cell alone.
    blank = np.ones(len(cells), dtype=bool)
    for column in trimmed.values():
        if not blank.any():
            break
        at = np.flatnonzero(blank)
        blank[at] = (column.iloc[at] == "").to_numpy(dtype=bool)
    keep = ~blank
    skipped = int(blank.sum())
    if limits is not None:
        _check_limits(trimmed, header, rows, keep, source_name, limits, header_row)
    skipped_shown = skipped + blank_rows

    canonical: dict[str, int] = {}
    written: dict[str, str] = {}
    extras: list[tuple[str, int]] = []
    for i, title in enumerate(header):
        target = layout.aliases.get(_header_key(title)) if title else None
        if target is None:
            extras.append((title, i))
            continue
        if target in canonical:
            raise SheetError(
                f"{source_name} has two {target} columns ({written[target]!r} and {title!r}); "
                f"keep one. {_expected(layout)}."
            )
        canonical[target] = i
        written[target] = title
    missing = [c for c in layout.required if c not in canonical]
    if missing:
        found = _shown([h for h in header if h], 12) or "none"
        what = " and ".join(missing) if len(missing) <= 2 else ", ".join(missing)
        raise SheetError(
            f"{source_name} is not {layout.label} sheet: no {what} "
            f"column{'s' if len(missing) > 1 else ''} (columns found: {found}). "
            f"{_expected(layout)}."
        )

    columns: dict[str, Any] = {"row": rows[keep]}
    n = int(keep.sum())
    for name in layout.columns:
        if name in canonical:
            columns[name] = _kept(trimmed[canonical[name]], keep, skipped)
        else:
            fill, note = layout.default_note[name]
            columns[name] = pd.Series([fill] * n, dtype="str")
            notes.append(note)
    extra_names: list[str] = []
    taken = set(layout.columns) | set(_RESERVED)
    for title, i in extras:
        values = _kept(trimmed[i], keep, skipped)
        if not title:
            if not (values != "").any():
                continue  # a trailing delimiter on the header line: nothing there
            title = f"column {_excel_column(i)}"
        label, k = title, 2
        while label in taken:
            label = f"{title} ({k})"
            k += 1
        taken.add(label)
        extra_names.append(label)
        columns[label] = values
    frame = pd.DataFrame(columns)
    frame["row"] = frame["row"].astype("int64")
    renamed = [f"{w!r} → {c}" for c, w in written.items() if w != c]
    if renamed:
        notes.append("Columns read as: " + ", ".join(renamed) + ".")
    if extra_names:
        listed = ", ".join(extra_names[:20])
        more = len(extra_names) - 20
        notes.append(
            "Extra columns kept as they are: "
            + listed
            + (f" and {more:,} more ({len(extra_names):,} in all)." if more > 0 else ".")
        )
    if skipped_shown:
        notes.append(f"Skipped {skipped_shown} blank row{'s' if skipped_shown > 1 else ''}.")
    if header_row != 1:
        notes.append(f"Header found on row {header_row}; rows above it were ignored.")
    return Sheet(
        frame=frame,
        source_name=source_name,
        encoding=encoding,
        delimiter=delimiter,
        extra_columns=extra_names,
        notes=notes,
        sha256=sha256,
        kind=layout.kind,
        header_row=header_row,
        columns=written,
    )
