"""The Configurations page's one configuration: pick it (from the page or by id), fetch it
when the registry does not know it, update it with before → after, its history and Revert
(asked first, showing before → after; refused with the reason if it changed since).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import streamlit as st

from toolkit.changes import CONFIG_FIELDS, changed_fields
from toolkit.models import MAX_AMOUNT, CoinConfig, Configuration, validate_config_fields
from toolkit.registry import REVERTIBLE_ACTIONS
from toolkit.ui import access, cost_lines
from toolkit.ui.caches import invalidate
from toolkit.ui.config_edits import fat_finger
from toolkit.ui.connection import api, call, connection
from toolkit.ui.filters import SELECTED_KEY
from toolkit.ui.forms import check_form
from toolkit.ui.text import blank_missing, clip, esc

if TYPE_CHECKING:
    from toolkit.workspace import Workspace

__all__ = ["detail", "selected"]

P = "cfg"  # the Configurations page's widget key prefix


def selected(view: pd.DataFrame, frame: pd.DataFrame) -> str | None:
    """The configuration picked (from ``view``'s ids, or typed), remembered across pages."""
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


def detail(ws: Workspace, frame: pd.DataFrame, coin_config_id: str, can_edit: bool) -> None:
    """One configuration: its values, the update form and its history (editors), or its
    values and history (viewers)."""
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


def _update_form(ws: Workspace, before: CoinConfig) -> None:
    cid = str(before.coin_config_id)  # a known configuration: it has its id
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
    diff = changed_fields({n: old.get(n, "") for n in CONFIG_FIELDS}, after, fields=CONFIG_FIELDS)
    changed = {change.field: change.after for change in diff}
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
                    {"field": change.field, "before": change.before, "after": clip(change.after)}
                    for change in diff
                ]
            ),
            hide_index=True,
        )
        for name, reason in problems.items():
            st.error(esc(f"{_FORM_LABELS.get(name, name)} {reason}"), icon=":material/error:")
        if not problems:
            flag = fat_finger(before.amount, body.get("amount"))
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


def _history(ws: Workspace, coin_config_id: str, *, can_edit: bool) -> None:
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
    options: list[int] = list(labels)
    audit_id = c1.selectbox(
        "Undo a change (puts back its before-values)",
        options,
        format_func=lambda entry: labels.get(entry, str(entry)),
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
        result, error = call(ws.revert, int(asked), source="app")
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
    fields = ("amount", "configuration")
    now = {f: _text_or_none(entry.get(f"after_{f}")) for f in fields}
    back = {f: _text_or_none(entry.get(f"before_{f}")) for f in fields}
    rows = [
        {"field": change.field, "now": change.after or "", "after the revert": change.before or ""}
        for change in changed_fields(back, now, fields=fields)
    ]
    if not rows:
        rows.append(
            {
                "field": "changes",
                "now": str(entry.get("changes") or ""),
                "after the revert": "as before that entry",
            }
        )
    return pd.DataFrame(rows)


def _text_or_none(value: object) -> str | None:
    return None if value is None or pd.isna(value) else str(value)
