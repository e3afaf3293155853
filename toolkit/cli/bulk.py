"""Sheets: ``validate``, ``plan``, ``bulk-create``, ``bulk-allocate`` — read, validate and plan
through `toolkit.bulk`, then run (or stop at the plan), with a closing summary whose rows in
equal rows out."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from toolkit.cli.command import Command, auto_or, file_argument, positive_float, positive_int
from toolkit.cli.connection import workspace
from toolkit.cli.cost import plan_cost_line, volumes_argument
from toolkit.cli.exits import (
    BAD_STATUSES,
    EXIT_FATAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_ROWS,
    INTERRUPTED,
    CliError,
    rows_exit,
    translate,
)
from toolkit.cli.output import (
    JsonValue,
    emit_rows,
    error,
    hint,
    limited,
    plain,
    progress,
    rows,
    shown_rows,
    table,
    write_json,
)
from toolkit.cli.run_lock import sheet_lock

if TYPE_CHECKING:
    import pandas as pd

    from toolkit.bulk import Plan, Sheet, Validation
    from toolkit.workspace import Workspace

__all__ = [
    "BULK_ALLOCATE",
    "BULK_CREATE",
    "PLAN",
    "VALIDATE",
    "cmd_bulk_allocate",
    "cmd_bulk_create",
    "cmd_plan",
    "cmd_validate",
]

Kind = Literal["configs", "allocations"]


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
    extra: Mapping[str, object] | None = None,
    frame: pd.DataFrame | None = None,
    code: int | None = None,
) -> int:
    """The closing summary (counts per status, rows in = rows out) and the exit status.

    ``code`` overrides the status the counts give (a run stopped by a fatal error or Ctrl-C).
    ``frame``, in JSON, is listed under ``rows``.
    """
    if code is None:
        code = rows_exit(counts)
    if rows_in != rows_out:
        code = EXIT_FATAL
    if args.format == "json":
        out: dict[str, JsonValue] = {
            "command": what,
            "file": str(args.file),
            "rows_in": rows_in,
            "rows_out": rows_out,
            "counts": dict(counts),
        }
        if results is not None:
            out["results"] = str(results)
        out.update({k: plain(v) for k, v in (extra or {}).items()})
        out["exit_status"] = code
        if frame is not None:
            out["rows"] = list(rows(frame)[1])
        write_json(out)
    else:
        lines: list[dict[str, JsonValue]] = [{"status": k, "rows": v} for k, v in counts.items()]
        lines.append({"status": "total", "rows": sum(counts.values())})
        print()
        print(table(["status", "rows"], lines))
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
        error(f"{rows_in} rows read but {rows_out} accounted for — please report this")
    return code


def _read_sheet(path: str, kind: Kind) -> Sheet:
    from toolkit import bulk

    reader = bulk.read_allocations if kind == "allocations" else bulk.read_configs
    return reader(path)


def _validate(sheet: Sheet, ws: Workspace) -> Validation:
    """Either kind of sheet: `bulk.validate` hands an allocation sheet on by itself."""
    from toolkit import bulk

    return bulk.validate(sheet, registry=ws.registry)


def _validation_counts(validation: Validation) -> dict[str, int]:
    total = len(validation.frame)
    valid = int(validation.frame["valid"].sum())
    return {"valid": valid, "invalid": total - valid}


def _plan(args: argparse.Namespace, kind: Kind, validation: Validation, ws: Workspace) -> Plan:
    from toolkit import bulk

    if kind == "allocations":
        return bulk.plan_allocations(validation, ws.registry)
    return bulk.plan(validation, ws.registry, mode=args.mode)


def _validate_arguments(p: argparse.ArgumentParser) -> None:
    file_argument(p)
    p.add_argument(
        "--allocations",
        action="store_true",
        help="the file is an allocation sheet (companyId, event, userId[, requestId])",
    )


def cmd_validate(args: argparse.Namespace) -> int:
    kind: Kind = "allocations" if args.allocations else "configs"
    sheet = _read_sheet(args.file, kind)
    with workspace(args) as ws:
        validation = _validate(sheet, ws)
    counts = _validation_counts(validation)
    problems = validation.problems
    shown = ["row", "severity", "column", "value", "reason"]
    if args.format == "json":
        _, records = rows(problems)
        write_json(
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
        emit_rows(args, problems)
    else:
        hint(args, sheet.describe())
        for note in sheet.notes:
            hint(args, note)
        if len(problems):
            emit_rows(args, limited(args, problems, "problems"), columns=shown)
            print()
        print(table(["rows", "count"], [{"rows": k, "count": v} for k, v in counts.items()]))
        print(f"warnings: {validation.warnings}")
        if sheet.extra_columns:
            print(f"extra columns kept: {', '.join(map(str, sheet.extra_columns))}")
    return EXIT_ROWS if counts["invalid"] else EXIT_OK


def _mode_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--mode",
        choices=["create", "upsert"],
        default="create",
        help="create: leave existing (company, event) pairs alone (default); "
        "upsert: update them to the sheet's values",
    )


def _plan_arguments(p: argparse.ArgumentParser) -> None:
    file_argument(p)
    _mode_argument(p)
    volumes_argument(p)


def cmd_plan(args: argparse.Namespace) -> int:
    sheet = _read_sheet(args.file, "configs")
    with workspace(args) as ws:
        plan = _plan(args, "configs", _validate(sheet, ws), ws)
        cost_line = plan_cost_line(args, ws, plan)
        earlier = _earlier_line(ws, plan)
    return _show_plan(args, sheet, plan, cost_line=cost_line, earlier=earlier)


def _earlier_line(ws: Workspace, plan: Plan) -> str | None:
    """What an earlier run of this same file left on this server, and what running it again
    does (the plan above is what a fresh start would send)."""
    from toolkit.bulk.resuming import earlier_run

    found = earlier_run(ws.registry.path, plan, ws.client.server_key)
    if found is None:
        return None
    counts = ", ".join(f"{n:,} {status}" for status, n in sorted(found.counts.items()))
    return (
        f"run {found.run.run_id} of this file on this server ({found.run.state}, started "
        f"{found.run.started_at}): {counts or 'no rows'} — running it again resumes that run: "
        "rows it finished are not sent again"
    )


def _show_plan(
    args: argparse.Namespace,
    sheet: Sheet,
    plan: Plan,
    *,
    cost_line: str | None = None,
    earlier: str | None = None,
) -> int:
    """Print a plan (nothing sent) and its summary; exit 1 when a row is invalid or in conflict."""
    counts = {str(k): int(v) for k, v in plan.counts.items() if v}
    if args.format == "csv":
        emit_rows(args, plan.frame)
        return rows_exit(counts)
    if args.format == "table":
        hint(args, sheet.describe())
        # The rows shown, with the requestIds of those rows alone derived (`Plan.head`).
        emit_rows(args, plan.head(shown_rows(args, len(plan), "rows")))
    extra: dict[str, object] = {"to_send": plan.to_send, "sent": 0, "dry_run": True}
    if cost_line:
        extra["monthly_cost"] = cost_line
    if earlier:
        extra["earlier_run"] = earlier
    return _summary(
        args,
        what="plan",
        counts=counts,
        rows_in=len(sheet),
        rows_out=len(plan),
        extra=extra,
        frame=plan.frame if args.format == "json" else None,
    )


def _bulk(args: argparse.Namespace, kind: Kind) -> int:
    """bulk-create and bulk-allocate: read, validate, plan, then run (or stop at the plan)."""
    from toolkit import bulk

    what = "bulk-create" if kind == "configs" else "bulk-allocate"
    sheet = _read_sheet(args.file, kind)
    out = _results_path(args)
    if not args.dry_run:
        _check_results_path(out, Path(args.file))
    with workspace(args) as ws:
        plan = _plan(args, kind, _validate(sheet, ws), ws)
        if args.dry_run:
            return _show_plan(args, sheet, plan, earlier=_earlier_line(ws, plan))
        # The app's lock on the sheet: the app and the command line never send it at once.
        with sheet_lock(ws, plan, source_name=sheet.source_name) as held:
            hint(args, f"{sheet.describe()}; {plan.to_send:,} to send")
            with progress(args, what) as bar:
                result = bulk.run(
                    plan,
                    ws,
                    concurrency=args.concurrency,
                    rps=args.rps,
                    deadline_s=args.deadline,
                    progress=bar,
                    results_path=out,
                    run_key=held.run_key,
                )
            held.ended(result)
    if args.results and result.results_path:  # a path the user named: their umask, <= 0644
        from toolkit.files import user_file_mode

        user_file_mode(result.results_path)
    if args.format == "table":
        _show_problem_rows(args, result.frame)
    extra: dict[str, object] = {"sent": result.sent}
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
        stopped = translate(result.fatal_error)
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
        error(stopped[0])
    return code


def _show_problem_rows(args: argparse.Namespace, frame: pd.DataFrame) -> None:
    """At a terminal, the rows that did not end well, with their reasons, before the summary:
    the analyst sees what to fix without opening the results file."""
    bad = frame.loc[frame["status"].isin(BAD_STATUSES), ["row", "status", "message"]]
    if len(bad):
        print(f"rows that need a look ({len(bad):,}):")
        emit_rows(args, limited(args, bad, "rows that need a look"))


def _bulk_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dry-run", action="store_true", help="check and preview; send nothing")
    p.add_argument(
        "--concurrency",
        type=auto_or(positive_int),
        default="auto",
        metavar="N|auto",
        help="at most N rows in flight at once (default auto: as many as the rate needs)",
    )
    p.add_argument(
        "--rps",
        type=auto_or(positive_float),
        default="auto",
        metavar="R|auto",
        help="at most R requests a second (default auto: the run finds the server's limit, "
        "slowing down when it throttles)",
    )
    p.add_argument(
        "--deadline",
        type=positive_float,
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


def _bulk_create_arguments(p: argparse.ArgumentParser) -> None:
    file_argument(p)
    _mode_argument(p)
    _bulk_options(p)


def _bulk_allocate_arguments(p: argparse.ArgumentParser) -> None:
    file_argument(p, "allocation sheet (companyId, event, userId[, requestId])")
    _bulk_options(p)


def cmd_bulk_create(args: argparse.Namespace) -> int:
    return _bulk(args, "configs")


def cmd_bulk_allocate(args: argparse.Namespace) -> int:
    return _bulk(args, "allocations")


VALIDATE = Command(
    "validate",
    cmd_validate,
    help="check a sheet and list every problem (sends nothing)",
    description="Read a configuration (or, with --allocations, allocation) sheet and report "
    "every\nproblem by spreadsheet row number, column, value and reason. Warnings (amount 0,\n"
    "outliers) do not fail the check.",
    example="coins validate configs.csv\n  coins validate --format json configs.xlsx | jq .counts",
    arguments=_validate_arguments,
)
PLAN = Command(
    "plan",
    cmd_plan,
    help="preview what a bulk-create would do (sends nothing)",
    description="Each valid row becomes create, update (upsert mode, values differ), "
    "unchanged,\nskipped or conflict, shown with before → after values.",
    example="coins plan configs.csv --mode upsert",
    arguments=_plan_arguments,
)
BULK_CREATE = Command(
    "bulk-create",
    cmd_bulk_create,
    help="create (or upsert) every configuration in a sheet",
    description="Validate, plan and send every row. The run finds the server's pace on its own: "
    "it\nspeeds up while answers are clean and slows down when the server throttles (429,\n"
    "Retry-After, velocity limits), never spending a row's retries on it; --rps and\n"
    "--concurrency cap it. Each row is journaled locally, so after a crash or Ctrl-C\n"
    "the same command resumes: finished rows are not sent again and nothing is created\n"
    "twice. Every input row gets one result row.",
    example="coins bulk-create configs.csv --results out.csv\n"
    "  coins bulk-create configs.csv --dry-run\n"
    "  coins bulk-create configs.csv --rps 40 --deadline 600",
    arguments=_bulk_create_arguments,
)
BULK_ALLOCATE = Command(
    "bulk-allocate",
    cmd_bulk_allocate,
    help="allocate coins for every row of a sheet",
    description="Each row is (companyId, event, userId[, requestId]). Without a requestId one "
    "is\nderived from the sheet's name and the row's values: running the sheet again, even\n"
    "after fixing, sorting or adding rows, allocates only new or changed rows, never a\n"
    "row twice. A new batch of the same rows needs a new file name or a requestId column.",
    example="coins bulk-allocate allocations.csv --rps 20",
    arguments=_bulk_allocate_arguments,
)
