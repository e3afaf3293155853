"""Single calls on one configuration: ``create``, ``get``, ``update``."""

from __future__ import annotations

import argparse

from toolkit.cli.command import Command, amount, configuration
from toolkit.cli.connection import workspace
from toolkit.cli.exits import EXIT_OK, CliError
from toolkit.cli.output import (
    change_rows,
    emit_record,
    print_changes,
    record,
    write_csv,
    write_json,
)

__all__ = ["CREATE", "GET", "UPDATE", "cmd_create", "cmd_get", "cmd_update"]


def _create_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--company", required=True, metavar="C", help="company id, e.g. CEKEKCARDS")
    p.add_argument("--event", required=True, metavar="E", help="event, e.g. MEAL_CARD_PAYMENT")
    p.add_argument("--amount", required=True, type=amount, metavar="N", help="coins (0-1,000,000)")
    p.add_argument(
        "--configuration",
        type=configuration,
        default="DEFAULT",
        metavar="DEFAULT|CUSTOM",
        help="DEFAULT (standard amount) or CUSTOM (company override); default DEFAULT",
    )


def cmd_create(args: argparse.Namespace) -> int:
    with workspace(args) as ws:
        config = ws.client.create_config(
            company_id=args.company,
            event=args.event,
            amount=args.amount,
            configuration=args.configuration,
        )
    emit_record(args, record(config))
    return EXIT_OK


def _get_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("id", metavar="ID", help="coinConfigId, e.g. WCC817428")


def cmd_get(args: argparse.Namespace) -> int:
    with workspace(args) as ws:
        config = ws.client.get_config(args.id)
    emit_record(args, record(config))
    return EXIT_OK


def _update_arguments(p: argparse.ArgumentParser) -> None:
    _get_arguments(p)
    p.add_argument("--amount", type=amount, metavar="N", help="new amount of coins")
    p.add_argument(
        "--configuration",
        type=configuration,
        metavar="DEFAULT|CUSTOM",
        help="new configuration",
    )
    p.add_argument("--company", metavar="C", help="new company id (rarely needed)")
    p.add_argument("--event", metavar="E", help="new event name (rarely needed)")


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
    with workspace(args) as ws:
        before = ws.client.get_config(args.id)
        after = ws.client.update_config(args.id, known=before, **changes)
    old, new = record(before), record(after)
    if args.format == "json":
        write_json({"before": old, "after": new})
        return EXIT_OK
    if args.format == "csv":
        write_csv(["field", "before", "after"], change_rows(old, new))
    else:
        print_changes(old, new)
    return EXIT_OK


CREATE = Command(
    "create",
    cmd_create,
    help="create one configuration",
    description="Create one coin event configuration. Safe to retry: a timeout never makes two.",
    example="coins create --company CEKEKCARDS --event MEAL_CARD_PAYMENT --amount 6",
    arguments=_create_arguments,
)
GET = Command(
    "get",
    cmd_get,
    help="show one configuration by id",
    description="Fetch one configuration from the server (and remember it locally).",
    example="coins get WCC817428 --format json",
    arguments=_get_arguments,
)
UPDATE = Command(
    "update",
    cmd_update,
    help="change one configuration; shows before → after",
    description="Change the amount and/or configuration of one configuration.",
    example="coins update WCC817428 --amount 10",
    arguments=_update_arguments,
)
