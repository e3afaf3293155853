"""The sidebar's Server check: what `coins doctor` learnt about the connected server (its kept
profile: whether a lost create or allocation may be sent again), and, for whoever may change
things, **Run check** — the doctor run again from the app, its report shown and its profile
kept and followed at once.

As `coins doctor`: the embedded sandbox is checked without asking (the write probes run on a
private copy of it, so nothing is created here); against EnKash the write probes need a scratch
company named explicitly and an explicit yes (amount 0, no coin is ever awarded). Without a
scratch company only the login, a refused token and an unknown id are looked at.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import streamlit as st

from toolkit.errors import AuthError, EnKashError
from toolkit.ui import access
from toolkit.ui.connection import Connection, auth_message
from toolkit.ui.forms import field_problem
from toolkit.ui.text import esc

if TYPE_CHECKING:
    from toolkit.doctor import DoctorReport
    from toolkit.profiles import ServerProfile
    from toolkit.workspace import Workspace

__all__ = ["RESULT_KEY", "panel", "run_check"]

log = logging.getLogger(__name__)

K = "server_check"  # widget key prefix
RESULT_KEY = f"{K}_result"  # session_state: ("ok" | "error", text) of the last check


def _kept_lines(ws: Workspace) -> list[str] | None:
    try:
        from toolkit.doctor import load_server_profile

        profile = load_server_profile(ws.settings.home, ws.client.server_key)
        return [str(line) for line in profile.describe()] if profile is not None else None
    except Exception:  # a panel of facts: never the reason a page fails
        log.warning("the server profile could not be read", exc_info=True)
        return None


def panel(conn: Connection, ws: Workspace, who: access.Identity | None = None) -> None:
    """The Server check expander: the kept profile in sentences, the last check's report, and
    Run check for an editor."""
    result = st.session_state.get(RESULT_KEY)
    lines = _kept_lines(ws)
    with st.expander("Server check", icon=":material/stethoscope:", expanded=result is not None):
        if not lines:
            st.caption(
                "Not checked yet: run the check (here, or `coins doctor`) to learn how this "
                "server answers (until then a lost answer to a create or an allocation is "
                "marked unconfirmed)."
            )
        else:
            st.text("\n".join(lines))
        if result is not None:
            kind, text = result
            if kind == "ok":
                st.success("Checked: the profile above is kept and followed from now on.")
                st.text(text)
            else:
                st.error(esc(text, limit=2_000), icon=":material/error:")
        if conn.auth_error:
            return  # refused credentials are never tried again (EnKash locks after three)
        if who is None:
            who = access.current()
        if who.can_edit:
            _controls(conn, ws)


def _controls(conn: Connection, ws: Workspace) -> None:
    from toolkit.doctor import PROBE_EVENT, PROBE_USER

    scratch: str | None = None
    sure = True
    if ws.is_sandbox:
        st.caption(
            "The embedded sandbox is checked on a private copy of itself: nothing is created here."
        )
    else:
        typed = st.text_input(
            "Scratch company id (for the write checks)",
            key=f"{K}_scratch",
            max_chars=64,
            help="A company the check may configure with amount 0; no coin is ever awarded. "
            "Leave it empty to look only at the login, a refused token and an unknown id.",
        ).strip()
        company, problem = _scratch_company(typed) if typed else (None, None)
        if problem:
            st.error(esc(f"Scratch company id {problem}"), icon=":material/error:")
            sure = False
        elif company:
            scratch = company
            sure = st.checkbox(
                f"Yes: create configuration {esc(scratch)}/{esc(PROBE_EVENT)} (amount 0) on "
                f"{esc(ws.client.base_url)}, create it a second time, and allocate 0 coins "
                f"twice to user {esc(PROBE_USER)} with one requestId. No coin is awarded.",
                key=f"{K}_sure_{scratch}",
            )
        else:
            st.caption(
                "Without a scratch company, whether a lost create or allocation may be sent "
                "again stays unknown (such rows are marked unconfirmed)."
            )
    clicked = st.button(
        "Run check",
        key=f"{K}_run",
        icon=":material/stethoscope:",
        disabled=not sure,
        help="Ask the server again how it answers, as `coins doctor` does",
    )
    if not clicked or not sure or not access.allowed("check the server"):
        return
    with st.spinner("Checking the server…"):
        st.session_state[RESULT_KEY] = run_check(conn, ws, scratch)
    st.rerun()


def _scratch_company(typed: str) -> tuple[str | None, str | None]:
    """(the company id, None) or (None, why it is none), by the models' rule for company ids."""
    from toolkit.models import check_company_id

    early = field_problem("companyId", typed)
    if early is not None:
        return None, early
    return check_company_id(typed)


def run_check(conn: Connection, ws: Workspace, scratch: str | None) -> tuple[str, str]:
    """Run the doctor against ``ws``'s server (``scratch``: the confirmed scratch company, or
    None), keep its profile and have every client of this connection follow it. Returns
    ("ok", the report) or ("error", one sentence); never raises."""
    from toolkit.doctor import probe_embedded, run_doctor

    try:
        report: DoctorReport
        if ws.is_sandbox:
            report = probe_embedded(ws.client, ws.settings.home)
        else:
            report = run_doctor(ws.client, scratch_company=scratch, home=ws.settings.home)
    except AuthError as exc:
        conn.auth_error = auth_message(exc)
        return "error", conn.auth_error
    except (EnKashError, ValueError) as exc:
        return "error", f"The check could not finish: {exc}"
    except Exception as exc:  # one sentence on the page, the detail in the console
        log.exception("the server check failed")
        return "error", f"The check could not finish: {exc}"
    _follow(conn, report.profile)
    return "ok", _report_text(report)


def _report_text(report: DoctorReport) -> str:
    """What the check asked and found, and what it created: the report of `coins doctor`
    without its profile sentences (the panel shows those above it)."""
    lines = [f"Server: {report.server}", "Found:", *(f"  - {step}" for step in report.steps)]
    lines.append("Created on the server:")
    made = [f"  - configuration {c} (amount 0)" for c in report.created]
    made += [f"  - allocation requestId {r} (0 coins)" for r in report.allocations]
    lines += made or ["  - nothing"]
    if report.saved_to is not None:
        lines.append(f"Profile kept in {report.saved_to}")
    return "\n".join(lines)


def _follow(conn: Connection, profile: ServerProfile) -> None:
    """Every client of this connection (the shared one, each person's) follows ``profile``."""
    with conn.lock:
        clients = [w.client for w in (conn.workspace, *conn.personal.values()) if w is not None]
    for client in clients:
        client.profile = profile
