"""The connection every page shares, and API calls that never show a traceback.

The connection is one `Workspace` per process and settings (`st.cache_resource`). A refused login
is remembered with it, so reruns and other tabs never log in again with the same credentials:
EnKash locks an account after three failed logins. Signed in, each person sees the shared
workspace through their own client and registry (`personal_workspace`): their e-mail in the
audit log, and a viewer's client refuses every write.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, NoReturn, ParamSpec, TypeVar

import streamlit as st

from toolkit.errors import AuthError, EnKashError
from toolkit.settings import Settings
from toolkit.ui import access
from toolkit.ui.text import esc

if TYPE_CHECKING:
    from toolkit.workspace import Workspace

__all__ = [
    "Connection",
    "NotAllowedError",
    "api",
    "auth_message",
    "call",
    "connection",
    "personal_workspace",
    "workspace",
]

log = logging.getLogger(__name__)

_P = ParamSpec("_P")
_T = TypeVar("_T")


@dataclass
class Connection:
    """The workspace for one set of settings, or why there is none."""

    settings: Settings | None
    workspace: Workspace | None = None
    error: str | None = None  # the toolkit could not be opened at all
    auth_error: str | None = None  # credentials refused: sticky, never retried
    notice: str | None = None  # a transient problem worth showing (e.g. server unreachable)
    version: int = 0  # bumped by the app's own writes, so cached frames are rebuilt
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # (actor, read_only) -> that person's view of `workspace` (see personal_workspace)
    personal: dict[tuple[str, bool], Workspace] = field(default_factory=dict, repr=False)

    @property
    def ready(self) -> bool:
        return self.workspace is not None and self.error is None


def _fingerprint(settings: Settings) -> str:
    """A cache key that changes with any setting (secrets included) but never shows them."""
    digest = hashlib.sha256()
    for f in fields(settings):
        digest.update(f"{f.name}={getattr(settings, f.name)!r}\n".encode())
    return digest.hexdigest()


def auth_message(exc: EnKashError) -> str:
    """One message for a refused login: what EnKash said, then what to do (never the secret)."""
    return (
        f"EnKash refused the credentials: {exc}. Correct ENKASH_CLIENT_ID, ENKASH_CLIENT_SECRET, "
        "ENKASH_USERNAME and ENKASH_PASSWORD in `.env` or the environment, then restart the app."
    )


def _login(ws: Workspace) -> None:
    """Log in once now, so refused credentials show on the first page rather than mid-task.

    The client remembers a refusal, so this is the only attempt these credentials get in this
    process.
    """
    ws.client.login()


@st.cache_resource(show_spinner="Connecting to EnKash…", max_entries=4)
def _connect(fingerprint: str, _settings: Settings) -> Connection:
    from toolkit.workspace import connect

    conn = Connection(settings=_settings)
    try:
        ws = connect(_settings, source="app")
    except AuthError as exc:
        conn.auth_error = auth_message(exc)
        return conn
    except EnKashError as exc:
        conn.error = f"Could not connect: {exc}"
        return conn
    except Exception as exc:  # a surface shows one sentence, the console keeps the detail
        log.exception("opening the workspace failed")
        conn.error = f"Could not open the toolkit: {exc}"
        return conn
    conn.workspace = ws
    try:
        _login(ws)
    except AuthError as exc:
        conn.auth_error = auth_message(exc)
    except EnKashError as exc:
        conn.notice = f"EnKash could not be reached yet: {exc}"
    return conn


def connection() -> Connection:
    """The shared connection for the current settings (environment and `.env`)."""
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        return Connection(settings=None, error=f"The settings are not valid: {exc}")
    return _connect(_fingerprint(settings), settings)


def workspace() -> Workspace:
    """The workspace of the person using this session, or stop the page (the shell has
    already said why). Signed in, its client and registry audit under their e-mail, and a
    viewer's client refuses every write, whatever a page asks of it."""
    conn = connection()
    if conn.workspace is None:
        st.stop()
    who = access.current()
    if not who.signed_in:
        return conn.workspace  # the one local user: the settings' actor, as before
    if who.role is None:
        st.stop()
    return personal_workspace(conn, who.actor, read_only=not who.can_edit)


class NotAllowedError(EnKashError):
    """A write refused in the app because the signed-in person's role does not allow it."""


def _refuse(*_: object, **__: object) -> NoReturn:
    raise NotAllowedError("not sent: a viewer cannot change anything")


def personal_workspace(conn: Connection, actor: str, *, read_only: bool) -> Workspace:
    """The shared workspace seen as ``actor``: the same connection pool, token and server, but
    a client and registry that name ``actor`` in the audit log. ``read_only``: its client's
    create, update and allocate refuse before sending (a forged rerun cannot reach them)."""
    from toolkit.registry import Registry
    from toolkit.workspace import Workspace

    base = conn.workspace
    if base is None:
        raise RuntimeError("personal_workspace needs an open connection")
    key = (actor, read_only)
    with conn.lock:
        found = conn.personal.get(key)
        if found is not None:
            return found
        client = copy.copy(base.client)  # shares the session and the token manager
        client.actor = actor
        client.recorder = None
        if read_only:
            for name in ("create_config", "update_config", "allocate_coins"):
                setattr(client, name, _refuse)
        registry = Registry(base.registry.path, client=client, actor=actor)
        ws = Workspace(settings=base.settings.with_(actor=actor), client=client, registry=registry)
        if len(conn.personal) >= 256:  # bounded: the oldest is forgotten (never closed: shared)
            conn.personal.pop(next(iter(conn.personal)))
        conn.personal[key] = ws
        return ws


def call(
    fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs
) -> tuple[_T | None, EnKashError | None]:
    """Run one API call: (result, None) or (None, error). A refused login is remembered."""
    conn = connection()
    if conn.auth_error:
        return None, AuthError("credentials were refused earlier; no new login attempted")
    try:
        return fn(*args, **kwargs), None
    except AuthError as exc:
        conn.auth_error = auth_message(exc)
        return None, exc
    except EnKashError as exc:
        return None, exc


def api(fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T | None:
    """Run one API call and show any error as one readable line; None when it failed."""
    result, error = call(fn, *args, **kwargs)
    if error is not None:
        conn = connection()
        st.error(esc(conn.auth_error if isinstance(error, AuthError) else str(error)))
        return None
    return result
