"""The server itself: ``doctor`` (learn how it answers) and ``sandbox`` (a local one in the
foreground)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

from toolkit.cli.command import Command
from toolkit.cli.connection import workspace
from toolkit.cli.exits import EXIT_FATAL, EXIT_OK, CliError
from toolkit.cli.output import error

if TYPE_CHECKING:
    from toolkit.doctor import DoctorReport

__all__ = ["DOCTOR", "SANDBOX", "cmd_doctor", "cmd_sandbox"]


def _doctor_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--scratch-company",
        metavar="ID",
        help="a company id the write probes may use (amount 0; never awards a coin)",
    )
    p.add_argument("--yes", action="store_true", help="do not ask before the write probes")


def cmd_doctor(args: argparse.Namespace) -> int:
    from toolkit.doctor import PROBE_EVENT, PROBE_USER, probe_embedded, run_doctor

    with workspace(args) as ws:
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
                error("nothing done")
                return EXIT_FATAL
        report = run_doctor(ws.client, scratch_company=scratch, home=ws.settings.home)
    _print_doctor(args, report)
    return EXIT_OK


def _print_doctor(args: argparse.Namespace, report: DoctorReport) -> None:
    if args.format == "json":
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print("\n".join(report.lines()))


def cmd_sandbox(args: argparse.Namespace) -> int:
    from toolkit.sandbox import __main__ as sandbox_main

    try:
        return int(sandbox_main.main(list(args.sandbox_args)) or 0)
    except SystemExit as exc:  # the sandbox's own argparse: usage error (2) or --help (0)
        return exc.code if isinstance(exc.code, int) else EXIT_FATAL


class _SandboxHelp(argparse.Action):
    """``coins sandbox --help``: our description and example, then the sandbox's own flags."""

    def __init__(self, option_strings: Sequence[str], dest: str, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[object] | None,
        option_string: str | None = None,
    ) -> NoReturn:
        from toolkit.sandbox.__main__ import build_parser as sandbox_parser

        text = parser.format_help()
        own = sandbox_parser().format_help()
        flags = own[own.find("options:") :] if "options:" in own else own
        flags = flags.split("example:", 1)[0].rstrip()
        flags = "\n".join(line for line in flags.splitlines() if "--help" not in line)
        print(text.rstrip() + "\n\nsandbox " + flags + "\n")
        parser.exit(0)


def _sandbox_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-h", "--help", action=_SandboxHelp, help="show this help and exit")
    p.add_argument(
        "sandbox_args",
        nargs=argparse.REMAINDER,
        metavar="...",
        help="the flags of python -m toolkit.sandbox: --host, --port, --db, --seed-demo, "
        "--token-ttl, --client-id, --client-secret, --username, --password, and faults "
        "(--latency-ms, --error-rate, …); see `python -m toolkit.sandbox --help`",
    )


DOCTOR = Command(
    "doctor",
    cmd_doctor,
    help="learn how the server answers, so lost answers are handled safely",
    description="Log in once, look at how a refused token and an unknown id are answered and "
    "keep\na server profile in COINS_HOME that the toolkit follows. With --scratch-company\n"
    "(and a confirmation, or --yes) it also creates a scratch configuration of amount 0\n"
    "twice and allocates 0 coins twice with one requestId, to learn whether repeats are\n"
    "refused.\n"
    "Without a profile a real server is treated cautiously: creates and allocations whose\n"
    "answer was lost are reported unconfirmed instead of being sent again.",
    example="coins doctor\n  coins doctor --scratch-company ZZTEST01 --yes",
    arguments=_doctor_arguments,
)
SANDBOX = Command(
    "sandbox",
    cmd_sandbox,
    help="run the local sandbox server in the foreground",
    description="A local server that answers like EnKash, keeps state in SQLite and can be told "
    "to\nfail. Same flags as python -m toolkit.sandbox. Stop it with Ctrl-C.",
    example="coins sandbox --port 8765 --seed-demo\n  coins sandbox --latency-ms 50",
    arguments=_sandbox_arguments,
    common_options=False,
)
