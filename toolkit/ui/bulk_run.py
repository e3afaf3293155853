"""Steps 3 and 4 of the bulk flow: run a planned sheet (options, Run / Resume, approval, live
progress and Stop) and show its results row by row with their download.

A run belongs to the server (`toolkit.ui.runs`), not to the tab: whatever tab shows it, the
progress is live and the results sit beside the plan the run was started from.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import streamlit as st

from toolkit.ui import access, runs
from toolkit.ui.text import esc, excel_safe_csv, highlight

if TYPE_CHECKING:
    from toolkit.bulk import Plan, RunResult
    from toolkit.bulk.journal import JournalRun
    from toolkit.bulk.resuming import EarlierRun
    from toolkit.workspace import Workspace

__all__ = ["SHOWN_ROWS", "run_section", "server_run_section", "unconfirmed_advice"]

SHOWN_ROWS = 1_000  # tables show this many rows; downloads hold every row

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


def run_section(
    ws: Workspace,
    plan: Plan,
    earlier: EarlierRun | None,
    *,
    name: str,
    prefix: str,
    who: access.Identity,
) -> None:
    """No run of this sheet on this server now: what an earlier one left (``earlier``), and
    Run/Resume."""
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
    resume = False
    if earlier is not None and _busy_without_lock(ws, earlier.run, lock_key):
        return
    if earlier is not None:
        found, done_counts = earlier.run, earlier.counts
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


def _busy_without_lock(ws: Workspace, found: JournalRun, lock_key: str) -> bool:
    """A run journaled as running, whose sheet no process ever locked, with rows still being
    written: some process that takes no lock (a notebook, a script; the CLI takes it) is
    sending it. Say so (no Resume: it would send rows twice). A lock left by a holder that died
    means the run is truly dead."""
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
        "from a process that holds no lock (a notebook or a script calling bulk.run?). It "
        "cannot be resumed while it may be running; look again when it has been quiet for "
        f"{LOCK_STALE_S / 60:.0f} minutes.",
        icon=":material/sync_lock:",
    )
    return True


def server_run_section(
    run: runs.ServerRun,
    *,
    prefix: str,
    who: access.Identity,
    replan: Callable[[], None] | None = None,
) -> None:
    """A run of this sheet the server knows: live progress (any tab), Stop, approval, then the
    results beside the plan it was started from. ``replan``: offer to plan the sheet again."""
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
    if replan is not None and st.button(
        "Plan this sheet again", key=f"{prefix}_replan", icon=":material/refresh:"
    ):
        replan()
        st.rerun()
    if job is not None and job.result is not None:
        _results(
            job.result,
            plan=run.plan,
            name=run.name,
            prefix=prefix,
            resend_safe=_resend_safe(run),
        )


def _approval_box(run: runs.ServerRun, *, prefix: str, who: access.Identity) -> None:
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


def _live_progress(run: runs.ServerRun, *, prefix: str, who: access.Identity) -> None:
    """Progress redrawn every second without holding the page; the whole page is drawn again
    when the run ends (its results appear)."""
    stoppable = who.can_edit

    @st.fragment(run_every=1.0)
    def progress() -> None:
        job = run.job
        if job is None or not run.running:
            st.rerun()
            return
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


def _resend_safe(run: runs.ServerRun) -> bool:
    """Whether the server's answers let the client confirm a repeat of this run's writes (the
    server profile the Server check keeps)."""
    profile = run.workspace.client.profile
    return bool(profile.resend_create if run.kind == "configs" else profile.resend_allocate)


def unconfirmed_advice(count: int, kind: str, resend_safe: bool) -> str:
    """What ``count`` unconfirmed rows mean, and what to do about them on this server."""
    head = (
        f"{count:,} row(s) are unconfirmed: the answer was lost after the request left, so the "
        "server may have made the change. "
    )
    if resend_safe:
        return head + (
            "Run the same sheet again to settle them: each is sent again and the server's "
            "answer to a repeat confirms it; nothing is done twice."
        )
    found = (
        "import the ids of those that were (Configurations → **Import ids**: they then count "
        "as known) and send those that were not in a new sheet"
        if kind == "configs"
        else "send those that were not in a new sheet with the same requestIds"
    )
    return head + (
        "This server's answers cannot confirm a repeat safely (see **Server check** in the "
        "sidebar), so running this sheet again does not send them again. Check on EnKash "
        f"whether each was made (its message says what to look for); {found}. If a Server "
        "check with a scratch company finds that a repeat is refused, running this sheet "
        "again settles them."
    )


def _results(result: RunResult, *, plan: Plan, name: str, prefix: str, resend_safe: bool) -> None:
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
        st.warning(unconfirmed_advice(unconfirmed, plan.kind, resend_safe), icon=":material/help:")
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
        shown[order].style.apply(highlight("status", _STATUS_COLORS), axis=1).format(na_rep=""),
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
