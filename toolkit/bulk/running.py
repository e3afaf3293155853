"""Run a plan: one adaptive pace for all workers, caps, progress, cancel, deadline, journal,
resume.

The thread that calls ``run`` owns the journal. It commits ``sending`` for the rows it hands
to the workers (as many as may be in flight, and the few more that keep them busy between two
journal writes), collects answers and commits their final statuses in batches. The workers
share one `toolkit.pacing.AdaptivePacer` through the client (`CoinsClient.paced`): the run
finds the server's rate itself, and a throttled answer is sent again without spending the
row's retries. Workers only talk to the API and never raise: every row ends in exactly one
result, and ``run`` checks that rows in = rows out before it returns. Rows are turned into
work items only as they are handed out, so a million-row sheet never holds a million of them.

Running the same file again (same run key: file sha256, kind, mode, server) resumes: rows
already final are reused; rows left ``pending``, ``sending``, ``failed`` or ``skipped`` are
sent again, resolved as the client does (a create whose existing configuration has the sent
values is done; an allocation is re-sent with the same requestId as "already done" when
repeated).
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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
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
from toolkit.pacing import AUTO, START_CONCURRENCY, AdaptivePacer, PaceState

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
    ``deadline_reached`` says the run's deadline stopped it. ``pace`` is how the run went
    (`toolkit.pacing.PaceState`: the server's limit as measured, throttled answers, …).
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
    deadline_reached: bool = False
    pace: PaceState | None = None

    @property
    def throttled(self) -> int:
        """Answers the server throttled during this run (each sent again, no row spent)."""
        return self.pace.throttled if self.pace is not None else 0

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
        if self.throttled and self.pace is not None:
            text += f"; the server throttled {self.throttled} answers"
            if self.pace.limit:
                text += f" (its limit measured at about {self.pace.limit:.0f} requests/s)"
        if self.deadline_reached:
            text += "; the run's deadline passed, run again to resume"
        elif self.cancelled:
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
    Given ``pace`` (`run` passes a `toolkit.pacing.PaceState`), the bar also shows the send
    rate and when the server is throttling. ``tqdm_class`` picks the bar (default
    ``tqdm.auto``); other keywords go to it.
    """

    def __init__(self, *, tqdm_class: Any = None, **tqdm_kwargs: Any) -> None:
        self._tqdm_class = tqdm_class
        self._kwargs = {"unit": "row", **tqdm_kwargs}
        self.bar: Any = None

    def __call__(
        self,
        done: int,
        total: int | None = None,
        counts: dict[str, int] | None = None,
        *_: Any,
        pace: PaceState | None = None,
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
        if counts or pace is not None:
            shown: dict[str, Any] = {k: v for k, v in (counts or {}).items() if v}
            if pace is not None:
                shown["req/s"] = f"{pace.sent_per_s:.0f}"
                if pace.paused_s > 0:
                    shown["server"] = f"paused {pace.paused_s:.1f}s"
                elif pace.throttling:
                    shown["server"] = "throttling"
            bar.set_postfix(shown, refresh=False)
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
            "created (confirmed when resuming: the configuration of this pair has the sheet's "
            "values)"
            if sent_before
            else "created",
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
            f"requestId {v['requestId']} was used before this run (by an earlier run or "
            f"elsewhere); nothing allocated ({exc})",
        )
    if done.confirmed:
        when = "confirmed when resuming" if sent_before else "confirmed"
        return (
            "allocated",
            v["coinConfigId"],
            f"allocated ({when}: requestId {v['requestId']} had reached the server before its "
            "answer was lost; the server refused the repeat, nothing allocated twice)",
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


# Work items are built this many at a time, as the run hands rows out.
ITEMS_CHUNK = 2048


def _positions(frame_rows: pd.Series, rows: Iterable[int] | np.ndarray) -> np.ndarray:
    """Where each of ``rows`` sits in ``frame_rows`` (every one of them must be there)."""
    index = pd.Index(frame_rows.to_numpy(dtype=np.int64))
    found = index.get_indexer(np.asarray(rows, dtype=np.int64))
    if (found < 0).any():  # pragma: no cover - the journal only holds the plan's rows
        raise RuntimeError("a journaled row is not in the plan")
    return found


class _Items:
    """Work items for the rows still to send, in row order, made a chunk at a time as they
    are handed out (a million-row sheet never holds a million items); the rows never handed
    out are told by number alone."""

    def __init__(self, plan: Plan, todo: pd.DataFrame) -> None:
        todo = todo.sort_values("row", kind="stable")
        self._where = _positions(plan.frame["row"], todo["row"])
        self._rows = todo["row"].to_numpy(dtype=np.int64)
        self._actions = todo["action"].astype("str").to_numpy()
        self._attempts = todo["attempts"].to_numpy(dtype=np.int64)
        self._values = plan.frame[[c for c in plan.frame.columns if c not in ("action", "message")]]
        self._made = 0  # items made so far (handed out or waiting in `_ready`)
        self._ready: deque[_Item] = deque()

    def __len__(self) -> int:
        return len(self._ready) + len(self._where) - self._made

    def __iter__(self) -> Iterator[_Item]:
        return self

    def __next__(self) -> _Item:
        if not self._ready:
            self._make()
        if not self._ready:
            raise StopIteration
        return self._ready.popleft()

    def _make(self) -> None:
        start, stop = self._made, min(self._made + ITEMS_CHUNK, len(self._where))
        if start >= stop:
            return
        chunk = self._values.iloc[self._where[start:stop]].to_dict("records")
        for record, action, tries in zip(
            chunk, self._actions[start:stop], self._attempts[start:stop], strict=True
        ):
            clean = {k: (None if _is_blank(v) else v) for k, v in record.items()}
            if clean.get("amount") is not None:
                clean["amount"] = int(clean["amount"])
            if clean.get("before_amount") is not None:
                clean["before_amount"] = int(clean["before_amount"])
            self._ready.append(
                _Item(row=int(record["row"]), action=str(action), attempts=int(tries), values=clean)
            )
        self._made = stop

    def rest(self) -> np.ndarray:
        """The rows never handed out, by number; afterwards there are none."""
        rows = np.concatenate(
            [np.array([i.row for i in self._ready], dtype=np.int64), self._rows[self._made :]]
        )
        self._ready.clear()
        self._made = len(self._where)
        return rows


def _items(plan: Plan, todo: pd.DataFrame) -> _Items:
    return _Items(plan, todo)


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
    plan: Plan,
    workspace: Any = None,
    *,
    client: Any = None,
    registry: Any = None,
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
    server_key = str(getattr(client, "server_key", None) or getattr(client, "base_url", ""))
    key = run_key or make_run_key(plan.file_sha256, plan.kind, plan.mode, server_key)
    statuses = ALLOCATION_STATUSES if plan.kind == "allocations" else CONFIG_STATUSES
    total = len(plan.frame)

    journal = Journal(_journal_path(registry, journal_path))
    try:
        found = journal.find_run(key) if resume else None
        if found is None:
            fresh = _initial_rows(plan)
            run_id = journal.start_run(
                run_key=key,
                kind=plan.kind,
                mode=plan.mode,
                server_key=server_key,
                rows=fresh,
                source_name=plan.source_name,
                file_sha256=plan.file_sha256,
            )
            # What was just journaled, without reading a million rows back.
            state = fresh.assign(attempts=0)
            del fresh
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
            del before, fresh, missing, changed
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
        is_done = state["status"].isin(list(DONE_STATUSES))
        todo = state.loc[~is_done & state["action"].isin(list(SENDING_ACTIONS))]
        final = _Outcomes(plan.frame["row"], statuses)
        done_rows = state.loc[is_done]
        final.set_many(
            done_rows["row"], done_rows["status"], done_rows["coin_config_id"], done_rows["message"]
        )
        del state, done_rows, is_done
        drove = _drive(
            journal=journal,
            run_id=run_id,
            client=client,
            items=_items(plan, todo),
            to_send=len(todo),
            mode=plan.mode,
            pacer=pacer,
            cancel=cancel,
            progress=progress,
            final=final,
            total=total,
            statuses=statuses,
        )
        del todo
        sent, cancelled, fatal = drove.sent, drove.cancelled, drove.fatal
        journal.set_state(run_id, "stopped" if fatal else "cancelled" if cancelled else "finished")
    finally:
        journal.close()

    frame = _results_frame(plan, final)
    del final
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
        deadline_reached=drove.deadline_reached,
        pace=drove.pace,
    )
    if results_path is not None:
        result.results_path = write_results(frame, results_path)
    return result


def _stop_reason(fatal: EnKashError | None) -> str:
    if fatal is None:
        return CANCELLED_MESSAGE
    return f"not sent: {fatal}; fix this and run again to resume"


DEADLINE_MESSAGE = "not sent: the run's deadline passed; run the file again to resume"
THROTTLED_AT_DEADLINE_MESSAGE = (
    "the server was still throttling this row when the run's deadline passed (nothing was "
    "done); run the file again to resume"
)
# Requests wait out a throttling server this long each when the run has no deadline.
THROTTLE_WAIT_S = 600.0
# The workers are handed rows this far ahead of what they can be working on (so a worker that
# finishes never waits for the journal), and answers are journaled at most this often: each
# a transaction holding every row since.
HAND_OUT_AHEAD_S = 0.05
JOURNAL_EVERY_S = 0.02
LEFTOVER_CHUNK = 10_000


class _Outcomes:
    """Every row's final (status, coinConfigId, message), in arrays by the row's place in the
    plan: a million rows hold a few bytes each, not a dict entry and a tuple."""

    # Messages repeat (the server's "Successfully allocated …"): kept once each, up to this many.
    KEEP_TEXTS = 10_000

    def __init__(self, rows: pd.Series, statuses: Iterable[str]) -> None:
        self.rows = rows.to_numpy(dtype=np.int64)
        self._index = pd.Index(self.rows)
        self.names: list[str] = list(statuses)
        self._codes = {name: i for i, name in enumerate(self.names)}
        n = len(self.rows)
        self.status = np.full(n, -1, dtype=np.int16)
        self.config_id = np.full(n, None, dtype=object)
        self.message = np.full(n, None, dtype=object)
        self._texts: dict[str, str] = {}

    def _code(self, status: str) -> int:
        code = self._codes.get(status)
        if code is None:
            code = self._codes[status] = len(self.names)
            self.names.append(status)
        return code

    def _kept(self, text: Any) -> str | None:
        text = _text(text)
        if text is None or len(self._texts) >= self.KEEP_TEXTS:
            return text
        return self._texts.setdefault(text, text)

    def set(self, answers: list[tuple[int, str, str | None, str | None]]) -> None:
        if not answers:
            return
        where = self._index.get_indexer([row for row, *_ in answers])
        for at, (_, status, config_id, message) in zip(where, answers, strict=True):
            self.status[at] = self._code(status)
            self.config_id[at] = config_id
            self.message[at] = self._kept(message)

    def set_rows(self, rows: list[int], status: str, message: str | None) -> None:
        """The same outcome for many rows (no coinConfigId)."""
        where = self._index.get_indexer(rows)
        self.status[where] = self._code(status)
        self.config_id[where] = None
        self.message[where] = self._kept(message)

    def set_many(
        self, rows: pd.Series, statuses: pd.Series, config_ids: pd.Series, messages: pd.Series
    ) -> None:
        if len(rows) == 0:
            return
        where = self._index.get_indexer(rows.to_numpy(dtype=np.int64))
        codes = statuses.astype("str").map(self._code).to_numpy(dtype=np.int16)
        self.status[where] = codes
        self.config_id[where] = [_text(v) for v in config_ids.tolist()]
        self.message[where] = [self._kept(v) for v in messages.tolist()]

    def counts(self) -> dict[str, int]:
        found = np.bincount(self.status[self.status >= 0], minlength=len(self.names))
        return {name: int(found[i]) for i, name in enumerate(self.names)}

    def __len__(self) -> int:
        return int((self.status >= 0).sum())

    def status_text(self) -> np.ndarray:
        names = np.array([*self.names, None], dtype=object)
        return names[self.status]  # -1 (no outcome) picks the None at the end


class _Workers:
    """The run's worker threads: each takes the next item from a queue and hands back its
    answer. Started as the run needs more (up to its concurrency), never more."""

    def __init__(self, work: Callable[[_Item], tuple[Any, ...]]) -> None:
        self._work = work
        self._todo: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self.answers: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
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

    def hand_out(self, item: _Item) -> None:
        self._todo.put(item)

    def _loop(self) -> None:
        while (item := self._todo.get()) is not None:
            self.answers.put(self._work(item))

    def close(self) -> None:
        for _ in self._threads:
            self._todo.put(None)
        for thread in self._threads:
            thread.join()


@dataclass
class _Drove:
    sent: int
    cancelled: bool
    fatal: EnKashError | None
    deadline_reached: bool
    pace: PaceState


def _progress_call(progress: ProgressCallback | None) -> Callable[..., Any] | None:
    """``progress`` called as ``(done, total, counts)``, with ``pace=`` when it takes it."""
    if progress is None:
        return None
    import inspect

    try:
        params = inspect.signature(progress).parameters.values()
    except (TypeError, ValueError):  # a builtin or C callable: the three arguments only
        return lambda done, total, counts, pace: progress(done, total, counts)
    if any(p.name == "pace" or p.kind is p.VAR_KEYWORD for p in params):
        return lambda done, total, counts, pace: progress(done, total, counts, pace=pace)
    return lambda done, total, counts, pace: progress(done, total, counts)


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

    def stop_on_ctrl_c(signum: int, frame: Any) -> None:
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
    client: Any,
    items: _Items,
    to_send: int,
    mode: str,
    pacer: AdaptivePacer,
    cancel: threading.Event | None,
    progress: ProgressCallback | None,
    final: _Outcomes,
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
    call_progress = _progress_call(progress)

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
    paced = getattr(client, "paced", None)
    if callable(paced):
        # One pacer for every worker: the run's rate spans them all.
        budget = THROTTLE_WAIT_S if pacer.deadline is None else math.inf
        worker_client = paced(pacer, throttle_budget_s=budget)
        limiter = None
        fixed: int | None = None
    else:  # a client without pacing: the caps alone, as before
        worker_client = client
        limiter = RateLimiter(pacer.rps_cap) if pacer.rps_cap else None
        fixed = pacer.concurrency_cap or START_CONCURRENCY

    def one_row(item: _Item) -> tuple[Any, ...]:
        """(row, status, coinConfigId, message, error, whether no request of it left)."""
        if stop.is_set() or pacer.expired():  # the run stopped while this row was queued
            return item.row, "skipped", None, CANCELLED_MESSAGE, None, True
        pacer.take_refusal()
        try:
            answer = _work(worker_client, item, mode, stop, limiter)
        except BaseException as exc:  # _work never raises; a bug must still not lose the row
            log.exception("row %s failed unexpectedly", item.row)
            answer = (item.row, "failed", None, f"internal error: {type(exc).__name__}", None)
        row, status, config_id, message, error = answer
        refused, acted, throttles = pacer.take_refusal()
        if refused and status == "failed" and error is None:
            # The pacer refused the request its turn, so that request was not sent: at the
            # deadline a row the server kept throttling fails; any other row is not sent.
            if pacer.expired() and throttles:
                message = THROTTLED_AT_DEADLINE_MESSAGE
            else:
                status, message = "skipped", CANCELLED_MESSAGE
        return row, status, config_id, message, error, refused and acted == 0

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
                    limit = fixed or pacer.concurrency()
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
                unsent = [answer[0] for answer in answers if answer[5] and answer[1] == "skipped"]
                for row, status, config_id, message, error, _ in answers:
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
                    if status == "skipped" and message == CANCELLED_MESSAGE:
                        message = (
                            DEADLINE_MESSAGE
                            if fatal is None and (deadline_reached or pacer.expired())
                            else _stop_reason(fatal)
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
    reason = DEADLINE_MESSAGE if deadline_reached and fatal is None else _stop_reason(fatal)
    rest = items.rest()
    for start in range(0, len(rest), LEFTOVER_CHUNK):
        rows = rest[start : start + LEFTOVER_CHUNK].tolist()
        journal.record(run_id, [(row, "skipped", None, reason) for row in rows])
        final.set_rows(rows, "skipped", reason)
        counts["skipped"] = counts.get("skipped", 0) + len(rows)
    report(force=True)
    return _Drove(sent, cancelled, fatal, deadline_reached, pace())


_RESULT_COLUMNS = ("status", "coinConfigId", "message")


def _results_frame(plan: Plan, final: _Outcomes) -> pd.DataFrame:
    """Input row and values, then status, coinConfigId, message (and requestId)."""
    inputs = plan.inputs
    added = list(_RESULT_COLUMNS)
    if plan.kind == "allocations":
        added.insert(2, "requestId")
    # An input column that shares a result column's name keeps its value under a new name.
    renames = {c: f"{c} (input)" for c in inputs.columns if c in added and c != "requestId"}
    out = inputs.rename(columns=renames).reset_index(drop=True)
    out["row"] = out["row"].astype("int64")
    # Rows without a journal entry cannot happen; a None here fails the check below.
    by_row = pd.DataFrame(
        {
            "row": final.rows,
            "status": pd.array(final.status_text(), dtype="str"),
            "coinConfigId": pd.array(final.config_id, dtype="str"),
            "message": pd.array(final.message, dtype="str"),
        }
    )
    if plan.kind == "allocations":
        by_row["requestId"] = plan.frame["requestId"].astype("str").array
        out = out.drop(columns=["requestId"], errors="ignore")
    if np.array_equal(out["row"].to_numpy(), final.rows):
        # The sheet's rows in the plan's order (as always): side by side, no merge's copy.
        by_row.index = out.index
        merged = out.assign(**{c: by_row[c] for c in by_row.columns if c != "row"})
    else:
        merged = out.merge(by_row, on="row", how="left", validate="one_to_one")
    # Rows in = rows out, always: a break here is a bug, never something to hide.
    if not (len(merged) == len(plan.frame) == len(plan.inputs)) or merged["status"].isna().any():
        raise RuntimeError(
            f"bulk run accounting broke: {len(plan.inputs)} rows in, {len(merged)} rows out, "
            f"{int(merged['status'].isna().sum())} without a status"
        )
    return merged
