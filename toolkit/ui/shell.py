"""The parts of every page: the sandbox banner and connection problems above it, and the
sidebar (who is signed in, the server, the masked user, the token's state, the audit actor and
the server check) — never a secret or the token."""

from __future__ import annotations

from typing import TYPE_CHECKING

import streamlit as st

from toolkit.settings import check_dotenv_permissions, mask
from toolkit.ui import access, server_check
from toolkit.ui.connection import Connection, connection
from toolkit.ui.text import esc

if TYPE_CHECKING:
    from toolkit.workspace import Workspace

__all__ = ["SANDBOX_BANNER", "banner", "shell", "sidebar"]

SANDBOX_BANNER = "Sandbox — not connected to EnKash"


def _mask_user(user: str | None) -> str:
    if not user:
        return "(not set)"
    name, at, domain = user.partition("@")
    shown = name[:2] + "•" * max(3, len(name) - 2)
    return shown + at + domain


def _token_text(ws: Workspace) -> str:
    """The token's state in words; only the state, its time left and where it came from."""
    try:
        state = ws.client.token_state()
    except Exception:  # the sidebar never breaks a page
        return "unknown"
    name = str(state.get("state", "unknown"))
    left = state.get("expires_in_s")
    source = state.get("source")
    text = {"none": "not logged in yet"}.get(name, name)
    if isinstance(left, int | float) and name == "valid":
        text += f", {left / 60:.0f} min left" if left >= 90 else f", {left:.0f} s left"
    if source == "given":
        text += " (ENKASH_ACCESS_TOKEN)"
    return text


def banner(conn: Connection) -> None:
    settings = conn.settings
    if settings is None or settings.uses_sandbox:
        st.info(
            f"**{SANDBOX_BANNER}.** Everything here happens on a local practice server "
            "(set ENKASH_BASE_URL to use EnKash).",
            icon=":material/science:",
        )
    if conn.error:
        st.error(esc(conn.error))
    if conn.auth_error:
        st.error(esc(conn.auth_error), icon=":material/lock:")
    if conn.notice:
        st.warning(esc(conn.notice))
    if dotenv := check_dotenv_permissions(once=False):  # .env holds the secrets
        st.warning(esc(dotenv), icon=":material/lock_open:")


def sidebar(conn: Connection, who: access.Identity | None = None) -> None:
    settings = conn.settings
    with st.sidebar:
        if who is not None:
            access.sidebar(who)
        st.markdown("### Connection")
        if settings is None:
            st.caption("Settings could not be read.")
            return
        if settings.uses_sandbox:
            st.markdown(":orange-badge[:material/science: Sandbox]")
            st.caption(f"Server: embedded sandbox  \nFiles: {esc(settings.home)}")
        else:
            st.markdown(":green-badge[:material/cloud_done: EnKash]")
            st.caption(f"Server: {esc(settings.base_url)}")
        ws = conn.workspace if conn.ready else None
        token = "refused" if conn.auth_error else (_token_text(ws) if ws is not None else "—")
        actor = who.actor if who is not None else settings.actor
        st.caption(
            f"User: {esc(_mask_user(settings.username))}  \n"
            f"Client: {esc(mask(settings.client_id, keep=3))}  \n"
            f"Token: {esc(token)}  \n"
            f"Audit actor: {esc(actor)}"
        )
        if ws is not None:
            server_check.panel(conn, ws, who)


def shell(who: access.Identity | None = None) -> None:
    """The parts of every page: sandbox banner, connection problems, sidebar (with who is
    signed in, when someone is)."""
    conn = connection()
    banner(conn)
    sidebar(conn, who)
