"""Create one coin event configuration: the bulk rules (`validate_config_fields`) next to each
field, a conflict shown with the configuration that already exists."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd
import streamlit as st

from toolkit.errors import ConflictError
from toolkit.models import MAX_AMOUNT, CoinConfig, Configuration, validate_config_fields
from toolkit.ui import access
from toolkit.ui.caches import column_options, configs_frame, data_key, invalidate
from toolkit.ui.connection import call, connection, workspace
from toolkit.ui.filters import SELECTED_KEY
from toolkit.ui.forms import check_form, show_field_problems
from toolkit.ui.text import esc

if TYPE_CHECKING:
    from toolkit.workspace import Workspace

P = "cr"  # widget key prefix of this page

_LABELS = {
    "companyId": "Company id",
    "event": "Event",
    "configuration": "Configuration",
    "amount": "Coins per event",
}


def _config_table(config: CoinConfig) -> pd.DataFrame:
    return pd.DataFrame([config.to_payload()])


def render() -> None:
    st.title("Create a configuration")
    st.caption(
        "How many coins one event earns at one company. There is at most one configuration "
        "per company and event; to change an existing one, use **Configurations**."
    )
    ws = workspace()
    if not access.current().can_edit:
        st.info(
            "You can look around, but only an editor can create configurations.",
            icon=":material/visibility:",
        )
        return
    events = column_options(configs_frame(), "event", cache_key=data_key())

    with st.form(f"{P}_form", clear_on_submit=False, enter_to_submit=False):
        left, right = st.columns(2)
        with left:
            company = st.text_input(
                _LABELS["companyId"], key=f"{P}_company", placeholder="CEKEKCARDS"
            )
            company_msg = st.empty()
            event = st.text_input(
                _LABELS["event"],
                key=f"{P}_event",
                placeholder="MEAL_CARD_PAYMENT",
                help="Upper snake case. Known events: " + esc(", ".join(events[:30]))
                if events
                else "Upper snake case, e.g. MEAL\\_CARD\\_PAYMENT",
            )
            event_msg = st.empty()
        with right:
            configuration = st.radio(
                "Configuration",
                [c.value for c in Configuration],
                key=f"{P}_configuration",
                horizontal=True,
                help="DEFAULT: the standard amount for the event. CUSTOM: a company override.",
            )
            configuration_msg = st.empty()
            # Text, not a number widget: a number widget silently refuses -5 or rounds 6.5
            # (and then the form does not submit); the bulk rules explain both instead.
            amount = st.text_input(
                _LABELS["amount"],
                key=f"{P}_amount",
                placeholder="6",
                help=f"A whole number of coins, 0 to {MAX_AMOUNT:,} (0 switches the event off).",
            )
            amount_msg = st.empty()
        submitted = st.form_submit_button("Create", type="primary", icon=":material/add:")

    if submitted:
        st.session_state[f"{P}_outcome"] = _submit(
            ws, company=company, event=event, configuration=configuration, amount=amount
        )
    outcome: _Outcome | None = st.session_state.get(f"{P}_outcome")
    if outcome is None:
        return
    kind = outcome.kind
    if kind == "problems":
        slots = {
            "companyId": company_msg,
            "event": event_msg,
            "configuration": configuration_msg,
            "amount": amount_msg,
        }
        show_field_problems(outcome.problems, slots, _LABELS)
    elif kind == "error":
        st.error(esc(outcome.message))
    elif kind == "created" and outcome.config is not None:
        created = outcome.config
        e = esc
        st.success(
            f"Created **{e(created.coin_config_id)}**: {e(created.company_id)} · "
            f"{e(created.event)} → {e(created.amount)} coins ({e(created.configuration)}).",
            icon=":material/check_circle:",
        )
        st.dataframe(_config_table(created), hide_index=True)
    elif kind == "conflict":
        _show_conflict(outcome)


@dataclass(frozen=True)
class _Outcome:
    """What became of the last Create: refused fields, an error, created, or a conflict."""

    kind: str  # problems, error, created or conflict
    problems: dict[str, str] = field(default_factory=dict)
    message: str = ""  # the error, or what EnKash said to a conflict
    payload: dict[str, Any] = field(default_factory=dict)
    config: CoinConfig | None = None  # the one created
    existing_id: str | None = None  # a conflict: the configuration already there
    existing: CoinConfig | None = None


def _submit(
    ws: Workspace, *, company: str, event: str, configuration: str | None, amount: str
) -> _Outcome | None:
    payload, problems = check_form(
        validate_config_fields,
        {
            "companyId": ("company_id", company),
            "event": ("event", event),
            "configuration": ("configuration", configuration),
            "amount": ("amount", amount),
        },
    )
    if problems:
        return _Outcome("problems", problems=problems)
    if not access.allowed("create a configuration"):
        return None
    with st.spinner("Creating…"):
        created, error = call(
            ws.client.create_config,
            company_id=payload["companyId"],
            event=payload["event"],
            configuration=payload["configuration"],
            amount=payload["amount"],
        )
    if isinstance(error, ConflictError):
        existing = None
        if error.existing_id:
            existing, _ = call(ws.client.get_config, error.existing_id)
        invalidate()  # a fetch teaches the registry about the existing one
        return _Outcome(
            "conflict",
            payload=payload,
            message=str(error),
            existing_id=error.existing_id,
            existing=existing,
        )
    if error is not None:
        return _Outcome("error", message=connection().auth_error or str(error))
    invalidate()
    return _Outcome("created", config=created)


def _show_conflict(outcome: _Outcome) -> None:
    payload = outcome.payload
    existing_id = outcome.existing_id
    e = esc
    st.warning(
        f"{e(payload['companyId'])} already has a configuration for {e(payload['event'])}"
        + (f" (**{e(existing_id)}**)" if existing_id else "")
        + ". Nothing was created; change the existing one instead.",
        icon=":material/warning:",
    )
    st.caption(f"EnKash said: {e(outcome.message)}")
    existing = outcome.existing
    if existing is None:
        return
    st.markdown("**The existing configuration**, and what you asked for:")
    st.dataframe(
        pd.DataFrame([existing.to_payload(), {"coinConfigId": "(your form)", **payload}]),
        hide_index=True,
    )
    if st.button("Open it in Configurations", key=f"{P}_open_existing", icon=":material/edit:"):
        st.session_state[SELECTED_KEY] = existing_id
        st.switch_page("toolkit/ui/configurations.py")


render()
