"""Every known configuration: filter, edit inline (review → apply), update one with a diff,
its history with Revert, refresh from EnKash and import ids.

The table comes from the registry (the API has no list call). This page module draws the
toolbar and the table; the inline edits' review and apply are `toolkit.ui.config_edits`, one
configuration's update, history and Revert `toolkit.ui.config_detail`. Edits are never sent
until the analyst has seen exactly what will be PATCHed.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import pandas as pd
import streamlit as st

from toolkit.models import MAX_AMOUNT, Configuration
from toolkit.registry import read_ids
from toolkit.ui import access
from toolkit.ui.caches import configs_frame, data_key, invalidate
from toolkit.ui.config_detail import detail, selected
from toolkit.ui.config_edits import review
from toolkit.ui.connection import workspace
from toolkit.ui.filters import shared_filters
from toolkit.ui.jobs import Job, show_job, start_job
from toolkit.ui.text import blank_missing, esc

if TYPE_CHECKING:
    from toolkit.workspace import Workspace

P = "cfg"  # widget key prefix of this page
EDITOR_KEY_STATE = f"{P}_editor_key"  # which data_editor key holds the current view's edits
SYNC_JOB = f"{P}_sync_job"
PAGE_SIZES = (100, 500, 1000)
EDITABLE = ("configuration", "amount")


def _editor_key(view: pd.DataFrame) -> str:
    """A data_editor key per set of rows shown: an edit belongs to the rows it was made on."""
    ids = "\n".join(view["coinConfigId"].astype("string").fillna("").tolist())
    return f"{P}_editor_" + hashlib.sha1(ids.encode()).hexdigest()[:12]


def _toolbar(ws: Workspace, can_edit: bool) -> None:
    col1, col2, col3 = st.columns([1, 1, 3])
    refresh = can_edit and col1.button(
        "Refresh from EnKash",
        key=f"{P}_refresh",
        icon=":material/sync:",
        help="Fetch every known id again: see changes made outside the toolkit, and ids gone.",
    )
    if col2.button("Reload table", key=f"{P}_reload", icon=":material/refresh:"):
        invalidate()
    if refresh and access.allowed("refresh the registry"):

        def run(job: Job[pd.DataFrame]) -> pd.DataFrame:
            return ws.refresh(progress=lambda done, total: job.progress(done, total), source="app")

        start_job(SYNC_JOB, "Refreshing from EnKash", run)
    if can_edit:
        with col3.expander("Import ids", icon=":material/playlist_add:"):
            _import_ids(ws)
    job = show_job(SYNC_JOB, on_done=lambda _job: invalidate())
    if job is not None:
        if not job.error:
            st.success(esc(_sync_summary(job.result)), icon=":material/check_circle:")
            details = _sync_details(job.result)
            if details is not None and not details.empty:
                st.dataframe(details, hide_index=True, height=200)
        if st.button("Dismiss", key=f"{P}_sync_dismiss"):
            del st.session_state[SYNC_JOB]
            st.rerun()


def _import_ids(ws: Workspace) -> None:
    st.caption(
        "Configurations created elsewhere (Postman, another tool) are unknown here until "
        "you import their ids: paste them, or upload a text/CSV file."
    )
    text = st.text_area("coinConfigIds", key=f"{P}_import_text", placeholder="WCC817428\nWCC024845")
    upload = st.file_uploader(
        "…or a file", type=["txt", "csv"], key=f"{P}_import_file", accept_multiple_files=False
    )
    if not st.button("Import", key=f"{P}_import", icon=":material/download:"):
        return
    if not access.allowed("import ids"):
        return
    try:
        ids = read_ids(text or "")
        if upload is not None:
            ids = list(dict.fromkeys(ids + read_ids(upload.getvalue())))
    except ValueError as exc:
        ids, problem = [], f"The file could not be read: {exc}."
    else:
        problem = "No coinConfigIds found (they look like WCC817428)."
    if not ids:
        st.error(esc(problem))
        return

    def run_import(job: Job[pd.DataFrame]) -> pd.DataFrame:
        return ws.import_ids(ids, progress=lambda done, total: job.progress(done, total))

    start_job(SYNC_JOB, f"Importing {len(ids)} ids", run_import, total=None)


def _sync_summary(result: object) -> str:
    if isinstance(result, pd.DataFrame):
        return result.attrs.get("summary") or f"{len(result):,} ids checked."
    return "Done."


def _sync_details(result: object) -> pd.DataFrame | None:
    if not isinstance(result, pd.DataFrame) or result.empty:
        return None
    # Only what needs a look: new, changed outside the toolkit, gone, unknown or failed.
    return result[~result["status"].isin(["unchanged", "known"])]


def _table(frame: pd.DataFrame, can_edit: bool) -> tuple[pd.DataFrame, str]:
    """Filters, search and one page of the table (editable for editors); returns the view and
    the editor key."""
    key_now = st.session_state.get(EDITOR_KEY_STATE)
    locked = bool(can_edit and key_now and (st.session_state.get(key_now) or {}).get("edited_rows"))
    filtered = shared_filters(frame, prefix=P, disabled=locked, cache_key=data_key())
    c1, c2, c3 = st.columns([3, 1, 1])
    search = c1.text_input(
        "Search id, company or event",
        key=f"{P}_search",
        placeholder="WCC817428, CEKEKCARDS, MEAL…",
        disabled=locked,
        max_chars=200,
    )
    if search.strip():
        needle = search.strip().upper()
        hit = (
            filtered["coinConfigId"].astype("string").str.upper().str.contains(needle, regex=False)
            | filtered["companyId"].astype("string").str.upper().str.contains(needle, regex=False)
            | filtered["event"].astype("string").str.upper().str.contains(needle, regex=False)
        )
        filtered = filtered[hit.fillna(False)]
    size = c2.selectbox("Rows per page", PAGE_SIZES, key=f"{P}_page_size", disabled=locked)
    pages = max(1, -(-len(filtered) // size))
    page = c3.number_input(
        f"Page (of {pages:,})",
        min_value=1,
        max_value=pages,
        value=1,
        step=1,
        key=f"{P}_page",
        disabled=locked,
    )
    page = min(int(page), pages)
    view = filtered.iloc[(page - 1) * size : page * size].reset_index(drop=True)
    # One line that is always there (its words change): the table never moves while editing.
    if locked:
        st.caption(":material/lock: Apply or discard your edits before changing filters or pages.")
    else:
        st.caption(
            f"{len(filtered):,} of {len(frame):,} configurations"
            + (f" · showing {len(view):,} on page {page:,}" if pages > 1 else "")
            + (
                " · edit **amount** and **configuration** in the table, then review."
                if can_edit
                else ""
            )
        )
    key = _editor_key(view)
    columns = [c for c in view.columns if c in _SHOWN]
    height = min(38 + 35 * max(len(view), 1), 420)
    if not can_edit:
        st.dataframe(
            blank_missing(view[columns]),
            hide_index=True,
            column_config=_COLUMN_CONFIG | {"amount": _AMOUNT_SHOWN},
            height=height,
        )
        return view, key
    st.session_state[EDITOR_KEY_STATE] = key
    shown = view[columns].copy()
    # Amounts are edited as text, so what was typed is what is checked (a number column
    # would turn 6.5 into 65, -5 into 5 and clamp 2,000,000 without a word).
    shown["amount"] = pd.array(
        ["" if pd.isna(v) else str(int(v)) for v in shown["amount"].tolist()], dtype="str"
    )
    st.data_editor(
        shown,
        key=key,
        hide_index=True,
        num_rows="fixed",
        disabled=[c for c in columns if c not in EDITABLE],
        column_config=_COLUMN_CONFIG,
        height=height,
    )
    return view, key


_SHOWN = (
    "coinConfigId",
    "companyId",
    "event",
    "configuration",
    "amount",
    "updated_at",
    "last_synced_at",
    "source",
)
_AMOUNT_SHOWN = st.column_config.NumberColumn("Coins", format="%d")
_COLUMN_CONFIG = {
    "coinConfigId": st.column_config.TextColumn("Id"),
    "companyId": st.column_config.TextColumn("Company"),
    "event": st.column_config.TextColumn("Event"),
    "configuration": st.column_config.SelectboxColumn(
        "Configuration", options=[c.value for c in Configuration], required=True
    ),
    "amount": st.column_config.TextColumn(
        "Coins",
        help=f"A whole number of coins, 0 to {MAX_AMOUNT:,}: checked as typed when you review.",
    ),
    "updated_at": st.column_config.DatetimeColumn("Updated", format="YYYY-MM-DD HH:mm"),
    "last_synced_at": st.column_config.DatetimeColumn("Last fetched", format="YYYY-MM-DD HH:mm"),
    "source": st.column_config.TextColumn("Source"),
}


def render() -> None:
    st.title("Configurations")
    ws = workspace()
    can_edit = access.current().can_edit
    _toolbar(ws, can_edit)
    frame = configs_frame()
    if frame.empty:
        st.info(
            "No configurations known yet. Create one, upload a CSV, or import ids you got "
            "elsewhere (the API cannot list them)."
        )
        return
    view, key = _table(frame, can_edit)
    if can_edit:
        review(ws, view, key)
    st.divider()
    st.subheader("One configuration")
    chosen = selected(view, frame)
    if chosen:
        detail(ws, frame, chosen, can_edit)


render()
