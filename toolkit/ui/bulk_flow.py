"""The bulk steps as one UI component: template → upload → validation report → plan → run
(progress, Stop) → results and download; an interrupted run of the same file resumes.

Used by the Bulk upload page (configurations) and the Allocate page (allocations). Every step
is a `toolkit.bulk` call; this module only shows what they return. Runs belong to the server
(`toolkit.ui.runs`): a reload or another tab finds a running sheet again, with live progress,
and the plan shown beside the results is the plan the run was started from.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import pandas as pd
import streamlit as st

from toolkit import bulk
from toolkit.bulk import Plan, Sheet, Validation, reading
from toolkit.bulk.resuming import EarlierRun, earlier_run
from toolkit.display import blank_missing as blank_cells
from toolkit.display import fill_from_inputs
from toolkit.ui import access, cost_lines, runs
from toolkit.ui.bulk_run import SHOWN_ROWS, run_section, server_run_section
from toolkit.ui.caches import data_key
from toolkit.ui.text import blank_missing, esc, excel_safe_csv, highlight

if TYPE_CHECKING:
    from pandas.io.formats.style import Styler

    from toolkit.registry import Registry
    from toolkit.workspace import Workspace

__all__ = ["render"]

_EPOCH = pd.Timestamp(0, tz="UTC").to_pydatetime()


@dataclass
class _SheetState:
    """One uploaded sheet as this session has read, checked and planned it."""

    digest: str
    name: str
    sheet: Sheet
    validation: Validation
    planned_for: tuple[str, str] | None = None  # (mode, data key) the plan was made for
    plan: Plan | None = None
    earlier: EarlierRun | None = None  # the journal's run of this same file, if any
    fresh_after: datetime = field(default=_EPOCH)  # runs started before: a fresh plan asked


_TEMPLATES = {
    "configs": (
        "companyId,event,amount,configuration\r\n"
        "CEKEKCARDS,MEAL_CARD_PAYMENT,6,DEFAULT\r\n"
        "CEKEKCARDS,REFERRAL_EVENT,50,CUSTOM\r\n"
        "CEK0TCW2W8,INVOICE_PAYMENT,10,DEFAULT\r\n"
    ),
    "allocations": (
        "companyId,event,userId,requestId\r\n"
        "CEKEKCARDS,MEAL_CARD_PAYMENT,EKQZVMQK,\r\n"
        "CEKEKCARDS,REFERRAL_EVENT,EK6CYE6K,COIN_REQ1234567\r\n"
    ),
}
_ACTION_COLORS = {
    "create": "#E8F5E9",
    "update": "#E3F2FD",
    "allocate": "#E8F5E9",
    "unchanged": "#F5F5F5",
    "conflict": "#FFF3E0",
    "invalid": "#FDECEA",
}


_PLAN_COLUMNS = {
    "row": st.column_config.NumberColumn("Row", format="%d", help="As the spreadsheet shows it"),
    "coinConfigId": st.column_config.TextColumn("Existing id"),
    "before_amount": st.column_config.TextColumn("Coins now"),
    "before_configuration": st.column_config.TextColumn("Configuration now"),
    "requestId_derived": st.column_config.CheckboxColumn("Derived id"),
}


def _read(kind: str, data: bytes, name: str) -> Sheet:
    reader = bulk.read_configs if kind == "configs" else bulk.read_allocations
    return reader(data, filename=name)


def _plan(kind: str, validation: Validation, registry: Registry, mode: str) -> Plan:
    if kind == "configs":
        return bulk.plan(validation, registry, mode=mode)
    return bulk.plan_allocations(validation, registry)


def _problem_view(validation: Validation) -> Styler | None:
    """The rows with problems as the analyst wrote them, the cells at fault highlighted."""
    problems = validation.problems
    if problems.empty:
        return None
    rows = problems["row"].drop_duplicates().head(SHOWN_ROWS)
    inputs = validation.inputs
    shown = inputs[inputs["row"].isin(rows)].copy()
    reasons = (
        problems[problems["row"].isin(rows)]
        .groupby("row")["message"]
        .agg(" · ".join)
        .rename("problems")
    )
    shown = shown.merge(reasons, left_on="row", right_index=True, how="left")
    shown = shown.reset_index(drop=True)
    cells = {
        (int(r), str(c)): str(s)
        for r, c, s in problems[["row", "column", "severity"]].itertuples(index=False)
    }

    def style(row: pd.Series) -> list[str]:
        out = []
        for column in row.index:
            severity = cells.get((int(row["row"]), str(column)))
            if severity == "error":
                out.append("background-color: #F8C9C4; font-weight: 600")
            elif severity == "warning":
                out.append("background-color: #FFE9A8")
            else:
                out.append("")
        return out

    return shown.style.apply(style, axis=1)


def _for_display(plan: Plan, shown: pd.DataFrame) -> pd.DataFrame:
    """What the analyst wrote where a value did not pass (the plan keeps only valid values),
    and blank cells rather than "None" (`toolkit.display`), as text for the table."""
    out = blank_cells(fill_from_inputs(shown, plan.inputs).astype(object))
    text = out.columns.drop("row", errors="ignore")
    out[text] = out[text].astype(str)
    return out


def _earlier_run(ws: Workspace, plan: Plan) -> EarlierRun | None:
    """The journal's latest run of this same file (same kind, mode and server), if any."""
    return earlier_run(ws.registry.path, plan, ws.client.server_key)


_PROBLEM_COLUMNS = {
    "row": st.column_config.NumberColumn("Row", format="%d"),
    "problems": st.column_config.TextColumn("Problems", width=900),
}
_RUN_COLUMNS = {
    "source_name": st.column_config.TextColumn("Sheet"),
    "state": st.column_config.TextColumn("State"),
    "done": st.column_config.TextColumn("Done"),
    "counts": st.column_config.TextColumn("Rows", width="large"),
    "started_by": st.column_config.TextColumn("Started by"),
    "approved_by": st.column_config.TextColumn("Approved by"),
    "started_at": st.column_config.TextColumn("Started (UTC)"),
    "finished_at": st.column_config.TextColumn("Ended (UTC)"),
    "mode": st.column_config.TextColumn("Mode"),
    "run_id": st.column_config.TextColumn("Run"),
}


def render(ws: Workspace, *, kind: str, prefix: str) -> None:
    """The whole flow for ``kind`` ("configs" or "allocations"); keys start with ``prefix``."""
    what = "configurations" if kind == "configs" else "allocations"
    state_key = f"{prefix}_state"
    who = access.current()
    opened = _runs_panel(ws, kind, prefix, who)

    top1, top2 = st.columns([3, 1], vertical_alignment="bottom")
    with top1:
        upload = st.file_uploader(
            f"A CSV or Excel sheet of {what}",
            type=["csv", "txt", "tsv", "xlsx"],
            key=f"{prefix}_file",
            help="Header names may vary (companyId / Company ID, amount / coins …); "
            "extra columns are kept and reported.",
        )
    with top2:
        st.download_button(
            "Template CSV",
            _TEMPLATES[kind].encode("utf-8"),
            file_name=f"{what}-template.csv",
            mime="text/csv",
            key=f"{prefix}_template",
            icon=":material/download:",
            width="stretch",
        )

    if upload is None:
        st.session_state.pop(state_key, None)
        if opened is not None:
            _server_run_view(opened, prefix=prefix, who=who)
            return
        st.caption(
            "Nothing is sent until you press **Run**: the file is checked first, then you see "
            "what would happen to each row."
        )
        return

    try:  # a file past the size limit is refused before a copy of it is made
        reading.check_size(upload.size, upload.name)
    except bulk.SheetError as exc:
        st.session_state.pop(state_key, None)
        st.error(esc(str(exc), limit=2_000), icon=":material/block:")
        return
    data = upload.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    name = upload.name
    state: _SheetState | None = st.session_state.get(state_key)
    if state is None or state.digest != digest or state.name != name:
        with st.spinner(f"Reading and checking {esc(name)}…"):
            try:
                sheet = _read(kind, data, name)
            except bulk.SheetError as exc:
                st.session_state.pop(state_key, None)
                st.error(esc(str(exc), limit=2_000), icon=":material/block:")
                return
            validation = bulk.validate(sheet, registry=ws.registry)  # either kind
        state = _SheetState(digest=digest, name=name, sheet=sheet, validation=validation)
        st.session_state[state_key] = state
    sheet, validation = state.sheet, state.validation
    _check_section(sheet, validation, name=name, prefix=prefix)

    # ---- 2. plan
    st.subheader("2 · Plan (dry run)", divider="gray")
    mode = "allocate"
    if kind == "configs":
        mode = st.radio(
            "When a company and event are already configured",
            ["create", "upsert"],
            format_func={
                "create": "leave it (report a conflict if the values differ)",
                "upsert": "update it to the file's values",
            }.get,
            key=f"{prefix}_mode",
            horizontal=True,
        )
    # The plan and the journal's earlier run depend on the registry file (the journal lives in
    # it too): worked out again only when it or the mode changed, not on every widget rerun.
    planned_for = (mode, data_key())
    plan = state.plan
    if state.planned_for != planned_for or plan is None:
        plan = state.plan = _plan(kind, validation, ws.registry, mode)
        state.planned_for, state.earlier = planned_for, _earlier_run(ws, plan)
    server_run = runs.find(ws, plan)
    if server_run is not None and server_run.started_at <= state.fresh_after:
        server_run = None  # the analyst asked for a fresh plan after that run
    if server_run is not None and server_run.rejected_by:
        server_run = None
    if server_run is not None:
        # The plan the run was started from, as it was: never re-planned under its results.
        _plan_section(server_run.plan, prefix=prefix, frozen=server_run)
        started = server_run.started_at

        def replan() -> None:
            state.fresh_after, state.planned_for = started, None

        server_run_section(server_run, prefix=prefix, who=who, replan=replan)
        return
    _plan_section(plan, prefix=prefix)
    run_section(ws, plan, state.earlier, name=name, prefix=prefix, who=who)


def _check_section(sheet: Sheet, validation: Validation, *, name: str, prefix: str) -> None:
    st.subheader("1 · Check", divider="gray")
    total = len(validation.frame)
    valid = int(validation.frame["valid"].sum())
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Rows", f"{total:,}")
    m2.metric("Valid", f"{valid:,}")
    m3.metric("Rows with errors", f"{total - valid:,}")
    m4.metric("Warnings", f"{validation.warnings:,}")
    describe = getattr(sheet, "describe", None)
    notes = list(getattr(sheet, "notes", []) or [])
    if callable(describe):
        st.caption(esc(describe(), limit=2_000))
    for note in notes:
        st.caption(":material/info: " + esc(note, limit=2_000))
    styled = _problem_view(validation)
    if styled is None:
        st.success("Every row is valid.", icon=":material/check_circle:")
        return
    if validation.errors:
        st.error(
            f"{total - valid:,} row(s) have errors and will not be sent; fix them in the "
            "file and upload it again, or go on with the valid rows.",
            icon=":material/error:",
        )
    picked = st.dataframe(
        styled,
        hide_index=True,
        height=min(38 + 35 * len(styled.data), 460),
        column_config=_PROBLEM_COLUMNS,
        on_select="rerun",
        selection_mode="single-row",
        key=f"{prefix}_problem_pick",
    )
    rows = (getattr(picked, "selection", None) or {}).get("rows") or []
    if rows:
        _problem_detail(validation, int(styled.data.iloc[rows[0]]["row"]))
    else:
        st.caption("Pick a row to read its problems in full.")
    st.download_button(
        "Download the problems (CSV)",
        excel_safe_csv(validation.problems),
        file_name=f"{name}.problems.csv",
        mime="text/csv",
        key=f"{prefix}_problems_csv",
    )


def _problem_detail(validation: Validation, row: int) -> None:
    """Every problem of one row, in full, as plain text."""
    problems = validation.problems
    mine = problems[problems["row"] == row]
    lines = [
        f"{r.severity}: {r.column}: {r.message}"
        for r in mine[["severity", "column", "message"]].itertuples(index=False)
    ]
    st.text(f"Row {row}:\n" + "\n".join(lines))


def _plan_section(plan: Plan, *, prefix: str, frozen: runs.ServerRun | None = None) -> None:
    if frozen is not None:
        st.caption(
            f"The plan {esc(frozen.actor)} started at "
            f"{frozen.started_at:%Y-%m-%d %H:%M:%S} UTC, as it was then."
        )
    counts = plan.counts
    cols = st.columns(len(counts))
    for col, (action, n) in zip(cols, counts.items(), strict=True):
        col.metric(action.capitalize(), f"{n:,}")
    cost_lines.plan_cost(plan)
    actions = [a for a, n in counts.items() if n]
    pick = st.multiselect("Show actions", actions, default=actions, key=f"{prefix}_plan_actions")
    # The first rows of the picked actions, their requestIds alone derived (`Plan.head`).
    shown = _for_display(plan, plan.head(SHOWN_ROWS, actions=pick))
    st.dataframe(
        shown.style.apply(highlight("action", _ACTION_COLORS), axis=1).format(na_rep=""),
        hide_index=True,
        height=min(38 + 35 * max(len(shown), 1), 420),
        column_config=_PLAN_COLUMNS | {"message": st.column_config.TextColumn(width="large")},
    )
    if len(plan) > SHOWN_ROWS:
        st.caption(f"Showing the first {SHOWN_ROWS:,} rows of {len(plan):,}.")


def _runs_panel(
    ws: Workspace, kind: str, prefix: str, who: access.Identity
) -> runs.ServerRun | None:
    """The server's runs of this kind: those going on now (open one to follow it), and the
    journal's history. Returns the run the analyst opened, if any."""
    live = [r for r in runs.of_kind(ws, kind) if not r.rejected_by]
    open_key = f"{prefix}_open_run"
    opened = None
    if live:
        st.markdown("**Runs on this server**")
        for run in live[:6]:
            c1, c2 = st.columns([5, 1], vertical_alignment="center")
            c1.text(
                f"{run.name} · {run.state} · {run.actor} · {run.started_at:%H:%M:%S} UTC\n"
                f"{runs.progress_text(run)}"
            )
            if c2.button("Open", key=f"{prefix}_open_{run.lock_key[:8]}"):
                st.session_state[open_key] = run.lock_key
        wanted = st.session_state.get(open_key)
        opened = next((r for r in live if r.lock_key == wanted), None)
    with st.expander("Run history (every process on this registry)", icon=":material/history:"):
        try:
            history = runs.journal_runs(ws, kind)
        except Exception:  # the history is a view: never the reason a page fails
            history = None
        if history is None or history.empty:
            st.caption("No runs yet.")
        else:
            shown = history.drop(columns=["run_key", "kind", "total", "live"])
            shown["done"] = [
                f"{d:,} of {t:,}" for d, t in zip(history["done"], history["total"], strict=True)
            ]
            st.dataframe(
                blank_missing(shown),
                hide_index=True,
                column_config=_RUN_COLUMNS,
                column_order=list(_RUN_COLUMNS),
            )
    return opened


def _server_run_view(run: runs.ServerRun, *, prefix: str, who: access.Identity) -> None:
    """A run opened from the runs list (no file uploaded in this tab): its plan and progress or
    results."""
    head, close = st.columns([5, 1], vertical_alignment="bottom")
    head.subheader(f"Run of {esc(run.name)}", divider="gray")
    if close.button("Close", key=f"{prefix}_close_run", icon=":material/close:"):
        st.session_state.pop(f"{prefix}_open_run", None)
        st.rerun()
    _plan_section(run.plan, prefix=f"{prefix}_opened", frozen=run)
    server_run_section(run, prefix=f"{prefix}_opened", who=who)
