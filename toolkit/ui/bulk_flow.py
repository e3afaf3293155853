"""The bulk steps as one UI component: template → upload → validation report → plan → run
(progress, Stop) → results and download; an interrupted run of the same file resumes.

Used by the Bulk upload page (configurations) and the Allocate page (allocations). Every step
is a `toolkit.bulk` call; this module only shows what they return.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pandas as pd
import streamlit as st

from toolkit import bulk
from toolkit.ui import common

SHOWN_ROWS = 1_000  # tables show this many rows; downloads hold every row

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
_STATUS_COLORS = {
    "created": "#E8F5E9",
    "updated": "#E3F2FD",
    "allocated": "#E8F5E9",
    "unchanged": "#F5F5F5",
    "skipped": "#FFF8E1",
    "invalid": "#FDECEA",
    "failed": "#FDECEA",
    "conflict": "#FFF3E0",
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


def _read(kind: str, data: bytes, name: str):
    reader = bulk.read_configs if kind == "configs" else bulk.read_allocations
    return reader(data, filename=name)


def _plan(kind: str, validation, registry, mode: str):
    if kind == "configs":
        return bulk.plan(validation, registry, mode=mode)
    return bulk.plan_allocations(validation, registry)


def _highlight(column: str, colors: dict[str, str]):
    def style(row: pd.Series) -> list[str]:
        color = colors.get(str(row.get(column)), "")
        return [f"background-color: {color}" if color else ""] * len(row)

    return style


def _problem_view(validation) -> pd.io.formats.style.Styler | None:
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


def _for_display(plan, shown: pd.DataFrame) -> pd.DataFrame:
    """What the analyst wrote where a value did not pass (the plan keeps only valid values),
    and blank cells rather than "None"."""
    out = shown.astype(object)
    inputs = plan.inputs.reindex(shown.index)
    for column in out.columns.intersection(inputs.columns).drop("row", errors="ignore"):
        out[column] = out[column].where(out[column].notna(), inputs[column])
    out = out.where(out.notna(), "")
    text = out.columns.drop("row", errors="ignore")
    out[text] = out[text].astype(str)
    return out


def _earlier_run(ws, plan) -> Any:
    """The journal's latest run of this same file (same kind, mode and server), if any."""
    from toolkit.bulk.journal import Journal, make_run_key

    path = getattr(ws.registry, "path", None)
    if path is None:
        return None
    server_key = str(getattr(ws.client, "server_key", "") or "")
    journal = Journal(path)
    try:
        found = journal.find_run(make_run_key(plan.file_sha256, plan.kind, plan.mode, server_key))
        if found is None:
            return None
        rows = journal.rows(found.run_id)
        counts = rows["status"].value_counts().to_dict() if len(rows) else {}
        return found, counts
    finally:
        journal.close()


def render(ws, *, kind: str, prefix: str) -> None:
    """The whole flow for ``kind`` ("configs" or "allocations"); keys start with ``prefix``."""
    what = "configurations" if kind == "configs" else "allocations"
    state_key = f"{prefix}_state"
    job_key = f"{prefix}_job"

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
        st.caption(
            "Nothing is sent until you press **Run**: the file is checked first, then you see "
            "what would happen to each row."
        )
        return

    data = upload.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    state = st.session_state.get(state_key)
    if state is None or state.get("digest") != digest or state.get("name") != upload.name:
        with st.spinner(f"Reading and checking {upload.name}…"):
            try:
                sheet = _read(kind, data, upload.name)
            except bulk.SheetError as exc:
                st.session_state.pop(state_key, None)
                st.error(str(exc), icon=":material/block:")
                return
            validation = bulk.validate(sheet, registry=ws.registry)  # either kind
        state = {"digest": digest, "name": upload.name, "sheet": sheet, "validation": validation}
        st.session_state[state_key] = state
        st.session_state.pop(job_key, None)
    sheet, validation = state["sheet"], state["validation"]

    # ---- 1. validation report
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
        st.caption(describe())
    for note in notes:
        st.caption(f":material/info: {note}")
    styled = _problem_view(validation)
    if styled is None:
        st.success("Every row is valid.", icon=":material/check_circle:")
    else:
        if validation.errors:
            st.error(
                f"{total - valid:,} row(s) have errors and will not be sent; fix them in the "
                "file and upload it again, or go on with the valid rows.",
                icon=":material/error:",
            )
        st.dataframe(styled, hide_index=True, height=min(38 + 35 * len(styled.data), 460))
        st.download_button(
            "Download the problems (CSV)",
            common.excel_safe_csv(validation.problems),
            file_name=f"{upload.name}.problems.csv",
            mime="text/csv",
            key=f"{prefix}_problems_csv",
        )

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
    planned_for = (mode, common.data_key())
    if state.get("planned_for") != planned_for:
        plan = _plan(kind, validation, ws.registry, mode)
        state.update(planned_for=planned_for, plan=plan, earlier=_earlier_run(ws, plan))
    plan, earlier = state["plan"], state["earlier"]
    counts = plan.counts
    cols = st.columns(len(counts))
    for col, (action, n) in zip(cols, counts.items(), strict=True):
        col.metric(action.capitalize(), f"{n:,}")
    from toolkit.ui import cost as cost_lines  # the Cost page's module: its cost line

    cost_lines.plan_cost(plan)
    actions = [a for a, n in counts.items() if n]
    pick = st.multiselect("Show actions", actions, default=actions, key=f"{prefix}_plan_actions")
    shown = _for_display(plan, plan.frame[plan.frame["action"].isin(pick)].head(SHOWN_ROWS))
    st.dataframe(
        shown.style.apply(_highlight("action", _ACTION_COLORS), axis=1).format(na_rep=""),
        hide_index=True,
        height=min(38 + 35 * max(len(shown), 1), 420),
        column_config=_PLAN_COLUMNS,
    )
    if len(plan.frame) > SHOWN_ROWS:
        st.caption(f"Showing the first {SHOWN_ROWS:,} rows of {len(plan.frame):,}.")

    # ---- 3. run
    st.subheader("3 · Run", divider="gray")
    resume = False
    if earlier is not None:
        found, done_counts = earlier
        final = sum(n for s, n in done_counts.items() if s not in ("pending", "sending"))
        unfinished = {
            s: n for s, n in done_counts.items() if s in ("pending", "sending", "failed", "skipped")
        }
        if unfinished:
            resume = True
            st.warning(
                f"This file was run before ({found.started_at[:19].replace('T', ' ')} UTC, "
                f"state {found.state}) and did not finish: "
                + ", ".join(f"{n:,} {s}" for s, n in unfinished.items())
                + ". **Resume** sends only those rows; rows already done are not sent again.",
                icon=":material/replay:",
            )
        else:
            st.info(
                f"This file was already run ({final:,} rows done). Running it again reuses "
                "those results; nothing is sent twice.",
                icon=":material/task_alt:",
            )
    with st.expander("Run options"):
        concurrency = st.slider("Requests in flight", 1, 32, 8, key=f"{prefix}_concurrency")
        rps = st.number_input(
            "At most this many rows per second (0 = no cap)",
            min_value=0.0,
            value=0.0,
            step=1.0,
            key=f"{prefix}_rps",
        )
    job = st.session_state.get(job_key)
    running = job is not None and job.running
    to_send = plan.to_send
    label = (
        "Resume" if resume else "Run"
    ) + f" — send {to_send:,} row{'s' if to_send != 1 else ''}"
    if st.button(
        label,
        key=f"{prefix}_run",
        type="primary",
        disabled=running or (to_send == 0 and not resume),
        icon=":material/play_arrow:",
    ):
        _start(ws, plan, job_key, concurrency=concurrency, rps=rps or None)
    job = common.show_job(job_key, on_done=lambda _job: common.invalidate())
    if job is not None and job.result is not None:
        _results(job.result, name=upload.name, prefix=prefix)


def _start(ws, plan, job_key: str, *, concurrency: int, rps: float | None) -> None:
    def work(job: common.Job):
        def progress(done: int, total: int, counts: dict[str, int]) -> None:
            shown = ", ".join(f"{n:,} {s}" for s, n in counts.items() if n)
            job.progress(done, total, shown)

        return bulk.run(
            plan,
            ws,
            concurrency=concurrency,
            rps=rps,
            progress=progress,
            cancel=job.cancel,
        )

    common.start_job(job_key, "Sending", work, total=len(plan.frame))


def _results(result, *, name: str, prefix: str) -> None:
    st.subheader("4 · Results", divider="gray")
    frame = result.frame
    if result.fatal_error is not None:
        st.error(f"The run stopped: {result.fatal_error}")
    elif result.cancelled:
        st.warning(
            "Stopped. Rows not sent are marked skipped; press **Resume** to send them.",
            icon=":material/pause_circle:",
        )
    elif result.ok:
        st.success(result.summary(), icon=":material/check_circle:")
    else:
        st.warning(result.summary(), icon=":material/warning:")
    counts = {s: n for s, n in result.counts.items() if n}
    cols = st.columns(max(len(counts), 1))
    for col, (status, n) in zip(cols, counts.items(), strict=False):
        col.metric(status.capitalize(), f"{n:,}")
    st.caption(
        f"{len(frame):,} rows in, {len(frame):,} results out · {result.sent:,} sent now"
        + (f", {result.reused:,} from the earlier run" if result.reused else "")
        + (f" · {result.rows_per_second:,.0f} rows/s" if result.sent else "")
    )
    statuses = [s for s in counts]
    pick = st.multiselect("Show statuses", statuses, default=statuses, key=f"{prefix}_res_status")
    shown = frame[frame["status"].isin(pick)].head(SHOWN_ROWS)
    st.dataframe(
        shown.style.apply(_highlight("status", _STATUS_COLORS), axis=1).format(na_rep=""),
        hide_index=True,
        height=min(38 + 35 * max(len(shown), 1), 460),
    )
    st.download_button(
        "Download results (CSV)",
        common.excel_safe_csv(frame),
        file_name=f"{name.rsplit('.', 1)[0]}.results.csv",
        mime="text/csv",
        key=f"{prefix}_results_csv",
        type="primary",
        icon=":material/download:",
    )
