"""The bulk steps as one UI component: template → upload → validation report → plan → run
(progress, Stop) → results and download; an interrupted run of the same file resumes.

Used by the Bulk upload page (configurations) and the Allocate page (allocations). Every step
is a `toolkit.bulk` call; this module only shows what they return. Runs belong to the server
(`toolkit.ui.runs`): a reload or another tab finds a running sheet again, with live progress,
and the plan shown beside the results is the plan the run was started from.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pandas as pd
import streamlit as st

from toolkit import bulk
from toolkit.bulk import reading
from toolkit.ui import access, runs
from toolkit.ui.caches import data_key
from toolkit.ui.text import blank_missing, esc, excel_safe_csv

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
    "unconfirmed": "#FFE0B2",
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


def render(ws, *, kind: str, prefix: str) -> None:
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
    state = st.session_state.get(state_key)
    if state is None or state.get("digest") != digest or state.get("name") != name:
        with st.spinner(f"Reading and checking {esc(name)}…"):
            try:
                sheet = _read(kind, data, name)
            except bulk.SheetError as exc:
                st.session_state.pop(state_key, None)
                st.error(esc(str(exc), limit=2_000), icon=":material/block:")
                return
            validation = bulk.validate(sheet, registry=ws.registry)  # either kind
        state = {"digest": digest, "name": name, "sheet": sheet, "validation": validation}
        st.session_state[state_key] = state
    sheet, validation = state["sheet"], state["validation"]
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
    if state.get("planned_for") != planned_for or "plan" not in state:
        plan = _plan(kind, validation, ws.registry, mode)
        state.update(planned_for=planned_for, plan=plan, earlier=_earlier_run(ws, plan))
    plan = state["plan"]
    server_run = runs.find(ws, plan)
    if server_run is not None and server_run.started_at <= state.get("fresh_after", _EPOCH):
        server_run = None  # the analyst asked for a fresh plan after that run
    if server_run is not None and server_run.rejected_by:
        server_run = None
    if server_run is not None:
        # The plan the run was started from, as it was: never re-planned under its results.
        _plan_section(server_run.plan, prefix=prefix, frozen=server_run)
        _run_section_for(server_run, prefix=prefix, who=who, state=state)
        return
    _plan_section(plan, prefix=prefix)
    _run_section(ws, plan, state, name=name, prefix=prefix, who=who)


_EPOCH = pd.Timestamp(0, tz="UTC").to_pydatetime()


def _check_section(sheet, validation, *, name: str, prefix: str) -> None:
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


def _problem_detail(validation, row: int) -> None:
    """Every problem of one row, in full, as plain text."""
    problems = validation.problems
    mine = problems[problems["row"] == row]
    lines = [
        f"{r.severity}: {r.column}: {r.message}"
        for r in mine[["severity", "column", "message"]].itertuples(index=False)
    ]
    st.text(f"Row {row}:\n" + "\n".join(lines))


def _plan_section(plan, *, prefix: str, frozen: Any = None) -> None:
    if frozen is not None:
        st.caption(
            f"The plan {esc(frozen.actor)} started at "
            f"{frozen.started_at:%Y-%m-%d %H:%M:%S} UTC, as it was then."
        )
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
        column_config=_PLAN_COLUMNS | {"message": st.column_config.TextColumn(width="large")},
    )
    if len(plan.frame) > SHOWN_ROWS:
        st.caption(f"Showing the first {SHOWN_ROWS:,} rows of {len(plan.frame):,}.")


def _run_options(prefix: str) -> tuple[int, float | None]:
    with st.expander("Run options"):
        concurrency = st.slider("Requests in flight", 1, 32, 8, key=f"{prefix}_concurrency")
        rps = st.number_input(
            "At most this many rows per second (0 = no cap)",
            min_value=0.0,
            max_value=10_000.0,
            value=0.0,
            step=1.0,
            key=f"{prefix}_rps",
        )
    return int(concurrency), (float(rps) or None)


def _run_section(ws, plan, state: dict, *, name: str, prefix: str, who) -> None:
    """No run of this sheet on this server now: what an earlier one left, and Run/Resume."""
    st.subheader("3 · Run", divider="gray")
    lock_key, _ = runs.lock_key_for(ws, plan)
    elsewhere = runs.holder_elsewhere(ws, lock_key)
    if elsewhere is not None:
        st.warning(
            f"This sheet is being sent right now by {esc(elsewhere.actor or 'someone')} "
            f"(since {esc(elsewhere.acquired_at[:19].replace('T', ' '))} UTC, "
            f"{esc(elsewhere.host)}). It cannot run twice at once; its results land in "
            "the runs list when it ends.",
            icon=":material/sync_lock:",
        )
        return
    earlier = state.get("earlier")
    resume = False
    if earlier is not None and _busy_without_lock(ws, earlier[0], lock_key):
        return
    if earlier is not None:
        found, done_counts = earlier
        final = sum(n for s, n in done_counts.items() if s not in ("pending", "sending"))
        unfinished = {
            s: n
            for s, n in done_counts.items()
            if s in ("pending", "sending", "failed", "skipped", "unconfirmed")
        }
        stopped = found.state in ("cancelled", "stopped", "running")  # running: its process died
        when = found.started_at[:19].replace("T", " ")
        if unfinished and stopped:
            resume = True
            st.warning(
                f"This file was run before ({when} UTC, "
                f"{'interrupted' if found.state == 'running' else found.state}) and did not "
                "finish: "
                + ", ".join(f"{n:,} {s}" for s, n in unfinished.items())
                + ". **Resume** sends only those rows; rows already done are not sent again.",
                icon=":material/replay:",
            )
        elif unfinished:
            resume = True
            st.warning(
                f"This file was run before ({when} UTC) and finished, but "
                + ", ".join(f"{n:,} {s}" for s, n in unfinished.items())
                + ". **Resume** tries those rows again; rows already done are not sent again.",
                icon=":material/replay:",
            )
        else:
            st.info(
                f"This file was already run ({final:,} rows done). Running it again reuses "
                "those results; nothing is sent twice.",
                icon=":material/task_alt:",
            )
    if not who.can_edit:
        st.caption("Only an editor can send a sheet.")
        return
    concurrency, rps = _run_options(prefix)
    to_send = plan.to_send
    policy = access.policy()
    needs = policy.needs_approval(to_send, runs.coins_to_send(plan))
    label = (
        "Resume" if resume else "Run"
    ) + f" — send {to_send:,} row{'s' if to_send != 1 else ''}"
    if needs and not who.can_approve:
        st.info(
            f"This run needs an approver's yes: {esc(needs)}. Ask for it; it starts as "
            "soon as an approver says yes (they see it under Runs).",
            icon=":material/approval:",
        )
        label = "Ask an approver — " + label.split(" — ", 1)[1]
    clicked = st.button(
        label,
        key=f"{prefix}_run",
        type="primary",
        disabled=to_send == 0 and not resume,
        icon=":material/play_arrow:",
    )
    if not clicked or not access.allowed("send a sheet"):
        return
    started = runs.start(
        ws,
        plan,
        name=name,
        actor=who.actor,
        concurrency=concurrency,
        rps=rps,
        waiting_reason=needs if needs and not who.can_approve else None,
    )
    if isinstance(started, str):
        st.error(esc(started), icon=":material/sync_lock:")
        return
    st.rerun()


def _busy_without_lock(ws, found, lock_key: str) -> bool:
    """A run journaled as running, whose sheet no process ever locked, with rows still being
    written: some process that takes no lock is sending it. Say so (no Resume: it would send
    rows twice). A lock left by a holder that died means the run is truly dead."""
    if found.state != "running":
        return False
    from datetime import UTC, datetime

    from toolkit.bulk.journal import LOCK_STALE_S, last_row_write, run_lock_holder

    if run_lock_holder(ws.registry.path, lock_key) is not None:
        return False  # locked once, and its holder is gone (a live one was handled above)

    last = last_row_write(ws.registry.path, found.run_id)
    if last is None:
        return False
    age = (datetime.now(UTC) - datetime.fromisoformat(last)).total_seconds()
    if age >= LOCK_STALE_S:
        return False
    st.warning(
        f"This sheet's run {esc(found.run_id)} is still writing rows ({age:,.0f} s ago) "
        "from a process that holds no lock (the command line or a notebook?). It cannot be "
        "resumed while it may be running; look again when it has been quiet for "
        f"{LOCK_STALE_S / 60:.0f} minutes.",
        icon=":material/sync_lock:",
    )
    return True


def _run_section_for(run, *, prefix: str, who, state: dict | None = None) -> None:
    """A run of this sheet the server knows: live progress (any tab), Stop, approval, then the
    results beside the plan it was started from."""
    st.subheader("3 · Run", divider="gray")
    if run.waiting:
        _approval_box(run, prefix=prefix, who=who)
        return
    if run.running:
        _live_progress(run, prefix=prefix, who=who)
        return
    job = run.job
    if job is not None and job.error:
        st.error(esc(job.error))
    st.caption(esc(runs.progress_text(run)))
    if state is not None and st.button(
        "Plan this sheet again", key=f"{prefix}_replan", icon=":material/refresh:"
    ):
        state["fresh_after"] = run.started_at
        state.pop("planned_for", None)
        st.rerun()
    if job is not None and job.result is not None:
        _results(job.result, plan=run.plan, name=run.name, prefix=prefix)


def _approval_box(run, *, prefix: str, who) -> None:
    e = esc
    st.warning(
        f"Waiting for an approver: {e(run.waiting_reason)}. Asked by {e(run.actor)} at "
        f"{run.started_at:%H:%M:%S} UTC; nothing has been sent.",
        icon=":material/approval:",
    )
    a, b, _ = st.columns([1, 1, 3])
    tag = run.lock_key[:8]
    if who.can_approve and who.actor != run.actor:
        yes = a.button("Approve and run", key=f"{prefix}_approve_{tag}", type="primary")
        no = b.button("Reject", key=f"{prefix}_reject_{tag}")
        if yes and access.allowed("approve a bulk run", approve=True):
            runs.approve(run, who.actor)
            st.rerun()
        if no and access.allowed("reject a bulk run", approve=True):
            runs.reject(run, who.actor)
            st.rerun()
    elif who.actor == run.actor and who.can_edit:
        if a.button("Withdraw", key=f"{prefix}_withdraw_{tag}"):
            runs.reject(run, who.actor)
            st.rerun()
    else:
        st.caption("An approver other than whoever asked must say yes.")


def _live_progress(run, *, prefix: str, who) -> None:
    """Progress redrawn every second without holding the page; the whole page is drawn again
    when the run ends (its results appear)."""
    stoppable = who.can_edit

    @st.fragment(run_every=1.0)
    def progress() -> None:
        if not run.running:
            st.rerun()
        job = run.job
        label = "Stopping after the rows in flight…" if job.cancelled else "Sending…"
        st.progress(job.fraction, text=esc(f"{label} {runs.progress_text(run)}"))
        st.caption(
            f"Started by {esc(run.actor)} at {run.started_at:%H:%M:%S} UTC"
            + (f", approved by {esc(run.approved_by)}" if run.approved_by else "")
            + ". It keeps going if this tab is closed or reloaded; any tab shows it."
        )
        if (
            stoppable
            and not job.cancelled
            and st.button(
                "Stop",
                key=f"{prefix}_stop_{run.lock_key[:8]}",
                icon=":material/stop_circle:",
                help="Stop after the rows in flight; Resume sends the rest later",
            )
            and access.allowed("stop a bulk run")
        ):
            job.cancel.set()

    progress()


def _runs_panel(ws, kind: str, prefix: str, who) -> Any:
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


def _server_run_view(run, *, prefix: str, who) -> None:
    """A run opened from the runs list (no file uploaded in this tab): its plan and progress or
    results."""
    head, close = st.columns([5, 1], vertical_alignment="bottom")
    head.subheader(f"Run of {esc(run.name)}", divider="gray")
    if close.button("Close", key=f"{prefix}_close_run", icon=":material/close:"):
        st.session_state.pop(f"{prefix}_open_run", None)
        st.rerun()
    _plan_section(run.plan, prefix=f"{prefix}_opened", frozen=run)
    _run_section_for(run, prefix=f"{prefix}_opened", who=who)


def _results(result, *, plan, name: str, prefix: str) -> None:
    st.subheader("4 · Results", divider="gray")
    frame = result.frame
    if result.fatal_error is not None:
        st.error(f"The run stopped: {esc(result.fatal_error)}")
    elif result.cancelled:
        st.warning(
            "Stopped. Rows not sent are marked skipped; press **Resume** to send them.",
            icon=":material/pause_circle:",
        )
    elif result.ok:
        st.success(esc(result.summary()), icon=":material/check_circle:")
    else:
        st.warning(esc(result.summary()), icon=":material/warning:")
    counts = {s: n for s, n in result.counts.items() if n}
    unconfirmed = counts.get("unconfirmed", 0)
    if unconfirmed:
        st.warning(
            f"{unconfirmed:,} row(s) are unconfirmed: the answer was lost after the request "
            "left, so the server may have made the change. Run the same sheet again to settle "
            "them: nothing is done twice.",
            icon=":material/help:",
        )
    cols = st.columns(max(len(counts), 1))
    for col, (status, n) in zip(cols, counts.items(), strict=False):
        col.metric(status.capitalize(), f"{n:,}")
    st.caption(
        f"{len(frame):,} rows in, {len(frame):,} results out · {result.sent:,} sent now"
        + (f", {result.reused:,} from the earlier run" if result.reused else "")
        + (f" · {result.rows_per_second:,.0f} rows/s" if result.sent else "")
    )
    statuses = list(counts)
    pick = st.multiselect("Show statuses", statuses, default=statuses, key=f"{prefix}_res_status")
    shown = frame[frame["status"].isin(pick)].head(SHOWN_ROWS)
    planned = plan.frame[["row", "action"]].rename(columns={"action": "planned"})
    shown = shown.merge(planned, on="row", how="left")
    order = [
        "row",
        "planned",
        "status",
        *[c for c in shown.columns if c not in ("row", "planned", "status")],
    ]
    st.dataframe(
        shown[order].style.apply(_highlight("status", _STATUS_COLORS), axis=1).format(na_rep=""),
        hide_index=True,
        height=min(38 + 35 * max(len(shown), 1), 460),
        column_config={
            "planned": st.column_config.TextColumn("Planned"),
            "status": st.column_config.TextColumn("Result"),
            "message": st.column_config.TextColumn("Message", width="large"),
        },
    )
    st.download_button(
        "Download results (CSV)",
        excel_safe_csv(frame),
        file_name=f"{name.rsplit('.', 1)[0]}.results.csv",
        mime="text/csv",
        key=f"{prefix}_results_csv",
        type="primary",
        icon=":material/download:",
    )
