"""What an analyst hands the registry and what a refresh or an import hands back: ids read
from pasted text or a file, and the per-id report frame with its one-line summary."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import pandas as pd

from toolkit.changes import CONFIG_FIELDS
from toolkit.frames import configs_to_frame
from toolkit.registry.schema import REPORT_COLUMNS

__all__ = ["read_ids", "report_frame", "report_summary"]

_ID_SEPARATORS = re.compile(r"[\s,;]+")


def _id_key(text: str) -> str:
    return text.strip().lower().replace("_", "").replace(" ", "")


def read_ids(data: str | bytes) -> list[str]:
    """coinConfigIds from what an analyst has: pasted text or a file's bytes.

    A CSV with a ``coinConfigId`` column (any case, ``coin_config_id``, ``Coin Config ID``) gives
    that column; otherwise every token separated by lines, spaces, commas or semicolons, with
    ``#`` comment lines skipped. Each id once, in order. ``ValueError`` for binary data.
    """
    if isinstance(data, bytes):
        if b"\x00" in data[:4096] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise ValueError("this is not text: expected coinConfigIds, one a line, or a CSV")
        for encoding in ("utf-8-sig", "utf-16", "cp1252"):
            try:
                text = data.decode(encoding)
                break
            except UnicodeDecodeError:
                continue
        else:  # pragma: no cover - cp1252 decodes nearly everything
            text = data.decode("latin-1")
    else:
        text = data
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    if "coinconfigid" in _id_key(lines[0]):
        try:
            dialect: Any = csv.Sniffer().sniff(lines[0], delimiters=",;\t")
        except csv.Error:
            dialect = csv.excel
        reader = csv.reader(io.StringIO("\n".join(lines)), dialect)
        header = [_id_key(h) for h in next(reader)]
        column = next(i for i, name in enumerate(header) if "coinconfigid" in name)
        ids = [row[column].strip() for row in reader if len(row) > column and row[column].strip()]
    else:
        ids = [
            token
            for line in lines
            if not line.lstrip().startswith("#")
            for token in _ID_SEPARATORS.split(line.strip())
            if token
        ]
    return list(dict.fromkeys(ids))


def report_summary(report: pd.DataFrame) -> str:
    """One line for a refresh / import report: counts per status."""
    if report is None or report.empty:
        return "Nothing to do: no configurations."
    counts = report["status"].value_counts()
    return ", ".join(f"{int(n)} {status}" for status, n in counts.items())


def report_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """A refresh / import report: one row per id (REPORT_COLUMNS), its summary in
    ``attrs["summary"]``."""
    frame = configs_to_frame(
        [{k: r.get(k) for k in ("coinConfigId", *CONFIG_FIELDS)} for r in rows], metadata=False
    )
    frame.insert(1, "status", pd.array([r["status"] for r in rows], dtype="str"))
    frame["changes"] = pd.array([r.get("changes") for r in rows], dtype="str")
    frame["message"] = pd.array([r.get("message") for r in rows], dtype="str")
    frame = frame[list(REPORT_COLUMNS)]
    frame.attrs["summary"] = report_summary(frame)
    return frame
