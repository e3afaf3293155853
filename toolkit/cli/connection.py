"""The workspace a command works in: `toolkit.workspace.connect` with the CLI's source, and a
note on stderr of which server it is (at a terminal)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from toolkit.cli.output import PROG, note

if TYPE_CHECKING:
    from toolkit.workspace import Workspace

__all__ = ["connect", "workspace"]


def connect(args: argparse.Namespace) -> Workspace:
    """The workspace from the environment; says which server it is when at a terminal."""
    from toolkit.settings import check_dotenv_permissions
    from toolkit.workspace import connect as connect_workspace

    if warning := check_dotenv_permissions():  # .env holds the secrets
        print(f"{PROG}: warning: {warning}", file=sys.stderr)
    ws = connect_workspace(source="cli")
    if ws.is_sandbox:
        note(
            args,
            f"{PROG}: using the embedded sandbox in {ws.settings.home} "
            "(set ENKASH_BASE_URL to talk to EnKash)",
        )
    else:
        note(args, f"{PROG}: server {ws.settings.base_url}")
    return ws


@contextmanager
def workspace(args: argparse.Namespace) -> Iterator[Workspace]:
    """`connect`, closed however the command ends."""
    ws = connect(args)
    try:
        yield ws
    finally:
        ws.close()
