"""Single calls about coins awarded: ``allocate``, ``balance``."""

from __future__ import annotations

import argparse

from toolkit.cli.command import Command
from toolkit.cli.connection import workspace
from toolkit.cli.exits import EXIT_OK
from toolkit.cli.output import emit_record, record

__all__ = ["ALLOCATE", "BALANCE", "cmd_allocate", "cmd_balance"]


def _allocate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--company", required=True, metavar="C", help="company id")
    p.add_argument("--event", required=True, metavar="E", help="event that earned the coins")
    p.add_argument("--user", required=True, metavar="U", help="user id, e.g. EKQZVMQK")
    p.add_argument(
        "--request-id",
        metavar="R",
        help="your unique id for this allocation; repeating it never allocates twice "
        "(default: a new one, printed)",
    )


def cmd_allocate(args: argparse.Namespace) -> int:
    with workspace(args) as ws:
        allocation = ws.client.allocate_coins(
            company_id=args.company,
            event=args.event,
            user_id=args.user,
            request_id=args.request_id,
            # Re-running the same command with the same request id is safe: the API never
            # allocates twice for one request id, so a duplicate means "already done".
            duplicate_is_done=args.request_id is not None,
        )
    if args.format == "table":
        print(f"request id: {allocation.request_id}")
        if allocation.already_done:
            print(
                f"request id {allocation.request_id} was used before: nothing allocated twice "
                "(if that was a different allocation, run again with a new --request-id)"
            )
        elif allocation.message:
            print(allocation.message)
        return EXIT_OK
    emit_record(args, record(allocation))
    return EXIT_OK


def _balance_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("user", metavar="USER", help="user id")


def cmd_balance(args: argparse.Namespace) -> int:
    with workspace(args) as ws:
        balance = ws.client.get_balance(args.user)
    if args.format == "table":
        print(balance)
    else:
        emit_record(args, {"userId": args.user, "balance": balance})
    return EXIT_OK


ALLOCATE = Command(
    "allocate",
    cmd_allocate,
    help="award coins to one user; prints the request id",
    description="Award the configured coins for (company, event) to a user. Keep the printed "
    "request\nid: running the command again with --request-id never allocates twice.",
    example="coins allocate --company CEKEKCARDS --event MEAL_CARD_PAYMENT --user EKQZVMQK",
    arguments=_allocate_arguments,
)
BALANCE = Command(
    "balance",
    cmd_balance,
    help="show a user's coin balance",
    description="Print the coin balance of one user (0 for an unknown user).",
    example="coins balance EKQZVMQK",
    arguments=_balance_arguments,
)
