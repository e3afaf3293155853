"""Bulk runs owned by the app's server process, not by a browser tab.

A run started from the Bulk upload or Allocate page is a `ServerRun` on the process-wide
`Board`: it keeps going when its tab reloads or closes, and any tab of anyone signed in finds it
again (by the sheet's lock key, or in the runs list) with live progress. Before sending, the run
takes the sheet's lock in the journal (`toolkit.bulk.journal.acquire_run_lock`), so the same
sheet on the same server cannot run twice at once, here or in another process; the lock is
refreshed while the run lasts and released with how it ended. A run above the approval limits
waits, holding the lock, until an approver says yes.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import streamlit as st

from toolkit import bulk
from toolkit.bulk.journal import (
    LockHolder,
    RunLock,
    RunLocked,
    acquire_run_lock,
    list_runs,
    make_lock_key,
    run_lock_holder,
)
from toolkit.bulk.resuming import run_key as plan_run_key
from toolkit.ui.caches import invalidate
from toolkit.ui.connection import connection
from toolkit.ui.jobs import Job, start_job_thread

if TYPE_CHECKING:
    from toolkit.bulk import Plan, RunResult
    from toolkit.workspace import Workspace

__all__ = [
    "Board",
    "ServerRun",
    "board",
    "coins_to_send",
    "find",
    "home_of",
    "journal_runs",
    "lock_key_for",
    "of_kind",
    "progress_text",
    "start",
]

log = logging.getLogger(__name__)

KEEP_FINISHED = 6  # finished runs whose results stay in memory (each holds its whole sheet)
HEARTBEAT_S = 5.0
SENDING_ACTIONS = ("create", "update", "allocate")


@dataclass
class ServerRun:
    """One bulk run on this server: its plan as it was when it started, who started it (and
    approved it), the job sending it, and the sheet lock it holds."""

    lock_key: str
    run_key: str
    board_key: str  # the registry file and the lock key: one process may serve several homes
    kind: str
    mode: str
    name: str
    actor: str
    plan: Plan
    workspace: Workspace
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    job: Job[RunResult] | None = None
    lock: RunLock | None = None
    waiting_reason: str | None = None  # set while it waits for an approver
    approved_by: str | None = None
    rejected_by: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    decided: threading.Lock = field(default_factory=threading.Lock, repr=False)
    first_done: int | None = None  # rows already final when sending began (reused, invalid)
    first_at: float | None = None
    ended: float | None = None

    @property
    def waiting(self) -> bool:
        return self.waiting_reason is not None and self.job is None and not self.rejected_by

    @property
    def running(self) -> bool:
        """Sending now (until its job has ended, even while the thread winds down)."""
        return self.job is not None and self.job.finished is None

    @property
    def state(self) -> str:
        if self.rejected_by:
            return "rejected"
        if self.waiting:
            return "awaiting approval"
        if self.job is None:
            return "not started"
        if self.running:
            return "stopping" if self.job.cancelled else "running"
        result = self.job.result
        if self.job.error or (result is not None and result.fatal_error is not None):
            return "stopped"
        if result is not None and result.cancelled:
            return "cancelled"
        return "finished"


class Board:
    """Every run this server process knows, by the sheet's lock key."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.runs: dict[str, ServerRun] = {}

    def get(self, board_key: str) -> ServerRun | None:
        with self.lock:
            return self.runs.get(board_key)

    def of_kind(self, kind: str, home: str) -> list[ServerRun]:
        with self.lock:
            found = [
                r for r in self.runs.values() if r.kind == kind and r.board_key.startswith(home)
            ]
        return sorted(found, key=lambda r: r.started_at, reverse=True)

    def put(self, run: ServerRun) -> None:
        with self.lock:
            self.runs[run.board_key] = run
            done = [
                r for r in self.runs.values() if not r.running and not r.waiting and r is not run
            ]
            for old in sorted(done, key=lambda r: r.started_at)[
                : max(0, len(done) - KEEP_FINISHED)
            ]:
                self.runs.pop(old.board_key, None)


@st.cache_resource(show_spinner=False)
def board() -> Board:
    """The one board of this server process (shared by every session and tab)."""
    return Board()


def lock_key_for(ws: Workspace, plan: Plan) -> tuple[str, str]:
    """(lock key, run key) of ``plan`` on ``ws``'s server."""
    server_key = str(ws.client.server_key or "")
    return (
        make_lock_key(plan.file_sha256, plan.kind, server_key),
        plan_run_key(plan, server_key),
    )


def home_of(ws: Workspace) -> str:
    """The registry file a board key starts with."""
    return str(Path(ws.registry.path).resolve()) + "|"


def find(ws: Workspace, plan: Plan) -> ServerRun | None:
    """The server's run of ``plan``'s sheet on ``ws``'s registry and server, if any."""
    lock_key, _ = lock_key_for(ws, plan)
    return board().get(home_of(ws) + lock_key)


def of_kind(ws: Workspace, kind: str) -> list[ServerRun]:
    """The server's runs of ``kind`` on ``ws``'s registry, newest first."""
    return board().of_kind(kind, home_of(ws))


def coins_to_send(plan: Plan) -> int | None:
    """The coins the rows to send set (configurations) or award (allocations), if known."""
    frame = plan.decided  # the amounts: no requestId needed
    if "amount" not in frame.columns:
        return None
    sending = frame[frame["action"].isin(SENDING_ACTIONS)]
    amounts = sending["amount"].astype("Float64")
    if amounts.isna().any() and plan.kind == "allocations":
        return None  # some pairs' coins are unknown: the total would understate
    return int(amounts.fillna(0).sum())


def holder_elsewhere(ws: Workspace, lock_key: str) -> LockHolder | None:
    """The live holder of the sheet's lock outside this process's board (CLI, another app
    process), or None."""
    holder = run_lock_holder(ws.registry.path, lock_key)
    return holder if holder is not None and holder.alive else None


def start(
    ws: Workspace,
    plan: Plan,
    *,
    name: str,
    actor: str,
    concurrency: int,
    rps: float | None,
    waiting_reason: str | None = None,
) -> ServerRun | str:
    """Start ``plan`` as a server run (or park it for an approver when ``waiting_reason``);
    a sentence instead when the sheet is already running here or elsewhere."""
    lock_key, run_key = lock_key_for(ws, plan)
    shared = board()
    existing = shared.get(home_of(ws) + lock_key)
    if existing is not None and (existing.running or existing.waiting):
        return f"This sheet is already {existing.state} (started by {existing.actor})."
    try:
        lock = acquire_run_lock(
            ws.registry.path,
            lock_key=lock_key,
            run_key=run_key,
            actor=actor,
            source_name=name,
        )
    except RunLocked as exc:
        return f"Not started: {exc}."
    run = ServerRun(
        lock_key=lock_key,
        run_key=run_key,
        board_key=home_of(ws) + lock_key,
        kind=plan.kind,
        mode=plan.mode,
        name=name,
        actor=actor,
        plan=plan,
        workspace=ws,
        lock=lock,
        waiting_reason=waiting_reason,
        options={"concurrency": concurrency, "rps": rps},
    )
    shared.put(run)
    if waiting_reason is None:
        _launch(run)
    return run


def approve(run: ServerRun, approver: str) -> None:
    """An approver's yes: the run starts now, still under its starter's name (two approvers
    clicking at once start it once)."""
    with run.decided:
        if not run.waiting:
            return
        run.approved_by = approver
        if run.lock is not None:
            run.lock.approve(approver)
        _launch(run)


def reject(run: ServerRun, by: str) -> None:
    """An approver's no (or the starter withdrawing it): nothing is sent, the lock is freed."""
    with run.decided:
        if not run.waiting:
            return
        run.rejected_by = by
        if run.lock is not None:
            run.lock.release("rejected")


def _launch(run: ServerRun) -> None:
    job: Job[RunResult] = Job(label="Sending", total=len(run.plan.frame))
    run.job = job
    options = run.options

    def progress(done: int, total: int, counts: dict[str, int]) -> None:
        if run.first_done is None:
            run.first_done, run.first_at = done, time.monotonic()
        shown = ", ".join(f"{n:,} {s}" for s, n in counts.items() if n)
        job.progress(done, total, shown)

    def work(job: Job[RunResult]) -> RunResult:
        return bulk.run(
            run.plan,
            run.workspace,
            concurrency=options["concurrency"],
            rps=options["rps"],
            progress=progress,
            cancel=job.cancel,
            run_key=run.run_key,
        )

    ended = threading.Event()
    conn = connection()  # taken here: the threads make no Streamlit calls

    def beat() -> None:
        while not ended.wait(HEARTBEAT_S):
            if run.lock is not None:
                try:
                    run.lock.beat()
                except Exception:  # a missed beat is not fatal; the next one may succeed
                    log.warning("could not refresh the run lock", exc_info=True)

    def finish() -> None:
        run.ended = time.monotonic()
        ended.set()
        if run.lock is not None:
            try:
                run.lock.release(run.state)
            except Exception:
                log.exception("could not release the run lock")
        invalidate(conn)

    start_job_thread(job, f"bulk-{run.lock_key[:8]}", work, on_end=finish)
    threading.Thread(target=beat, name=f"bulk-beat-{run.lock_key[:8]}", daemon=True).start()


def progress_text(run: ServerRun) -> str:
    """done of total, rows per second, elapsed and time left, and the counts so far."""
    job = run.job
    if job is None:
        return run.state
    total, done = job.total or 0, job.done
    end = run.ended or time.monotonic()
    elapsed = end - job.started
    parts = [f"{done:,} of {total:,} rows"]
    rate = 0.0
    if run.first_at is not None and run.first_done is not None:
        sending_s = end - run.first_at
        rate = (done - run.first_done) / sending_s if sending_s > 0 else 0.0
    if rate > 0:
        parts.append(f"{rate:,.1f} rows/s")
    parts.append(f"elapsed {_duration(elapsed)}")
    if run.running and rate > 0 and total > done:
        parts.append(f"about {_duration((total - done) / rate)} left")
    text = " · ".join(parts)
    if job.message:
        text += f" · {job.message}"
    return text


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def journal_runs(ws: Workspace, kind: str, *, limit: int = 20) -> pd.DataFrame:
    """The journal's latest runs of ``kind`` on this server (see `list_runs`)."""
    server_key = str(ws.client.server_key or "")
    return list_runs(ws.registry.path, kind=kind, server_key=server_key, limit=limit)
