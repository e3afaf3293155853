"""Resuming a run from its journal: what is final already, and what is left to send.

Running the same file again (same run key: file sha256, kind, mode, server) finds the run:
rows already final are reused; rows it decided without sending (invalid, conflict, unchanged)
are decided again (the registry may know more now); rows left ``pending``, ``sending``,
``failed``, ``skipped`` or ``unconfirmed`` are sent again, each with the action and the
requestId it was first sent with. The rows to send become work items only as they are handed
out (`PendingItems`), so a million-row sheet never holds a million of them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from toolkit.bulk.journal import DONE_STATUSES, Journal, JournalRun, make_run_key
from toolkit.bulk.outcomes import SENDING_ACTIONS, WorkItem, is_blank
from toolkit.bulk.planning import Plan
from toolkit.bulk.results import Outcomes

__all__ = [
    "ITEMS_CHUNK",
    "EarlierRun",
    "Opened",
    "PendingItems",
    "earlier_run",
    "open_run",
    "run_key",
]

# Work items are built this many at a time, as the run hands rows out.
ITEMS_CHUNK = 2048


@dataclass
class Opened:
    """A run as the journal has it now: its id, the plan (requestIds an earlier run sent kept),
    the rows still to send (``todo``: row, action, attempts, …), every row already final
    (``final``) and how many of those an earlier run sent (``reused``)."""

    run_id: str
    plan: Plan
    todo: pd.DataFrame
    final: Outcomes
    reused: int


def run_key(plan: Plan, server_key: str | None) -> str:
    """The journal key of sending ``plan`` to the server of ``server_key``: the same file
    (content), kind and mode on the same server is the same run, and resumes."""
    return make_run_key(plan.file_sha256, plan.kind, plan.mode, str(server_key or ""))


@dataclass(frozen=True, slots=True)
class EarlierRun:
    """The journal's latest run of a plan's file: the run, and its rows by status."""

    run: JournalRun
    counts: dict[str, int]


def earlier_run(journal_path: str | Path, plan: Plan, server_key: str | None) -> EarlierRun | None:
    """What an earlier run of this same file left on this server (None: never run), so a
    surface can say before sending that running it again resumes: finished rows reused."""
    journal = Journal(journal_path)
    try:
        found = journal.find_run(run_key(plan, server_key))
        if found is None:
            return None
        counts = journal.status_counts(found.run_id)
    finally:
        journal.close()
    return EarlierRun(run=found, counts=counts)


def open_run(
    journal: Journal,
    plan: Plan,
    *,
    run_key: str,
    server_key: str,
    resume: bool,
    statuses: tuple[str, ...],
) -> Opened:
    """Find the run of ``run_key`` in the journal and bring it up to date with ``plan``, or
    start a new one (``resume=False``: always new)."""
    found = journal.find_run(run_key) if resume else None
    if found is None:
        fresh = _initial_rows(plan)
        run_id = journal.start_run(
            run_key=run_key,
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
            state["status"].isin(list(DONE_STATUSES)) & state["action"].isin(list(SENDING_ACTIONS))
        ).sum()
    )

    # Rows still to send keep the action their run first planned for them.
    is_done = state["status"].isin(list(DONE_STATUSES))
    todo = state.loc[~is_done & state["action"].isin(list(SENDING_ACTIONS))]
    final = Outcomes(plan.frame["row"], statuses)
    done_rows = state.loc[is_done]
    final.set_many(
        done_rows["row"], done_rows["status"], done_rows["coin_config_id"], done_rows["message"]
    )
    return Opened(run_id=run_id, plan=plan, todo=todo, final=final, reused=reused)


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


def _positions(frame_rows: pd.Series, rows: Iterable[int] | np.ndarray) -> np.ndarray:
    """Where each of ``rows`` sits in ``frame_rows`` (every one of them must be there)."""
    index = pd.Index(frame_rows.to_numpy(dtype=np.int64))
    found = index.get_indexer(np.asarray(rows, dtype=np.int64))
    if (found < 0).any():  # pragma: no cover - the journal only holds the plan's rows
        raise RuntimeError("a journaled row is not in the plan")
    return found


class PendingItems:
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
        self._ready: deque[WorkItem] = deque()

    def __len__(self) -> int:
        return len(self._ready) + len(self._where) - self._made

    def __iter__(self) -> Iterator[WorkItem]:
        return self

    def __next__(self) -> WorkItem:
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
            clean = {k: (None if is_blank(v) else v) for k, v in record.items()}
            for whole in ("amount", "before_amount"):
                if (number := clean.get(whole)) is not None:
                    clean[whole] = int(number)
            self._ready.append(
                WorkItem(
                    row=int(record["row"]), action=str(action), attempts=int(tries), values=clean
                )
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
