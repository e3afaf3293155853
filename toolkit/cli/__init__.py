"""The ``coins`` command line (also ``python -m toolkit``).

Like sqlite-utils' ``cli.py`` this package only translates: arguments → library calls, results →
tables, CSV or JSON on stdout, progress and errors → stderr. Every rule lives in the library
(``toolkit.bulk``, ``toolkit.registry``, ``toolkit.client``); nothing here re-implements one.

- `command` — what a command is (`Command`: name, handler, help, example, arguments) and the
  argument types the commands share;
- `bulk`, `configs`, `allocations`, `registry`, `cost`, `server` — the commands, by concept,
  each handler beside its arguments;
- `output` — tables, CSV, JSON, hints and the progress bar; `connection` — the workspace;
- `exits` — exit statuses and `translate`, the one place an error becomes a message;
- `program` — the parser built from `program.COMMANDS`, and `main`.

Exit status: 0 every row ended well · 1 some row invalid, failed or in conflict (or the single
request was refused) · 2 usage or fatal error (bad credentials, unreadable file, server
unreachable), with one ``coins: error: …`` line on stderr and never a traceback · 130 interrupted.
"""

from toolkit.cli.allocations import cmd_allocate, cmd_balance
from toolkit.cli.bulk import cmd_bulk_allocate, cmd_bulk_create, cmd_plan, cmd_validate
from toolkit.cli.configs import cmd_create, cmd_get, cmd_update
from toolkit.cli.cost import cmd_cost
from toolkit.cli.exits import CliError
from toolkit.cli.program import build_parser, command_names, main
from toolkit.cli.registry import cmd_configs, cmd_history, cmd_import_ids, cmd_refresh, cmd_revert
from toolkit.cli.server import cmd_doctor, cmd_sandbox

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
