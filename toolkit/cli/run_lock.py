"""A CLI bulk run holds the sheet's run lock, the same one the app takes
(`toolkit.bulk.runlocks.acquire_run_lock`): the same sheet on the same server cannot be sent by
the app and the command line at once, nor by two terminals. The lock is beaten while the run
goes and released with how it ended; a lock held by someone alive is refused in one line (who,
since when, where, which run), exit 1.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from toolkit.cli.exits import EXIT_ROWS, CliError

if TYPE_CHECKING:
    from toolkit.bulk import Plan, RunResult
    from toolkit.bulk.runlocks import LockHolder, RunLock
    from toolkit.workspace import Workspace

__all__ = ["HEARTBEAT_S", "HeldLock", "sheet_lock"]

log = logging.getLogger(__name__)

HEARTBEAT_S = 5.0
"""How often a running CLI run refreshes its lock (a lock silent for
`toolkit.bulk.runlocks.LOCK_STALE_S` is taken over)."""


class HeldLock:
    """The lock of a run under way; ``ended(result)`` says how it ended (the outcome the lock
    is released with: finished, cancelled or stopped)."""

    def __init__(self, lock: RunLock) -> None:
        self.lock = lock
        self.outcome = "stopped"

    @property
    def run_key(self) -> str:
        """The run key the lock was taken for (the run resumes by it)."""
        return self.lock.run_key

    def ended(self, result: RunResult) -> None:
        """Record how the run ended, as the app's runs list names it."""
        if result.fatal_error is not None:
            self.outcome = "stopped"
        elif result.cancelled:
            self.outcome = "cancelled"
        else:
            self.outcome = "finished"


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
    """Hold ``plan``'s sheet lock on ``ws``'s server for the ``with`` block (beaten every
    `HEARTBEAT_S`), or raise `CliError` (exit 1) naming who holds it."""
    from toolkit.bulk.resuming import run_key
    from toolkit.bulk.runlocks import RunLocked, acquire_run_lock, make_lock_key

    server_key = ws.client.server_key
    try:
        lock = acquire_run_lock(
            ws.registry.path,
            lock_key=make_lock_key(plan.file_sha256, plan.kind, server_key),
            run_key=run_key(plan, server_key),
            actor=ws.settings.actor,
            source_name=source_name,
        )
    except RunLocked as exc:
        raise CliError(_refusal(ws, exc.holder, str(exc)), EXIT_ROWS) from None
    held = HeldLock(lock)
    ended = threading.Event()

    def beat() -> None:
        while not ended.wait(HEARTBEAT_S):
            try:
                lock.beat()
            except Exception:  # a missed beat is not fatal; the next one may succeed
                log.warning("could not refresh the run lock", exc_info=True)

    beating = threading.Thread(target=beat, name="coins-lock-beat", daemon=True)
    beating.start()
    try:
        yield held
    except KeyboardInterrupt:
        held.outcome = "cancelled"
        raise
    finally:
        ended.set()
        beating.join(timeout=HEARTBEAT_S)
        try:
            lock.release(held.outcome)
        except Exception:  # the run's rows are journaled; a lock left behind goes stale
            log.exception("could not release the run lock")
