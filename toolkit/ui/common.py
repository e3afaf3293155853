"""What every page shares: the connection, the sidebar and banner, API calls that never show a
traceback, cached frames, the shared filters and background jobs with progress and a stop button.

The connection is one `Workspace` per process and settings (`st.cache_resource`). A refused login
is remembered with it, so reruns and other tabs never log in again with the same credentials:
EnKash locks an account after three failed logins.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import streamlit as st

from toolkit.errors import AuthError, EnKashError
from toolkit.settings import Settings, check_dotenv_permissions, mask

if TYPE_CHECKING:
    from toolkit.workspace import Workspace

__all__ = [
    "SANDBOX_BANNER",
    "SELECTED_KEY",
    "Connection",
    "Job",
    "api",
    "blank_missing",
    "call",
    "check_form",
    "clip",
    "column_options",
    "configs_frame",
    "connection",
    "data_key",
    "esc",
    "excel_safe_csv",
    "field_problem",
    "invalidate",
    "shared_filters",
    "shell",
    "show_field_problems",
    "show_job",
    "start_job",
    "start_job_thread",
    "workspace",
]

log = logging.getLogger(__name__)

SANDBOX_BANNER = "Sandbox — not connected to EnKash"
SELECTED_KEY = "selected_config_id"  # session_state: the configuration picked on any page
FILTERS_KEY = "filters"  # session_state: {"company": [...], "event": [...], "configuration": [...]}
FRAME_TTL_S = 60  # other processes (CLI, notebooks) write the same registry; see their work soon


# --------------------------------------------------------------------------- connection


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
    personal: dict[tuple[str, bool], Any] = field(default_factory=dict, repr=False)

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
    from toolkit.ui import access

    who = access.current()
    if not who.signed_in:
        return conn.workspace  # the one local user: the settings' actor, as before
    if who.role is None:
        st.stop()
    return personal_workspace(conn, who.actor, read_only=not who.can_edit)


class NotAllowedError(EnKashError):
    """A write refused in the app because the signed-in person's role does not allow it."""


def _refuse(*_: Any, **__: Any) -> Any:
    raise NotAllowedError("not sent: a viewer cannot change anything")


def personal_workspace(conn: Connection, actor: str, *, read_only: bool) -> Workspace:
    """The shared workspace seen as ``actor``: the same connection pool, token and server, but
    a client and registry that name ``actor`` in the audit log. ``read_only``: its client's
    create, update and allocate refuse before sending (a forged rerun cannot reach them)."""
    import copy

    from toolkit.registry import Registry
    from toolkit.workspace import Workspace

    base = conn.workspace
    assert base is not None
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


# --------------------------------------------------------------------------- shell


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


def sidebar(conn: Connection, who: Any = None) -> None:
    settings = conn.settings
    with st.sidebar:
        if who is not None:
            from toolkit.ui import access

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
        token = (
            "refused" if conn.auth_error else (_token_text(conn.workspace) if conn.ready else "—")
        )
        actor = who.actor if who is not None else settings.actor
        st.caption(
            f"User: {esc(_mask_user(settings.username))}  \n"
            f"Client: {esc(mask(settings.client_id, keep=3))}  \n"
            f"Token: {esc(token)}  \n"
            f"Audit actor: {esc(actor)}"
        )
        if conn.ready:
            _server_check(conn)


def _server_check(conn: Connection) -> None:
    """What `coins doctor` learnt about this server (its profile), in sentences."""
    ws = conn.workspace
    try:
        from toolkit.doctor import load_server_profile

        profile = load_server_profile(ws.settings.home, ws.client.server_key)
        lines = profile.describe() if profile is not None else None
    except Exception:  # a panel of facts: never the reason a page fails
        log.warning("the server profile could not be read", exc_info=True)
        lines = None
    with st.expander("Server check", icon=":material/stethoscope:"):
        if not lines:
            st.caption(
                "Not checked yet: run coins doctor to learn how this server answers (until "
                "then a lost answer to a create or an allocation is marked unconfirmed)."
            )
            return
        st.text("\n".join(str(line) for line in lines))


def shell(who: Any = None) -> None:
    """The parts of every page: sandbox banner, connection problems, sidebar (with who is
    signed in, when someone is)."""
    conn = connection()
    banner(conn)
    sidebar(conn, who)


# --------------------------------------------------------------------------- API calls


def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, EnKashError | None]:
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


def api(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run one API call and show any error as one readable line; None when it failed."""
    result, error = call(fn, *args, **kwargs)
    if error is not None:
        conn = connection()
        st.error(esc(conn.auth_error if isinstance(error, AuthError) else str(error)))
        return None
    return result


# --------------------------------------------------------------------------- cached data


def data_key() -> str:
    """What cached data depends on: the registry file, the server and the app's writes."""
    conn = connection()
    ws = workspace()
    path = ws.registry.path.resolve()
    return f"{path}|{ws.client.server_key}|{conn.version}|{_file_stamp(path)}"


def _file_stamp(path: Path) -> str:
    """Changes whenever anyone (the CLI, a notebook, another tab) writes the SQLite file: its
    WAL grows or is checkpointed into the main file. Two stats per rerun."""
    stamps = []
    for name in (str(path), f"{path}-wal"):
        try:
            info = os.stat(name)
        except OSError:
            stamps.append("-")
            continue
        stamps.append(f"{info.st_mtime_ns}:{info.st_size}")
    return "/".join(stamps)


# cache_resource, not cache_data: one shared frame instead of unpickling a copy per rerun
# (100,000 rows). Pages only read it; filtering makes new frames.
@st.cache_resource(ttl=FRAME_TTL_S, show_spinner="Reading the registry…", max_entries=4)
def _configs_frame(key: str) -> pd.DataFrame:
    return workspace().registry.to_frame()


def configs_frame() -> pd.DataFrame:
    """Every known configuration on this server, cached until the app writes (or a minute).
    Shared between sessions: read it, never change it in place."""
    return _configs_frame(data_key())


def _options(df: pd.DataFrame, column: str) -> list[str]:
    if column not in df.columns or df.empty:
        return []
    return sorted(str(v) for v in df[column].dropna().unique())


@st.cache_resource(ttl=FRAME_TTL_S, show_spinner=False, max_entries=32)
def _column_options(key: str, column: str, _df: pd.DataFrame) -> list[str]:
    return _options(_df, column)


def column_options(df: pd.DataFrame, column: str, *, cache_key: str | None = None) -> list[str]:
    """The distinct values of ``column``, sorted, for a picker. ``cache_key`` (e.g.
    `data_key()`) names ``df`` so they are computed once, not on every rerun."""
    return _column_options(cache_key, column, df) if cache_key else _options(df, column)


def invalidate(conn: Connection | None = None) -> None:
    """The app changed something: rebuild cached frames on the next read. A worker thread
    passes the connection it took when it started."""
    conn = conn or connection()
    with conn.lock:
        conn.version += 1
    st.cache_data.clear()
    _configs_frame.clear()
    _column_options.clear()


# --------------------------------------------------------------------------- filters

FILTER_COLUMNS = {"company": "companyId", "event": "event", "configuration": "configuration"}


def _filter_state() -> dict[str, list[str]]:
    state = st.session_state.setdefault(FILTERS_KEY, {})
    for name in FILTER_COLUMNS:
        state.setdefault(name, [])
    return state


def filter_signature(columns: Iterable[str] = tuple(FILTER_COLUMNS)) -> tuple:
    """The shared filter choice as a hashable key (for caching what depends on it)."""
    state = _filter_state()
    return tuple((name, tuple(state[name])) for name in columns)


def shared_filters(
    df: pd.DataFrame,
    *,
    prefix: str,
    columns: Iterable[str] = ("company", "event", "configuration"),
    disabled: bool = False,
    cache_key: str | None = None,
) -> pd.DataFrame:
    """Company / event / configuration pickers whose choice follows the analyst across pages.

    ``cache_key`` (e.g. `data_key()`) names ``df`` so its option lists are computed once."""
    state = _filter_state()
    chosen: dict[str, list[str]] = {}
    names = list(columns)
    cols = st.columns(len(names))
    for col, name in zip(cols, names, strict=True):
        column = FILTER_COLUMNS[name]
        options = column_options(df, column, cache_key=cache_key)
        key = f"{prefix}_filter_{name}"
        if key not in st.session_state:
            st.session_state[key] = [v for v in state[name] if v in set(options)]

        def _remember(name: str = name, key: str = key) -> None:
            _filter_state()[name] = list(st.session_state[key])

        with col:
            chosen[name] = st.multiselect(
                name.capitalize(),
                options,
                key=key,
                on_change=_remember,
                disabled=disabled,
                placeholder=f"All {name}s" if name != "company" else "All companies",
            )
    out = df
    for name, values in chosen.items():
        column = FILTER_COLUMNS[name]
        if values and column in out.columns:
            out = out[out[column].astype("string").isin(values)]
    return out


# --------------------------------------------------------------------------- display

# Every character Streamlit's Markdown gives a meaning: emphasis, links, code, HTML, math ($),
# tables (|), headings and lists at a line start: each is backslash-escaped. Two things
# escapes do not stop, checked in Chromium: icon and emoji short codes (`:material/home:`),
# matched in the raw text, so ":" becomes an entity; and links found in the decoded text
# (e-mail addresses, `https://…`, `www.…`), broken with an invisible word joiner.
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$&=^\"'])")
_WORD_JOINER = "\u2060"
_WWW = re.compile(r"(?i)(www)(\\\.)")
SHOWN_CHARS = 300  # a value longer than this is cut in messages (the tables hold it whole)


def clip(value: Any, *, limit: int = SHOWN_CHARS) -> str:
    """``value`` as text for a table cell, cut (length said) when over ``limit`` characters."""
    text = "" if value is None else str(value)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text):,} characters)"


def esc(value: Any, *, limit: int | None = SHOWN_CHARS) -> str:
    """``value`` as literal text inside Markdown (alerts, captions, button labels): what a
    user typed, a file held or a server said is shown, never interpreted. Control characters
    are shown as visible marks and over-long values are cut with their length said."""
    text = "" if value is None else str(value)
    if limit is not None and len(text) > limit:
        text = text[:limit] + f"… ({len(text):,} characters)"
    text = "".join(
        ch
        if ch.isprintable()
        else " "
        if ch in "\t\r\n"
        else ("\u2400" if ch == "\x00" else "\ufffd")
        for ch in text
    )
    text = _MARKDOWN.sub(r"\\\1", text)
    text = text.replace(":", "&#58;" + _WORD_JOINER).replace("@", "@" + _WORD_JOINER)
    return _WWW.sub(r"\1" + _WORD_JOINER + r"\2", text)


def blank_missing(df: pd.DataFrame) -> pd.DataFrame:
    """Text columns with blanks where a value is missing: tables otherwise show "None"."""
    out = df.copy()
    for column in out.columns:
        dtype = out[column].dtype
        if pd.api.types.is_object_dtype(dtype) or isinstance(dtype, pd.StringDtype):
            out[column] = out[column].astype(object).where(out[column].notna(), "")
    return out


# --------------------------------------------------------------------------- downloads


def excel_safe_csv(df: pd.DataFrame) -> bytes:
    """CSV bytes that open safely in Excel (the bulk results writer's rules, UTF-8 BOM)."""
    from toolkit.bulk.results import neutralise

    return neutralise(df).to_csv(index=False, lineterminator="\r\n").encode("utf-8-sig")


# --------------------------------------------------------------------------- background jobs


@dataclass
class Job:
    """Work that runs in a thread so the page stays responsive and a Stop button works."""

    label: str
    total: int | None = None
    done: int = 0
    message: str = ""
    result: Any = None
    error: str | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    handled: bool = False  # the page has reacted to the end of the job (show_job)
    thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    @property
    def cancelled(self) -> bool:
        return self.cancel.is_set()

    def progress(self, done: int, total: int | None = None, message: str = "") -> None:
        self.done = done
        if total is not None:
            self.total = total
        if message:
            self.message = message

    @property
    def fraction(self) -> float:
        if not self.total:
            return 0.0
        return min(1.0, max(0.0, self.done / self.total))


def start_job(key: str, label: str, fn: Callable[[Job], Any], *, total: int | None = None) -> Job:
    """Run ``fn(job)`` in a thread; ``fn`` reports with ``job.progress`` and checks
    ``job.cancel``. The job is kept in session_state under ``key``."""
    job = Job(label=label, total=total)
    st.session_state[key] = job
    return start_job_thread(job, f"app-job-{key}", fn)


def start_job_thread(
    job: Job, name: str, fn: Callable[[Job], Any], *, on_end: Callable[[], None] | None = None
) -> Job:
    """Run ``fn(job)`` in a thread of its own, kept by whoever holds ``job`` (a session, or the
    server's board of bulk runs); ``on_end()`` runs in that thread once the job has ended."""
    conn = connection()  # taken here: the worker thread makes no Streamlit calls

    def target() -> None:
        try:
            job.result = fn(job)
        except AuthError as exc:
            job.error = conn.auth_error = auth_message(exc)
        except EnKashError as exc:
            job.error = str(exc)
        except Exception as exc:
            log.exception("%s failed", job.label)
            job.error = f"{job.label} stopped: {exc}"
        finally:
            job.finished = time.monotonic()
            if on_end is not None:
                try:
                    on_end()
                except Exception:
                    log.exception("tidying up after %s failed", job.label)

    job.thread = threading.Thread(target=target, name=name, daemon=True)
    job.thread.start()
    return job


def show_job(
    key: str,
    *,
    poll_s: float = 0.2,
    stoppable: bool = True,
    on_done: Callable[[Job], None] | None = None,
) -> Job | None:
    """Show the job under ``key``: a progress bar and a Stop button while it runs (the page
    waits here), then nothing; returns the job (finished) or None when there is none.

    The first time a finished job is seen, ``on_done(job)`` runs (e.g. rebuild cached frames)
    and the page is drawn again: what was drawn above it (buttons, counts, "resume") dates from
    before the job ended."""
    job: Job | None = st.session_state.get(key)
    if job is None:
        return None
    if job.running:
        stop_slot = st.empty()
        if stoppable and stop_slot.button(
            "Stop",
            key=f"{key}_stop",
            icon=":material/stop_circle:",
            help="Stop after the rows in flight",
        ):
            job.cancel.set()
        bar = st.progress(job.fraction, text=_job_text(job))
        while job.running:
            time.sleep(poll_s)
            bar.progress(job.fraction, text=_job_text(job))
        bar.empty()
        stop_slot.empty()
    if not job.handled:
        job.handled = True
        if on_done is not None:
            on_done(job)
        st.rerun()
    if job.error:
        st.error(job.error)
    return job


def _job_text(job: Job) -> str:
    head = f"{job.label}: stopping…" if job.cancelled else f"{job.label}…"
    count = (
        f" {job.done:,} of {job.total:,}" if job.total else (f" {job.done:,}" if job.done else "")
    )
    tail = f" · {job.message}" if job.message else ""
    return head + count + tail


# The longest text a form field hands to the models' checks. Longer is refused here, before any
# conversion: int() of a 10,000-digit amount raises (Python's int-size limit), and a regex over
# megabytes of text is work for nothing. Each limit is well above what a valid value can be.
FIELD_LIMITS = {"amount": 24, "configuration": 16, "companyId": 64, "event": 128}
DEFAULT_FIELD_LIMIT = 256


def field_problem(name: str, value: Any) -> str | None:
    """Why ``value`` cannot even be looked at as field ``name``; None when it can."""
    if not isinstance(value, str):
        return None
    if any(unicodedata.category(ch) in ("Cc", "Cs") and ch not in "\t" for ch in value):
        return "contains a control character (such as NUL); type plain text"
    text = value.strip()
    limit = FIELD_LIMITS.get(name, DEFAULT_FIELD_LIMIT)
    if len(text) <= limit:
        return None
    if name == "amount":
        from toolkit.models import REASONS

        return REASONS["too_big"] if text.lstrip("+").isdigit() else REASONS["digits"]
    return f"is {len(text):,} characters long (at most {limit:,})"


def check_form(
    validate: Callable[..., tuple[dict[str, Any], list[Any]]],
    fields: dict[str, tuple[str, Any]],
    **options: Any,
) -> tuple[dict[str, Any], dict[str, str]]:
    """Check a form: each of ``fields`` (API name → (argument name, value as typed)) is first
    looked at as text (length, control characters), then by ``validate`` (the models' rules).
    Returns (payload, problems by API name); never raises on what a user typed."""
    early = {api: r for api, (_, v) in fields.items() if (r := field_problem(api, v)) is not None}
    arguments = {arg: (None if api in early else v) for api, (arg, v) in fields.items()}
    try:
        payload, problems = validate(**arguments, **options)
    except Exception:  # a rule that still breaks on some value: say so, never a traceback
        log.exception("checking a form failed")
        return {}, early or {api: "could not be checked" for api in fields}
    found = problems_by_field(p for p in problems if p.field not in early)
    return payload, {**early, **found}


def problems_by_field(problems: Iterable[Any]) -> dict[str, str]:
    """`FieldProblem`s keyed by field, reasons joined, for messages next to form fields."""
    out: dict[str, str] = {}
    for problem in problems:
        out[problem.field] = (
            f"{out[problem.field]}; {problem.reason}" if problem.field in out else problem.reason
        )
    return out


def show_field_problems(problems: dict[str, str], slots: dict[str, Any], labels: dict[str, str]):
    """A form's refused fields: each reason in the slot under its field, named as the form
    names it, then one line saying nothing was sent."""
    for name, reason in problems.items():
        slot = slots.get(name, st)
        slot.error(esc(f"{labels.get(name, name)} {reason}"), icon=":material/error:")
    st.error("Nothing was sent: fix the fields marked above.")
