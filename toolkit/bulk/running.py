"""Run a plan: bounded concurrency, an optional rate cap, progress, cancel, journal, resume.

The thread that calls ``run`` owns the journal. It commits ``sending`` for the rows it hands
to the workers (never more rows than there are free workers), waits for answers, and commits
their final statuses in batches. Workers only talk to the API and never raise: every row
ends in exactly one result, and ``run`` checks that rows in = rows out before it returns.

Running the same file again (same run key: file sha256, kind, mode, server) resumes: rows
already final are reused; rows left ``pending``, ``sending``, ``failed`` or ``skipped`` are
sent again, resolved as the client does (a create whose existing configuration has the sent
values is done; an allocation is re-sent with the same requestId as "already done" when
repeated).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from toolkit.bulk.journal import DONE_STATUSES, Journal, make_run_key
from toolkit.bulk.planning import Plan
from toolkit.bulk.results import write_results
from toolkit.errors import (
    AuthError,
    ConflictError,
    EnKashError,
    LoginUnavailableError,
    TransportError,
    UnconfirmedError,
)
from toolkit.models import CoinConfig, check_configuration

__all__ = [
    "ALLOCATION_STATUSES",
    "CANCELLED_MESSAGE",
    "CONFIG_STATUSES",
    "ProgressBar",
    "RateLimiter",
    "RunResult",
    "progress_bar",
    "run",
]

log = logging.getLogger(__name__)

CONFIG_STATUSES = (
    "created",
    "updated",
    "unchanged",
    "unconfirmed",
    "skipped",
    "invalid",
    "failed",
    "conflict",
)
ALLOCATION_STATUSES = (
    "allocated",
    "unchanged",
    "unconfirmed",
    "skipped",
    "invalid",
    "failed",
    "conflict",
)
GOOD_STATUSES = frozenset({"created", "updated", "unchanged", "allocated"})
CANCELLED_MESSAGE = "cancelled — run again to resume"
SENDING_ACTIONS = frozenset({"create", "update", "allocate"})

ProgressCallback = Callable[[int, int, dict[str, int]], Any]


@dataclass
class RunResult:
    """What a run did: one result row per input row, and its accounting.

    ``frame`` columns: ``row``, every input column as the analyst gave it (text), then
    ``status``, ``coinConfigId``, ``message`` (allocations add ``requestId``, the one sent).
    ``sent`` rows were sent by this call; ``reused`` rows kept their result from an earlier
    run of the same file. ``fatal_error`` is set when the run stopped early for a reason no
    row can fix (credentials refused); the rows not sent are then ``skipped``.
    """

    frame: pd.DataFrame
    run_id: str
    run_key: str
    kind: str
    mode: str
    counts: dict[str, int]
    sent: int = 0
    reused: int = 0
    elapsed_s: float = 0.0
    cancelled: bool = False
    fatal_error: EnKashError | None = None
    results_path: Path | None = None

    @property
    def ok(self) -> bool:
        """True when every row ended well (created, updated, unchanged or allocated)."""
        return bool(self.frame["status"].isin(GOOD_STATUSES).all())

    @property
    def rows_per_second(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def summary(self) -> str:
        parts = [f"{n} {s}" for s, n in self.counts.items() if n]
        text = f"run {self.run_id}: {len(self.frame)} rows"
        if parts:
            text += " — " + ", ".join(parts)
        if self.reused:
            text += f" ({self.reused} from an earlier run of this file)"
        if self.cancelled:
            text += "; cancelled, run again to resume"
        if self.fatal_error is not None:
            text += f"; stopped: {self.fatal_error}"
        return text


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

    def __init__(self, client: Any) -> None:
        self.client = client
        self.target = getattr(client, "recorder", None)
        self._calls: list[Any] = []
        self._lock = threading.Lock()
        self.closed = False
        if self.target is not None:
            client.recorder = self

    def record_call(self, call: Any) -> None:
        if self.closed:  # a run that began after ours may still point here
            if self.target is not None:
                self.target.record_call(call)
            return
        with self._lock:
            self._calls.append(call)

    def flush(self) -> None:
        with self._lock:
            calls, self._calls = self._calls, []
        if not calls:
            return
        many = getattr(self.target, "record_calls", None)
        if callable(many):  # one transaction for the batch, when the registry offers it
            try:
                many(calls)
                return
            except Exception:
                log.exception("the registry could not record %d calls at once", len(calls))
        for call in calls:
            try:
                self.target.record_call(call)
            except Exception:  # as the client does: a recorder failure never hides a result
                log.exception("the registry could not record a %s call", call.action)

    def close(self) -> None:
        self.flush()
        self.closed = True
        if getattr(self.client, "recorder", None) is self:
            target = self.target
            while isinstance(target, _RecorderBuffer) and target.closed:
                target = target.target
            self.client.recorder = target


@dataclass
class _Item:
    row: int
    action: str
    attempts: int
    values: dict[str, Any] = field(default_factory=dict)


class ProgressBar:
    """A tqdm bar as a progress callback: ``progress(done, total[, counts])``.

    Fits every progress callback of the toolkit (``Registry.refresh``/``import_ids`` call it
    with ``(done, total)``, ``run`` with ``(done, total, counts)``, shown beside the bar). The
    bar starts at the first call's ``done`` (rows reused from an earlier run or invalid), so
    its rate counts only rows sent now, and closes itself when ``done`` reaches ``total``.
    ``tqdm_class`` picks the bar (default ``tqdm.auto``); other keywords go to it.
    """

    def __init__(self, *, tqdm_class: Any = None, **tqdm_kwargs: Any) -> None:
        self._tqdm_class = tqdm_class
        self._kwargs = {"unit": "row", **tqdm_kwargs}
        self.bar: Any = None

    def __call__(
        self, done: int, total: int | None = None, counts: dict[str, int] | None = None, *_: Any
    ) -> None:
        bar = self.bar
        if bar is None:
            if self._tqdm_class is None:
                from tqdm.auto import tqdm as tqdm_class
            else:
                tqdm_class = self._tqdm_class
            bar = self.bar = tqdm_class(total=total, initial=done, **self._kwargs)
        if total is not None:
            bar.total = total
        if counts:
            bar.set_postfix({k: v for k, v in counts.items() if v}, refresh=False)
        # update() redraws at most every `mininterval`; close() draws the final state.
        if done > bar.n:
            bar.update(done - bar.n)
        if total is not None and done >= total:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def progress_bar(**tqdm_kwargs: Any) -> ProgressBar:
    """A `ProgressBar` (tqdm) to pass as ``progress=`` to `run`, ``refresh`` or ``import_ids``."""
    return ProgressBar(**tqdm_kwargs)


def _is_blank(value: Any) -> bool:
    return value is None or (not isinstance(value, str) and pd.isna(value))


def _text(value: Any) -> str | None:
    return None if _is_blank(value) else str(value)


def _describe(config: CoinConfig) -> str:
    return f"{config.configuration} {config.amount}"


# -- workers (never raise) -----------------------------------------------------------------


def _create(client: Any, item: _Item, mode: str) -> tuple[str, str | None, str]:
    v = item.values
    wanted = CoinConfig(
        company_id=v["companyId"],
        event=v["event"],
        configuration=check_configuration(v["configuration"])[0],
        amount=v["amount"],
    )
    # Sent by an earlier attempt (a crash, an interrupted run, an unconfirmed row): the client
    # re-checks it only where the server's answers make that safe.
    sent_before = item.attempts > 1
    try:
        made = client.create_config(
            company_id=wanted.company_id,
            event=wanted.event,
            amount=wanted.amount,
            configuration=str(wanted.configuration),
            may_exist=sent_before,
        )
        return (
            "created",
            made.coin_config_id,
            "created (confirmed: an earlier attempt had made it)" if sent_before else "created",
        )
    except ConflictError as exc:
        existing_id = exc.existing_id
        existing = None
        if existing_id:
            try:
                existing = client.get_config(existing_id)
            except EnKashError as lookup:
                log.info("could not fetch %s after a conflict: %s", existing_id, lookup)
        if existing is None:
            return "conflict", existing_id, f"already configured: {exc}"
        if existing.company_id is None:
            existing = existing.merge(wanted)
        if existing.same_values(wanted):
            return (
                "unchanged",
                existing_id,
                f"already configured as {existing_id} with the same values",
            )
        change = f"already configured as {existing_id}: {_describe(existing)} → {_describe(wanted)}"
        if mode != "upsert":
            return "conflict", existing_id, change + "; not changed in mode create"
        updated = client.update_config(
            existing_id,
            amount=wanted.amount,
            configuration=str(wanted.configuration),
            known=existing,
        )
        return "updated", updated.coin_config_id or existing_id, change.split(": ", 1)[1]


def _update(client: Any, item: _Item) -> tuple[str, str | None, str]:
    v = item.values
    configuration = check_configuration(v["configuration"])[0]
    known = CoinConfig(
        coin_config_id=v["coinConfigId"],
        company_id=v["companyId"],
        event=v["event"],
        configuration=check_configuration(v["before_configuration"])[0],
        amount=v["before_amount"],
    )
    updated = client.update_config(
        v["coinConfigId"], amount=v["amount"], configuration=str(configuration), known=known
    )
    return (
        "updated",
        updated.coin_config_id or v["coinConfigId"],
        f"{_describe(known)} → {configuration} {v['amount']}",
    )


def _allocate(client: Any, item: _Item) -> tuple[str, str | None, str]:
    v = item.values
    # Sent by an earlier attempt of this file's runs (a crash, a lost answer): the client
    # confirms it by the server's duplicate answer, where the server gives one.
    sent_before = item.attempts > 1
    try:
        done = client.allocate_coins(
            company_id=v["companyId"],
            event=v["event"],
            user_id=v["userId"],
            request_id=v["requestId"],
            # A requestId derived from this sheet's name and this row's values was made by an
            # earlier run of this sheet (an earlier version of the file) when it is a duplicate.
            duplicate_is_done=bool(v["requestId_derived"]),
            sent_before=sent_before,
        )
    except ConflictError as exc:
        return (
            "conflict",
            v["coinConfigId"],
            f"requestId {v['requestId']} was used before, not by a run of this sheet; nothing "
            f"allocated ({exc})",
        )
    if done.confirmed:
        return (
            "allocated",
            v["coinConfigId"],
            f"allocated (confirmed: requestId {v['requestId']} had reached the server; the "
            "server refused the repeat, nothing allocated twice)",
        )
    if done.already_done:
        return (
            "unchanged",
            v["coinConfigId"],
            f"already allocated by an earlier run of this sheet (requestId {v['requestId']}); "
            "nothing allocated twice",
        )
    return "allocated", v["coinConfigId"], done.message or "allocated"


# Rows in a row that got no usable answer even after the client's retries before the run
# stops: the server is down, and each further row would spend the whole retry budget too.
UNREACHABLE_ROWS = 5


class _Unreachable:
    """A row's transport failure: not fatal alone, but several in a row stop the run."""

    def __init__(self, error: TransportError) -> None:
        self.error = error


def _work(
    client: Any, item: _Item, mode: str, stop: threading.Event, limiter: RateLimiter | None
) -> tuple[int, str, str | None, str, EnKashError | _Unreachable | None]:
    """One row against the API. Returns (row, status, coinConfigId, message, and a fatal error
    or a transport failure)."""
    if stop.is_set() or (limiter is not None and not limiter.acquire(stop)):
        return item.row, "skipped", None, CANCELLED_MESSAGE, None
    try:
        if item.action == "create":
            status, config_id, message = _create(client, item, mode)
        elif item.action == "update":
            status, config_id, message = _update(client, item)
        else:
            status, config_id, message = _allocate(client, item)
        return item.row, status, config_id, message, None
    except UnconfirmedError as exc:
        # The server may have done it: never "failed". Counted towards "the server stopped
        # answering" only when no answer came at all.
        lost = isinstance(exc.__cause__, TransportError)
        streak = _Unreachable(exc.__cause__) if lost else None
        return item.row, "unconfirmed", None, str(exc), streak
    except (AuthError, LoginUnavailableError) as exc:
        # No login (refused, or no usable answer from the login): the row was not sent, and
        # running the file again once the login works sends it.
        return item.row, "skipped", None, _stop_reason(exc), exc
    except TransportError as exc:
        return (
            item.row,
            "failed",
            None,
            f"{exc} — no usable answer; run the file again: it is safe, nothing is done twice",
            _Unreachable(exc),
        )
    except EnKashError as exc:
        return item.row, "failed", None, str(exc), None
    except Exception as exc:  # a bug must not lose the row; it is logged and reported
        log.exception("row %s failed unexpectedly", item.row)
        return item.row, "failed", None, f"internal error: {type(exc).__name__}: {exc}", None


# -- run ------------------------------------------------------------------------------------


def _resolve_target(workspace: Any, client: Any, registry: Any) -> tuple[Any, Any]:
    if workspace is not None:
        client = client or workspace.client
        registry = registry or workspace.registry
    if client is None:
        raise ValueError("run needs a workspace, or a client (and a registry or journal_path)")
    return client, registry


def _plan_from_validation(validation: Any, registry: Any) -> Plan:
    """A validation handed straight to ``run``: plan it first (mode create for configs)."""
    from toolkit.bulk.planning import plan as plan_configs
    from toolkit.bulk.planning import plan_allocations

    frame = getattr(validation, "frame", None)
    if frame is None:
        raise TypeError("run needs a Plan (toolkit.bulk.plan or plan_allocations)")
    if "userId" in frame.columns:
        return plan_allocations(validation, registry)
    return plan_configs(validation, registry)


def _journal_path(registry: Any, journal_path: str | Path | None) -> Path:
    if journal_path is not None:
        return Path(journal_path)
    path = getattr(registry, "path", None)
    if path is None:
        raise ValueError("run needs a registry on a file (or a journal_path) to journal rows")
    return Path(path)


def _initial_rows(plan: Plan) -> pd.DataFrame:
    """The journal's first view of a run: rows needing no request are final already."""
    frame = plan.frame
    action = frame["action"]
    status = action.where(~action.isin(list(SENDING_ACTIONS)), "pending")
    return pd.DataFrame(
        {
            "row": frame["row"].astype("int64"),
            "action": action,
            "status": status,
            "coin_config_id": frame.get("coinConfigId"),
            "request_id": frame.get("requestId"),
            "message": frame["message"].where(~action.isin(list(SENDING_ACTIONS))),
        }
    )


def _with_sent_request_ids(plan: Plan, state: pd.DataFrame) -> Plan:
    """The plan, with each row an earlier run already sent keeping the requestId it was sent
    with (the journal's), whatever the plan derives today: resending under another id could
    allocate twice."""
    if "requestId" not in plan.frame.columns:
        return plan
    sent = state.loc[(state["attempts"] > 0) & state["request_id"].notna(), ["row", "request_id"]]
    if sent.empty:
        return plan
    frame = plan.frame.copy()
    journaled = frame["row"].map(sent.set_index("row")["request_id"])
    frame["requestId"] = journaled.where(journaled.notna(), frame["requestId"]).astype("str")
    return replace(plan, frame=frame)


def _items(plan: Plan, todo: pd.DataFrame) -> list[_Item]:
    """Work items for the rows still to send, in row order."""
    cols = [c for c in plan.frame.columns if c not in ("action", "message")]
    values = plan.frame[cols].merge(todo[["row", "action", "attempts"]], on="row")
    values = values.sort_values("row", kind="stable")
    items = []
    for record in values.to_dict("records"):
        clean = {k: (None if _is_blank(v) else v) for k, v in record.items()}
        if clean.get("amount") is not None:
            clean["amount"] = int(clean["amount"])
        if clean.get("before_amount") is not None:
            clean["before_amount"] = int(clean["before_amount"])
        items.append(
            _Item(
                row=int(record["row"]),
                action=str(record["action"]),
                attempts=int(record["attempts"]),
                values=clean,
            )
        )
    return items


def run(
    plan: Plan,
    workspace: Any = None,
    *,
    client: Any = None,
    registry: Any = None,
    concurrency: int = 8,
    rps: float | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    results_path: str | Path | None = None,
    run_key: str | None = None,
    resume: bool = True,
    journal_path: str | Path | None = None,
) -> RunResult:
    """Send a plan's rows to the API and account for every row.

    ``plan`` comes from ``toolkit.bulk.plan`` or ``plan_allocations`` (a validation is
    planned first, configurations in mode create). Give a ``workspace``
    (``toolkit.workspace.connect()``) or a ``client`` and ``registry``.
    ``concurrency`` requests at most in flight; ``rps`` caps rows started per second (the
    client's own retries are not counted); ``progress(done, total, counts)`` is called from
    this thread at most every 0.1 s and once at the end; setting ``cancel`` stops sending
    (rows not started end ``skipped``; Ctrl-C does the same). ``results_path`` also writes
    the results CSV (``write_results``). ``run_key`` overrides the key that finds an earlier
    run of the same file; ``resume=False`` starts afresh (derived requestIds and the client's
    conflict checks still keep anything from being done twice). The journal lives in the
    registry's SQLite file unless ``journal_path`` names another.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    started = time.perf_counter()
    client, registry = _resolve_target(workspace, client, registry)
    if not isinstance(plan, Plan):
        plan = _plan_from_validation(plan, registry)
    server_key = str(getattr(client, "server_key", None) or getattr(client, "base_url", ""))
    key = run_key or make_run_key(plan.file_sha256, plan.kind, plan.mode, server_key)
    limiter = RateLimiter(rps) if rps else None
    statuses = ALLOCATION_STATUSES if plan.kind == "allocations" else CONFIG_STATUSES
    total = len(plan.frame)

    journal = Journal(_journal_path(registry, journal_path))
    try:
        found = journal.find_run(key) if resume else None
        if found is None:
            run_id = journal.start_run(
                run_key=key,
                kind=plan.kind,
                mode=plan.mode,
                server_key=server_key,
                rows=_initial_rows(plan),
                source_name=plan.source_name,
                file_sha256=plan.file_sha256,
            )
        else:
            run_id = found.run_id
            before = journal.rows(run_id)
            fresh = _initial_rows(plan)
            missing = fresh[~fresh["row"].isin(before["row"])]
            if len(missing):
                journal.add_rows(run_id, missing)
            # Rows this run decided without sending (invalid, conflict, unchanged) are decided
            # again: the registry may know more now. Rows it sent keep their outcome.
            never_sent = before.loc[before["attempts"] == 0, "row"]
            changed = fresh[fresh["row"].isin(never_sent)].merge(
                before[["row", "action", "status"]], on="row", suffixes=("", "_before")
            )
            changed = changed[
                (changed["action"] != changed["action_before"])
                | (changed["status"] != changed["status_before"])
            ]
            journal.replan(run_id, changed)
            journal.set_state(run_id, "running")
        state = journal.rows(run_id)
        state = state[state["row"].isin(plan.frame["row"])]
        plan = _with_sent_request_ids(plan, state)
        # Rows an earlier run of this file sent and finished: their results are reused.
        reused = int(
            (
                state["status"].isin(list(DONE_STATUSES))
                & state["action"].isin(list(SENDING_ACTIONS))
            ).sum()
        )

        # Rows still to send keep the action their run first planned for them.
        todo = state[~state["status"].isin(list(DONE_STATUSES))]
        todo = todo[todo["action"].isin(list(SENDING_ACTIONS))]
        final: dict[int, tuple[str, str | None, str | None]] = {
            int(r): (s, _text(c), _text(m))
            for r, s, c, m in zip(
                state["row"],
                state["status"],
                state["coin_config_id"],
                state["message"],
                strict=True,
            )
            if s in DONE_STATUSES
        }
        items = _items(plan, todo)
        sent, cancelled, fatal = _drive(
            journal=journal,
            run_id=run_id,
            client=client,
            items=items,
            mode=plan.mode,
            concurrency=concurrency,
            limiter=limiter,
            cancel=cancel,
            progress=progress,
            final=final,
            total=total,
            statuses=statuses,
        )
        journal.set_state(run_id, "stopped" if fatal else "cancelled" if cancelled else "finished")
    finally:
        journal.close()

    frame = _results_frame(plan, final)
    counts = {s: int((frame["status"] == s).sum()) for s in statuses}
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
    )
    if results_path is not None:
        result.results_path = write_results(frame, results_path)
    return result


def _stop_reason(fatal: EnKashError | None) -> str:
    if fatal is None:
        return CANCELLED_MESSAGE
    return f"not sent: {fatal}; fix this and run again to resume"


def _drive(
    *,
    journal: Journal,
    run_id: str,
    client: Any,
    items: list[_Item],
    mode: str,
    concurrency: int,
    limiter: RateLimiter | None,
    cancel: threading.Event | None,
    progress: ProgressCallback | None,
    final: dict[int, tuple[str, str | None, str | None]],
    total: int,
    statuses: tuple[str, ...],
) -> tuple[int, bool, EnKashError | None]:
    """The loop: journal `sending`, hand out, collect, journal finals. Returns (sent,
    cancelled, fatal error)."""
    pending = deque(items)
    in_flight: dict[Future[Any], _Item] = {}
    stop = threading.Event()
    fatal: EnKashError | None = None
    cancelled = False
    sent = 0
    unreachable = 0  # rows in a row with no usable answer
    counts = {s: 0 for s in statuses}
    for status, _, _ in final.values():
        counts[status] = counts.get(status, 0) + 1
    last_report = 0.0

    def report(force: bool = False) -> None:
        nonlocal last_report
        now = time.monotonic()
        if progress is not None and (force or now - last_report >= 0.1):
            last_report = now
            progress(len(final), total, dict(counts))

    report(force=True)
    recorder = _RecorderBuffer(client)
    try:
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="bulk-run") as pool:
            while pending or in_flight:
                try:
                    if cancel is not None and cancel.is_set() and not stop.is_set():
                        cancelled = True
                        stop.set()
                    if not stop.is_set() and pending:
                        batch = [
                            pending.popleft()
                            for _ in range(min(len(pending), concurrency - len(in_flight)))
                        ]
                        if batch:
                            journal.mark_sending(run_id, [item.row for item in batch])
                            for item in batch:
                                item.attempts += 1
                                in_flight[pool.submit(_work, client, item, mode, stop, limiter)] = (
                                    item
                                )
                    if not in_flight:
                        break
                    done, _ = wait(in_flight, timeout=0.25, return_when=FIRST_COMPLETED)
                except KeyboardInterrupt:
                    # Ctrl-C: stop handing out rows, let the ones in flight answer, keep it all.
                    cancelled = True
                    stop.set()
                    continue
                answers = []
                for future in done:
                    in_flight.pop(future)
                    row, status, config_id, message, error = future.result()
                    if status != "skipped":
                        sent += 1
                    if isinstance(error, _Unreachable):
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
                    if status == "skipped":
                        message = _stop_reason(fatal)
                    answers.append((row, status, config_id, message))
                recorder.flush()  # the registry first: a crash in between leaves `sending`
                journal.record(run_id, answers)
                for row, status, config_id, message in answers:
                    final[row] = (status, config_id, message)
                    counts[status] = counts.get(status, 0) + 1
                report()
    finally:
        recorder.close()
    # Rows never handed out: skipped, with the reason, so that rows in = rows out.
    if pending:
        reason = _stop_reason(fatal)
        leftovers = [(item.row, "skipped", None, reason) for item in pending]
        journal.record(run_id, leftovers)
        for row, status, config_id, message in leftovers:
            final[row] = (status, config_id, message)
            counts[status] += 1
    report(force=True)
    return sent, cancelled, fatal


_RESULT_COLUMNS = ("status", "coinConfigId", "message")


def _results_frame(
    plan: Plan, final: dict[int, tuple[str, str | None, str | None]]
) -> pd.DataFrame:
    """Input row and values, then status, coinConfigId, message (and requestId)."""
    inputs = plan.inputs
    added = list(_RESULT_COLUMNS)
    if plan.kind == "allocations":
        added.insert(2, "requestId")
    # An input column that shares a result column's name keeps its value under a new name.
    renames = {c: f"{c} (input)" for c in inputs.columns if c in added and c != "requestId"}
    out = inputs.rename(columns=renames).reset_index(drop=True)
    out["row"] = out["row"].astype("int64")
    rows = plan.frame["row"].astype("int64").tolist()
    status = [final[r][0] if r in final else None for r in rows]
    config_id = [final[r][1] if r in final else None for r in rows]
    message = [final[r][2] if r in final else None for r in rows]
    # Rows without a journal entry cannot happen; a None here fails the check below.
    by_row = pd.DataFrame(
        {
            "row": rows,
            "status": pd.array(status, dtype="str"),
            "coinConfigId": pd.array(config_id, dtype="str"),
            "message": pd.array(message, dtype="str"),
        }
    )
    if plan.kind == "allocations":
        by_row["requestId"] = plan.frame["requestId"].astype("str").to_numpy()
        out = out.drop(columns=["requestId"], errors="ignore")
    merged = out.merge(by_row, on="row", how="left", validate="one_to_one")
    # Rows in = rows out, always: a break here is a bug, never something to hide.
    if not (len(merged) == len(plan.frame) == len(plan.inputs)) or merged["status"].isna().any():
        raise RuntimeError(
            f"bulk run accounting broke: {len(plan.inputs)} rows in, {len(merged)} rows out, "
            f"{int(merged['status'].isna().sum())} without a status"
        )
    return merged
