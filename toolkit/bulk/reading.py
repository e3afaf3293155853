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

import hashlib
import os
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from toolkit.bulk.delimited import read_delimited
from toolkit.bulk.layouts import (
    ALLOCATION_HEADER,
    CONFIG_HEADER,
    HEADER_SEARCH_ROWS,
    LAYOUTS,
    NOUN,
    RESERVED,
    TRIM,
    WHITESPACE,
    Layout,
    SheetError,
    expected,
    find_header,
    header_key,
    how_read,
    shown_names,
)
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
    "read_sheet",
    "sheet_from_frame",
]


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
        return self.describe_as(NOUN[self.kind])

    def describe_as(self, noun: str) -> str:
        """`describe` with the rows called ``noun`` ("volume", "budget")."""
        how = how_read(self.encoding, self.delimiter)
        return (
            f"{self.source_name}: {len(self):,} {noun} "
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
    return read_sheet(source, filename, LAYOUTS["configs"], limits)


def read_allocations(
    source: str | os.PathLike[str] | bytes | bytearray | memoryview | IO[Any],
    *,
    filename: str | None = None,
    limits: Limits | None = None,
) -> Sheet:
    """Read an allocation sheet (companyId, event, userId[, requestId]); see `read_configs`."""
    return read_sheet(source, filename, LAYOUTS["allocations"], limits)


def sheet_from_frame(frame: pd.DataFrame, *, kind: str = "configs", name: str = "frame") -> Sheet:
    """Treat a DataFrame built in a notebook as a sheet: same aliases, trimming and checks.

    A ``row`` column is kept as the row numbers; otherwise rows are numbered 2, 3, ... as if the
    frame had been saved with a header. Numbers become text as a spreadsheet shows them.
    """
    layout = LAYOUTS[kind]
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


def read_sheet(
    source: Any, filename: str | None, layout: Layout, limits: Limits | None = None
) -> Sheet:
    """A sheet of any `toolkit.bulk.layouts.Layout` (the volumes and budget sheets use it):
    its bytes, refused by size first, read as .xlsx or as text, then built (`read_configs`)."""
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
    found = read_delimited(raw, name, layout, limits)
    return _build(
        found.body,
        found.header,
        found.rows,
        layout,
        source_name=name,
        encoding=found.encoding,
        delimiter=found.delimiter,
        notes=found.notes,
        sha256=digest,
        header_row=found.header_row,
        limits=limits,
    )


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


def _read_xlsx(raw: bytes, name: str, digest: str, layout: Layout, limits: Limits) -> Sheet:
    try:
        from toolkit.bulk.workbook import read_workbook  # only xlsx uploads pay for it
    except ImportError as exc:  # defusedxml is a pinned requirement; say so if it is missing
        raise SheetError(
            f"{name} is an .xlsx workbook, and reading one safely needs the {exc.name} "
            "package, which is not installed (make install installs it); or save the "
            "sheet as CSV."
        ) from exc

    def header_in(records: list[tuple[str, ...]]) -> tuple[int | None, int, bool]:
        index, score = find_header(records, layout)
        complete = index is not None and set(layout.required) <= {
            layout.aliases.get(header_key(c)) for c in records[index]
        }
        return index, score, complete

    sheet = read_workbook(
        raw,
        name,
        limits=limits,
        expected=expected(layout),
        preferred="config" if layout.kind == "configs" else "alloc",
        find_header=header_in,
        search_rows=HEADER_SEARCH_ROWS,
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
    layout: Layout,
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
    header = [h.strip(TRIM) for h in header]
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
        target = layout.aliases.get(header_key(title)) if title else None
        if target is None:
            extras.append((title, i))
            continue
        if target in canonical:
            raise SheetError(
                f"{source_name} has two {target} columns ({written[target]!r} and {title!r}); "
                f"keep one. {expected(layout)}."
            )
        canonical[target] = i
        written[target] = title
    missing = [c for c in layout.required if c not in canonical]
    if missing:
        found = shown_names([h for h in header if h], 12) or "none"
        what = " and ".join(missing) if len(missing) <= 2 else ", ".join(missing)
        raise SheetError(
            f"{source_name} is not {layout.label} sheet: no {what} "
            f"column{'s' if len(missing) > 1 else ''} (columns found: {found}). "
            f"{expected(layout)}."
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
    taken = set(layout.columns) | set(RESERVED)
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
