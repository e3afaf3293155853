"""Helpers for the browser tests (no tests here): Debian's Chromium under Playwright, the app
started as `streamlit run app.py` in its own process, waits that follow Streamlit's script
state, and screenshots under `test-artifacts/` (always for the pages a test walks, and a
``FAILED-…`` one when a step fails).

A missing browser skips, except when COINS_REQUIRE_BROWSER=1 (CI), where it fails.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("COINS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
# Counts every change of the app's script state. A widget change does not mark the app as
# running until the server says so (a moment later, longer on a busy machine), so "idle right
# after an action" may still be the state before the rerun: wait for the state to move first.
COUNT_RUN_STATES = """
window.__coinsRunStates = 0;
new MutationObserver((records) => { window.__coinsRunStates += records.length; }).observe(
    document,
    {subtree: true, attributes: true, attributeFilter: ["data-test-script-state"]},
);
"""
DESKTOP = {"width": 1440, "height": 1000}
PHONE = {"width": 390, "height": 844}


def require_browser() -> None:
    missing = None
    if not Path(CHROMIUM).exists():
        missing = f"chromium not found at {CHROMIUM} (apt-get install -y chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            missing = "playwright for Python is not installed"
    if missing:
        if os.environ.get("COINS_REQUIRE_BROWSER") == "1":
            pytest.fail(f"COINS_REQUIRE_BROWSER=1 but {missing}")
        pytest.skip(missing)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"streamlit exited early with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError("streamlit did not become healthy in time")


def app_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a fresh app: no settings of the shell, a home of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENKASH_", "COINS_"))}
    env.update(COINS_HOME=str(home), COINS_ACTOR="e2e", PYTHONUNBUFFERED="1", **extra)
    return env


@contextlib.contextmanager
def streamlit_app(
    env: dict[str, str], log_path: Path, *args: str, port: int | None = None
) -> Iterator[tuple[str, subprocess.Popen]]:
    """`streamlit run app.py` from the checkout (its `.streamlit/config.toml` applies) on a
    free port; yields (url, process) once healthy, stops it afterwards."""
    port = port or free_port()
    log = log_path.open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.port",
            str(port),
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
            *args,
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser: Any, viewport: dict[str, int] = DESKTOP) -> Any:
    """A page in a context of its own (its own cookies: another person, or another machine)."""
    context = browser.new_context(viewport=viewport)
    context.set_default_timeout(60_000)
    context.add_init_script(COUNT_RUN_STATES)
    return context.new_page()


def idle(pg: Any) -> None:
    # A rerun may start a moment after the click: give it that moment, then wait it out.
    pg.wait_for_timeout(300)
    pg.wait_for_selector(IDLE, state="attached")


def run_states(pg: Any) -> int:
    return pg.evaluate("() => window.__coinsRunStates")


def rerun_done(pg: Any, states_before: int) -> None:
    """Wait for the rerun an action caused to start, then for it to finish.

    A rerun quick enough never to show "running" in the page leaves no trace: the wait for its
    start is bounded (the app is idle again by then), the wait for its end is not."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    with contextlib.suppress(PlaywrightTimeout):
        pg.wait_for_function(
            "(before) => window.__coinsRunStates > before", arg=states_before, timeout=10_000
        )
    idle(pg)


def open_page(pg: Any, url: str, path: str, title: str) -> None:
    pg.goto(f"{url}/{path}")
    pg.get_by_role("heading", name=title).first.wait_for()
    idle(pg)


def shot(pg: Any, name: str) -> Path:
    """The whole page: Streamlit scrolls inside its main block, so grow the viewport to it."""
    ARTIFACTS.mkdir(exist_ok=True)
    with contextlib.suppress(Exception):
        idle(pg)
    size = pg.viewport_size
    height = pg.evaluate(
        '() => Math.max(...[...document.querySelectorAll(\'[data-testid="stMain"], '
        '[data-testid="stMainBlockContainer"]\')].map(e => e.scrollHeight), 0)'
    )
    pg.set_viewport_size({"width": size["width"], "height": max(size["height"], height + 80)})
    pg.wait_for_timeout(500)
    path = ARTIFACTS / f"{name}.png"
    pg.screenshot(path=str(path), full_page=True)
    pg.set_viewport_size(size)
    return path


@contextlib.contextmanager
def evidence(pg: Any, name: str) -> Iterator[None]:
    """On a failing step, keep a screenshot `test-artifacts/FAILED-<name>.png`."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            ARTIFACTS.mkdir(exist_ok=True)
            pg.screenshot(path=str(ARTIFACTS / f"FAILED-{name}.png"), full_page=True)
        raise


def no_traceback(pg: Any) -> None:
    assert pg.locator('[data-testid="stException"]').count() == 0, "a traceback reached the page"
