"""Result files an analyst can open in Excel safely.

A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is a formula to
Excel (CSV injection); such cells get a leading ``'`` so they show as the text they are. The
file is UTF-8 with a BOM, which is how Excel recognises UTF-8 (``₹``, ``é``). A NUL character
(which ends a cell early in Excel and many tools) shows as ``�``, and a cell longer than Excel's
32,767-character limit is cut with ``…`` rather than spilling into the next row.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

__all__ = ["FORMULA_PREFIXES", "neutralise", "write_results"]

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
EXCEL_MAX_CELL = 32_767


def _neutral_text(value: object) -> object:
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def neutralise(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose text cells (and headers) cannot run as spreadsheet formulas, and whose
    timestamps (UTC) Excel reads as dates."""
    out = frame.copy()
    for column in out.columns:
        series = out[column]
        if isinstance(series.dtype, pd.DatetimeTZDtype):
            # Excel reads "2026-11-26 13:54:19" as a date, not "…19.946477+00:00"; times are UTC.
            out[column] = series.dt.tz_convert("UTC").dt.strftime("%Y-%m-%d %H:%M:%S")
        elif pd.api.types.is_string_dtype(series) or series.dtype == object:
            text = series.astype("str")
            if text.str.contains("\x00", regex=False).fillna(False).any():
                text = text.str.replace("\x00", "\ufffd", regex=False)
            long = (text.str.len() >= EXCEL_MAX_CELL).fillna(False)
            if long.any():
                text = text.mask(long, text.str.slice(0, EXCEL_MAX_CELL - 2) + "…")
            risky = text.str.startswith(FORMULA_PREFIXES).fillna(False)
            text = text.mask(risky, "'" + text)
            out[column] = text.where(series.notna(), series)
    out.columns = [_neutral_text(str(c)) for c in out.columns]
    return out


def write_results(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a results frame as an Excel-safe CSV (UTF-8 with BOM); return the path."""
    path = Path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    neutralise(frame).to_csv(tmp, index=False, encoding="utf-8-sig", lineterminator="\r\n")
    tmp.replace(path)
    return path
