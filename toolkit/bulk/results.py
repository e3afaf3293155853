"""A run's results: every row's final outcome, the results frame, and the file an analyst
opens in Excel safely.

`Outcomes` keeps each row's (status, coinConfigId, message) in arrays while the run goes;
`results_frame` puts them beside the analyst's own columns, checking rows in = rows out;
`RunResult` is what `toolkit.bulk.run` returns.

The file's rules (no cell runs as a formula, look-alike characters included; NUL shown as ``�``;
cells cut at Excel's 32,767-character limit; UTF-8 with a BOM) are `toolkit.exports`', the one
neutraliser for every file the toolkit writes; this module keeps the bulk engine's names for
them. A results file is private (``0600``) unless the user named its path.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from toolkit.bulk.outcomes import GOOD_STATUSES, text_or_none
from toolkit.bulk.planning import Plan
from toolkit.errors import EnKashError
from toolkit.exports import EXCEL_MAX_CELL, FORMULA_PREFIXES, neutralise, write_csv
from toolkit.pacing import PaceState

__all__ = [
    "EXCEL_MAX_CELL",
    "FORMULA_PREFIXES",
    "Outcomes",
    "RunResult",
    "neutralise",
    "results_frame",
    "write_results",
]


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


class Outcomes:
    """Every row's final (status, coinConfigId, message), in arrays by the row's place in the
    plan: a million rows hold a few bytes each, not a dict entry and a tuple."""

    # Messages repeat (the server's "Successfully allocated …"): kept once each, up to this many.
    KEEP_TEXTS = 10_000

    def __init__(self, rows: pd.Series, statuses: Iterable[str]) -> None:
        self.rows = rows.to_numpy(dtype=np.int64)
        # A plan's rows are in sheet order: found by bisection, without an index per batch.
        ordered = bool(len(self.rows) < 2 or (np.diff(self.rows) > 0).all())
        self._index = None if ordered else pd.Index(self.rows)
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
        text = text_or_none(text)
        if text is None or len(self._texts) >= self.KEEP_TEXTS:
            return text
        return self._texts.setdefault(text, text)

    def _where(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """Each row's place (every one of ``rows`` is a row of the plan)."""
        wanted = np.asarray(rows, dtype=np.int64)
        if self._index is None:
            return np.searchsorted(self.rows, wanted)
        return self._index.get_indexer(wanted)

    def set(self, answers: Sequence[tuple[int, str, str | None, str | None]]) -> None:
        if not answers:
            return
        where = self._where([row for row, *_ in answers])
        for at, (_, status, config_id, message) in zip(where.tolist(), answers, strict=True):
            self.status[at] = self._code(status)
            self.config_id[at] = config_id
            self.message[at] = self._kept(message)

    def set_rows(self, rows: list[int], status: str, message: str | None) -> None:
        """The same outcome for many rows (no coinConfigId)."""
        where = self._where(rows)
        self.status[where] = self._code(status)
        self.config_id[where] = None
        self.message[where] = self._kept(message)

    def set_many(
        self, rows: pd.Series, statuses: pd.Series, config_ids: pd.Series, messages: pd.Series
    ) -> None:
        if len(rows) == 0:
            return
        where = self._where(rows.to_numpy(dtype=np.int64))
        codes = statuses.astype("str").map(self._code).to_numpy(dtype=np.int16)
        self.status[where] = codes
        self.config_id[where] = [text_or_none(v) for v in config_ids.tolist()]
        self.message[where] = [self._kept(v) for v in messages.tolist()]

    def counts(self) -> dict[str, int]:
        found = np.bincount(self.status[self.status >= 0], minlength=len(self.names))
        return {name: int(found[i]) for i, name in enumerate(self.names)}

    def __len__(self) -> int:
        return int((self.status >= 0).sum())

    def status_text(self) -> np.ndarray:
        names = np.array([*self.names, None], dtype=object)
        return names[self.status]  # -1 (no outcome) picks the None at the end


_RESULT_COLUMNS = ("status", "coinConfigId", "message")


def results_frame(plan: Plan, final: Outcomes) -> pd.DataFrame:
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


def write_results(frame: pd.DataFrame, path: str | Path, *, private: bool = True) -> Path:
    """Write a results frame as an Excel-safe CSV (UTF-8 with BOM); return the path.

    ``0600`` by default; ``private=False`` for a path the user named (their umask, never wider
    than ``0644``). The file appears complete or not at all.
    """
    return write_csv(frame, path, private=private)
