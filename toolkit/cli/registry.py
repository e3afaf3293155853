"""The local registry and its audit log: ``configs``, ``refresh``, ``import-ids``, ``history``,
``revert``. The API cannot list configurations, so the registry remembers every one the toolkit
created, fetched or imported."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from toolkit.cli.command import Command, no_arguments, positive_int
from toolkit.cli.connection import workspace
from toolkit.cli.exits import BAD_REPORT_STATUSES, EXIT_OK, EXIT_ROWS, CliError
from toolkit.cli.output import (
    emit_record,
    emit_rows,
    hint,
    limited,
    print_changes,
    progress,
    record,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CONFIGS",
    "CONFIG_TABLE",
    "HISTORY",
    "HISTORY_TABLE",
    "IMPORT_IDS",
    "REFRESH",
    "REVERT",
    "cmd_configs",
    "cmd_history",
    "cmd_import_ids",
    "cmd_refresh",
    "cmd_revert",
]

# What a table shows of the registry's frames (CSV and JSON carry every column).
CONFIG_TABLE = ["coinConfigId", "companyId", "event", "configuration", "amount", "updated_at"]
HISTORY_TABLE = ["audit_id", "at", "action", "outcome", "actor", "source", "changes", "message"]


def _emit_report(args: argparse.Namespace, report: pd.DataFrame) -> int:
    """Print a registry report (import-ids, refresh): a table, then its one-line summary.

    Exit 1 when an id could not be handled (unknown, invalid, error)."""
    emit_rows(args, limited(args, report, "ids"))
    summary = report.attrs.get("summary")
    if summary and args.format == "table":
        print()
        print(summary)
    statuses = set(report["status"].dropna().astype(str)) if "status" in report.columns else set()
    return EXIT_ROWS if statuses & BAD_REPORT_STATUSES else EXIT_OK


def _configs_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--company", metavar="C", help="only this company")
    p.add_argument("--event", metavar="E", help="only this event")


def cmd_configs(args: argparse.Namespace) -> int:
    with workspace(args) as ws:
        frame = ws.registry.to_frame()
    if args.company:
        frame = frame[frame["companyId"] == args.company]
    if args.event:
        frame = frame[frame["event"] == args.event]
    emit_rows(args, limited(args, frame, "configurations"), columns=CONFIG_TABLE)
    if args.format == "table":
        hint(args, f"{len(frame)} configuration(s) known locally; refresh re-fetches them")
    return EXIT_OK


def cmd_refresh(args: argparse.Namespace) -> int:
    with workspace(args) as ws, progress(args, "refresh", unit="config") as bar:
        result = ws.refresh(progress=bar)
    return _emit_report(args, result)


def _read_ids(path: Path) -> list[str]:
    from toolkit.registry import read_ids

    try:
        return read_ids(path.read_bytes())
    except ValueError as exc:
        raise CliError(f"{path}: {exc}") from None


def _import_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "file",
        metavar="FILE",
        help="one coinConfigId a line, or a CSV with a coinConfigId column",
    )


def cmd_import_ids(args: argparse.Namespace) -> int:
    ids = _read_ids(Path(args.file))
    if not ids:
        raise CliError(
            f"{args.file}: no coinConfigIds found (one a line, or a coinConfigId column)"
        )
    with workspace(args) as ws, progress(args, "import", unit="id") as bar:
        result = ws.import_ids(ids, progress=bar)
    return _emit_report(args, result)


def _history_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("id", metavar="ID", help="coinConfigId")


def cmd_history(args: argparse.Namespace) -> int:
    with workspace(args) as ws:
        frame = ws.registry.history(args.id)
    if len(frame) == 0:
        raise CliError(
            f"no history for {args.id} here: it was never created, fetched or imported "
            f"with this toolkit (try: coins import-ids, or coins get {args.id})",
            EXIT_ROWS,
        )
    emit_rows(args, limited(args, frame, "entries"), columns=HISTORY_TABLE)
    return EXIT_OK


def _revert_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "audit_id",
        type=positive_int,
        metavar="AUDIT_ID",
        help="the audit entry to undo (the audit_id column of history)",
    )


def cmd_revert(args: argparse.Namespace) -> int:
    with workspace(args) as ws:
        result = ws.revert(args.audit_id)
    before, after = record(result.before), record(result.after)
    if args.format == "table":
        print(result)
        print_changes(before, after)
    else:
        emit_record(
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


CONFIGS = Command(
    "configs",
    cmd_configs,
    help="list the configurations known locally",
    description="The API cannot list configurations, so the toolkit remembers every one it "
    "created,\nfetched or imported. Use refresh to re-fetch them from the server.",
    example="coins configs --company CEKEKCARDS --format csv > configs.csv",
    arguments=_configs_arguments,
)
REFRESH = Command(
    "refresh",
    cmd_refresh,
    help="re-fetch every known configuration and show drift",
    description="Fetch every configuration in the local registry again and report what changed "
    "on\nthe server since it was last seen.",
    example="coins refresh",
    arguments=no_arguments,
)
IMPORT_IDS = Command(
    "import-ids",
    cmd_import_ids,
    help="tell the registry about existing configuration ids",
    description="Fetch each id from the server and remember it, so configs, refresh and plan "
    "know it.",
    example="coins import-ids ids.txt\n  coins import-ids export.csv  # has a coinConfigId column",
    arguments=_import_arguments,
)
HISTORY = Command(
    "history",
    cmd_history,
    help="show the audit log of one configuration",
    description="Who changed what, from what, to what, through which surface.",
    example="coins history WCC817428",
    arguments=_history_arguments,
)
REVERT = Command(
    "revert",
    cmd_revert,
    help="undo one audited change",
    description="Put a configuration back to the values it had before the audited change.",
    example="coins history WCC817428    # find the audit id\n  coins revert 42",
    arguments=_revert_arguments,
)
