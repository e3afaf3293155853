"""What the commands print: tables for people, CSV and JSON for pipes, hints and errors on
stderr, and the progress bar glue. No command formats anything itself.

A table on a terminal shows at most `TABLE_ROWS` rows and cuts long cells (never the last
column, which holds the reason); CSV and JSON carry every row and column. CSV cells are
neutralised (`toolkit.exports`): server values are untrusted and must never run as formulas.
"""

from __future__ import annotations

import argparse
import csv
import enum
import json
import math
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias, TypeGuard

from toolkit.changes import field_changes

if TYPE_CHECKING:
    import pandas as pd

    from toolkit.bulk import ProgressBar

__all__ = [
    "PROG",
    "TABLE_ROWS",
    "JsonValue",
    "Record",
    "change_rows",
    "emit_record",
    "emit_rows",
    "error",
    "hint",
    "limited",
    "note",
    "plain",
    "print_changes",
    "progress",
    "record",
    "rows",
    "shown_rows",
    "table",
    "write_csv",
    "write_json",
]

PROG = "coins"
_MAX_CELL = 80
# A table on a terminal shows at most this many rows; CSV and JSON show all.
TABLE_ROWS = 200
_ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")

JsonValue: TypeAlias = "str | int | float | bool | list[JsonValue] | dict[str, JsonValue] | None"
Record: TypeAlias = dict[str, JsonValue]


def plain(value: object) -> JsonValue:
    """A value as JSON-able Python: enums by value, numpy scalars as Python, missing as None."""
    if value is None:
        return None
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, str | bool | int | float):
        return value
    pd = sys.modules.get("pandas")
    if pd is not None:
        try:
            if pd.isna(value) is True:
                return None
        except (TypeError, ValueError):
            pass
    if hasattr(value, "isoformat"):  # datetime, date, pandas Timestamp
        return str(value.isoformat())
    if hasattr(value, "item"):  # numpy scalar
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [plain(v) for v in value]
    if is_dataclass(value) and not isinstance(value, type):
        return record(value)
    return str(value)


def record(obj: object) -> Record:
    """A dataclass (CoinConfig, Allocation, …) or mapping as a flat dict, API names first."""
    if hasattr(obj, "to_payload"):
        return {str(k): plain(v) for k, v in obj.to_payload().items()}
    if is_dataclass(obj) and not isinstance(obj, type):
        return {_camel(k): plain(v) for k, v in asdict(obj).items()}
    if isinstance(obj, Mapping):
        return {str(k): plain(v) for k, v in obj.items()}
    return {"value": plain(obj)}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _is_frame(data: object) -> TypeGuard[pd.DataFrame]:
    return hasattr(data, "columns") and hasattr(data, "to_dict")


def rows(data: pd.DataFrame | Sequence[object]) -> tuple[list[str], list[Record]]:
    """Column names and records of a DataFrame or a list of records."""
    if _is_frame(data):
        columns = [str(c) for c in data.columns]
        records = [
            {str(k): plain(v) for k, v in rec.items()}
            for rec in data.astype(object).to_dict("records")
        ]
        return columns, records
    records = [record(item) for item in data]
    columns = []
    for rec in records:
        columns.extend(k for k in rec if k not in columns)
    return columns, records


def _cell(value: JsonValue, limit: int | None = _MAX_CELL) -> str:
    if value is None:
        return ""
    if isinstance(value, str) and _ISO_TIME.match(value):
        return value[:10] + " " + value[11:19]  # UTC to the second is plenty on a terminal
    text = " ".join(str(value).split()) if isinstance(value, str) else str(value)
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


def table(columns: Sequence[str], records: Sequence[Mapping[str, JsonValue]]) -> str:
    """A plain aligned text table; numbers right-aligned. Cells are cut at _MAX_CELL
    characters except in the last column, which holds the reason or message: cutting it
    would hide what to fix (messages quote long cells shortened already)."""
    if not columns:
        return "(nothing)"
    last = len(columns) - 1
    cells = [
        [_cell(rec.get(c), None if i == last else _MAX_CELL) for i, c in enumerate(columns)]
        for rec in records
    ]
    numeric = [
        bool(records)
        and all(
            isinstance(rec.get(c), int | float) and not isinstance(rec.get(c), bool)
            for rec in records
            if rec.get(c) is not None
        )
        for c in columns
    ]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    out = [line(columns), "  ".join("-" * w for w in widths)]
    out.extend(line(row) for row in cells)
    if not records:
        out.append("(no rows)")
    return "\n".join(out)


def write_json(data: object) -> None:
    json.dump(data, sys.stdout, ensure_ascii=False, indent=2, default=str)
    sys.stdout.write("\n")


def write_csv(columns: Sequence[str], records: Sequence[Mapping[str, JsonValue]]) -> None:
    from toolkit.exports import neutral_text  # server values are untrusted: no formulas

    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow([neutral_text(c) for c in columns])
    for rec in records:
        writer.writerow(["" if rec.get(c) is None else neutral_text(rec.get(c)) for c in columns])


def emit_rows(
    args: argparse.Namespace,
    data: pd.DataFrame | Sequence[object],
    *,
    columns: Sequence[str] | None = None,
) -> None:
    """Print many rows as a table, CSV or JSON (a list of objects)."""
    if args.format == "csv" and _is_frame(data):
        from toolkit.exports import neutralise  # server values are untrusted: no formulas

        neutralise(data, dates=False).to_csv(sys.stdout, index=False, lineterminator="\n")
        return
    all_columns, records = rows(data)
    shown = [c for c in (columns or all_columns) if c in all_columns or not records]
    if args.format == "json":
        write_json(records)
    elif args.format == "csv":
        write_csv(all_columns, records)
    else:
        print(table(shown, records))


def emit_record(args: argparse.Namespace, fields: Mapping[str, object]) -> None:
    """Print one object: field/value lines, a one-row CSV, or a JSON object."""
    values = {k: plain(v) for k, v in fields.items()}
    if args.format == "json":
        write_json(values)
    elif args.format == "csv":
        write_csv(list(values), [values])
    else:
        width = max((len(k) for k in values), default=0)
        for key, value in values.items():
            print(f"{key.ljust(width)}  {'' if value is None else value}")


def change_rows(old: Mapping[str, JsonValue], new: Mapping[str, JsonValue]) -> list[Record]:
    """Every field of either record as ``field``, ``before``, ``after`` (for a CSV), by
    `toolkit.changes.field_changes`."""
    return [
        {"field": change.field, "before": plain(change.before), "after": plain(change.after)}
        for change in field_changes(old, new)
    ]


def print_changes(old: Mapping[str, JsonValue], new: Mapping[str, JsonValue]) -> None:
    """Field by field; a changed field shows ``before → after``."""
    changes = field_changes(old, new)
    width = max((len(c.field) for c in changes), default=0)
    for change in changes:
        a = "" if change.before is None else change.before
        b = "" if change.after is None else change.after
        shown = f"{a} → {b}" if change.changed else f"{b}"
        print(f"{change.field.ljust(width)}  {shown}")


def note(args: argparse.Namespace, message: str) -> None:
    """A hint for a person at a terminal: stderr, only when interactive and not --quiet."""
    if not args.quiet and sys.stderr.isatty():
        print(message, file=sys.stderr)


def hint(args: argparse.Namespace, message: str) -> None:
    """``coins: …`` on stderr for a person at a terminal (scripts get only errors there)."""
    note(args, f"{PROG}: {message}")


def _one_line(text: object) -> str:
    return " ".join(str(text).split()) or "unknown error"


def error(message: object) -> None:
    """``coins: error: …`` on stderr, always on one line."""
    print(f"{PROG}: error: {_one_line(message)}", file=sys.stderr)


def shown_rows(args: argparse.Namespace, total: int, what: str) -> int:
    """How many of ``total`` rows to show: in a table at most TABLE_ROWS, with a hint when
    that cuts (CSV and JSON always get every row)."""
    if args.format != "table" or total <= TABLE_ROWS:
        return total
    hint(
        args,
        f"showing the first {TABLE_ROWS} of {total:,} {what}; --format csv or json gives them all",
    )
    return TABLE_ROWS


def limited(args: argparse.Namespace, frame: pd.DataFrame, what: str) -> pd.DataFrame:
    """The first `shown_rows` of ``frame``."""
    shown = shown_rows(args, len(frame), what)
    return frame if shown == len(frame) else frame.head(shown)


@contextmanager
def progress(args: argparse.Namespace, desc: str, unit: str = "row") -> Iterator[ProgressBar]:
    """The library's tqdm progress callback on stderr; off when stderr is not a terminal or
    with --quiet, and closed however the work ends."""
    from tqdm import tqdm

    from toolkit.bulk import ProgressBar

    bar = ProgressBar(
        tqdm_class=tqdm,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        disable=bool(args.quiet) or not sys.stderr.isatty(),
        leave=False,
    )
    try:
        yield bar
    finally:
        bar.close()
