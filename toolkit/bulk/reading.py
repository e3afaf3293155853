"""Reading analysts' sheets: CSV/TSV bytes in any common encoding, or .xlsx, into a `Sheet`.

A sheet is text only: every cell is a trimmed `str` ("" when empty), every data row keeps the
row number the analyst's spreadsheet shows (header = row 1, blank rows counted but dropped), and
the columns carry canonical names (``companyId``, ``event``, ...). Judging the values is
`toolkit.bulk.validation`'s job; reading refuses only what cannot be a sheet at all.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import os
import re
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa

__all__ = [
    "ALLOCATION_HEADER",
    "CONFIG_HEADER",
    "WHITESPACE",
    "Sheet",
    "SheetError",
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
    """The input cannot be read as a sheet of this kind; the message says why and what to send."""


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
) -> Sheet:
    """Read a configuration sheet (companyId, event, amount[, configuration]).

    ``source`` is a path, the bytes of an upload, or a binary file object; ``filename`` names it
    in messages (an upload has no path). Raises `SheetError` when it cannot be such a sheet.
    """
    return _read(source, filename, _LAYOUTS["configs"])


def read_allocations(
    source: str | os.PathLike[str] | bytes | bytearray | memoryview | IO[Any],
    *,
    filename: str | None = None,
) -> Sheet:
    """Read an allocation sheet (companyId, event, userId[, requestId]); see `read_configs`."""
    return _read(source, filename, _LAYOUTS["allocations"])


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


def _raw_bytes(source: Any, filename: str | None) -> tuple[bytes, str]:
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        try:
            return path.read_bytes(), filename or path.name
        except FileNotFoundError as exc:
            raise SheetError(f"{path}: no such file") from exc
        except IsADirectoryError as exc:
            raise SheetError(f"{path} is a folder, not a sheet") from exc
        except OSError as exc:
            raise SheetError(f"{path} cannot be read: {exc.strerror or exc}") from exc
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source), filename or "upload"
    if hasattr(source, "read"):
        data = source.read()
        name = filename or os.path.basename(str(getattr(source, "name", "") or "")) or "upload"
        if isinstance(data, str):  # a text-mode file object: already decoded
            data = data.encode("utf-8")
        return bytes(data), name
    raise TypeError(f"cannot read a sheet from {type(source).__name__}")


def _read(source: Any, filename: str | None, layout: _Layout) -> Sheet:
    raw, name = _raw_bytes(source, filename)
    digest = hashlib.sha256(raw).hexdigest()
    if raw.startswith(b"PK\x03\x04"):
        return _read_xlsx(raw, name, digest, layout)
    if raw.startswith(b"\xd0\xcf\x11\xe0"):
        raise SheetError(
            f"{name} is an old Excel .xls workbook; save it as .xlsx or CSV "
            f"with the header {layout.header}"
        )
    text, encoding, utf8 = _decode(raw, name, layout)
    notes = []
    if encoding == "cp1252":
        notes.append(f"Not UTF-8: read as {encoding} (a Windows/Excel export).")
    delimiter, skip = _sniff(text, layout)
    cells = _parse_csv(utf8, text, delimiter, skip)
    header = list(cells.iloc[0]) if len(cells) else []
    data = cells.iloc[1:]
    rows = np.arange(skip + 2, skip + 2 + len(data), dtype="int64")
    return _build(
        data,
        [str(h) for h in header],
        rows,
        layout,
        source_name=name,
        encoding=encoding,
        delimiter=delimiter,
        notes=notes,
        sha256=digest,
        header_row=skip + 1,
    )


def _expected(layout: _Layout) -> str:
    optional = ", ".join(layout.optional)
    return f"Expected a header like: {layout.header} ({optional} optional)"


def _decode(raw: bytes, name: str, layout: _Layout) -> tuple[str, str, bytes | None]:
    """Decode once. Returns the text, the encoding, and UTF-8 bytes when the raw ones are."""
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
    if encoding is not None:
        codec = "utf-8" if encoding == "utf-8-sig" else encoding
        try:
            text = body.decode(codec)
        except UnicodeDecodeError as exc:
            raise SheetError(f"{name} starts like {encoding} text but is not valid") from exc
        utf8 = body if codec == "utf-8" else None
    else:
        try:
            text, encoding, utf8 = raw.decode("utf-8"), "utf-8", raw
        except UnicodeDecodeError:
            # The five bytes cp1252 leaves undefined decode as their latin-1 code points, as
            # browsers do (WHATWG windows-1252), so no file is refused for one odd byte.
            text, encoding, utf8 = raw.decode("cp1252", errors=_LATIN1_FALLBACK), "cp1252", None
    if not text[:65536].strip(_TRIM) and not text.strip(_TRIM):
        raise SheetError(f"{name} is empty. {_expected(layout)}, then one row per line.")
    head = text[:65536]
    controls = sum(1 for ch in head if ch < " " and ch not in "\t\n\r\x0c")
    if controls > 0.01 * len(head) + 8:  # a few stray ones are cells' problems
        raise SheetError(_binary_message(name, layout))
    return text, encoding, utf8


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


def _find_header(records: list[list[str]], layout: _Layout) -> tuple[int | None, int]:
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


def _parse_csv(utf8: bytes | None, text: str, delimiter: str, skip: int) -> pd.DataFrame:
    """Records (header first) as a frame of str with columns 0..n-1; missing cells are ""."""
    data = utf8 if utf8 is not None else text.encode("utf-8")
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
        records = list(csv.reader(io.StringIO(text), delimiter=delimiter))[skip:]
        return _records_frame(records)


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


def _records_frame(records: list[list[str]] | list[tuple[str, ...]]) -> pd.DataFrame:
    width = max((len(r) for r in records), default=0)
    columns: list[list[str]] = [[] for _ in range(width)]
    for record in records:
        for i in range(width):
            columns[i].append(record[i] if i < len(record) else "")
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


def _read_xlsx(raw: bytes, name: str, digest: str, layout: _Layout) -> Sheet:
    import openpyxl  # only xlsx uploads pay for it

    try:
        book = openpyxl.load_workbook(io.BytesIO(raw), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise SheetError(
            f"{name} is a ZIP file but not an .xlsx workbook. {_expected(layout)}."
        ) from exc
    try:
        wanted = "config" if layout.kind == "configs" else "alloc"
        candidates = sorted(book.worksheets, key=lambda ws: wanted not in _header_key(ws.title))
        chosen = None
        for ws in candidates:
            # read_only worksheets fill missing rows with empty tuples, so positions are rows.
            records = [tuple(_cell_text(v) for v in row) for row in ws.iter_rows(values_only=True)]
            index, score = _find_header(records[:_HEADER_SEARCH_ROWS], layout)
            if chosen is None or (index is not None and score > chosen[2]):
                chosen = (ws.title, records, score if index is not None else -1, index or 0)
            if index is not None and set(layout.required) <= {
                layout.aliases.get(_header_key(c)) for c in records[index]
            }:
                chosen = (ws.title, records, score, index)
                break
    finally:
        book.close()
    if chosen is None or not any(any(c.strip(_TRIM) for c in r) for r in chosen[1]):
        raise SheetError(f"{name} is an empty workbook. {_expected(layout)}.")
    title, records, _, skip = chosen
    notes = [f"Read worksheet '{title}'."] if len(book.sheetnames) > 1 else []
    cells = _records_frame(records[skip:])
    header = list(cells.iloc[0])
    data = cells.iloc[1:]
    rows = np.arange(skip + 2, skip + 2 + len(data), dtype="int64")
    return _build(
        data,
        header,
        rows,
        layout,
        source_name=name,
        encoding="xlsx",
        delimiter="",
        notes=notes,
        sha256=digest,
        header_row=skip + 1,
    )


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
) -> Sheet:
    """Trim, drop blank rows, map the header to canonical names, fill absent optional columns."""
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
        found = ", ".join(repr(h) for h in header if h) or "none"
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
        notes.append("Extra columns kept as they are: " + ", ".join(extra_names) + ".")
    if skipped:
        notes.append(f"Skipped {skipped} blank row{'s' if skipped > 1 else ''}.")
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
