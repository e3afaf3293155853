"""Who may use the app, and what they may do.

Private by default: `.streamlit/config.toml` binds the server to 127.0.0.1 and answers only the
host names in ``server.allowedHosts``. Shared beyond loopback, the app requires Streamlit's
OpenID Connect sign-in (``[auth]`` in `.streamlit/secrets.toml`) and a configured host list,
and refuses to serve otherwise, with one line.

Signed in, each e-mail gets a role from the settings (environment, `.env` or the ``[roles]``
table of the secrets; lists of e-mail addresses or ``@domain``s):

| setting | role | may |
| --- | --- | --- |
| ``COINS_VIEWERS`` | viewer | see every page; change nothing |
| ``COINS_EDITORS`` | editor | create, update, revert, allocate, run bulk sheets |
| ``COINS_APPROVERS`` | approver | as an editor, and approve bulk runs above the limits |

``COINS_APPROVAL_ROWS`` / ``COINS_APPROVAL_COINS``: a bulk run sending more rows (or setting
more coins in all) than this needs an approver's yes (only when approvers are listed).

The highest role that matches wins; an e-mail no list names gets no access. Without ``[auth]``
(loopback only) the one local user is an editor and the audit log names ``COINS_ACTOR``.
Every write re-checks the role where it happens (`allowed`), not only when drawing controls.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st
from dotenv import dotenv_values

__all__ = [
    "APPROVER",
    "EDITOR",
    "VIEWER",
    "Identity",
    "RolePolicy",
    "allowed",
    "auth_configured",
    "current",
    "exposure_problem",
    "gate",
    "host_problem",
    "is_loopback",
    "policy",
]

log = logging.getLogger(__name__)

VIEWER, EDITOR, APPROVER = "viewer", "editor", "approver"
_RANK = {VIEWER: 1, EDITOR: 2, APPROVER: 3}
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
_AUTH_KEYS = ("redirect_uri", "cookie_secret", "client_id", "client_secret", "server_metadata_url")
REFUSED_KEY = "_access_refused"  # session_state: writes refused in this session (for tests)


# --------------------------------------------------------------------------- exposure


def is_loopback(address: str | None) -> bool:
    """True when ``address`` (``server.address``) reaches only this machine. Unset means every
    interface; a host name other than localhost may resolve anywhere."""
    if not address:
        return False
    text = address.strip().strip("[]").lower()
    if text in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        return False


def auth_configured(secrets: Mapping[str, Any] | None) -> bool:
    """True when the secrets hold a complete ``[auth]`` section (one provider, or named ones)."""
    try:
        section = secrets.get("auth") if secrets is not None else None
    except Exception:  # unreadable secrets file: no sign-in configured
        return False
    if not isinstance(section, Mapping):
        return False
    shared = all(section.get(k) for k in ("redirect_uri", "cookie_secret"))
    provider = all(section.get(k) for k in _AUTH_KEYS[2:])
    named = any(
        isinstance(v, Mapping) and all(v.get(k) for k in _AUTH_KEYS[2:]) for v in section.values()
    )
    return shared and (provider or named)


def _open_hosts(hosts: Iterable[str] | None) -> bool:
    listed = [str(h).strip() for h in (hosts or []) if str(h).strip()]
    return not listed or "*" in listed


def exposure_problem(
    address: str | None, *, has_auth: bool, allowed_hosts: Iterable[str] | None
) -> str | None:
    """Why the app must not serve on ``address``, in one line; None when it may."""
    if is_loopback(address):
        return None
    where = f"address {address}" if address else "every network interface"
    if not has_auth:
        return (
            f"Refusing to serve the coins app on {where} without sign-in: add an [auth] "
            "section to .streamlit/secrets.toml (README, 'Sharing the app') or keep "
            'server.address = "127.0.0.1".'
        )
    if _open_hosts(allowed_hosts):
        return (
            f"Refusing to serve the coins app on {where} for any host name: list the names "
            "people use to reach it in server.allowedHosts (README, 'Sharing the app')."
        )
    return None


def host_problem(host: str | None, allowed_hosts: Iterable[str] | None) -> str | None:
    """The request's Host header checked against ``server.allowedHosts`` (Streamlit already
    refuses such web sockets; this keeps the page from answering if that ever changes)."""
    listed = [str(h).strip().lower().rstrip(".") for h in (allowed_hosts or []) if str(h).strip()]
    if not listed or "*" in listed:
        return None
    name = (host or "").strip().lower()
    if name.startswith("["):
        name = name[1:].split("]", 1)[0]
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    name = name.rstrip(".")
    for pattern in listed:
        if name == pattern or (pattern.startswith("*.") and name.endswith(pattern[1:])):
            return None
    return "This address is not one the app answers on."


# --------------------------------------------------------------------------- roles


def _entries(value: object) -> tuple[str, ...]:
    """A list setting: a TOML list, or text separated by commas, semicolons or spaces."""
    if value is None:
        return ()
    items = value if isinstance(value, list | tuple) else str(value).replace(";", ",").split(",")
    out: list[str] = []
    for item in items:
        for part in str(item).split():
            part = part.strip().lower()
            if part:
                out.append(part)
    return tuple(out)


def _limit(value: object, name: str) -> int | None:
    if value is None or str(value).strip() == "":
        return None
    text = str(value).strip().replace("_", "").replace(",", "")
    if not text.isdigit() or len(text) > 15:
        raise ValueError(f"{name} must be a whole number, not {str(value)[:40]!r}")
    return int(text)


def _matches(email: str, entry: str) -> bool:
    if "@" in entry and not entry.startswith("@"):
        return email == entry
    domain = entry.lstrip("@")
    return bool(domain) and email.rpartition("@")[2] == domain


@dataclass(frozen=True, slots=True)
class RolePolicy:
    """Who gets which role, and when a bulk run needs an approver."""

    viewers: tuple[str, ...] = ()
    editors: tuple[str, ...] = ()
    approvers: tuple[str, ...] = ()
    approval_rows: int | None = None
    approval_coins: int | None = None

    @classmethod
    def from_sources(
        cls, env: Mapping[str, str] | None = None, secrets: Mapping[str, Any] | None = None
    ) -> RolePolicy:
        """Read the environment (over `.env`) and the secrets' ``[roles]`` table; the lists
        are joined, the environment's limits win."""
        env = dict(env if env is not None else _environment())
        roles: Mapping[str, Any] = {}
        try:
            found = secrets.get("roles") if secrets is not None else None
            roles = found if isinstance(found, Mapping) else {}
        except Exception:
            roles = {}

        def listed(name: str) -> tuple[str, ...]:
            both = _entries(env.get(f"COINS_{name.upper()}")) + _entries(roles.get(name))
            return tuple(dict.fromkeys(both))

        def limit(name: str) -> int | None:
            raw = env.get(f"COINS_{name.upper()}")
            return _limit(
                raw if raw not in (None, "") else roles.get(name), f"COINS_{name.upper()}"
            )

        return cls(
            viewers=listed("viewers"),
            editors=listed("editors"),
            approvers=listed("approvers"),
            approval_rows=limit("approval_rows"),
            approval_coins=limit("approval_coins"),
        )

    def role_of(self, email: str | None) -> str | None:
        """The highest role whose list names ``email`` (or its domain); None: no access."""
        if not email:
            return None
        email = email.strip().lower()
        for role, entries in ((APPROVER, self.approvers), (EDITOR, self.editors)):
            if any(_matches(email, e) for e in entries):
                return role
        return VIEWER if any(_matches(email, e) for e in self.viewers) else None

    @property
    def approval_needed(self) -> bool:
        return bool(self.approvers) and (
            self.approval_rows is not None or self.approval_coins is not None
        )

    def needs_approval(self, rows: int, coins: int | None) -> str | None:
        """Why a bulk run of ``rows`` rows (``coins`` coins) needs an approver; None if not."""
        if not self.approval_needed:
            return None
        if self.approval_rows is not None and rows > self.approval_rows:
            return f"it sends {rows:,} rows (more than {self.approval_rows:,})"
        if self.approval_coins is not None and coins is not None and coins > self.approval_coins:
            return f"it sets {coins:,} coins (more than {self.approval_coins:,})"
        return None


def _environment() -> dict[str, str]:
    values: dict[str, str] = {}
    if Path(".env").is_file():
        values.update({k: v for k, v in dotenv_values(".env").items() if v is not None})
    values.update(os.environ)
    return values


def _secrets() -> Mapping[str, Any] | None:
    try:
        return st.secrets if st.secrets.load_if_toml_exists() else None
    except Exception:  # a malformed secrets file: treated as none (the shell says so)
        log.warning("the secrets file could not be read", exc_info=True)
        return None


def policy() -> RolePolicy:
    """The role settings now (they are small: read on every run, so edits apply at once)."""
    return RolePolicy.from_sources(secrets=_secrets())


# --------------------------------------------------------------------------- identity


@dataclass(frozen=True, slots=True)
class Identity:
    """The person using this session: their e-mail (None when local), role and audit actor."""

    actor: str
    role: str | None
    email: str | None = None
    name: str | None = None
    signed_in: bool = False

    @property
    def can_edit(self) -> bool:
        return _RANK.get(self.role or "", 0) >= _RANK[EDITOR]

    @property
    def can_approve(self) -> bool:
        return self.role == APPROVER or (not self.signed_in and self.can_edit)

    @property
    def key(self) -> str:
        """A short stable tag for caches (never shown)."""
        return hashlib.sha256(f"{self.actor}|{self.role}".encode()).hexdigest()[:16]


def _local_actor() -> str:
    from toolkit.settings import Settings

    try:
        return Settings.from_env().actor
    except ValueError:
        return "unknown"


def current() -> Identity:
    """Who is using this session. With ``[auth]``: the signed-in, verified e-mail and its role
    (None when not signed in or not listed); without: the local user as an editor."""
    if not auth_configured(_secrets()):
        return Identity(actor=_local_actor(), role=EDITOR)
    try:
        info = st.user.to_dict()
    except Exception:
        info = {}
    email = info.get("email")
    if not info.get("is_logged_in") or not isinstance(email, str) or not email.strip():
        return Identity(actor="(not signed in)", role=None)
    email = email.strip().lower()
    verified = info.get("email_verified")
    role = policy().role_of(email)
    if verified is False or verified == "false":
        role = None
    name = info.get("name")
    return Identity(
        actor=email,
        role=role,
        email=email,
        name=str(name) if name else None,
        signed_in=True,
    )


def allowed(action: str = "change anything", *, approve: bool = False) -> bool:
    """Check the role where a write happens: False (and one message) when this session may
    not ``action``. Call it right before sending, whatever the page drew."""
    who = current()
    ok = who.can_approve if approve else who.can_edit
    if ok:
        return True
    need = "an approver" if approve else "an editor"
    log.warning("refused: %s (role %s) tried to %s", who.actor, who.role, action)
    st.session_state[REFUSED_KEY] = st.session_state.get(REFUSED_KEY, 0) + 1
    st.error(
        f"Not sent: only {need} may {action}. You are signed in as a {who.role or 'guest'}.",
        icon=":material/block:",
    )
    return False


# --------------------------------------------------------------------------- the gate


_logged_once: set[str] = set()


def _say_once(line: str) -> None:
    if line not in _logged_once:
        _logged_once.add(line)
        log.error(line)
        print(line, flush=True)  # the console running `streamlit run`: the one line to see


def _stop_the_server() -> None:
    """Served by `streamlit run` on an address it must not use: shut the server down (a
    moment later, so this page still shows why). Not under AppTest, which serves nothing."""
    from streamlit import config

    if getattr(config, "_server_mode", "unknown") is None:
        return
    import signal
    import threading

    threading.Timer(1.0, os.kill, args=(os.getpid(), signal.SIGTERM)).start()


def gate() -> Identity:
    """Run first on every page: refuse an unsafe exposure, a foreign host name, a visitor not
    signed in or not listed. Returns the identity when the page may be drawn."""
    secrets = _secrets()
    has_auth = auth_configured(secrets)
    hosts = st.get_option("server.allowedHosts")
    problem = exposure_problem(
        st.get_option("server.address"), has_auth=has_auth, allowed_hosts=hosts
    )
    if problem:
        _say_once(problem)
        st.error(problem, icon=":material/lock:")
        _stop_the_server()
        st.stop()
    try:
        host = st.context.headers.get("Host")
    except Exception:  # no request (AppTest): nothing to check
        host = None
    if host is not None and host_problem(host, hosts):
        st.error(host_problem(host, hosts), icon=":material/lock:")
        st.stop()
    who = current()
    if not has_auth:
        return who
    if not who.signed_in:
        _sign_in_page()
        st.stop()
    if who.role is None:
        st.title("No access")
        st.warning(
            "You are signed in as "
            + who.actor
            + ", but this address is not on the app's list of viewers, editors or approvers. "
            "Ask whoever runs the app to add it.",
            icon=":material/lock:",
        )
        st.button("Sign out", on_click=st.logout, key="access_sign_out_denied")
        st.stop()
    return who


def _sign_in_page() -> None:
    st.title("EnKash coins")
    st.info("Sign in with your organisation's account to use the app.", icon=":material/lock:")
    st.button(
        "Sign in", type="primary", on_click=st.login, key="access_sign_in", icon=":material/login:"
    )


def sidebar(who: Identity) -> None:
    """Who is signed in, their role, and Sign out (drawn in the sidebar by the shell)."""
    if not who.signed_in:
        return
    with st.sidebar:
        st.markdown("### Signed in")
        st.text(f"{who.actor}\nRole: {who.role}")
        st.button("Sign out", on_click=st.logout, key="access_sign_out", icon=":material/logout:")
