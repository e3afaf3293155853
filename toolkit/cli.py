"""The ``coins`` command line (also ``python -m toolkit``).

Like sqlite-utils' ``cli.py`` this module only translates: arguments → library calls, results →
tables, CSV or JSON on stdout, progress and errors → stderr. Every rule lives in the library
(``toolkit.bulk``, ``toolkit.registry``, ``toolkit.client``); nothing here re-implements one.

Exit status: 0 every row ended well · 1 some row invalid, failed or in conflict (or the single
request was refused) · 2 usage or fatal error (bad credentials, unreadable file, server
unreachable), with one ``coins: error: …`` line on stderr and never a traceback · 130 interrupted.
"""

from __future__ import annotations

import argparse
import csv
import enum
import json
import math
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from toolkit.errors import (
    AuthError,
    BadAnswerError,
    BlockedError,
    ConflictError,
    EnKashError,
    ForbiddenError,
    LoginUnavailableError,
    NotFoundError,
    RateLimitError,
    ServerError,
    TransportError,
    UnconfirmedError,
    ValidationError,
)
from toolkit.models import check_amount, check_configuration

__all__ = [
    "CliError",
    "build_parser",
    "cmd_allocate",
    "cmd_balance",
    "cmd_bulk_allocate",
    "cmd_bulk_create",
    "cmd_configs",
    "cmd_cost",
    "cmd_create",
    "cmd_doctor",
    "cmd_get",
    "cmd_history",
    "cmd_import_ids",
    "cmd_plan",
    "cmd_refresh",
    "cmd_revert",
    "cmd_sandbox",
    "cmd_update",
    "cmd_validate",
    "command_names",
    "main",
]

PROG = "coins"
EXIT_OK = 0
EXIT_ROWS = 1
EXIT_FATAL = 2
EXIT_INTERRUPTED = 130
# Row statuses that make a bulk command exit 1; every other status ended well.
BAD_STATUSES = frozenset({"invalid", "failed", "conflict", "unconfirmed"})
INTERRUPTED = "interrupted — run the same command again to resume"
_MAX_CELL = 80
# A table on a terminal shows at most this many rows; CSV and JSON show all.
TABLE_ROWS = 200
_ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
# What a table shows of the registry's frames (CSV and JSON carry every column).
CONFIG_TABLE = ["coinConfigId", "companyId", "event", "configuration", "amount", "updated_at"]
HISTORY_TABLE = ["audit_id", "at", "action", "outcome", "actor", "source", "changes", "message"]
# Registry report statuses (import-ids, refresh) that mean an id could not be handled.
BAD_REPORT_STATUSES = frozenset({"unknown", "invalid", "error"})


class CliError(Exception):
    """A fatal problem to report in one line (exit 2 unless ``code`` says otherwise)."""

    def __init__(self, message: str, code: int = EXIT_FATAL) -> None:
        super().__init__(message)
        self.code = code


# --------------------------------------------------------------------------- output


def _plain(value: Any) -> Any:
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
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalar
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_plain(v) for v in value]
    if is_dataclass(value) and not isinstance(value, type):
        return _record(value)
    return str(value)


def _record(obj: Any) -> dict[str, Any]:
    """A dataclass (CoinConfig, Allocation, …) or mapping as a flat dict, API names first."""
    if hasattr(obj, "to_payload"):
        return {k: _plain(v) for k, v in obj.to_payload().items()}
    if is_dataclass(obj) and not isinstance(obj, type):
        return {_camel(k): _plain(v) for k, v in asdict(obj).items()}
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    return {"value": _plain(obj)}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _is_frame(data: Any) -> bool:
    return hasattr(data, "columns") and hasattr(data, "to_dict")


def _rows(data: Any) -> tuple[list[str], list[dict[str, Any]]]:
    """Column names and records of a DataFrame or a list of records."""
    if _is_frame(data):
        columns = [str(c) for c in data.columns]
        records = [
            {str(k): _plain(v) for k, v in rec.items()}
            for rec in data.astype(object).to_dict("records")
        ]
        return columns, records
    records = [_record(item) for item in data]
    columns: list[str] = []
    for rec in records:
        columns.extend(k for k in rec if k not in columns)
    return columns, records


def _cell(value: Any, limit: int | None = _MAX_CELL) -> str:
    if value is None:
        return ""
    if isinstance(value, str) and _ISO_TIME.match(value):
        return value[:10] + " " + value[11:19]  # UTC to the second is plenty on a terminal
    text = " ".join(str(value).split()) if isinstance(value, str) else str(value)
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


def _table(columns: Sequence[str], records: Sequence[Mapping[str, Any]]) -> str:
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


def _write_json(data: Any) -> None:
    json.dump(data, sys.stdout, ensure_ascii=False, indent=2, default=str)
    sys.stdout.write("\n")


def _write_csv(columns: Sequence[str], records: Sequence[Mapping[str, Any]]) -> None:
    from toolkit.exports import neutral_text  # server values are untrusted: no formulas

    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow([neutral_text(c) for c in columns])
    for rec in records:
        writer.writerow(["" if rec.get(c) is None else neutral_text(rec.get(c)) for c in columns])


def _emit_rows(
    args: argparse.Namespace, data: Any, *, columns: Sequence[str] | None = None
) -> None:
    """Print many rows as a table, CSV or JSON (a list of objects)."""
    if args.format == "csv" and _is_frame(data):
        from toolkit.exports import neutralise  # server values are untrusted: no formulas

        neutralise(data, dates=False).to_csv(sys.stdout, index=False, lineterminator="\n")
        return
    all_columns, records = _rows(data)
    shown = [c for c in (columns or all_columns) if c in all_columns or not records]
    if args.format == "json":
        _write_json(records)
    elif args.format == "csv":
        _write_csv(all_columns, records)
    else:
        print(_table(shown, records))


def _emit_record(args: argparse.Namespace, record: Mapping[str, Any]) -> None:
    """Print one object: field/value lines, a one-row CSV, or a JSON object."""
    record = {k: _plain(v) for k, v in record.items()}
    if args.format == "json":
        _write_json(record)
    elif args.format == "csv":
        _write_csv(list(record), [record])
    else:
        width = max((len(k) for k in record), default=0)
        for key, value in record.items():
            print(f"{key.ljust(width)}  {'' if value is None else value}")


def _note(args: argparse.Namespace, message: str) -> None:
    """A hint for a person at a terminal: stderr, only when interactive and not --quiet."""
    if not args.quiet and sys.stderr.isatty():
        print(message, file=sys.stderr)


def _one_line(text: object) -> str:
    return " ".join(str(text).split()) or "unknown error"


def _error(message: object) -> None:
    print(f"{PROG}: error: {_one_line(message)}", file=sys.stderr)


@contextmanager
def _progress(args: argparse.Namespace, desc: str, unit: str = "row") -> Iterator[Any]:
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


# --------------------------------------------------------------------------- connection


def _connect(args: argparse.Namespace) -> Any:
    """The workspace from the environment; says which server it is when at a terminal."""
    from toolkit.settings import check_dotenv_permissions
    from toolkit.workspace import connect

    if warning := check_dotenv_permissions():  # .env holds the secrets
        print(f"{PROG}: warning: {warning}", file=sys.stderr)
    ws = connect(source="cli")
    if ws.is_sandbox:
        _note(
            args,
            f"{PROG}: using the embedded sandbox in {ws.settings.home} "
            "(set ENKASH_BASE_URL to talk to EnKash)",
        )
    else:
        _note(args, f"{PROG}: server {ws.settings.base_url}")
    return ws


@contextmanager
def _workspace(args: argparse.Namespace) -> Iterator[Any]:
    ws = _connect(args)
    try:
        yield ws
    finally:
        ws.close()


# --------------------------------------------------------------------------- single calls


def cmd_create(args: argparse.Namespace) -> int:
    with _workspace(args) as ws:
        config = ws.client.create_config(
            company_id=args.company,
            event=args.event,
            amount=args.amount,
            configuration=args.configuration,
        )
    _emit_record(args, _record(config))
    return EXIT_OK


def cmd_get(args: argparse.Namespace) -> int:
    with _workspace(args) as ws:
        config = ws.client.get_config(args.id)
    _emit_record(args, _record(config))
    return EXIT_OK


def cmd_update(args: argparse.Namespace) -> int:
    changes = {
        "amount": args.amount,
        "configuration": args.configuration,
        "company_id": args.company,
        "event": args.event,
    }
    changes = {k: v for k, v in changes.items() if v is not None}
    if not changes:
        raise CliError("nothing to change: give --amount, --configuration, --company or --event")
    with _workspace(args) as ws:
        before = ws.client.get_config(args.id)
        after = ws.client.update_config(args.id, known=before, **changes)
    old, new = _record(before), _record(after)
    if args.format == "json":
        _write_json({"before": old, "after": new})
        return EXIT_OK
    if args.format == "csv":
        _write_csv(["field", "before", "after"], _changes(old, new))
    else:
        _print_changes(old, new)
    return EXIT_OK


def _changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        {"field": key, "before": old.get(key), "after": new.get(key)}
        for key in dict.fromkeys([*old, *new])
    ]


def _print_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    """Field by field; a changed field shows ``before → after``."""
    rows = _changes(old, new)
    width = max((len(r["field"]) for r in rows), default=0)
    for row in rows:
        a = "" if row["before"] is None else row["before"]
        b = "" if row["after"] is None else row["after"]
        shown = f"{a} → {b}" if row["before"] != row["after"] else f"{b}"
        print(f"{row['field'].ljust(width)}  {shown}")


def cmd_allocate(args: argparse.Namespace) -> int:
    with _workspace(args) as ws:
        allocation = ws.client.allocate_coins(
            company_id=args.company,
            event=args.event,
            user_id=args.user,
            request_id=args.request_id,
            # Re-running the same command with the same request id is safe: the API never
            # allocates twice for one request id, so a duplicate means "already done".
            duplicate_is_done=args.request_id is not None,
        )
    record = _record(allocation)
    if args.format == "table":
        print(f"request id: {allocation.request_id}")
        if getattr(allocation, "already_done", False):
            print(
                f"request id {allocation.request_id} was used before: nothing allocated twice "
                "(if that was a different allocation, run again with a new --request-id)"
            )
        elif allocation.message:
            print(allocation.message)
        return EXIT_OK
    _emit_record(args, record)
    return EXIT_OK


def cmd_doctor(args: argparse.Namespace) -> int:
    from toolkit.doctor import PROBE_EVENT, PROBE_USER, probe_embedded, run_doctor

    with _workspace(args) as ws:
        scratch = args.scratch_company
        if ws.is_sandbox and scratch is None:
            # The embedded sandbox is ours: probed in full without asking, on a private twin.
            report = probe_embedded(ws.client, ws.settings.home)
            _print_doctor(args, report)
            return EXIT_OK
        if scratch and not args.yes:
            question = (
                f"This creates configuration {args.scratch_company}/{PROBE_EVENT} (amount 0) on "
                f"{ws.client.base_url}, creates it a second time, and allocates 0 coins twice "
                f"to user {PROBE_USER} with one requestId. No coin is awarded. Go on? [y/N] "
            )
            if not sys.stdin.isatty():
                raise CliError(
                    "--scratch-company needs a confirmation: answer at a terminal or add --yes"
                )
            print(question, end="", file=sys.stderr, flush=True)
            if sys.stdin.readline().strip().lower() not in ("y", "yes"):
                _error("nothing done")
                return EXIT_FATAL
        report = run_doctor(ws.client, scratch_company=scratch, home=ws.settings.home)
    _print_doctor(args, report)
    return EXIT_OK


def _print_doctor(args: argparse.Namespace, report: Any) -> None:
    if args.format == "json":
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print("\n".join(report.lines()))


def cmd_balance(args: argparse.Namespace) -> int:
    with _workspace(args) as ws:
        balance = ws.client.get_balance(args.user)
    if args.format == "table":
        print(balance)
    else:
        _emit_record(args, {"userId": args.user, "balance": balance})
    return EXIT_OK


# --------------------------------------------------------------------------- registry


def cmd_configs(args: argparse.Namespace) -> int:
    with _workspace(args) as ws:
        frame = ws.registry.to_frame()
    if args.company:
        frame = frame[frame["companyId"] == args.company]
    if args.event:
        frame = frame[frame["event"] == args.event]
    _emit_rows(args, _limited(args, frame, "configurations"), columns=CONFIG_TABLE)
    if args.format == "table":
        _hint(args, f"{len(frame)} configuration(s) known locally; refresh re-fetches them")
    return EXIT_OK


def cmd_refresh(args: argparse.Namespace) -> int:
    with _workspace(args) as ws, _progress(args, "refresh", unit="config") as bar:
        result = ws.registry.refresh(progress=bar)
    return _emit_outcome(args, result)


def _read_ids(path: Path) -> list[str]:
    from toolkit.registry import read_ids

    try:
        return read_ids(path.read_bytes())
    except ValueError as exc:
        raise CliError(f"{path}: {exc}") from None


def cmd_import_ids(args: argparse.Namespace) -> int:
    ids = _read_ids(Path(args.file))
    if not ids:
        raise CliError(
            f"{args.file}: no coinConfigIds found (one a line, or a coinConfigId column)"
        )
    with _workspace(args) as ws, _progress(args, "import", unit="id") as bar:
        result = ws.registry.import_ids(ids, progress=bar)
    return _emit_outcome(args, result)


def cmd_history(args: argparse.Namespace) -> int:
    with _workspace(args) as ws:
        frame = ws.registry.history(args.id)
    if len(frame) == 0:
        raise CliError(
            f"no history for {args.id} here: it was never created, fetched or imported "
            f"with this toolkit (try: coins import-ids, or coins get {args.id})",
            EXIT_ROWS,
        )
    _emit_rows(args, _limited(args, frame, "entries"), columns=HISTORY_TABLE)
    return EXIT_OK


def cmd_revert(args: argparse.Namespace) -> int:
    with _workspace(args) as ws:
        result = ws.registry.revert(args.audit_id)
    before, after = _record(result.before), _record(result.after)
    if args.format == "table":
        print(result)
        _print_changes(before, after)
    else:
        _emit_record(
            args,
            {
                "auditId": result.audit_id,
                "revertedAuditId": result.reverted_audit_id,
                "coinConfigId": result.coin_config_id,
                "before": before if args.format == "json" else json.dumps(before),
                "after": after if args.format == "json" else json.dumps(after),
            },
        )
    return EXIT_OK


def _emit_outcome(args: argparse.Namespace, report: Any) -> int:
    """Print a registry report (import-ids, refresh): a table, then its one-line summary.

    Exit 1 when an id could not be handled (unknown, invalid, error)."""
    _emit_rows(args, _limited(args, report, "ids"))
    summary = report.attrs.get("summary")
    if summary and args.format == "table":
        print()
        print(summary)
    statuses = set(report["status"].dropna().astype(str)) if "status" in report.columns else set()
    return EXIT_ROWS if statuses & BAD_REPORT_STATUSES else EXIT_OK


# --------------------------------------------------------------------------- bulk


def _results_path(args: argparse.Namespace) -> Path:
    if args.results:
        return Path(args.results)
    source = Path(args.file)
    return source.with_name(source.stem + ".results.csv")


def _check_results_path(out: Path, source: Path) -> None:
    """Refuse, before anything is sent, a results path that would fail or destroy the input."""
    if out.resolve() == source.resolve():
        raise CliError(f"--results {out} is the input file; choose another name")
    if out.is_dir():
        raise CliError(f"--results {out} is a folder; give a file name such as {out / 'out.csv'}")
    out.parent.mkdir(parents=True, exist_ok=True)
    if not os.access(out.parent, os.W_OK):
        raise CliError(f"cannot write the results into {out.parent}: permission denied")


def _summary(
    args: argparse.Namespace,
    *,
    what: str,
    counts: Mapping[str, int],
    rows_in: int,
    rows_out: int,
    results: Path | None = None,
    extra: Mapping[str, Any] | None = None,
    rows: Any = None,
    code: int | None = None,
) -> int:
    """The closing summary (counts per status, rows in = rows out) and the exit status.

    ``code`` overrides the status the counts give (a run stopped by a fatal error or Ctrl-C).
    """
    if code is None:
        code = _plan_exit(counts)
    if rows_in != rows_out:
        code = EXIT_FATAL
    if args.format == "json":
        out: dict[str, Any] = {
            "command": what,
            "file": str(args.file),
            "rows_in": rows_in,
            "rows_out": rows_out,
            "counts": dict(counts),
        }
        if results is not None:
            out["results"] = str(results)
        out.update({k: _plain(v) for k, v in (extra or {}).items()})
        out["exit_status"] = code
        if rows is not None:
            out["rows"] = _rows(rows)[1]
        _write_json(out)
    else:
        table = [{"status": k, "rows": v} for k, v in counts.items()]
        table.append({"status": "total", "rows": sum(counts.values())})
        print()
        print(_table(["status", "rows"], table))
        sign = "=" if rows_in == rows_out else "≠"
        print(f"rows in {sign} rows out: {rows_in} {sign} {rows_out}")
        for key, value in (extra or {}).items():
            if key == "dry_run":
                print("dry run: nothing was sent")
            else:
                print(f"{key.replace('_', ' ')}: {value}")
        if results is not None:
            print(f"results: {results}")
    if rows_in != rows_out:
        _error(f"{rows_in} rows read but {rows_out} accounted for — please report this")
    return code


def _limited(args: argparse.Namespace, frame: Any, what: str) -> Any:
    """In a table, at most TABLE_ROWS rows (CSV and JSON always get every row)."""
    if args.format != "table" or len(frame) <= TABLE_ROWS:
        return frame
    _hint(
        args,
        f"showing the first {TABLE_ROWS} of {len(frame):,} {what}; "
        "--format csv or json gives them all",
    )
    return frame.head(TABLE_ROWS)


def _hint(args: argparse.Namespace, message: str) -> None:
    """``coins: …`` on stderr for a person at a terminal (scripts get only errors there)."""
    _note(args, f"{PROG}: {message}")


def _read_sheet(path: str, kind: str) -> Any:
    from toolkit import bulk

    reader = bulk.read_allocations if kind == "allocations" else bulk.read_configs
    return reader(path)


def _validate(sheet: Any, ws: Any) -> Any:
    """Either kind of sheet: `bulk.validate` hands an allocation sheet on by itself."""
    from toolkit import bulk

    return bulk.validate(sheet, registry=ws.registry)


def _validation_counts(validation: Any) -> dict[str, int]:
    total = len(validation.frame)
    valid = int(validation.frame["valid"].sum())
    return {"valid": valid, "invalid": total - valid}


def _plan(args: argparse.Namespace, kind: str, validation: Any, ws: Any) -> Any:
    from toolkit import bulk

    if kind == "allocations":
        return bulk.plan_allocations(validation, ws.registry)
    return bulk.plan(validation, ws.registry, mode=args.mode)


def cmd_validate(args: argparse.Namespace) -> int:
    kind = "allocations" if args.allocations else "configs"
    sheet = _read_sheet(args.file, kind)
    with _workspace(args) as ws:
        validation = _validate(sheet, ws)
    counts = _validation_counts(validation)
    problems = validation.problems
    shown = ["row", "severity", "column", "value", "reason"]
    if args.format == "json":
        _, records = _rows(problems)
        _write_json(
            {
                "file": str(args.file),
                "read": sheet.describe(),
                "rows": len(sheet),
                "counts": counts,
                "warnings": validation.warnings,
                "extra_columns": list(sheet.extra_columns),
                "problems": records,
            }
        )
    elif args.format == "csv":
        _emit_rows(args, problems)
    else:
        _hint(args, sheet.describe())
        for note in sheet.notes:
            _hint(args, note)
        if len(problems):
            _emit_rows(args, _limited(args, problems, "problems"), columns=shown)
            print()
        print(_table(["rows", "count"], [{"rows": k, "count": v} for k, v in counts.items()]))
        print(f"warnings: {validation.warnings}")
        if sheet.extra_columns:
            print(f"extra columns kept: {', '.join(map(str, sheet.extra_columns))}")
    return EXIT_ROWS if counts["invalid"] else EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    sheet = _read_sheet(args.file, "configs")
    with _workspace(args) as ws:
        plan = _plan(args, "configs", _validate(sheet, ws), ws)
        cost_line = _plan_cost_line(args, ws, plan)
    return _show_plan(args, sheet, plan, cost_line=cost_line)


def _show_plan(
    args: argparse.Namespace, sheet: Any, plan: Any, *, cost_line: str | None = None
) -> int:
    """Print a plan (nothing sent) and its summary; exit 1 when a row is invalid or in conflict."""
    counts = {str(k): int(v) for k, v in plan.counts.items() if v}
    if args.format == "csv":
        _emit_rows(args, plan.frame)
        return _plan_exit(counts)
    if args.format == "table":
        _hint(args, sheet.describe())
        _emit_rows(args, _limited(args, plan.frame, "rows"))
    return _summary(
        args,
        what="plan",
        counts=counts,
        rows_in=len(sheet),
        rows_out=len(plan.frame),
        extra={"to_send": plan.to_send, "sent": 0, "dry_run": True}
        | ({"monthly_cost": cost_line} if cost_line else {}),
        rows=plan.frame if args.format == "json" else None,
    )


def _plan_exit(counts: Mapping[str, int]) -> int:
    return EXIT_ROWS if any(counts.get(s, 0) for s in BAD_STATUSES) else EXIT_OK


def _bulk(args: argparse.Namespace, kind: str) -> int:
    """bulk-create and bulk-allocate: read, validate, plan, then run (or stop at the plan)."""
    from toolkit import bulk

    what = "bulk-create" if kind == "configs" else "bulk-allocate"
    sheet = _read_sheet(args.file, kind)
    out = _results_path(args)
    if not args.dry_run:
        _check_results_path(out, Path(args.file))
    with _workspace(args) as ws:
        plan = _plan(args, kind, _validate(sheet, ws), ws)
        if args.dry_run:
            return _show_plan(args, sheet, plan)
        _hint(args, f"{sheet.describe()}; {plan.to_send:,} to send")
        with _progress(args, what) as bar:
            result = bulk.run(
                plan,
                ws,
                concurrency=args.concurrency,
                rps=args.rps,
                deadline_s=args.deadline,
                progress=bar,
                results_path=out,
            )
    if args.results and result.results_path:  # a path the user named: their umask, <= 0644
        from toolkit.files import user_file_mode

        user_file_mode(result.results_path)
    if args.format == "table":
        _show_problem_rows(args, result.frame)
    extra: dict[str, Any] = {"sent": result.sent}
    if result.reused:
        extra["from_earlier_run"] = result.reused
    if result.throttled:  # sent again, no row spent: what the server's limit cost the run
        extra["throttled_answers"] = result.throttled
        if result.pace is not None and result.pace.limit:
            extra["server_limit_rps"] = round(result.pace.limit, 1)
    if result.deadline_reached:
        extra["deadline_reached"] = True
    stopped = None
    if result.fatal_error is not None:
        stopped = _translate(result.fatal_error)
    elif result.cancelled:
        stopped = (INTERRUPTED, EXIT_INTERRUPTED)
    code = _summary(
        args,
        what=what,
        counts={k: v for k, v in result.counts.items() if v},
        rows_in=len(sheet),
        rows_out=len(result.frame),
        results=result.results_path or out,
        extra=extra,
        code=stopped[1] if stopped else None,
    )
    if stopped:
        _error(stopped[0])
    return code


def _show_problem_rows(args: argparse.Namespace, frame: Any) -> None:
    """At a terminal, the rows that did not end well, with their reasons, before the summary:
    the analyst sees what to fix without opening the results file."""
    bad = frame.loc[frame["status"].isin(BAD_STATUSES), ["row", "status", "message"]]
    if len(bad):
        print(f"rows that need a look ({len(bad):,}):")
        _emit_rows(args, _limited(args, bad, "rows that need a look"))


def cmd_bulk_create(args: argparse.Namespace) -> int:
    return _bulk(args, "configs")


def cmd_bulk_allocate(args: argparse.Namespace) -> int:
    return _bulk(args, "allocations")


# --------------------------------------------------------------------------- cost


def _plan_cost_line(args: argparse.Namespace, ws: Any, plan: Any) -> str | None:
    """The plan's monthly cost delta ("This sheet raises monthly cost by …"), when volumes are
    known (--volumes, else the registry's allocations of the last 30 days)."""
    from toolkit.bulk import volumes

    sheet = volumes.read_volumes(args.volumes) if getattr(args, "volumes", None) else None
    return volumes.cost_basis(ws.registry, ws.settings, volumes=sheet).plan_line(plan)


def cmd_cost(args: argparse.Namespace) -> int:
    from toolkit.cli_cost import run_cost

    return run_cost(args)


# --------------------------------------------------------------------------- sandbox


def cmd_sandbox(args: argparse.Namespace) -> int:
    from toolkit.sandbox import __main__ as sandbox_main

    try:
        return int(sandbox_main.main(list(args.sandbox_args)) or 0)
    except SystemExit as exc:  # the sandbox's own argparse: usage error (2) or --help (0)
        return exc.code if isinstance(exc.code, int) else EXIT_FATAL


class _SandboxHelp(argparse.Action):
    """``coins sandbox --help``: our description and example, then the sandbox's own flags."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any, **__: Any) -> None:
        from toolkit.sandbox.__main__ import build_parser as sandbox_parser

        text = parser.format_help()
        own = sandbox_parser().format_help()
        flags = own[own.find("options:") :] if "options:" in own else own
        flags = flags.split("example:", 1)[0].rstrip()
        flags = "\n".join(line for line in flags.splitlines() if "--help" not in line)
        print(text.rstrip() + "\n\nsandbox " + flags + "\n")
        parser.exit(0)


# --------------------------------------------------------------------------- parser


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


def _checked(check: Callable[[Any], tuple[Any, str | None]], cast: type) -> Callable[[str], Any]:
    """An argparse type from one of the models' checks: their rule and reason, none of ours."""

    def parse(text: str) -> Any:
        value, reason = check(text)
        if reason is not None:
            raise argparse.ArgumentTypeError(f"{text!r} {reason}")
        return cast(value)

    return parse


_amount = _checked(check_amount, int)
_configuration = _checked(check_configuration, str)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def _auto_or(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """``auto`` (the run finds the value), or a number that ``parse`` accepts (a cap)."""

    def parse_or_auto(text: str) -> Any:
        return "auto" if text.strip().lower() == "auto" else parse(text)

    return parse_or_auto


def _common() -> argparse.ArgumentParser:
    # SUPPRESS so that an option given before the command is not reset by the subparser.
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("output")
    group.add_argument(
        "--format",
        choices=["table", "csv", "json"],
        default=argparse.SUPPRESS,
        help="table for people (default), csv or json for pipes",
    )
    group.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS,
        help="no progress bar and no hints on stderr",
    )
    return common


_EXIT_TEXT = """
exit status: 0 all rows ended well · 1 a row is invalid, failed or in conflict
             2 usage or fatal error (bad credentials, unreadable file, no server) · 130 interrupted
"""

_DESCRIPTION = """\
Analyst toolkit for EnKash coins (point management): validate, preview and run CSV bulk jobs,
make single calls, and look after the local registry of known configurations.

Talks to ENKASH_BASE_URL with the ENKASH_* credentials (from the environment or .env); with no
ENKASH_BASE_URL it uses the embedded sandbox under COINS_HOME (default .coins/).
"""


def _bulk_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dry-run", action="store_true", help="check and preview; send nothing")
    p.add_argument(
        "--concurrency",
        type=_auto_or(_positive_int),
        default="auto",
        metavar="N|auto",
        help="at most N rows in flight at once (default auto: as many as the rate needs)",
    )
    p.add_argument(
        "--rps",
        type=_auto_or(_positive_float),
        default="auto",
        metavar="R|auto",
        help="at most R requests a second (default auto: the run finds the server's limit, "
        "slowing down when it throttles)",
    )
    p.add_argument(
        "--deadline",
        type=_positive_float,
        default=None,
        metavar="SECONDS",
        help="stop the run after this long; rows not done then are failed or skipped, and "
        "running the file again resumes (default: no deadline)",
    )
    p.add_argument(
        "--results",
        metavar="OUT.csv",
        default=None,
        help="where to write the results (default: <input name>.results.csv next to the input)",
    )


# name → (handler, one-line help, description, example, add arguments)
def _commands() -> list[tuple[str, Callable[..., int], str, str, str, Callable[..., None]]]:
    def file_arg(p: argparse.ArgumentParser, what: str = "configuration sheet") -> None:
        p.add_argument(
            "file", metavar="FILE", help=f"{what}: .csv (any encoding/delimiter) or .xlsx"
        )

    def validate_args(p: argparse.ArgumentParser) -> None:
        file_arg(p)
        p.add_argument(
            "--allocations",
            action="store_true",
            help="the file is an allocation sheet (companyId, event, userId[, requestId])",
        )

    def doctor_args(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--scratch-company",
            metavar="ID",
            help="a company id the write probes may use (amount 0; never awards a coin)",
        )
        p.add_argument("--yes", action="store_true", help="do not ask before the write probes")

    def plan_args(p: argparse.ArgumentParser) -> None:
        file_arg(p)
        p.add_argument(
            "--mode",
            choices=["create", "upsert"],
            default="create",
            help="create: leave existing (company, event) pairs alone (default); "
            "upsert: update them to the sheet's values",
        )

    def bulk_create_args(p: argparse.ArgumentParser) -> None:
        plan_args(p)
        _bulk_options(p)

    def bulk_allocate_args(p: argparse.ArgumentParser) -> None:
        file_arg(p, "allocation sheet (companyId, event, userId[, requestId])")
        _bulk_options(p)

    def create_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--company", required=True, metavar="C", help="company id, e.g. CEKEKCARDS")
        p.add_argument("--event", required=True, metavar="E", help="event, e.g. MEAL_CARD_PAYMENT")
        p.add_argument(
            "--amount", required=True, type=_amount, metavar="N", help="coins (0-1,000,000)"
        )
        p.add_argument(
            "--configuration",
            type=_configuration,
            default="DEFAULT",
            metavar="DEFAULT|CUSTOM",
            help="DEFAULT (standard amount) or CUSTOM (company override); default DEFAULT",
        )

    def get_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("id", metavar="ID", help="coinConfigId, e.g. WCC817428")

    def update_args(p: argparse.ArgumentParser) -> None:
        get_args(p)
        p.add_argument("--amount", type=_amount, metavar="N", help="new amount of coins")
        p.add_argument(
            "--configuration",
            type=_configuration,
            metavar="DEFAULT|CUSTOM",
            help="new configuration",
        )
        p.add_argument("--company", metavar="C", help="new company id (rarely needed)")
        p.add_argument("--event", metavar="E", help="new event name (rarely needed)")

    def allocate_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--company", required=True, metavar="C", help="company id")
        p.add_argument("--event", required=True, metavar="E", help="event that earned the coins")
        p.add_argument("--user", required=True, metavar="U", help="user id, e.g. EKQZVMQK")
        p.add_argument(
            "--request-id",
            metavar="R",
            help="your unique id for this allocation; repeating it never allocates twice "
            "(default: a new one, printed)",
        )

    def balance_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("user", metavar="USER", help="user id")

    def configs_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--company", metavar="C", help="only this company")
        p.add_argument("--event", metavar="E", help="only this event")

    def no_args(p: argparse.ArgumentParser) -> None:
        return None

    def import_args(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "file",
            metavar="FILE",
            help="one coinConfigId a line, or a CSV with a coinConfigId column",
        )

    def history_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("id", metavar="ID", help="coinConfigId")

    def revert_args(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "audit_id",
            type=_positive_int,
            metavar="AUDIT_ID",
            help="the audit entry to undo (the audit_id column of history)",
        )

    def plan_cost_args(p: argparse.ArgumentParser) -> None:
        plan_args(p)
        p.add_argument(
            "--volumes",
            metavar="FILE",
            help="a volumes sheet (companyId, event, count[, month]) for the monthly cost delta "
            "(default: the allocations of the last 30 days)",
        )

    def cost_args(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--volumes",
            metavar="FILE",
            help="volumes sheet: companyId, event, count[, month] (default: the allocations "
            "recorded over the last --days days, scaled to a month)",
        )
        p.add_argument(
            "--what-if",
            metavar="SHEET",
            dest="what_if",
            help="a configuration sheet: the monthly cost before, after and the delta",
        )
        p.add_argument(
            "--by",
            choices=["company", "event", "month"],
            default="company",
            help="rows per company (default) or event (projection, what-if), or per month "
            "(coins awarded so far)",
        )
        p.add_argument(
            "--days",
            type=_positive_int,
            default=30,
            metavar="N",
            help="history window for volumes (default 30 days)",
        )
        p.add_argument(
            "--budgets",
            metavar="FILE",
            help="budget sheet: companyId, budget (₹ a month; default COINS_MONTHLY_BUDGET)",
        )
        p.add_argument(
            "--mode",
            choices=["create", "upsert"],
            default="upsert",
            help="how the --what-if sheet would be applied (default upsert)",
        )

    def sandbox_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("-h", "--help", action=_SandboxHelp, help="show this help and exit")
        p.add_argument(
            "sandbox_args",
            nargs=argparse.REMAINDER,
            metavar="...",
            help="the flags of python -m toolkit.sandbox: --host, --port, --db, --seed-demo, "
            "--token-ttl, --client-id, --client-secret, --username, --password, and faults "
            "(--latency-ms, --error-rate, …); see `python -m toolkit.sandbox --help`",
        )

    return [
        (
            "validate",
            cmd_validate,
            "check a sheet and list every problem (sends nothing)",
            "Read a configuration (or, with --allocations, allocation) sheet and report every\n"
            "problem by spreadsheet row number, column, value and reason. Warnings (amount 0,\n"
            "outliers) do not fail the check.",
            "coins validate configs.csv\n  coins validate --format json configs.xlsx | jq .counts",
            validate_args,
        ),
        (
            "plan",
            cmd_plan,
            "preview what a bulk-create would do (sends nothing)",
            "Each valid row becomes create, update (upsert mode, values differ), unchanged,\n"
            "skipped or conflict, shown with before → after values.",
            "coins plan configs.csv --mode upsert",
            plan_cost_args,
        ),
        (
            "bulk-create",
            cmd_bulk_create,
            "create (or upsert) every configuration in a sheet",
            "Validate, plan and send every row. The run finds the server's pace on its own: it\n"
            "speeds up while answers are clean and slows down when the server throttles (429,\n"
            "Retry-After, velocity limits), never spending a row's retries on it; --rps and\n"
            "--concurrency cap it. Each row is journaled locally, so after a crash or Ctrl-C\n"
            "the same command resumes: finished rows are not sent again and nothing is created\n"
            "twice. Every input row gets one result row.",
            "coins bulk-create configs.csv --results out.csv\n"
            "  coins bulk-create configs.csv --dry-run\n"
            "  coins bulk-create configs.csv --rps 40 --deadline 600",
            bulk_create_args,
        ),
        (
            "bulk-allocate",
            cmd_bulk_allocate,
            "allocate coins for every row of a sheet",
            "Each row is (companyId, event, userId[, requestId]). Without a requestId one is\n"
            "derived from the sheet's name and the row's values: running the sheet again, even\n"
            "after fixing, sorting or adding rows, allocates only new or changed rows, never a\n"
            "row twice. A new batch of the same rows needs a new file name or a requestId column.",
            "coins bulk-allocate allocations.csv --rps 20",
            bulk_allocate_args,
        ),
        (
            "create",
            cmd_create,
            "create one configuration",
            "Create one coin event configuration. Safe to retry: a timeout never makes two.",
            "coins create --company CEKEKCARDS --event MEAL_CARD_PAYMENT --amount 6",
            create_args,
        ),
        (
            "get",
            cmd_get,
            "show one configuration by id",
            "Fetch one configuration from the server (and remember it locally).",
            "coins get WCC817428 --format json",
            get_args,
        ),
        (
            "update",
            cmd_update,
            "change one configuration; shows before → after",
            "Change the amount and/or configuration of one configuration.",
            "coins update WCC817428 --amount 10",
            update_args,
        ),
        (
            "allocate",
            cmd_allocate,
            "award coins to one user; prints the request id",
            "Award the configured coins for (company, event) to a user. Keep the printed request\n"
            "id: running the command again with --request-id never allocates twice.",
            "coins allocate --company CEKEKCARDS --event MEAL_CARD_PAYMENT --user EKQZVMQK",
            allocate_args,
        ),
        (
            "balance",
            cmd_balance,
            "show a user's coin balance",
            "Print the coin balance of one user (0 for an unknown user).",
            "coins balance EKQZVMQK",
            balance_args,
        ),
        (
            "configs",
            cmd_configs,
            "list the configurations known locally",
            "The API cannot list configurations, so the toolkit remembers every one it created,\n"
            "fetched or imported. Use refresh to re-fetch them from the server.",
            "coins configs --company CEKEKCARDS --format csv > configs.csv",
            configs_args,
        ),
        (
            "refresh",
            cmd_refresh,
            "re-fetch every known configuration and show drift",
            "Fetch every configuration in the local registry again and report what changed on\n"
            "the server since it was last seen.",
            "coins refresh",
            no_args,
        ),
        (
            "doctor",
            cmd_doctor,
            "learn how the server answers, so lost answers are handled safely",
            "Log in once, look at how a refused token and an unknown id are answered and keep\n"
            "a server profile in COINS_HOME that the toolkit follows. With --scratch-company\n"
            "(and a confirmation, or --yes) it also creates a scratch configuration of amount 0\n"
            "twice and allocates 0 coins twice with one requestId, to learn whether repeats are\n"
            "refused.\n"
            "Without a profile a real server is treated cautiously: creates and allocations whose\n"
            "answer was lost are reported unconfirmed instead of being sent again.",
            "coins doctor\n  coins doctor --scratch-company ZZTEST01 --yes",
            doctor_args,
        ),
        (
            "import-ids",
            cmd_import_ids,
            "tell the registry about existing configuration ids",
            "Fetch each id from the server and remember it, so configs, refresh and plan know it.",
            "coins import-ids ids.txt\n  coins import-ids export.csv  # has a coinConfigId column",
            import_args,
        ),
        (
            "history",
            cmd_history,
            "show the audit log of one configuration",
            "Who changed what, from what, to what, through which surface.",
            "coins history WCC817428",
            history_args,
        ),
        (
            "revert",
            cmd_revert,
            "undo one audited change",
            "Put a configuration back to the values it had before the audited change.",
            "coins history WCC817428    # find the audit id\n  coins revert 42",
            revert_args,
        ),
        (
            "cost",
            cmd_cost,
            "what the programme costs, and what a sheet would change",
            "Coins awarded (from the allocations the toolkit recorded), the projected monthly\n"
            "cost per company or event (volume × configured amount × COINS_RUPEES_PER_COIN;\n"
            "₹1 a coin is assumed, and said, when it is unset), and with --what-if a sheet's\n"
            "cost before, after and the delta, with companies it takes over budget.",
            "coins cost --volumes volumes.csv --by event\n"
            "  coins cost --what-if raise-referrals.csv --format json\n"
            "  coins cost --by month",
            cost_args,
        ),
        (
            "sandbox",
            cmd_sandbox,
            "run the local sandbox server in the foreground",
            "A local server that answers like EnKash, keeps state in SQLite and can be told to\n"
            "fail. Same flags as python -m toolkit.sandbox. Stop it with Ctrl-C.",
            "coins sandbox --port 8765 --seed-demo\n  coins sandbox --latency-ms 50",
            sandbox_args,
        ),
    ]


def build_parser() -> argparse.ArgumentParser:
    """The ``coins`` parser: one subcommand per job, each with a description and an example."""
    common = _common()
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=_DESCRIPTION,
        epilog="Example:\n  coins validate configs.csv && coins bulk-create configs.csv\n"
        + _EXIT_TEXT
        + "\nRun `coins COMMAND --help` for a command's options and an example.",
        formatter_class=_Formatter,
        parents=[_common()],
    )
    # Defaults on the top parser's own copy of the options: parents share action objects, and
    # a default set on a shared one would let the subcommand reset `coins --format csv configs`.
    parser.set_defaults(format="table", quiet=False, handler=None)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name, handler, short, description, example, add_args in _commands():
        p = sub.add_parser(
            name,
            help=short,
            description=description,
            epilog=f"Example:\n  {example}\n{_EXIT_TEXT}",
            formatter_class=_Formatter,
            parents=[] if name == "sandbox" else [common],
            add_help=name != "sandbox",
        )
        add_args(p)
        p.set_defaults(handler=handler, command=name)
    return parser


def command_names() -> list[str]:
    """Every subcommand's name (for tests and docs)."""
    return [entry[0] for entry in _commands()]


# --------------------------------------------------------------------------- main


def _describe_os_error(exc: OSError) -> str:
    name = exc.filename
    reason = exc.strerror or str(exc)
    return f"{name}: {reason}" if name else reason


def _translate(exc: BaseException) -> tuple[str, int]:
    """A library error as (one-line message, exit status); anything unknown re-raised with
    COINS_DEBUG=1, else reported in one line too (never a traceback for an analyst)."""
    if isinstance(exc, CliError):
        return str(exc), exc.code
    if isinstance(exc, UnconfirmedError):
        return str(exc), EXIT_ROWS
    if isinstance(exc, ForbiddenError):
        return f"EnKash refused this call for this client: {exc}", EXIT_FATAL
    if isinstance(exc, BlockedError):
        return (
            f"blocked before reaching EnKash: {exc}. Try from another network, or later",
            EXIT_FATAL,
        )
    if isinstance(exc, BadAnswerError):
        return f"the server's answer could not be read: {exc}", EXIT_FATAL
    if isinstance(exc, AuthError):
        if "ENKASH_" in str(exc):  # the client's message names what to check already
            return f"credentials were refused: {exc}", EXIT_FATAL
        return (
            f"credentials were refused ({exc}); check ENKASH_CLIENT_ID/ENKASH_CLIENT_SECRET and "
            "ENKASH_USERNAME/ENKASH_PASSWORD. Not retried: 3 failed logins lock the account",
            EXIT_FATAL,
        )
    if isinstance(exc, TransportError):
        # "Cannot reach" only when nothing reached the server; a timeout or a dropped answer
        # means it was reached and did not answer.
        reached = not any(w in str(exc) for w in ("could not connect", "was not found"))
        if reached and not isinstance(exc, LoginUnavailableError):
            return f"the server did not answer: {exc}", EXIT_FATAL
        return f"cannot reach the server: {exc}", EXIT_FATAL
    if isinstance(exc, NotFoundError):
        return f"not found: {exc}", EXIT_ROWS
    if isinstance(exc, ConflictError):
        named = exc.existing_id and exc.existing_id not in str(exc)
        existing = f" (existing: {exc.existing_id})" if named else ""
        return f"conflict: {exc}{existing}", EXIT_ROWS
    if isinstance(exc, ValidationError):
        problems = "; ".join(str(p) for p in exc.problems)
        return f"refused as invalid: {exc}" + (f" — {problems}" if problems else ""), EXIT_ROWS
    refused = getattr(sys.modules.get("toolkit.registry"), "RevertRefused", None)
    if refused is not None and isinstance(exc, refused):
        return f"not reverted: {exc}", EXIT_ROWS
    if isinstance(exc, RateLimitError | ServerError):
        return f"the server kept failing, try again later: {exc}", EXIT_ROWS
    if isinstance(exc, EnKashError):
        return str(exc), EXIT_FATAL
    if isinstance(exc, OSError):
        return _describe_os_error(exc), EXIT_FATAL
    if isinstance(exc, ValueError):  # includes toolkit.bulk.SheetError
        return str(exc), EXIT_FATAL
    if os.environ.get("COINS_DEBUG"):
        raise exc
    return (
        f"unexpected {type(exc).__name__}: {exc} (set COINS_DEBUG=1 to see the traceback, "
        "and please report it)",
        EXIT_FATAL,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``coins`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    try:
        # The sandbox's flags are its own parser's business: pass them through untouched.
        args, extra = parser.parse_known_args(argv)
        if extra and getattr(args, "command", None) == "sandbox":
            args.sandbox_args = [*extra, *args.sandbox_args]
        elif extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exc:  # --help (0) or a usage error (2, already reported by argparse)
        return exc.code if isinstance(exc.code, int) else EXIT_FATAL
    if args.handler is None:
        parser.print_help(sys.stderr)
        return EXIT_FATAL
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        if sys.stderr.isatty():
            print(file=sys.stderr)  # past the ^C the terminal echoed
        _error(INTERRUPTED)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of our stdout went away (e.g. `| head`): stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:
        message, code = _translate(exc)
        _error(message)
        return code
