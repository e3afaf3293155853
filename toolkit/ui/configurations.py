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
from toolkit.ui import common

P = "cfg"  # widget key prefix of this page
EDITOR_KEY_STATE = f"{P}_editor_key"  # which data_editor key holds the current view's edits
APPLY_JOB = f"{P}_apply_job"
SYNC_JOB = f"{P}_sync_job"
PAGE_SIZES = (100, 500, 1000)
EDITABLE = ("configuration", "amount")


# --------------------------------------------------------------------------- edits


def _editor_key(view: pd.DataFrame) -> str:
    """A data_editor key per set of rows shown: an edit belongs to the rows it was made on."""
    ids = "\n".join(view["coinConfigId"].astype("string").fillna("").tolist())
    return f"{P}_editor_" + hashlib.sha1(ids.encode()).hexdigest()[:12]


def _pending_edits(view: pd.DataFrame, key: str) -> pd.DataFrame:
    """The data_editor's edits as rows: id, company, event, before and after of each field."""
    state = st.session_state.get(key) or {}
    edited = state.get("edited_rows") or {}
    rows = []
    for position, changes in edited.items():
        index = int(position)
        if index >= len(view):
            continue
        original = view.iloc[index]
        after = {}
        for column in EDITABLE:
            if column not in changes:
                continue
            new, old = changes[column], original[column]
            old = None if pd.isna(old) else (str(old) if column == "configuration" else int(old))
            if new is not None and column == "amount":
                new = float(new)
                new = int(new) if new.is_integer() else new
            if new != old:
                after[column] = (old, new)
        if after:
            rows.append(
                {
                    "coinConfigId": original["coinConfigId"],
                    "companyId": original["companyId"],
                    "event": original["event"],
                    "amount_before": after.get("amount", (original["amount"],))[0],
                    "amount_after": after["amount"][1] if "amount" in after else None,
                    "configuration_before": str(original["configuration"]),
                    "configuration_after": after["configuration"][1]
                    if "configuration" in after
                    else None,
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
    """The exact PATCH body for one edited row, or the reason it cannot be sent."""
    amount = None if pd.isna(row["amount_after"]) else row["amount_after"]
    if isinstance(amount, float) and amount.is_integer():
        amount = int(amount)
    configuration = None if pd.isna(row["configuration_after"]) else row["configuration_after"]
    body, problems = validate_config_fields(
        company_id=None, event=None, configuration=configuration, amount=amount, partial=True
    )
    if problems:
        return {}, "; ".join(f"{p.field} {p.reason}" for p in problems)
    return body, None


def _num(value) -> str:
    """A number as an analyst writes it: 42, not 42.0 (a column with gaps turns float)."""
    if value is None or pd.isna(value):
        return "(blank)"
    number = float(value)
    return str(int(number)) if number.is_integer() else str(value)


def _review_frame(edits: pd.DataFrame) -> pd.DataFrame:
    shown = []
    for _, row in edits.iterrows():
        body, problem = _patch_body(row)
        changes = []
        if row["amount_after"] is not None and not pd.isna(row["amount_after"]):
            changes.append(f"amount {_num(row['amount_before'])} → {_num(row['amount_after'])}")
        if row["configuration_after"] is not None and not pd.isna(row["configuration_after"]):
            changes.append(
                f"configuration {row['configuration_before']} → {row['configuration_after']}"
            )
        shown.append(
            {
                "coinConfigId": row["coinConfigId"],
                "company": row["companyId"],
                "event": row["event"],
                "change": "; ".join(changes),
                "PATCH body": "" if problem else str(body),
                "problem": problem or "",
            }
        )
    return pd.DataFrame(shown)


def _known(row: pd.Series) -> CoinConfig:
    return CoinConfig(
        coin_config_id=row["coinConfigId"],
        company_id=row["companyId"],
        event=row["event"],
        configuration=Configuration(row["configuration_before"]),
        amount=None if pd.isna(row["amount_before"]) else int(row["amount_before"]),
    )


def _apply(edits: pd.DataFrame, client) -> None:
    work = [(row, *_patch_body(row)) for _, row in edits.iterrows()]
    conn = common.connection()  # taken here: the worker thread makes no Streamlit calls

    def run(job: common.Job) -> pd.DataFrame:
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
                    conn.auth_error = common.auth_message(exc)
                except EnKashError as exc:
                    status, message = "failed", str(exc)
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

    common.start_job(APPLY_JOB, "Applying changes", run, total=len(work))


# --------------------------------------------------------------------------- sections


def _toolbar(ws) -> None:
    col1, col2, col3 = st.columns([1, 1, 3])
    refresh = col1.button(
        "Refresh from EnKash",
        key=f"{P}_refresh",
        icon=":material/sync:",
        help="Fetch every known id again: see changes made outside the toolkit, and ids gone.",
    )
    if col2.button("Reload table", key=f"{P}_reload", icon=":material/refresh:"):
        common.invalidate()
    if refresh:
        registry = ws.registry

        def run(job: common.Job):
            return registry.refresh(
                progress=lambda done, total: job.progress(done, total), source="app"
            )

        common.start_job(SYNC_JOB, "Refreshing from EnKash", run)
    with col3.expander("Import ids", icon=":material/playlist_add:"):
        st.caption(
            "Configurations created elsewhere (Postman, another tool) are unknown here until "
            "you import their ids: paste them, or upload a text/CSV file."
        )
        text = st.text_area(
            "coinConfigIds", key=f"{P}_import_text", placeholder="WCC817428\nWCC024845"
        )
        upload = st.file_uploader(
            "…or a file", type=["txt", "csv"], key=f"{P}_import_file", accept_multiple_files=False
        )
        if st.button("Import", key=f"{P}_import", icon=":material/download:"):
            try:
                ids = read_ids(text or "")
                if upload is not None:
                    ids = list(dict.fromkeys(ids + read_ids(upload.getvalue())))
            except ValueError as exc:
                ids, problem = [], f"The file could not be read: {exc}."
            else:
                problem = "No coinConfigIds found (they look like WCC817428)."
            if not ids:
                st.error(problem)
            else:
                registry = ws.registry

                def run_import(job: common.Job):
                    return registry.import_ids(
                        ids, progress=lambda done, total: job.progress(done, total)
                    )

                common.start_job(SYNC_JOB, f"Importing {len(ids)} ids", run_import, total=None)
    job = common.show_job(SYNC_JOB, on_done=lambda _job: common.invalidate())
    if job is not None:
        if not job.error:
            st.success(_sync_summary(job.result), icon=":material/check_circle:")
            details = _sync_details(job.result)
            if details is not None and not details.empty:
                st.dataframe(details, hide_index=True, height=200)
        if st.button("Dismiss", key=f"{P}_sync_dismiss"):
            del st.session_state[SYNC_JOB]
            st.rerun()


def _sync_summary(result) -> str:
    if isinstance(result, pd.DataFrame):
        return result.attrs.get("summary") or f"{len(result):,} ids checked."
    return "Done."


def _sync_details(result) -> pd.DataFrame | None:
    if not isinstance(result, pd.DataFrame) or result.empty:
        return None
    # Only what needs a look: new, changed outside the toolkit, gone, unknown or failed.
    return result[~result["status"].isin(["unchanged", "known"])]


def _table(frame: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Filters, search and one page of the editable table; returns the view and editor key."""
    key_now = st.session_state.get(EDITOR_KEY_STATE)
    locked = bool(key_now and (st.session_state.get(key_now) or {}).get("edited_rows"))
    if locked:
        st.caption(":material/lock: Apply or discard your edits before changing filters or pages.")
    filtered = common.shared_filters(frame, prefix=P, disabled=locked, cache_key=common.data_key())
    c1, c2, c3 = st.columns([3, 1, 1])
    search = c1.text_input(
        "Search id, company or event",
        key=f"{P}_search",
        placeholder="WCC817428, CEKEKCARDS, MEAL…",
        disabled=locked,
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
    st.caption(
        f"{len(filtered):,} of {len(frame):,} configurations"
        + (f" · showing {len(view):,} on page {page:,}" if pages > 1 else "")
        + " · edit **amount** and **configuration** in the table, then review."
    )
    key = _editor_key(view)
    st.session_state[EDITOR_KEY_STATE] = key
    columns = [c for c in view.columns if c in _SHOWN]
    st.data_editor(
        view[columns],
        key=key,
        hide_index=True,
        num_rows="fixed",
        disabled=[c for c in columns if c not in EDITABLE],
        column_config=_COLUMN_CONFIG,
        height=min(38 + 35 * max(len(view), 1), 420),
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
_COLUMN_CONFIG = {
    "coinConfigId": st.column_config.TextColumn("Id"),
    "companyId": st.column_config.TextColumn("Company"),
    "event": st.column_config.TextColumn("Event"),
    "configuration": st.column_config.SelectboxColumn(
        "Configuration", options=[c.value for c in Configuration], required=True
    ),
    "amount": st.column_config.NumberColumn(
        "Coins", min_value=0, max_value=MAX_AMOUNT, step=1, format="%d", required=True
    ),
    "updated_at": st.column_config.DatetimeColumn("Updated", format="YYYY-MM-DD HH:mm"),
    "last_synced_at": st.column_config.DatetimeColumn("Last fetched", format="YYYY-MM-DD HH:mm"),
    "source": st.column_config.TextColumn("Source"),
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
            review = _review_frame(edits)
            st.markdown("These PATCH requests will be sent, one per configuration:")
            st.dataframe(
                review.style.apply(_highlight_problem, axis=1),
                hide_index=True,
                column_config={"problem": st.column_config.TextColumn("Problem")},
            )
            sendable = int((review["problem"] == "").sum())
            if sendable < len(review):
                st.warning(f"{len(review) - sendable} change(s) cannot be sent; see Problem.")
            if st.button(
                f"Apply {sendable} change{'s' if sendable != 1 else ''}",
                key=f"{P}_apply",
                type="primary",
                disabled=sendable == 0,
                icon=":material/send:",
            ):
                st.session_state[f"{P}_reviewing"] = False
                _apply(edits, ws.client)

    def applied(_job: common.Job) -> None:
        # The registry changed: rebuild the table and start from a clean editor.
        common.invalidate()
        st.session_state.pop(key, None)

    job = common.show_job(APPLY_JOB, on_done=applied)
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
            )
        if st.button("Dismiss results", key=f"{P}_apply_dismiss"):
            del st.session_state[APPLY_JOB]
            st.rerun()


def _highlight_problem(row: pd.Series) -> list[str]:
    color = "background-color: #FDECEA" if row.get("problem") else ""
    return [color] * len(row)


def _highlight_status(row: pd.Series) -> list[str]:
    status = row.get("status")
    color = {
        "updated": "background-color: #E8F5E9",
        "failed": "background-color: #FDECEA",
        "invalid": "background-color: #FDECEA",
        "skipped": "background-color: #FFF8E1",
    }.get(status, "")
    return [color] * len(row)


def _selected(view: pd.DataFrame, frame: pd.DataFrame) -> str | None:
    ids = view["coinConfigId"].dropna().astype("string").tolist()
    current = st.session_state.get(common.SELECTED_KEY)
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
        st.session_state[common.SELECTED_KEY] = choice
    return choice


def _detail(ws, frame: pd.DataFrame, coin_config_id: str) -> None:
    match = frame[frame["coinConfigId"] == coin_config_id]
    if match.empty:
        st.info(f"{coin_config_id} is not in the registry yet.")
        if st.button(f"Fetch {coin_config_id} from EnKash", key=f"{P}_fetch"):
            with st.spinner("Fetching…"):
                fetched = common.api(ws.client.get_config, coin_config_id)
            if fetched is not None:
                common.invalidate()
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
    update_tab, history_tab = st.tabs(["Update", "History"])
    with update_tab:
        _update_form(ws, before)
    with history_tab:
        _history(ws, coin_config_id)


def _clear_form(k: str) -> None:
    """Forget the update form's widget values: it starts again from the configuration's."""
    for suffix in ("amount", "configuration", "company", "event"):
        st.session_state.pop(f"{k}_{suffix}", None)


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
    amount = c1.number_input(
        "Coins per event",
        min_value=0,
        max_value=MAX_AMOUNT,
        step=1,
        value=before.amount,
        key=f"{k}_amount",
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
        "amount": amount,
    }
    old = before.to_payload(include_id=False)
    changed = {name: value for name, value in after.items() if old.get(name) != value}
    body, problems = validate_config_fields(
        company_id=changed.get("companyId"),
        event=changed.get("event"),
        configuration=changed.get("configuration"),
        amount=changed.get("amount"),
        partial=True,
    )
    if not changed:
        st.caption("Change a value to see what will be sent.")
    else:
        st.markdown("**Before → after** (only these fields are sent):")
        st.dataframe(
            pd.DataFrame(
                [
                    {"field": name, "before": str(old.get(name)), "after": str(value)}
                    for name, value in changed.items()
                ]
            ),
            hide_index=True,
        )
        for problem in problems:
            st.error(f"{problem.field} {problem.reason}")
    if st.button(
        "Update",
        key=f"{k}_send",
        type="primary",
        disabled=not changed or bool(problems),
        icon=":material/save:",
    ):
        with st.spinner(f"Updating {cid}…"):
            updated = common.api(
                ws.client.update_config,
                cid,
                amount=body.get("amount"),
                configuration=body.get("configuration"),
                company_id=body.get("companyId"),
                event=body.get("event"),
                known=before,
            )
        if updated is not None:
            common.invalidate()
            st.session_state[f"{P}_updated"] = f"Updated {cid}: " + ", ".join(
                f"{n} {old.get(n)} → {v}" for n, v in changed.items()
            )
            _clear_form(k)
            st.rerun()
    message = st.session_state.pop(f"{P}_updated", None)
    if message:
        st.success(message, icon=":material/check_circle:")


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


def _history(ws, coin_config_id: str) -> None:
    history = ws.registry.history(coin_config_id)
    if history is None or len(history) == 0:
        st.caption("No recorded changes yet.")
        return
    history = history.sort_values("audit_id", ascending=False)
    st.dataframe(
        common.blank_missing(history[[c for c in _HISTORY_COLUMNS if c in history.columns]]),
        hide_index=True,
        column_config={
            "audit_id": st.column_config.NumberColumn("Entry", format="%d"),
            "at": st.column_config.DatetimeColumn("When (UTC)", format="YYYY-MM-DD HH:mm:ss"),
            "action": st.column_config.TextColumn("Action"),
            "outcome": st.column_config.TextColumn("Outcome"),
            "changes": st.column_config.TextColumn("Changes", width="large"),
            "actor": st.column_config.TextColumn("Actor"),
            "source": st.column_config.TextColumn("Source"),
            "message": st.column_config.TextColumn("Message"),
            "reverts_audit_id": st.column_config.NumberColumn("Reverts", format="%d"),
        },
    )
    changes = history[
        history["action"].astype("string").isin(REVERTIBLE_ACTIONS)
        & (history["outcome"].astype("string") == "ok")
    ]
    if changes.empty:
        st.caption("Nothing to revert: only successful updates (and drift) can be reverted.")
        return
    labels = {
        int(row.audit_id): f"#{int(row.audit_id)} · {row.action} · {row.changes}"
        for row in changes.itertuples(index=False)
    }
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    audit_id = c1.selectbox(
        "Undo a change (puts back its before-values)",
        list(labels),
        format_func=labels.get,
        key=f"{P}_revert_pick_{coin_config_id}",
    )
    if c2.button("Revert", key=f"{P}_revert_{coin_config_id}", icon=":material/undo:"):
        with st.spinner("Reverting…"):
            result, error = common.call(ws.registry.revert, audit_id, source="app")
        if error is not None:
            st.session_state[f"{P}_revert_msg"] = (
                "error",
                common.connection().auth_error or f"Revert refused: {error}",
            )
        else:
            common.invalidate()
            st.session_state[f"{P}_revert_msg"] = ("success", f"Reverted: {result}")
        st.rerun()
    message = st.session_state.pop(f"{P}_revert_msg", None)
    if message:
        kind, text = message
        (st.error if kind == "error" else st.success)(text)


def render() -> None:
    st.title("Configurations")
    ws = common.workspace()
    _toolbar(ws)
    frame = common.configs_frame()
    if frame.empty:
        st.info(
            "No configurations known yet. Create one, upload a CSV, or import ids you got "
            "elsewhere (the API cannot list them)."
        )
        return
    view, key = _table(frame)
    _review(ws, view, key)
    st.divider()
    st.subheader("One configuration")
    chosen = _selected(view, frame)
    if chosen:
        _detail(ws, frame, chosen)


render()
