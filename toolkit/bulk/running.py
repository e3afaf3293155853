"""Run a plan: one adaptive pace for all workers, caps, progress, cancel, deadline, journal,
resume.

The thread that calls ``run`` owns the journal. It commits ``sending`` for the rows it hands
to the workers (as many as may be in flight, and the few more that keep them busy between two
journal writes), collects answers and commits their final statuses in batches. The workers
share one `toolkit.pacing.AdaptivePacer` through the client (`CoinsClient.paced`): the run
finds the server's rate itself, and a throttled answer is sent again without spending the
row's retries. Workers only talk to the API and never raise: every row ends in exactly one
result, and ``run`` checks that rows in = rows out before it returns.

Here is the driver only. What one row does and how it ends is `toolkit.bulk.outcomes`; what
an earlier run of the same file already did, and the work items made as rows are handed out,
`toolkit.bulk.resuming`; the results frame and `RunResult`, `toolkit.bulk.results`; what the
run needs of the client, the registry and the workspace, `toolkit.bulk.seams`.
"""

from __future__ import annotations

import itertools
import logging
import math
import queue
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, NamedTuple

from toolkit.bulk.journal import Journal
from toolkit.bulk.outcomes import (
    ALLOCATION_STATUSES,
    CANCELLED_MESSAGE,
    CONFIG_STATUSES,
    DEADLINE_MESSAGE,
    THROTTLED_AT_DEADLINE_MESSAGE,
    UNREACHABLE_ROWS,
    RowAnswer,
    Unreachable,
    WorkItem,
    stop_reason,
    work,
)
from toolkit.bulk.planning import Plan, plan_allocations
from toolkit.bulk.planning import plan as plan_configs
from toolkit.bulk.progress import ProgressCallback, with_pace
from toolkit.bulk.results import Outcomes, RunResult, results_frame, write_results
from toolkit.bulk.resuming import PendingItems, open_run
from toolkit.bulk.resuming import run_key as run_key_of
from toolkit.bulk.seams import BatchRecorder, BulkClient, BulkWorkspace, RunRegistry
from toolkit.bulk.validation import Validation
from toolkit.errors import EnKashError, TransportError
from toolkit.pacing import AUTO, START_CONCURRENCY, AdaptivePacer, PaceState

if TYPE_CHECKING:
    from toolkit.client import ApiCall, Recorder

__all__ = ["RateLimiter", "run"]

log = logging.getLogger(__name__)

# Requests wait out a throttling server this long each when the run has no deadline.
THROTTLE_WAIT_S = 600.0
# The workers are handed rows this far ahead of what they can be working on (so a worker that
# finishes never waits for the journal), and answers are journaled at most this often: each
# a transaction holding every row since.
HAND_OUT_AHEAD_S = 0.05
JOURNAL_EVERY_S = 0.02
LEFTOVER_CHUNK = 10_000


class RateLimiter:
    """A thread-safe token bucket: at most ``rate`` acquisitions per second (burst 1)."""

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("rps must be more than 0")
        self.interval = 1.0 / rate
        self._clock = clock
        self._next = clock()
        self._lock = threading.Lock()

    def acquire(self, cancel: threading.Event | None = None) -> bool:
        """Wait for a slot; False when ``cancel`` was set while waiting."""
        with self._lock:
            now = self._clock()
            slot = max(self._next, now)
            self._next = slot + self.interval
        delay = slot - self._clock()
        if delay > 0:
            if cancel is not None:
                return not cancel.wait(delay)
            time.sleep(delay)
        return not (cancel is not None and cancel.is_set())


class _RecorderBuffer:
    """Holds the client's recorder calls made during a run; the run's thread flushes them.

    The registry and the journal share one SQLite file: letting 16 workers each commit an
    audit row would have them queue on the file's write lock (and on checkpoints) between
    requests. Workers append here instead; the thread that owns the journal writes them to
    the registry before it journals the rows' final statuses, so a crash in between leaves
    those rows ``sending``, and resuming records them again.
    """

    def __init__(self, client: BulkClient) -> None:
        self.client = client
        self.target: Recorder | None = client.recorder
        self._calls: list[ApiCall] = []
        self._lock = threading.Lock()
        self.closed = False
        if self.target is not None:
            client.recorder = self

    def record_call(self, call: ApiCall) -> None:
        if self.closed:  # a run that began after ours may still point here
            if self.target is not None:
                self.target.record_call(call)
            return
        with self._lock:
            self._calls.append(call)

    def record_calls(self, calls: Iterable[ApiCall]) -> None:
        for call in calls:
            self.record_call(call)

    def flush(self) -> None:
        with self._lock:
            calls, self._calls = self._calls, []
        target = self.target
        if not calls or target is None:
            return
        if isinstance(target, BatchRecorder):  # one transaction for the batch (the registry)
            try:
                target.record_calls(calls)
                return
            except Exception:
                log.exception("the registry could not record %d calls at once", len(calls))
        for call in calls:
            try:
                target.record_call(call)
            except Exception:  # as the client does: a recorder failure never hides a result
                log.exception("the registry could not record a %s call", call.action)

    def close(self) -> None:
        self.flush()
        self.closed = True
        if self.client.recorder is self:
            target = self.target
            while isinstance(target, _RecorderBuffer) and target.closed:
                target = target.target
            self.client.recorder = target


class _Workers:
    """The run's worker threads: each takes the next item from a queue and hands back its
    answer. Started as the run needs more (up to its concurrency), never more."""

    def __init__(self, work: Callable[[WorkItem], _Answer]) -> None:
        self._work = work
        self._todo: queue.SimpleQueue[WorkItem | None] = queue.SimpleQueue()
        self.answers: queue.SimpleQueue[_Answer] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []

    def __len__(self) -> int:
        return len(self._threads)

    def grow(self, n: int) -> None:
        while len(self._threads) < n:
            thread = threading.Thread(
                target=self._loop, name=f"bulk-run-{len(self._threads)}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def hand_out(self, item: WorkItem) -> None:
        self._todo.put(item)

    def _loop(self) -> None:
        while (item := self._todo.get()) is not None:
            self.answers.put(self._work(item))

    def close(self) -> None:
        for _ in self._threads:
            self._todo.put(None)
        for thread in self._threads:
            thread.join()


class _Answer(NamedTuple):
    """A row's answer as the driver takes it: `RowAnswer`'s fields, and ``unsent`` (no
    request of this row left: the journal may count it as never sent)."""

    row: int
    status: str
    coin_config_id: str | None
    message: str
    error: EnKashError | Unreachable | None
    unsent: bool


@dataclass
class _Drove:
    sent: int
    cancelled: bool
    fatal: EnKashError | None
    deadline_reached: bool
    pace: PaceState


@contextmanager
def _ctrl_c_stops(interrupted: threading.Event) -> Iterator[None]:
    """In the main thread, Ctrl-C sets ``interrupted`` (the run stops handing out rows and
    collects the answers in flight) rather than raising wherever the loop happens to be,
    which could lose answers already taken; a second Ctrl-C raises as usual."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is not signal.default_int_handler:  # someone else's handler: left alone
        yield
        return

    def stop_on_ctrl_c(signum: int, frame: FrameType | None) -> None:
        if interrupted.is_set():
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        interrupted.set()

    signal.signal(signal.SIGINT, stop_on_ctrl_c)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _drive(
    *,
    journal: Journal,
    run_id: str,
    client: BulkClient,
    items: PendingItems,
    to_send: int,
    mode: str,
    pacer: AdaptivePacer,
    cancel: threading.Event | None,
    progress: ProgressCallback | None,
    final: Outcomes,
    total: int,
    statuses: tuple[str, ...],
) -> _Drove:
    """The loop: journal `sending`, hand out, collect, journal finals in batches."""
    stop = pacer.cancel  # set: no more rows start, and every wait for a turn gives up
    fatal: EnKashError | None = None
    cancelled = deadline_reached = False
    sent = 0
    unreachable = 0  # rows in a row with no usable answer
    counts = {s: 0 for s in statuses}
    counts.update({s: n for s, n in final.counts().items() if n})
    finished: deque[tuple[float, int]] = deque([(time.monotonic(), 0)])  # (when, rows done)
    done_now = 0
    last_report = 0.0
    call_progress = with_pace(progress)

    def rows_per_s() -> float:
        now = time.monotonic()
        while len(finished) > 1 and finished[0][0] < now - 5.0:
            finished.popleft()
        first_at, first_done = finished[0]
        return (done_now - first_done) / (now - first_at) if now > first_at else 0.0

    def pace() -> PaceState:
        return replace(pacer.state(), rows_per_s=rows_per_s())

    def report(force: bool = False) -> None:
        nonlocal last_report
        now = time.monotonic()
        if call_progress is not None and (force or now - last_report >= 0.1):
            last_report = now
            call_progress(len(final), total, dict(counts), pace())

    recorder = _RecorderBuffer(client)
    # One pacer for every worker: the run's rate spans them all.
    budget = THROTTLE_WAIT_S if pacer.deadline is None else math.inf
    worker_client = client.paced(pacer, throttle_budget_s=budget)

    def one_row(item: WorkItem) -> _Answer:
        if stop.is_set() or pacer.expired():  # the run stopped while this row was queued
            return _Answer(item.row, "skipped", None, CANCELLED_MESSAGE, None, True)
        pacer.take_refusal()
        try:
            answer = work(worker_client, item, mode, stop)
        except BaseException as exc:  # work never raises; a bug must still not lose the row
            log.exception("row %s failed unexpectedly", item.row)
            answer = RowAnswer(
                item.row, "failed", None, f"internal error: {type(exc).__name__}", None
            )
        row, status, config_id, message, error = answer
        refused, acted, throttles = pacer.take_refusal()
        if refused and status == "failed" and error is None:
            # The pacer refused the request its turn, so that request was not sent: at the
            # deadline a row the server kept throttling fails; any other row is not sent.
            if pacer.expired() and throttles:
                message = THROTTLED_AT_DEADLINE_MESSAGE
            else:
                status, message = "skipped", CANCELLED_MESSAGE
        return _Answer(row, status, config_id, message, error, refused and acted == 0)

    workers = _Workers(one_row)
    outstanding = 0  # handed out, answer not yet back
    exhausted = to_send == 0
    interrupted = threading.Event()  # Ctrl-C
    report(force=True)
    try:
        with _ctrl_c_stops(interrupted):
            while True:
                if (interrupted.is_set() or (cancel is not None and cancel.is_set())) and (
                    not stop.is_set()
                ):
                    cancelled = True
                    stop.set()
                if pacer.expired() and not stop.is_set():
                    deadline_reached = True
                    stop.set()
                if not stop.is_set() and not exhausted:
                    limit = pacer.concurrency()
                    workers.grow(limit)
                    # As few as keep the workers busy between two journal writes: a row
                    # handed out is `sending`, and after a crash a row `sending` is one
                    # whose request may have left.
                    ahead = max(2, min(limit, math.ceil(rows_per_s() * HAND_OUT_AHEAD_S)))
                    want = limit + ahead - outstanding
                    if want > 0 and (outstanding <= limit or want >= ahead // 2):
                        batch = list(itertools.islice(items, want))
                        exhausted = len(batch) < want
                        if batch:
                            journal.mark_sending(run_id, [item.row for item in batch])
                            for item in batch:
                                item.attempts += 1
                                workers.hand_out(item)
                                outstanding += 1
                if outstanding <= 0:
                    break
                try:
                    answers = [workers.answers.get(timeout=0.1)]
                except queue.Empty:
                    answers = []
                else:
                    # Let more answers gather: one journal transaction for all of them.
                    time.sleep(JOURNAL_EVERY_S)
                    with_more = workers.answers
                    while not with_more.empty():
                        answers.append(with_more.get_nowait())
                if not answers:
                    report()
                    continue
                outstanding -= len(answers)
                finals = []
                unsent = [a.row for a in answers if a.unsent and a.status == "skipped"]
                for row, status, config_id, message, error, _ in answers:
                    if status != "skipped":
                        sent += 1
                    if isinstance(error, Unreachable):
                        unreachable += 1
                        if unreachable >= UNREACHABLE_ROWS and fatal is None:
                            fatal = TransportError(
                                f"{unreachable} rows in a row got no usable answer from the "
                                f"server (last: {error.error.message}); the run stopped",
                                http_status=error.error.http_status,
                            )
                            stop.set()
                        error = None
                    elif status != "skipped":
                        unreachable = 0
                    if error is not None and fatal is None:
                        fatal = error
                        stop.set()
                    if status == "skipped" and message == CANCELLED_MESSAGE:
                        message = (
                            DEADLINE_MESSAGE
                            if fatal is None and (deadline_reached or pacer.expired())
                            else stop_reason(fatal)
                        )
                    finals.append((row, status, config_id, message))
                recorder.flush()  # the registry first: a crash in between leaves `sending`
                journal.record(run_id, finals, unsent=unsent)
                final.set(finals)
                for _, status, _, _ in finals:
                    counts[status] = counts.get(status, 0) + 1
                done_now += len(finals)
                finished.append((time.monotonic(), done_now))
                report()
    finally:
        stop.set()  # whatever happened, rows still queued end at once (skipped)
        workers.close()
        recorder.close()
    # Rows never handed out: skipped, with the reason, so that rows in = rows out.
    reason = DEADLINE_MESSAGE if deadline_reached and fatal is None else stop_reason(fatal)
    rest = items.rest()
    for start in range(0, len(rest), LEFTOVER_CHUNK):
        rows = rest[start : start + LEFTOVER_CHUNK].tolist()
        journal.record(run_id, [(row, "skipped", None, reason) for row in rows])
        final.set_rows(rows, "skipped", reason)
        counts["skipped"] = counts.get("skipped", 0) + len(rows)
    report(force=True)
    return _Drove(sent, cancelled, fatal, deadline_reached, pace())


# -- run ------------------------------------------------------------------------------------


def _resolve_target(
    workspace: BulkWorkspace | None, client: BulkClient | None, registry: RunRegistry | None
) -> tuple[BulkClient, RunRegistry | None]:
    if workspace is not None:
        client = client or workspace.client
        registry = registry or workspace.registry
    if client is None:
        raise ValueError("run needs a workspace, or a client (and a registry or journal_path)")
    return client, registry


def _plan_from_validation(validation: Validation, registry: RunRegistry | None) -> Plan:
    """A validation handed straight to ``run``: plan it first (mode create for configs)."""
    if not isinstance(validation, Validation):
        raise TypeError("run needs a Plan (toolkit.bulk.plan or plan_allocations)")
    if "userId" in validation.frame.columns:
        return plan_allocations(validation, registry)
    return plan_configs(validation, registry)


def _journal_path(registry: RunRegistry | None, journal_path: str | Path | None) -> Path:
    if journal_path is not None:
        return Path(journal_path)
    if registry is None:
        raise ValueError("run needs a registry on a file (or a journal_path) to journal rows")
    return Path(registry.path)


def _caps(concurrency: int | str, rps: float | str | None) -> tuple[int | None, float | None]:
    """The analyst's caps: (concurrency, rps), None where ``auto``."""
    if concurrency == AUTO:
        concurrency_cap = None
    elif isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, or {AUTO!r}")
    else:
        concurrency_cap = concurrency
    if rps is None or rps == AUTO:
        rps_cap = None
    elif isinstance(rps, bool) or not isinstance(rps, int | float) or not rps > 0:
        raise ValueError(f"rps must be more than 0, or {AUTO!r}")
    else:
        rps_cap = float(rps)
    return concurrency_cap, rps_cap


def run(
    plan: Plan | Validation,
    workspace: BulkWorkspace | None = None,
    *,
    client: BulkClient | None = None,
    registry: RunRegistry | None = None,
    concurrency: int | str = AUTO,
    rps: float | str | None = AUTO,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    results_path: str | Path | None = None,
    run_key: str | None = None,
    resume: bool = True,
    journal_path: str | Path | None = None,
    deadline_s: float | None = None,
    start_concurrency: int = START_CONCURRENCY,
) -> RunResult:
    """Send a plan's rows to the API and account for every row.

    ``plan`` comes from ``toolkit.bulk.plan`` or ``plan_allocations`` (a validation is
    planned first, configurations in mode create). Give a ``workspace``
    (``toolkit.workspace.connect()``) or a ``client`` and ``registry``.

    The run finds the server's pace on its own (`toolkit.pacing.AdaptivePacer`, one rate for
    all its workers): ``rps="auto"`` and ``concurrency="auto"`` (the defaults) search for the
    fastest rate the server accepts and keep as many rows in flight as that rate needs
    (starting from ``start_concurrency``); a number for either is a cap the run never
    exceeds. A throttled answer (429, 503 with Retry-After, an EnKash velocity code) is sent
    again without spending the row's retries; a row fails only for a real refusal, or when
    ``deadline_s`` (seconds for the whole run; None = none, each request then waits out
    throttling for at most ten minutes) has passed — rows not sent by then are ``skipped``.

    ``progress(done, total, counts)`` is called from this thread at most every 0.1 s and once
    at the end; a callback that takes a ``pace`` keyword also gets the run's
    `toolkit.pacing.PaceState` (rate, throttling, the measured limit). Setting ``cancel``
    stops sending (rows not started end ``skipped``; Ctrl-C does the same).
    ``results_path`` also writes the results CSV (``write_results``). ``run_key`` overrides
    the key that finds an earlier run of the same file; ``resume=False`` starts afresh
    (derived requestIds and the client's conflict checks still keep anything from being done
    twice). The journal lives in the registry's SQLite file unless ``journal_path`` names
    another.
    """
    concurrency_cap, rps_cap = _caps(concurrency, rps)
    if deadline_s is not None and not deadline_s > 0:
        raise ValueError("deadline_s must be more than 0 seconds")
    started = time.perf_counter()
    pacer = AdaptivePacer(
        rps_cap=rps_cap,
        concurrency_cap=concurrency_cap,
        start_concurrency=start_concurrency,
        deadline=None if deadline_s is None else time.monotonic() + deadline_s,
    )
    client, registry = _resolve_target(workspace, client, registry)
    if not isinstance(plan, Plan):
        plan = _plan_from_validation(plan, registry)
    server_key = client.server_key
    key = run_key or run_key_of(plan, server_key)
    statuses = ALLOCATION_STATUSES if plan.kind == "allocations" else CONFIG_STATUSES
    total = len(plan.frame)

    journal = Journal(_journal_path(registry, journal_path))
    try:
        opened = open_run(
            journal, plan, run_key=key, server_key=server_key, resume=resume, statuses=statuses
        )
        run_id, plan, final, reused = opened.run_id, opened.plan, opened.final, opened.reused
        drove = _drive(
            journal=journal,
            run_id=run_id,
            client=client,
            items=PendingItems(plan, opened.todo),
            to_send=len(opened.todo),
            mode=plan.mode,
            pacer=pacer,
            cancel=cancel,
            progress=progress,
            final=final,
            total=total,
            statuses=statuses,
        )
        del opened
        sent, cancelled, fatal = drove.sent, drove.cancelled, drove.fatal
        journal.set_state(run_id, "stopped" if fatal else "cancelled" if cancelled else "finished")
    finally:
        journal.close()

    frame = results_frame(plan, final)
    found = final.counts()
    del final
    counts = {s: found.get(s, 0) for s in statuses}
    result = RunResult(
        frame=frame,
        run_id=run_id,
        run_key=key,
        kind=plan.kind,
        mode=plan.mode,
        counts=counts,
        sent=sent,
        reused=reused,
        elapsed_s=time.perf_counter() - started,
        cancelled=cancelled,
        fatal_error=fatal,
        deadline_reached=drove.deadline_reached,
        pace=drove.pace,
    )
    if results_path is not None:
        result.results_path = write_results(frame, results_path)
    return result
