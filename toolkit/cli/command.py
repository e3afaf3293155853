"""What a command is — its name, handler, help, example and arguments, declared together beside
the handler — and the argument types the commands share.

Each command module ends with its `Command`s; `toolkit.cli.program` lists them in the order
``coins --help`` shows them and builds one argparse subparser from each.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from toolkit.models import check_amount, check_configuration

__all__ = [
    "Arguments",
    "Command",
    "Handler",
    "amount",
    "auto_or",
    "configuration",
    "file_argument",
    "no_arguments",
    "positive_float",
    "positive_int",
]

Handler = Callable[[argparse.Namespace], int]
"""A command's handler: parsed arguments in, exit status out (errors raised, see `exits`)."""
Arguments = Callable[[argparse.ArgumentParser], None]
"""Adds a command's own arguments to its subparser."""

T = TypeVar("T")
V = TypeVar("V")


@dataclass(frozen=True)
class Command:
    """One ``coins`` subcommand.

    ``help`` is the line in ``coins --help``, ``description`` heads ``coins NAME --help`` and
    ``example`` (lines after the first indented by two spaces) closes it. ``common_options``
    adds ``--format`` and ``--quiet``; without it the command also brings its own ``--help``
    (``sandbox`` hands every flag to the sandbox's parser).
    """

    name: str
    handler: Handler
    help: str
    description: str
    example: str
    arguments: Arguments
    common_options: bool = True


def no_arguments(parser: argparse.ArgumentParser) -> None:
    """For a command that takes none of its own."""
    return None


def file_argument(parser: argparse.ArgumentParser, what: str = "configuration sheet") -> None:
    """The FILE positional of the sheet commands."""
    parser.add_argument(
        "file", metavar="FILE", help=f"{what}: .csv (any encoding/delimiter) or .xlsx"
    )


def _checked(
    check: Callable[[str], tuple[V | None, str | None]], cast: Callable[[V], T]
) -> Callable[[str], T]:
    """An argparse type from one of the models' checks: their rule and reason, none of ours."""

    def parse(text: str) -> T:
        value, reason = check(text)
        if reason is not None or value is None:
            raise argparse.ArgumentTypeError(f"{text!r} {reason}")
        return cast(value)

    return parse


amount = _checked(check_amount, int)
"""Coins, by `toolkit.models.check_amount` (0-1,000,000, whole)."""
configuration = _checked(check_configuration, str)
"""DEFAULT or CUSTOM, by `toolkit.models.check_configuration`."""


def positive_int(text: str) -> int:
    """A whole number of 1 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def positive_float(text: str) -> float:
    """A finite number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def auto_or(parse: Callable[[str], T]) -> Callable[[str], T | str]:
    """``auto`` (the run finds the value), or a number that ``parse`` accepts (a cap)."""

    def parse_or_auto(text: str) -> T | str:
        return "auto" if text.strip().lower() == "auto" else parse(text)

    return parse_or_auto
