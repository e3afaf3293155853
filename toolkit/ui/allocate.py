"""Award coins to a user (one, or a CSV of them) and look up balances.

A request id is generated before the form is sent and shown: sending the same form again
after a timeout reuses it. Whether a repeat is then safe depends on the server (its Server
check): where a repeated request id is refused, it is never allocated twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import streamlit as st

from toolkit.errors import ConflictError, UnconfirmedError
from toolkit.models import check_user_id, new_request_id, validate_allocation_fields
from toolkit.ui import access, bulk_flow
from toolkit.ui.caches import FRAME_TTL_S, column_options, configs_frame, data_key, invalidate
from toolkit.ui.connection import api, call, connection, workspace
from toolkit.ui.forms import check_form, field_problem, show_field_problems
from toolkit.ui.text import esc

if TYPE_CHECKING:
    from toolkit.models import Allocation
    from toolkit.workspace import Workspace

P = "al"  # widget key prefix of this page
REQUEST_KEY = f"{P}_request_id"
REVIEW_KEY = f"{P}_review"  # session_state: the checked allocation waiting for "Allocate"
_LABELS = {
    "companyId": "Company id",
    "event": "Event",
    "userId": "User id",
    "requestId": "Request id",
}


def _fresh_request_id() -> None:
    st.session_state[REQUEST_KEY] = new_request_id()
    st.session_state.pop(REVIEW_KEY, None)


@st.cache_data(ttl=FRAME_TTL_S, show_spinner=False, max_entries=8)
def _known_users(key: str) -> frozenset[str]:
    """Every user id an allocation recorded in the registry named (for the "unknown" hint)."""
    frame = workspace().registry.allocations_frame()
    return frozenset(str(u) for u in frame["userId"].dropna().unique())


def _user_hint(user_id: str) -> str | None:
    """Why a user id deserves a second look before coins go to it; None when it is known."""
    try:
        known = _known_users("users|" + data_key())
    except Exception:  # the hint is a courtesy: never a reason to fail
        return None
    if user_id in known:
        return None
    close = sorted(u for u in known if u.lower() == user_id.lower())
    hint = (
        f"No allocation to {user_id} is recorded here (a new user, or a typo: user ids are "
        "case-sensitive)."
    )
    if close:
        hint += f" Did you mean {close[0]}?"
    elif user_id != user_id.upper() and user_id.upper() in known:
        hint += f" Did you mean {user_id.upper()}?"
    return hint


@dataclass(frozen=True)
class _Review:
    """An allocation checked and about to be sent: its body and what it will award."""

    payload: dict[str, str]
    coins: int | None  # None: no configuration of the pair is known here
    config_id: str | None
    user_hint: str | None


@dataclass(frozen=True)
class _Outcome:
    """What became of the last allocation sent from the form."""

    kind: str  # done, duplicate, unconfirmed or error
    message: str = ""
    request_id: str | None = None
    allocation: Allocation | None = None
    balance: int | None = None
    resend_safe: bool = False  # unconfirmed: the server refuses a repeated request id


def _preview(ws: Workspace, payload: dict[str, str]) -> _Review:
    """What an allocation will award, worked out from the registry before sending."""
    config = ws.registry.find(payload["companyId"], payload["event"])
    return _Review(
        payload=payload,
        coins=None if config is None else config.amount,
        config_id=None if config is None else config.coin_config_id,
        user_hint=_user_hint(payload["userId"]),
    )


def _allocate_one(ws: Workspace) -> None:
    if REQUEST_KEY not in st.session_state:
        st.session_state[REQUEST_KEY] = new_request_id()
    frame, key = configs_frame(), data_key()
    companies = column_options(frame, "companyId", cache_key=key)
    events = column_options(frame, "event", cache_key=key)
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
        checked = st.form_submit_button("Review", type="primary", icon=":material/rule:")
    st.button(
        "New request id",
        key=f"{P}_new_request",
        on_click=_fresh_request_id,
        icon=":material/autorenew:",
        help="Start a new allocation: the request id above is replaced.",
    )
    if checked:
        payload, problems = check_form(
            validate_allocation_fields,
            {
                "companyId": ("company_id", company),
                "event": ("event", event),
                "userId": ("user_id", user),
                "requestId": ("request_id", request_id),
            },
        )
        st.session_state.pop(f"{P}_outcome", None)
        if problems:
            st.session_state.pop(REVIEW_KEY, None)
            slots = {
                "companyId": company_msg,
                "event": event_msg,
                "userId": user_msg,
                "requestId": request_msg,
            }
            show_field_problems(problems, slots, _LABELS)
            return
        st.session_state[REVIEW_KEY] = _preview(ws, payload)
    review = st.session_state.get(REVIEW_KEY)
    if review is not None:
        _confirm(ws, review)
    _outcome()


def _confirm(ws: Workspace, review: _Review) -> None:
    """The allocation as it will be sent, with the coins it awards, and the button that sends
    it."""
    payload, coins = review.payload, review.coins
    e = esc
    with st.container(border=True):
        what = f"{coins:,} coins" if coins is not None else "the coins EnKash has configured"
        st.markdown(
            f"**Award {e(what)}** to **{e(payload['userId'])}** for "
            f"{e(payload['companyId'])} · {e(payload['event'])} (request id "
            f"{e(payload['requestId'])})."
        )
        if coins is None:
            st.warning(
                "No configuration is known here for this company and event: EnKash will refuse "
                "the allocation unless it has one the registry has not seen.",
                icon=":material/help:",
            )
        elif coins == 0:
            st.warning("This event is switched off (0 coins): nothing will be awarded.")
        if review.user_hint:
            st.warning(e(review.user_hint), icon=":material/person_search:")
        label = f"Allocate {coins:,} coins" if coins is not None else "Allocate coins"
        if st.button(label, key=f"{P}_send", type="primary", icon=":material/redeem:"):
            if not access.allowed("allocate coins"):
                return
            outcome = st.session_state[f"{P}_outcome"] = _submit(ws, payload)
            st.session_state.pop(REVIEW_KEY, None)
            if outcome.kind == "done":
                st.rerun()  # show the next request id in the form


def _outcome() -> None:
    outcome: _Outcome | None = st.session_state.get(f"{P}_outcome")
    if outcome is None:
        return
    e = esc
    if outcome.kind == "error":
        st.error(e(outcome.message))
    elif outcome.kind == "duplicate":
        st.warning(
            f"Request id **{e(outcome.request_id)}** was used before, so nothing was "
            f"allocated again. {e(outcome.message)}",
            icon=":material/content_copy:",
        )
    elif outcome.kind == "unconfirmed":
        st.warning(
            "Unconfirmed: the answer was lost after the request left, so the allocation may "
            "have been made. "
            + (
                f"Send it again with the same request id {e(outcome.request_id)}: this "
                "server refuses a repeated request id, so it is never allocated twice. "
                if outcome.resend_safe
                else "This server's answers cannot confirm a repeat (see **Server check** in "
                "the sidebar): check the user's balance, or ask EnKash about request id "
                f"{e(outcome.request_id)}, before sending it again. "
            )
            + f"({e(outcome.message)})",
            icon=":material/help:",
        )
    elif outcome.allocation is not None:
        allocation = outcome.allocation
        st.success(
            f"Allocated to **{e(allocation.user_id)}** for {e(allocation.company_id)} · "
            f"{e(allocation.event)}. Request id: {e(allocation.request_id)}"
            + (f" — {e(allocation.message)}" if allocation.message else ""),
            icon=":material/check_circle:",
        )
        if outcome.balance is not None:
            st.metric(f"Balance of {allocation.user_id}", f"{outcome.balance:,} coins")


def _submit(ws: Workspace, payload: dict[str, str]) -> _Outcome:
    with st.spinner("Allocating…"):
        allocation, error = call(
            ws.client.allocate_coins,
            company_id=payload["companyId"],
            event=payload["event"],
            user_id=payload["userId"],
            request_id=payload["requestId"],
        )
    if isinstance(error, ConflictError):
        return _Outcome("duplicate", str(error), request_id=payload["requestId"])
    if isinstance(error, UnconfirmedError):
        return _Outcome(
            "unconfirmed",
            str(error),
            request_id=payload["requestId"],
            resend_safe=bool(ws.client.profile.resend_allocate),
        )
    if error is not None or allocation is None:
        return _Outcome("error", connection().auth_error or str(error))
    invalidate()
    balance, _ = call(ws.client.get_balance, allocation.user_id)
    # A fresh id for the next allocation; the widget takes it on the next run.
    del st.session_state[REQUEST_KEY]
    return _Outcome("done", allocation=allocation, balance=balance)


def _balance(ws: Workspace) -> None:
    with st.form(f"{P}_balance_form", enter_to_submit=True, border=False):
        c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
        user = c1.text_input("User id", key=f"{P}_balance_user", placeholder="EK6CYE6K")
        asked = c2.form_submit_button("Look up", icon=":material/search:")
    if asked:
        early = field_problem("userId", user)
        user_id, reason = (None, early) if early else check_user_id(user)
        if reason:
            st.error(esc(f"User id {reason}"))
            return
        if user_id is None:
            return
        balance = api(ws.client.get_balance, user_id)
        if balance is not None:
            st.metric(f"Balance of {user_id}", f"{balance:,} coins")
            hint = _user_hint(user_id) if balance == 0 else None
            if hint:
                st.caption(esc(hint))


def render() -> None:
    st.title("Allocate & balances")
    ws = workspace()
    can_edit = access.current().can_edit
    one, balance, many = st.tabs(["Allocate", "Balance", "Bulk allocation"])
    with one:
        st.caption(
            "The coins awarded are the amount configured for the company and event. "
            "Allocating for a pair with no configuration is refused."
        )
        if can_edit:
            _allocate_one(ws)
        else:
            st.info("Only an editor can allocate coins.", icon=":material/visibility:")
    with balance:
        _balance(ws)
    with many:
        bulk_flow.render(ws, kind="allocations", prefix=f"{P}_bulk")


render()
