"""Holding a sheet's run lock for the length of a run, for any surface that sends a sheet in its
own process (the command line, a notebook, a script).

The lock is the one the app takes (`toolkit.bulk.runlocks`): the same sheet (file content and
kind) on the same server is sent by one process at a time. `sheet_lock` takes it, beats it
while the run goes (a lock silent for `runlocks.LOCK_STALE_S` is taken over), and releases it
with how the run ended — the app's runs list shows that outcome. A live holder's lock raises
`runlocks.RunLocked` (who, since when, where) before anything is sent.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from toolkit.bulk.planning import Plan
from toolkit.bulk.results import RunResult
from toolkit.bulk.resuming import run_key
from toolkit.bulk.runlocks import RunLock, acquire_run_lock, make_lock_key
from toolkit.bulk.seams import BulkWorkspace

__all__ = ["HEARTBEAT_S", "HeldLock", "sheet_lock"]

log = logging.getLogger(__name__)

HEARTBEAT_S = 5.0
"""How often a held lock is refreshed while its run goes."""


class HeldLock:
    """The lock of a run under way. Pass ``run_key`` to `toolkit.bulk.run` (the run the lock
    was taken for) and ``ended(result)`` its result (the outcome the lock is released with:
    finished, cancelled or stopped; stopped if never told)."""

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


@contextmanager
def sheet_lock(
    workspace: BulkWorkspace,
    plan: Plan,
    *,
    actor: str | None = None,
    source_name: str | None = None,
) -> Iterator[HeldLock]:
    """Hold ``plan``'s sheet lock on the workspace's server for the ``with`` block::

        with bulk.sheet_lock(ws, plan, actor=ws.settings.actor) as held:
            result = bulk.run(plan, ws, run_key=held.run_key)
            held.ended(result)

    Raises `toolkit.bulk.runlocks.RunLocked` (nothing sent) when a live process holds it.
    ``source_name`` (default: the plan's) is what the runs list calls the sheet.
    """
    server_key = workspace.client.server_key
    lock = acquire_run_lock(
        workspace.registry.path,
        lock_key=make_lock_key(plan.file_sha256, plan.kind, server_key),
        run_key=run_key(plan, server_key),
        actor=actor,
        source_name=source_name if source_name is not None else plan.source_name,
    )
    held = HeldLock(lock)
    done = threading.Event()

    def beat() -> None:
        while not done.wait(HEARTBEAT_S):
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
        done.set()
        beating.join(timeout=HEARTBEAT_S)
        try:
            lock.release(held.outcome)
        except Exception:  # the run's rows are journaled; a lock left behind goes stale
            log.exception("could not release the run lock")
