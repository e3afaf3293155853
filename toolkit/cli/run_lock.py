"""A CLI bulk run holds the sheet's run lock, the same one the app takes
(`toolkit.bulk.runlocks.acquire_run_lock`): the same sheet on the same server cannot be sent by
the app and the command line at once, nor by two terminals. The lock is beaten while the run
goes and released with how it ended; a lock held by someone alive is refused in one line (who,
since when, where, which run), exit 1.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING

from toolkit.cli.exits import EXIT_ROWS, CliError

if TYPE_CHECKING:
    from toolkit.bulk import Plan
    from toolkit.bulk.locking import HeldLock
    from toolkit.bulk.runlocks import LockHolder
    from toolkit.workspace import Workspace

__all__ = ["sheet_lock"]


def _refusal(ws: Workspace, holder: LockHolder, reason: str) -> str:
    """One line: the holder's own words, the run it is sending, and what to do."""
    from toolkit.bulk import Journal

    journal = Journal(ws.registry.path)
    try:
        found = journal.find_run(holder.run_key)
    finally:
        journal.close()
    which = f"process {holder.pid}"
    if found is not None:
        name = f" of {found.source_name}" if found.source_name else ""
        which = f"run {found.run_id}{name}, {which}"
    return (
        f"not started: {reason} ({which}); nothing was sent. Run the same command again when "
        "it has finished: rows it sent are not sent again"
    )


@contextmanager
def sheet_lock(ws: Workspace, plan: Plan, *, source_name: str | None) -> Iterator[HeldLock]:
    """`toolkit.bulk.sheet_lock` for the ``with`` block, or `CliError` (exit 1) naming who
    holds it."""
    from toolkit.bulk.locking import sheet_lock as hold
    from toolkit.bulk.runlocks import RunLocked

    with ExitStack() as stack:
        try:
            held = stack.enter_context(
                hold(ws, plan, actor=ws.settings.actor, source_name=source_name)
            )
        except RunLocked as exc:
            raise CliError(_refusal(ws, exc.holder, str(exc)), EXIT_ROWS) from None
        yield held
