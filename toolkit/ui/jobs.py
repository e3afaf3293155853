"""Work that runs in a thread of its own so the page stays responsive: a progress bar while it
runs, a Stop button that the work checks, and its result or one-line error when it ends."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import streamlit as st

from toolkit.errors import AuthError, EnKashError
from toolkit.ui.connection import auth_message, connection

__all__ = ["Job", "show_job", "start_job", "start_job_thread"]

log = logging.getLogger(__name__)

_R = TypeVar("_R")


@dataclass
class Job(Generic[_R]):
    """Work that runs in a thread so the page stays responsive and a Stop button works;
    ``result`` is what the work returned (None until it has ended well)."""

    label: str
    total: int | None = None
    done: int = 0
    message: str = ""
    result: _R | None = None
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


def start_job(
    key: str, label: str, fn: Callable[[Job[_R]], _R], *, total: int | None = None
) -> Job[_R]:
    """Run ``fn(job)`` in a thread; ``fn`` reports with ``job.progress`` and checks
    ``job.cancel``. The job is kept in session_state under ``key``."""
    job: Job[_R] = Job(label=label, total=total)
    st.session_state[key] = job
    return start_job_thread(job, f"app-job-{key}", fn)


def start_job_thread(
    job: Job[_R],
    name: str,
    fn: Callable[[Job[_R]], _R],
    *,
    on_end: Callable[[], None] | None = None,
) -> Job[_R]:
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
    on_done: Callable[[Job[Any]], None] | None = None,
) -> Job[Any] | None:
    """Show the job under ``key``: a progress bar and a Stop button while it runs (the page
    waits here), then nothing; returns the job (finished) or None when there is none.

    The first time a finished job is seen, ``on_done(job)`` runs (e.g. rebuild cached frames)
    and the page is drawn again: what was drawn above it (buttons, counts, "resume") dates from
    before the job ended."""
    job: Job[Any] | None = st.session_state.get(key)
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


def _job_text(job: Job[Any]) -> str:
    head = f"{job.label}: stopping…" if job.cancelled else f"{job.label}…"
    count = (
        f" {job.done:,} of {job.total:,}" if job.total else (f" {job.done:,}" if job.done else "")
    )
    tail = f" · {job.message}" if job.message else ""
    return head + count + tail
