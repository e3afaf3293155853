"""Award coins to a user (one, or a CSV of them) and look up balances.

A request id is generated before the form is sent and shown: sending the same form again
after a timeout reuses it, and EnKash never allocates one request id twice.
"""

from __future__ import annotations

import uuid

import streamlit as st

from toolkit.errors import ConflictError
from toolkit.models import validate_allocation_fields
from toolkit.ui import bulk_flow, common

P = "al"  # widget key prefix of this page
REQUEST_KEY = f"{P}_request_id"
_LABELS = {
    "companyId": "Company id",
    "event": "Event",
    "userId": "User id",
    "requestId": "Request id",
}


def _new_request_id() -> str:
    return "COIN_REQ" + uuid.uuid4().hex[:16].upper()


def _allocate_one(ws) -> None:
    if REQUEST_KEY not in st.session_state:
        st.session_state[REQUEST_KEY] = _new_request_id()
    frame, key = common.configs_frame(), common.data_key()
    companies = common.column_options(frame, "companyId", cache_key=key)
    events = common.column_options(frame, "event", cache_key=key)
    with st.form(f"{P}_form", enter_to_submit=False):
        a, b = st.columns(2)
        with a:
            company = st.selectbox(
                "Company id",
                companies,
                index=None,
                key=f"{P}_company",
                accept_new_options=True,
                placeholder="CEKEKCARDS",
            )
            company_msg = st.empty()
            event = st.selectbox(
                "Event",
                events,
                index=None,
                key=f"{P}_event",
                accept_new_options=True,
                placeholder="MEAL_CARD_PAYMENT",
            )
            event_msg = st.empty()
        with b:
            user = st.text_input("User id", key=f"{P}_user", placeholder="EKQZVMQK")
            user_msg = st.empty()
            request_id = st.text_input(
                "Request id",
                key=REQUEST_KEY,
                help="Generated for you. Sending the same request id again never allocates "
                "twice; a new one is generated after each successful allocation.",
            )
            request_msg = st.empty()
        sent = st.form_submit_button("Allocate coins", type="primary", icon=":material/redeem:")
    if sent:
        st.session_state[f"{P}_outcome"] = _submit(ws, company, event, user, request_id)
        if st.session_state[f"{P}_outcome"]["kind"] == "done":
            st.rerun()  # show the next request id in the form
    outcome = st.session_state.get(f"{P}_outcome")
    if not outcome:
        return
    if outcome["kind"] == "problems":
        slots = {
            "companyId": company_msg,
            "event": event_msg,
            "userId": user_msg,
            "requestId": request_msg,
        }
        common.show_field_problems(outcome["problems"], slots, _LABELS)
    elif outcome["kind"] == "error":
        st.error(outcome["message"])
    elif outcome["kind"] == "duplicate":
        st.warning(
            f"Request id **{outcome['request_id']}** was used before, so nothing was allocated "
            f"again. {outcome['message']}",
            icon=":material/content_copy:",
        )
    else:
        allocation = outcome["allocation"]
        st.success(
            f"Allocated to **{allocation.user_id}** for {allocation.company_id} · "
            f"{allocation.event}. Request id: `{allocation.request_id}`"
            + (f" — {allocation.message}" if allocation.message else ""),
            icon=":material/check_circle:",
        )
        if outcome.get("balance") is not None:
            st.metric(f"Balance of {allocation.user_id}", f"{outcome['balance']:,} coins")


def _submit(ws, company, event, user, request_id) -> dict:
    payload, problems = validate_allocation_fields(
        company_id=company, event=event, user_id=user, request_id=request_id
    )
    if problems:
        return {"kind": "problems", "problems": common.problems_by_field(problems)}
    with st.spinner("Allocating…"):
        allocation, error = common.call(
            ws.client.allocate_coins,
            company_id=payload["companyId"],
            event=payload["event"],
            user_id=payload["userId"],
            request_id=payload["requestId"],
        )
    if isinstance(error, ConflictError):
        return {"kind": "duplicate", "request_id": payload["requestId"], "message": str(error)}
    if error is not None:
        return {"kind": "error", "message": common.connection().auth_error or str(error)}
    balance, _ = common.call(ws.client.get_balance, allocation.user_id)
    # A fresh id for the next allocation; the widget takes it on the next run.
    del st.session_state[REQUEST_KEY]
    return {"kind": "done", "allocation": allocation, "balance": balance}


def _balance(ws) -> None:
    with st.form(f"{P}_balance_form", enter_to_submit=True, border=False):
        c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
        user = c1.text_input("User id", key=f"{P}_balance_user", placeholder="EK6CYE6K")
        asked = c2.form_submit_button("Look up", icon=":material/search:")
    if asked:
        from toolkit.models import check_user_id

        user_id, reason = check_user_id(user)
        if reason:
            st.error(f"User id {reason}")
            return
        balance = common.api(ws.client.get_balance, user_id)
        if balance is not None:
            st.metric(f"Balance of {user_id}", f"{balance:,} coins")


def render() -> None:
    st.title("Allocate & balances")
    ws = common.workspace()
    one, balance, many = st.tabs(["Allocate", "Balance", "Bulk allocation"])
    with one:
        st.caption(
            "The coins awarded are the amount configured for the company and event. "
            "Allocating for a pair with no configuration is refused."
        )
        _allocate_one(ws)
    with balance:
        _balance(ws)
    with many:
        bulk_flow.render(ws, kind="allocations", prefix=f"{P}_bulk")


render()
