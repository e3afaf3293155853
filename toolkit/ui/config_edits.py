"""The Configurations page's inline edits: what was typed in the table (as typed, never
rounded), the review of every PATCH with before → after and a flag on fat-finger changes, and
the apply job with a result per row.

Nothing is sent until the analyst has seen exactly what will be PATCHed; a change of 10× or
more, or to or from 0, is held back until it has a tick of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd
import streamlit as st

from toolkit.errors import AuthError, EnKashError, UnconfirmedError
from toolkit.models import CoinConfig, Configuration, validate_config_fields
from toolkit.ui import access, cost_lines
from toolkit.ui.caches import invalidate
from toolkit.ui.connection import auth_message, connection
from toolkit.ui.forms import check_form
from toolkit.ui.jobs import Job, show_job, start_job
from toolkit.ui.text import clip, esc

if TYPE_CHECKING:
    from toolkit.client import CoinsClient
    from toolkit.workspace import Workspace

__all__ = ["FAT_FINGER", "fat_finger", "pending_edits", "review"]

P = "cfg"  # the Configurations page's widget key prefix
APPLY_JOB = f"{P}_apply_job"
FAT_FINGER = 10  # an amount changed this many times up or down (or to/from 0) needs a tick


def _typed(value: object) -> str | None:
    """A cell as the analyst typed it (the amount column is text: nothing is rounded,
    clamped or dropped on the way), None when blank."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    text = str(value)
    return text if text.strip() else None


def pending_edits(view: pd.DataFrame, key: str) -> pd.DataFrame:
    """The data_editor's edits as rows: id, company, event, before and after of each field
    (the after-values exactly as typed)."""
    state = st.session_state.get(key) or {}
    edited = state.get("edited_rows") or {}
    rows = []
    for position, changes in edited.items():
        try:
            index = int(position)
        except (TypeError, ValueError):
            continue
        if not 0 <= index < len(view) or not isinstance(changes, dict):
            continue
        original = view.iloc[index]
        old_amount = None if pd.isna(original["amount"]) else int(original["amount"])
        old_configuration = (
            None if pd.isna(original["configuration"]) else str(original["configuration"])
        )
        amount = _typed(changes.get("amount")) if "amount" in changes else None
        configuration = _typed(changes.get("configuration")) if "configuration" in changes else None
        if amount is not None and amount.strip() == str(old_amount):
            amount = None
        if configuration is not None and configuration == old_configuration:
            configuration = None
        if amount is None and configuration is None:
            continue
        rows.append(
            {
                "coinConfigId": original["coinConfigId"],
                "companyId": original["companyId"],
                "event": original["event"],
                "amount_before": old_amount,
                "amount_after": amount,
                "configuration_before": old_configuration,
                "configuration_after": configuration,
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "coinConfigId",
            "companyId",
            "event",
            "amount_before",
            "amount_after",
            "configuration_before",
            "configuration_after",
        ],
    )


def _patch_body(row: pd.Series) -> tuple[dict[str, Any], str | None]:
    """The exact PATCH body for one edited row, or the reason it cannot be sent (the typed
    text is checked as text first: a 10,000-digit amount is refused, never converted)."""
    amount = _typed(row["amount_after"])
    configuration = _typed(row["configuration_after"])
    body, problems = check_form(
        validate_config_fields,
        {
            "companyId": ("company_id", None),
            "event": ("event", None),
            "configuration": ("configuration", configuration),
            "amount": ("amount", amount),
        },
        partial=True,
    )
    if problems:
        return {}, "; ".join(f"{name} {reason}" for name, reason in problems.items())
    return body, None


def fat_finger(before: int | None, after: int | None) -> str | None:
    """Why an amount change looks like a slip of the finger, or None."""
    if before is None or after is None or before == after:
        return None
    if before == 0 or after == 0:
        return f"{'from' if before == 0 else 'to'} 0"
    ratio = after / before
    if ratio >= FAT_FINGER:
        return f"{ratio:,.0f}× up"
    if ratio <= 1 / FAT_FINGER:
        return f"{1 / ratio:,.0f}× down"
    return None


def _review_frame(edits: pd.DataFrame) -> pd.DataFrame:
    """One line per edited row: before → after as typed, the PATCH body, a fat-finger flag,
    and the problem when it cannot be sent."""
    shown = []
    for _, row in edits.iterrows():
        body, problem = _patch_body(row)
        changes = []
        before = row["amount_before"]
        before = None if before is None or pd.isna(before) else int(before)
        if _typed(row["amount_after"]) is not None:
            changes.append(
                f"amount {'(blank)' if before is None else before} → {clip(row['amount_after'])}"
            )
        if _typed(row["configuration_after"]) is not None:
            changes.append(
                f"configuration {row['configuration_before']} → {clip(row['configuration_after'])}"
            )
        flag = None if problem else fat_finger(before, body.get("amount"))
        shown.append(
            {
                "coinConfigId": row["coinConfigId"],
                "company": row["companyId"],
                "event": row["event"],
                "change": "; ".join(changes),
                "check": flag or "",
                "PATCH body": "" if problem else str(body),
                "problem": problem or "",
            }
        )
    return pd.DataFrame(
        shown,
        columns=["coinConfigId", "company", "event", "change", "check", "PATCH body", "problem"],
    )


def _known(row: pd.Series) -> CoinConfig:
    return CoinConfig(
        coin_config_id=row["coinConfigId"],
        company_id=row["companyId"],
        event=row["event"],
        configuration=Configuration(row["configuration_before"]),
        amount=None if pd.isna(row["amount_before"]) else int(row["amount_before"]),
    )


def _apply(edits: pd.DataFrame, client: CoinsClient) -> None:
    """Send the reviewed edits in a background job (the role is checked again here)."""
    if not access.allowed("change configurations"):
        return
    work = [(row, *_patch_body(row)) for _, row in edits.iterrows()]
    conn = connection()  # taken here: the worker thread makes no Streamlit calls

    def run(job: Job[pd.DataFrame]) -> pd.DataFrame:
        results = []
        for done, (row, body, problem) in enumerate(work):
            status, message = "skipped", ""
            if job.cancelled:
                message = "stopped before it was sent"
            elif problem:
                status, message = "invalid", problem
            else:
                try:
                    after = client.update_config(
                        row["coinConfigId"],
                        amount=body.get("amount"),
                        configuration=body.get("configuration"),
                        known=_known(row),
                    )
                    status = "updated"
                    message = f"now {after.configuration} {after.amount}"
                except AuthError as exc:
                    status, message = "failed", str(exc)
                    conn.auth_error = auth_message(exc)
                except EnKashError as exc:
                    status, message = _error_status(exc), str(exc)
            results.append(
                {
                    "coinConfigId": row["coinConfigId"],
                    "company": row["companyId"],
                    "event": row["event"],
                    "status": status,
                    "message": message,
                }
            )
            job.progress(done + 1, len(work))
        return pd.DataFrame(results)

    start_job(APPLY_JOB, "Applying changes", run, total=len(work))


def _error_status(exc: EnKashError) -> str:
    """`unconfirmed` when the toolkit cannot know whether the server made the change."""
    return "unconfirmed" if isinstance(exc, UnconfirmedError) else "failed"


_REVIEW_COLUMNS = {
    "coinConfigId": st.column_config.TextColumn("Id"),
    "company": st.column_config.TextColumn("Company"),
    "event": st.column_config.TextColumn("Event"),
    "change": st.column_config.TextColumn("Before → after", width="medium"),
    "check": st.column_config.TextColumn(
        "Check", help="A change of 10× or more, or to or from 0: tick it below if you mean it."
    ),
    "PATCH body": st.column_config.TextColumn("PATCH body"),
    "problem": st.column_config.TextColumn("Problem", width="large"),
}


def review(ws: Workspace, view: pd.DataFrame, key: str) -> None:
    """The edits made in the table's editor under ``key``: Review changes / Discard, the
    review, and the results of the last apply."""
    edits = pending_edits(view, key)
    job = st.session_state.get(APPLY_JOB)
    if edits.empty and job is None:
        return
    if not edits.empty:
        st.markdown(f"**{len(edits)} unsaved change{'s' if len(edits) != 1 else ''}**")
        b1, b2, _ = st.columns([1, 1, 4])
        if b1.button("Review changes", key=f"{P}_review", type="primary", icon=":material/rule:"):
            st.session_state[f"{P}_reviewing"] = True
        if b2.button("Discard", key=f"{P}_discard", icon=":material/undo:"):
            del st.session_state[key]
            st.session_state[f"{P}_reviewing"] = False
            st.rerun()
        if st.session_state.get(f"{P}_reviewing"):
            _review_and_apply(ws, edits)

    def applied(_job: Job[Any]) -> None:
        # The registry changed: rebuild the table and start from a clean editor.
        invalidate()
        st.session_state.pop(key, None)

    job = show_job(APPLY_JOB, on_done=applied)
    if job is not None:
        results = job.result if isinstance(job.result, pd.DataFrame) else pd.DataFrame()
        if not results.empty:
            counts = results["status"].value_counts().to_dict()
            st.markdown(
                "**Results:** " + ", ".join(f"{n} {status}" for status, n in counts.items())
            )
            st.dataframe(
                results.style.apply(_highlight_status, axis=1),
                hide_index=True,
                column_config={"message": st.column_config.TextColumn("Message", width="large")},
            )
        if st.button("Dismiss results", key=f"{P}_apply_dismiss"):
            del st.session_state[APPLY_JOB]
            st.rerun()


def _review_and_apply(ws: Workspace, edits: pd.DataFrame) -> None:
    review = _review_frame(edits)
    st.markdown("These PATCH requests will be sent, one per configuration:")
    st.dataframe(
        review.style.apply(_highlight_problem, axis=1),
        hide_index=True,
        column_config=_REVIEW_COLUMNS,
    )
    cost_lines.review_cost(edits)
    flagged = review[(review["check"] != "") & (review["problem"] == "")]
    ticked: set[str] = set()
    if len(flagged):
        st.warning(
            f"{len(flagged)} change(s) are large (10× or more, or to or from 0). Tick each one "
            "you mean; the others are held back.",
            icon=":material/warning:",
        )
        for row in flagged.itertuples(index=False):
            label = esc(f"{row.coinConfigId} ({row.company} · {row.event}): {row.change}")
            if st.checkbox(f"{label} — {esc(row.check)}", key=f"{P}_tick_{row.coinConfigId}"):
                ticked.add(str(row.coinConfigId))
    sendable = (review["problem"] == "") & (
        (review["check"] == "") | review["coinConfigId"].astype(str).isin(ticked)
    )
    refused = int((review["problem"] != "").sum())
    if refused:
        st.warning(f"{refused} change(s) cannot be sent; see Problem.")
    count = int(sendable.sum())
    if st.button(
        f"Apply {count} change{'s' if count != 1 else ''}",
        key=f"{P}_apply",
        type="primary",
        disabled=count == 0,
        icon=":material/send:",
    ):
        st.session_state[f"{P}_reviewing"] = False
        _apply(edits[sendable.to_numpy()], ws.client)


def _highlight_problem(row: pd.Series) -> list[str]:
    if row.get("problem"):
        color = "background-color: #FDECEA"
    elif row.get("check"):
        color = "background-color: #FFF3E0"
    else:
        color = ""
    return [color] * len(row)


def _highlight_status(row: pd.Series) -> list[str]:
    status = row.get("status")
    color = {
        "updated": "background-color: #E8F5E9",
        "failed": "background-color: #FDECEA",
        "invalid": "background-color: #FDECEA",
        "unconfirmed": "background-color: #FFF3E0",
        "skipped": "background-color: #FFF8E1",
    }.get(status, "")
    return [color] * len(row)
