"""Result files an analyst can open in Excel safely.

The rules (no cell runs as a formula, look-alike characters included; NUL shown as ``�``; cells
cut at Excel's 32,767-character limit; UTF-8 with a BOM) are `toolkit.exports`', the one
neutraliser for every file the toolkit writes; this module keeps the bulk engine's names for
them. A results file is private (``0600``) unless the user named its path.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from toolkit.exports import EXCEL_MAX_CELL, FORMULA_PREFIXES, neutralise, write_csv

__all__ = ["EXCEL_MAX_CELL", "FORMULA_PREFIXES", "neutralise", "write_results"]


def write_results(frame: pd.DataFrame, path: str | Path, *, private: bool = True) -> Path:
    """Write a results frame as an Excel-safe CSV (UTF-8 with BOM); return the path.

    ``0600`` by default; ``private=False`` for a path the user named (their umask, never wider
    than ``0644``). The file appears complete or not at all.
    """
    return write_csv(frame, path, private=private)
