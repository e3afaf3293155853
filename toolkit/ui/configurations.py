"""Every known configuration: filter, edit inline (review → apply), update one with a diff,
its history with Revert, refresh from EnKash and import ids.

The table comes from the registry (the API has no list call). Edits are never sent until the
analyst has seen exactly what will be PATCHed.
"""

from __future__ import annotations

import hashlib

import pandas as pd
import streamlit as st

from toolkit.errors import AuthError, EnKashError
from toolkit.models import MAX_AMOUNT, CoinConfig, Configuration, validate_config_fields
from toolkit.registry import REVERTIBLE_ACTIONS, read_ids
from toolkit.ui import access
from toolkit.ui.caches import configs_frame, data_key, invalidate
from toolkit.ui.connection import api, auth_message, call, connection, workspace
from toolkit.ui.filters import SELECTED_KEY, shared_filters
from toolkit.ui.forms import check_form
from toolkit.ui.jobs import Job, show_job, start_job
from toolkit.ui.text import blank_missing, clip, esc

P = "cfg"  # widget key prefix of this page
EDITOR_KEY_STATE = f"{P}_editor_key"  # which data_editor key holds the current view's edits
APPLY_JOB = f"{P}_apply_job"
SYNC_JOB = f"{P}_sync_job"
PAGE_SIZES = (100, 500, 1000)
EDITABLE = ("configuration", "amount")
FAT_FINGER = 10  # an amount changed this many times up or down (or to/from 0) needs a tick


# --------------------------------------------------------------------------- edits


def _editor_key(view: pd.DataFrame) -> str:
    """A data_editor key per set of rows shown: an edit belongs to the rows it was made on."""
    ids = "\n".join(view["coinConfigId"].astype("string").fillna("").tolist())
    return f"{P}_editor_" + hashlib.sha1(ids.encode()).hexdigest()[:12]


def _typed(value) -> str | None:
    """A cell as the analyst typed it (the amount column is text: nothing is rounded,
    clamped or dropped on the way), None when blank."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    text = str(value)
    return text if text.strip() else None


def _pending_edits(view: pd.DataFrame, key: str) -> pd.DataFrame:
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


def _patch_body(row: pd.Series) -> tuple[dict, str | None]:
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


def _fat_finger(before: int | None, after: int | None) -> str | None:
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
        flag = None if problem else _fat_finger(before, body.get("amount"))
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


def _apply(edits: pd.DataFrame, client) -> None:
    """Send the reviewed edits in a background job (the role is checked again here)."""
    if not access.allowed("change configurations"):
        return
    work = [(row, *_patch_body(row)) for _, row in edits.iterrows()]
    conn = connection()  # taken here: the worker thread makes no Streamlit calls

    def run(job: Job) -> pd.DataFrame:
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
    return "unconfirmed" if type(exc).__name__ == "UnconfirmedError" else "failed"


# --------------------------------------------------------------------------- sections


def _toolbar(ws, can_edit: bool) -> None:
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
        registry = ws.registry

        def run(job: Job):
            return registry.refresh(
                progress=lambda done, total: job.progress(done, total), source="app"
            )

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


def _import_ids(ws) -> None:
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
    registry = ws.registry

    def run_import(job: Job):
        return registry.import_ids(ids, progress=lambda done, total: job.progress(done, total))

    start_job(SYNC_JOB, f"Importing {len(ids)} ids", run_import, total=None)


def _sync_summary(result) -> str:
    if isinstance(result, pd.DataFrame):
        return result.attrs.get("summary") or f"{len(result):,} ids checked."
    return "Done."


def _sync_details(result) -> pd.DataFrame | None:
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


def _review(ws, view: pd.DataFrame, key: str) -> None:
    edits = _pending_edits(view, key)
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

    def applied(_job: Job) -> None:
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


def _review_and_apply(ws, edits: pd.DataFrame) -> None:
    review = _review_frame(edits)
    st.markdown("These PATCH requests will be sent, one per configuration:")
    st.dataframe(
        review.style.apply(_highlight_problem, axis=1),
        hide_index=True,
        column_config=_REVIEW_COLUMNS,
    )
    from toolkit.ui import cost as cost_lines  # the Cost page's module: its cost line

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


def _selected(view: pd.DataFrame, frame: pd.DataFrame) -> str | None:
    ids = view["coinConfigId"].dropna().astype("string").tolist()
    current = st.session_state.get(SELECTED_KEY)
    if current and current not in ids:
        ids = [current, *ids]
    choice = st.selectbox(
        "Configuration",
        ids,
        index=ids.index(current) if current in ids else None,
        key=f"{P}_select",
        accept_new_options=True,
        placeholder="Pick one from this page, or type an id",
    )
    if choice:
        choice = choice.strip().upper()
        if len(choice) > 64 or not choice.isascii() or not choice.isalnum():
            st.error(
                "A coinConfigId is letters and digits, like WCC817428 (what was typed is not one).",
                icon=":material/error:",
            )
            return None
        st.session_state[SELECTED_KEY] = choice
    return choice


def _detail(ws, frame: pd.DataFrame, coin_config_id: str, can_edit: bool) -> None:
    match = frame[frame["coinConfigId"] == coin_config_id]
    if match.empty:
        st.info(f"{esc(coin_config_id)} is not in the registry yet.")
        fetch = can_edit and st.button(f"Fetch {esc(coin_config_id)} from EnKash", key=f"{P}_fetch")
        if fetch and access.allowed("fetch configurations into the registry"):
            with st.spinner("Fetching…"):
                fetched = api(ws.client.get_config, coin_config_id)
            if fetched is not None:
                invalidate()
                st.rerun()
        return
    row = match.iloc[0]
    before = CoinConfig(
        coin_config_id=coin_config_id,
        company_id=row["companyId"],
        event=row["event"],
        configuration=None
        if pd.isna(row["configuration"])
        else Configuration(row["configuration"]),
        amount=None if pd.isna(row["amount"]) else int(row["amount"]),
    )
    if not can_edit:
        st.dataframe(pd.DataFrame([before.to_payload()]), hide_index=True)
        st.markdown("**History**")
        _history(ws, coin_config_id, can_edit=False)
        return
    update_tab, history_tab = st.tabs(["Update", "History"])
    with update_tab:
        _update_form(ws, before)
    with history_tab:
        _history(ws, coin_config_id, can_edit=True)


def _clear_form(k: str) -> None:
    """Forget the update form's widget values: it starts again from the configuration's."""
    for suffix in ("amount", "configuration", "company", "event"):
        st.session_state.pop(f"{k}_{suffix}", None)


_FORM_LABELS = {
    "companyId": "Company id",
    "event": "Event",
    "configuration": "Configuration",
    "amount": "Coins per event",
}


def _update_form(ws, before: CoinConfig) -> None:
    cid = before.coin_config_id
    k = f"{P}_upd_{cid}"
    base = before.to_payload(include_id=False)
    if st.session_state.get(f"{k}_base") != base:
        # The configuration changed (here, or through the CLI, a notebook, a refresh): start the
        # form from its current values, not from what the widgets held before.
        _clear_form(k)
        st.session_state[f"{k}_base"] = base
    c1, c2 = st.columns(2)
    # Text, as on Create: a number box would round 6.5 or refuse -5 without saying why.
    amount = c1.text_input(
        "Coins per event",
        value="" if before.amount is None else str(before.amount),
        key=f"{k}_amount",
        help=f"A whole number of coins, 0 to {MAX_AMOUNT:,} (0 switches the event off).",
    )
    options = [c.value for c in Configuration]
    configuration = c2.radio(
        "Configuration",
        options,
        index=options.index(str(before.configuration)) if before.configuration else 0,
        key=f"{k}_configuration",
        horizontal=True,
    )
    with st.expander("Move to another company or event (rare)"):
        m1, m2 = st.columns(2)
        company = m1.text_input("Company id", value=before.company_id or "", key=f"{k}_company")
        event = m2.text_input("Event", value=before.event or "", key=f"{k}_event")
    after = {
        "companyId": company.strip(),
        "event": event.strip(),
        "configuration": configuration,
        "amount": amount.strip(),
    }
    old = {n: ("" if v is None else str(v)) for n, v in base.items()}
    changed = {name: value for name, value in after.items() if old.get(name, "") != value}
    args = {"companyId": "company_id", "event": "event", "configuration": "configuration"}
    body, problems = check_form(
        validate_config_fields,
        {
            n: (args.get(n, n), changed.get(n))
            for n in ("companyId", "event", "configuration", "amount")
        },
        partial=True,
    )
    flag = None
    if not changed:
        st.caption("Change a value to see what will be sent.")
    else:
        st.markdown("**Before → after** (only these fields are sent):")
        st.dataframe(
            pd.DataFrame(
                [
                    {"field": name, "before": old.get(name, ""), "after": clip(value)}
                    for name, value in changed.items()
                ]
            ),
            hide_index=True,
        )
        for name, reason in problems.items():
            st.error(esc(f"{_FORM_LABELS.get(name, name)} {reason}"), icon=":material/error:")
        if not problems:
            flag = _fat_finger(before.amount, body.get("amount"))
            from toolkit.ui import cost as cost_lines  # the Cost page's module: its cost line

            cost_lines.update_cost(before.company_id, before.event, body.get("amount"))
    sure = True
    if flag:
        sure = st.checkbox(
            f"Yes, change the amount {esc(before.amount)} → "
            f"{esc(body.get('amount'))} ({esc(flag)})",
            key=f"{k}_sure",
        )
    if st.button(
        "Update",
        key=f"{k}_send",
        type="primary",
        disabled=not changed or bool(problems) or not sure,
        icon=":material/save:",
    ):
        if not access.allowed("change configurations"):
            return
        with st.spinner(f"Updating {cid}…"):
            updated = api(
                ws.client.update_config,
                cid,
                amount=body.get("amount"),
                configuration=body.get("configuration"),
                company_id=body.get("companyId"),
                event=body.get("event"),
                known=before,
            )
        if updated is not None:
            invalidate()
            st.session_state[f"{P}_updated"] = f"Updated {cid}: " + ", ".join(
                f"{n} {old.get(n)} → {v}" for n, v in changed.items()
            )
            _clear_form(k)
            st.session_state.pop(f"{k}_sure", None)
            st.rerun()
    message = st.session_state.pop(f"{P}_updated", None)
    if message:
        st.success(esc(message), icon=":material/check_circle:")


_HISTORY_COLUMNS = [
    "audit_id",
    "at",
    "action",
    "outcome",
    "changes",
    "actor",
    "source",
    "message",
    "reverts_audit_id",
]


def _history(ws, coin_config_id: str, *, can_edit: bool) -> None:
    history = ws.registry.history(coin_config_id)
    if history is None or len(history) == 0:
        st.caption("No recorded changes yet.")
        return
    history = history.sort_values("audit_id", ascending=False)
    st.dataframe(
        blank_missing(history[[c for c in _HISTORY_COLUMNS if c in history.columns]]),
        hide_index=True,
        column_config={
            "audit_id": st.column_config.NumberColumn("Entry", format="%d"),
            "at": st.column_config.DatetimeColumn("When (UTC)", format="YYYY-MM-DD HH:mm:ss"),
            "action": st.column_config.TextColumn("Action"),
            "outcome": st.column_config.TextColumn("Outcome"),
            "changes": st.column_config.TextColumn("Changes", width="large"),
            "actor": st.column_config.TextColumn("Actor"),
            "source": st.column_config.TextColumn("Source"),
            "message": st.column_config.TextColumn("Message", width="large"),
            "reverts_audit_id": st.column_config.NumberColumn("Reverts", format="%d"),
        },
    )
    message = st.session_state.pop(f"{P}_revert_msg", None)
    if message:
        kind, text = message
        (st.error if kind == "error" else st.success)(esc(text))
    if not can_edit:
        return
    reverted = set(history["reverts_audit_id"].dropna().astype(int).tolist())
    changes = history[
        history["action"].astype("string").isin(REVERTIBLE_ACTIONS)
        & (history["outcome"].astype("string") == "ok")
        & ~history["audit_id"].isin(reverted)
    ]
    if changes.empty:
        st.caption(
            "Nothing to revert: only successful updates (and drift) not reverted yet can be."
        )
        return
    labels = {
        int(row.audit_id): f"#{int(row.audit_id)} · {row.action} · {row.changes}"
        for row in changes.itertuples(index=False)
    }
    pick_key = f"{P}_revert_pick_{coin_config_id}"
    if st.session_state.get(pick_key) not in labels:
        st.session_state.pop(pick_key, None)  # the entry just reverted is no longer offered
    confirm_key = f"{P}_revert_confirm_{coin_config_id}"
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    audit_id = c1.selectbox(
        "Undo a change (puts back its before-values)",
        list(labels),
        format_func=labels.get,
        key=pick_key,
    )
    if c2.button("Revert…", key=f"{P}_revert_{coin_config_id}", icon=":material/undo:"):
        st.session_state[confirm_key] = audit_id
    asked = st.session_state.get(confirm_key)
    if asked is None or asked not in labels:
        return
    entry = changes[changes["audit_id"] == asked].iloc[0]
    with st.container(border=True):
        st.markdown(
            f"**Revert entry #{int(asked)}?** {esc(coin_config_id)} goes back to its "
            "values before that change:"
        )
        st.dataframe(_revert_preview(entry), hide_index=True)
        y, n, _ = st.columns([1, 1, 3])
        yes = y.button("Yes, revert", key=f"{P}_revert_yes_{coin_config_id}", type="primary")
        if n.button("Cancel", key=f"{P}_revert_no_{coin_config_id}"):
            st.session_state.pop(confirm_key, None)
            st.rerun()
    if not yes:
        return
    st.session_state.pop(confirm_key, None)
    if not access.allowed("revert a change"):
        return
    with st.spinner("Reverting…"):
        result, error = call(ws.registry.revert, int(asked), source="app")
    if error is not None:
        st.session_state[f"{P}_revert_msg"] = (
            "error",
            connection().auth_error or f"Revert refused: {error}",
        )
    else:
        invalidate()
        st.session_state[f"{P}_revert_msg"] = ("success", f"Reverted: {result}")
    st.session_state.pop(pick_key, None)
    st.rerun()


def _revert_preview(entry: pd.Series) -> pd.DataFrame:
    """What a revert puts back: each field the entry changed, now → after the revert."""
    rows = []
    for field in ("amount", "configuration"):
        before, after = entry.get(f"before_{field}"), entry.get(f"after_{field}")
        if pd.isna(before) and pd.isna(after):
            continue
        if not pd.isna(before) and not pd.isna(after) and str(before) == str(after):
            continue
        rows.append(
            {
                "field": field,
                "now": "" if pd.isna(after) else str(after),
                "after the revert": "" if pd.isna(before) else str(before),
            }
        )
    if not rows:
        rows.append(
            {
                "field": "changes",
                "now": str(entry.get("changes") or ""),
                "after the revert": "as before that entry",
            }
        )
    return pd.DataFrame(rows)


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
        _review(ws, view, key)
    st.divider()
    st.subheader("One configuration")
    chosen = _selected(view, frame)
    if chosen:
        _detail(ws, frame, chosen, can_edit)


render()
