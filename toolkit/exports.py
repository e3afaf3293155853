"""The one neutraliser for every CSV and .xlsx the toolkit writes: no cell runs as a formula.

A spreadsheet runs a cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a line break
as a formula (CSV injection: ``=HYPERLINK(…)``, ``@SUM(1+1)``). Such a cell gets a leading
``'`` so it shows as the text it is. The same goes for the look-alikes an IME or a copy from
the web produces — full-width ``＝ ＋ － ＠``, small forms ``﹦ ﹢ ﹣ ﹫``, super- and subscript
signs, the minus sign ``−``, every dash — and for a risky character hidden behind leading
spaces or invisible characters (zero-width space, BOM, bidi marks). Text from the server is
treated exactly like text from a sheet: untrusted.

Every writer goes through `neutralise`: the bulk results (`toolkit.bulk.write_results`), the
app's downloads and Activity export, the CLI's ``--format csv``, and the notebooks' CSV and
Excel exports (`write_csv`, `write_excel`). Files written here are private (``0600``, see
`toolkit.files`) unless the caller says the user named the path.

Besides formulas: a NUL character (which ends a cell early in Excel and many tools) shows as
``�``; a cell longer than Excel's 32,767-character limit is cut with ``…`` rather than spilling
into the next row; CSV files are UTF-8 with a BOM (how Excel recognises UTF-8: ``₹``, ``é``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from toolkit import files

__all__ = [
    "EXCEL_MAX_CELL",
    "FORMULA_PREFIXES",
    "LOOKALIKE_PREFIXES",
    "csv_bytes",
    "is_risky",
    "neutral_text",
    "neutralise",
    "write_csv",
    "write_excel",
]

# What Excel, LibreOffice and Google Sheets start a formula (or DDE) with.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n")
# Characters that look like (or normalise to, NFKC) one of them: a test derives them again
# from the Unicode database, so the list cannot fall behind it.
LOOKALIKE_PREFIXES = (
    # NFKC = + - @ or − : superscript/subscript signs, minus sign, ⩵ ⩶, Hebrew plus,
    # small forms, full-width forms
    "\u207a\u207b\u207c\u208a\u208b\u208c\u2212\u2a75\u2a76\ufb29"
    "\ufe62\ufe63\ufe66\ufe6b\uff0b\uff0d\uff1d\uff20"
    # every dash (Unicode category Pd) besides the ASCII hyphen-minus
    "\u058a\u05be\u1400\u1806\u2010\u2011\u2012\u2013\u2014\u2015\u2e17\u2e1a\u2e3a\u2e3b"
    "\u2e40\u2e5d\u301c\u3030\u30a0\ufe31\ufe32\ufe58\U00010ead"
    # other signs read as plus/minus/equals/at: ± ∓ ⁒ ➕ ➖ ˖ ˗ 🟰, the tag "@"
    "\u00b1\u2213\u2052\u2795\u2796\u02d6\u02d7\U0001f7f0\U000e0040"
)
# What may stand in front of a risky character without being seen: whitespace and the
# invisible format characters (zero-width space and joiners, BOM, soft hyphen, bidi marks).
_HIDDEN = (
    " \x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
    "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
    "\u00ad\u061c\u180e\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
    "\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069\u206a\u206b\u206c\u206d\u206e"
    "\u206f\ufeff"
)
_RISKY_CLASS = "".join(FORMULA_PREFIXES) + LOOKALIKE_PREFIXES
# The same pattern serves Python's re (object columns) and RE2 (pyarrow strings).
RISKY_PATTERN = f"^[{re.escape(_HIDDEN)}]*[{re.escape(_RISKY_CLASS)}]"
_RISKY = re.compile(RISKY_PATTERN)
EXCEL_MAX_CELL = 32_767
# Characters XML 1.0 (so .xlsx) cannot hold; openpyxl refuses a cell with one.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


def is_risky(value: object) -> bool:
    """True when ``value`` is text a spreadsheet could run as a formula."""
    return isinstance(value, str) and _RISKY.match(value) is not None


def neutral_text(value: Any) -> Any:
    """One value made safe for a spreadsheet: risky text gets a leading ``'``; other values
    (numbers, None) are returned as they are."""
    if isinstance(value, str):
        if "\x00" in value:
            value = value.replace("\x00", "\ufffd")
        if len(value) >= EXCEL_MAX_CELL:
            value = value[: EXCEL_MAX_CELL - 2] + "…"
        if _RISKY.match(value):
            return "'" + value
    return value


def neutralise(frame: pd.DataFrame, *, dates: bool = True) -> pd.DataFrame:
    """A copy whose text cells (and headers) cannot run as spreadsheet formulas.

    With ``dates`` (the default, for CSV) timezone-aware timestamps become UTC text Excel reads
    as dates (``2026-11-26 13:54:19``); ``dates=False`` leaves them to the caller.
    """
    out = frame.copy()
    for position in range(out.shape[1]):
        series = out.iloc[:, position]
        if isinstance(series.dtype, pd.DatetimeTZDtype):
            if dates:
                # Excel reads "2026-11-26 13:54:19" as a date, not "…19.946477+00:00" (UTC).
                out.isetitem(position, series.dt.tz_convert("UTC").dt.strftime("%Y-%m-%d %H:%M:%S"))
            continue
        if not (pd.api.types.is_string_dtype(series.dtype) or series.dtype == object):
            continue
        text = series.astype("str")
        if text.str.contains("\x00", regex=False).fillna(False).any():
            text = text.str.replace("\x00", "\ufffd", regex=False)
        long = (text.str.len() >= EXCEL_MAX_CELL).fillna(False)
        if long.any():
            text = text.mask(long, text.str.slice(0, EXCEL_MAX_CELL - 2) + "…")
        risky = text.str.contains(RISKY_PATTERN, regex=True).fillna(False).astype(bool)
        if risky.any():
            text = text.mask(risky, "'" + text)
        out.isetitem(position, text.where(series.notna(), series))
    out.columns = [neutral_text(str(c)) for c in out.columns]
    return out


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """An Excel-safe CSV (UTF-8 with BOM, CRLF) as bytes, for a download."""
    return neutralise(frame).to_csv(index=False, lineterminator="\r\n").encode("utf-8-sig")


def write_csv(frame: pd.DataFrame, path: str | Path, *, private: bool = True) -> Path:
    """Write ``frame`` as an Excel-safe CSV (UTF-8 with BOM); return the path.

    The file is ``0600`` unless ``private=False`` (a path the user named: their umask, never
    wider than ``0644``); it appears complete or not at all.
    """
    path = Path(path)
    files.private_dir(path.parent)
    with files.open_private(path, private=private) as handle:
        neutralise(frame).to_csv(handle, index=False, encoding="utf-8-sig", lineterminator="\r\n")
    return path


def write_excel(
    sheets: Mapping[str, pd.DataFrame] | pd.DataFrame,
    path: str | Path,
    *,
    private: bool = True,
) -> Path:
    """Write one workbook, a worksheet per frame (a single frame: one sheet), neutralised.

    Timezone-aware times are written as UTC dates (Excel has no time zones); characters XML
    cannot hold (control characters) show as ``�``. ``0600`` unless ``private=False``.
    """
    if isinstance(sheets, pd.DataFrame):
        sheets = {"Sheet1": sheets}
    path = Path(path)
    files.private_dir(path.parent)
    with (
        files.open_private(path, private=private) as handle,
        pd.ExcelWriter(handle, engine="openpyxl") as writer,
    ):
        for name, frame in sheets.items():
            table = frame.copy()
            for position in range(table.shape[1]):
                series = table.iloc[:, position]
                if isinstance(series.dtype, pd.DatetimeTZDtype):
                    table.isetitem(position, series.dt.tz_convert("UTC").dt.tz_localize(None))
                elif pd.api.types.is_string_dtype(series.dtype) or series.dtype == object:
                    table.isetitem(position, series.map(_xml_safe, na_action="ignore"))
            table.columns = [_xml_safe(str(c)) for c in table.columns]
            neutralise(table, dates=False).to_excel(
                writer, sheet_name=_sheet_name(str(name)), index=False
            )
    return path


def _xml_safe(value: Any) -> Any:
    if isinstance(value, str) and _XML_ILLEGAL.search(value):
        return _XML_ILLEGAL.sub("\ufffd", value)
    return value


def _sheet_name(name: str) -> str:
    """Excel's rules: at most 31 characters, none of ``[]:*?/\\``."""
    cleaned = re.sub(r"[\[\]:*?/\\]", "_", _xml_safe(name)).strip("'") or "Sheet"
    return cleaned[:31]
