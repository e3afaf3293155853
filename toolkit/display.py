"""Frames for people to read, not to compute with: the one place for what a table shows where a
value is missing. Used by the app's tables (`toolkit.ui`) and the notebooks' (`notebook_helpers`).
"""

from __future__ import annotations

import pandas as pd

__all__ = ["blank_missing", "fill_from_inputs"]


def fill_from_inputs(frame: pd.DataFrame, inputs: pd.DataFrame | None) -> pd.DataFrame:
    """A copy of ``frame`` where a value is missing because the analyst's did not pass
    validation (a plan keeps only valid values): the analyst's own text from ``inputs`` (same
    index, e.g. `Plan.inputs`). The spreadsheet's ``row`` is never taken from ``inputs``."""
    out = frame.copy()
    if inputs is None:
        return out
    raw = inputs.reindex(out.index)
    for column in out.columns.intersection(raw.columns).drop("row", errors="ignore"):
        missing = out[column].isna()
        if missing.any():
            out[column] = out[column].astype(object).where(~missing, raw[column])
    return out


def blank_missing(frame: pd.DataFrame, *, text_only: bool = False) -> pd.DataFrame:
    """A copy of ``frame`` with blank cells instead of NaN, <NA> and None (a table otherwise
    shows "None" or "<NA>"). ``text_only``: only text columns; numbers and times keep their
    missing values (a number column of a table cannot hold a blank string)."""
    out = frame.copy()
    for column in out.columns:
        values = out[column]
        if text_only and not (
            pd.api.types.is_object_dtype(values.dtype) or isinstance(values.dtype, pd.StringDtype)
        ):
            continue
        missing = values.isna()
        if missing.any():
            out[column] = values.astype(object).where(~missing, "")
    return out
