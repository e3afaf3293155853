"""The ``coins`` program: the parser built from the commands, and `main`, where every error a
handler raises is answered in one line with its exit status (`toolkit.cli.exits.translate`)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from toolkit.cli.allocations import ALLOCATE, BALANCE
from toolkit.cli.bulk import BULK_ALLOCATE, BULK_CREATE, PLAN, VALIDATE
from toolkit.cli.command import Command
from toolkit.cli.configs import CREATE, GET, UPDATE
from toolkit.cli.cost import COST
from toolkit.cli.exits import EXIT_FATAL, EXIT_INTERRUPTED, EXIT_OK, INTERRUPTED, translate
from toolkit.cli.output import PROG, error
from toolkit.cli.registry import CONFIGS, HISTORY, IMPORT_IDS, REFRESH, REVERT
from toolkit.cli.server import DOCTOR, SANDBOX

__all__ = ["COMMANDS", "build_parser", "command_names", "main"]

# Every command, in the order `coins --help` lists them.
COMMANDS: tuple[Command, ...] = (
    VALIDATE,
    PLAN,
    BULK_CREATE,
    BULK_ALLOCATE,
    CREATE,
    GET,
    UPDATE,
    ALLOCATE,
    BALANCE,
    CONFIGS,
    REFRESH,
    DOCTOR,
    IMPORT_IDS,
    HISTORY,
    REVERT,
    COST,
    SANDBOX,
)

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


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


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
    for command in COMMANDS:
        p = sub.add_parser(
            command.name,
            help=command.help,
            description=command.description,
            epilog=f"Example:\n  {command.example}\n{_EXIT_TEXT}",
            formatter_class=_Formatter,
            parents=[common] if command.common_options else [],
            add_help=command.common_options,
        )
        command.arguments(p)
        p.set_defaults(handler=command.handler, command=command.name)
    return parser


def command_names() -> list[str]:
    """Every subcommand's name (for tests and docs)."""
    return [command.name for command in COMMANDS]


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
        code: int = args.handler(args)
        return code
    except KeyboardInterrupt:
        if sys.stderr.isatty():
            print(file=sys.stderr)  # past the ^C the terminal echoed
        error(INTERRUPTED)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of our stdout went away (e.g. `| head`): stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:
        message, code = translate(exc)
        error(message)
        return code
