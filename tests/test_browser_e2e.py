"""The app in a real headless Chromium, started as a new user would: `streamlit run app.py` with a
fresh COINS_HOME and no EnKash settings (the embedded sandbox).

Creates a configuration through the form, updates it, uploads a 50-row CSV, waits for the
results, checks the sandbox's SQLite file holds them, and saves a screenshot of each page under
`test-artifacts/`. Uses Debian's chromium (no browser download). Skipped when it is missing,
except when COINS_REQUIRE_BROWSER=1 (CI), where a missing browser fails.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

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
COMPANY = "CEKE2ETEST"


def _require_browser() -> None:
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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 90.0) -> None:
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


@pytest.fixture(scope="module")
def app_server(tmp_path_factory):
    _require_browser()
    home = tmp_path_factory.mktemp("coins-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENKASH_", "COINS_"))}
    env.update(COINS_HOME=str(home), COINS_ACTOR="e2e", PYTHONUNBUFFERED="1")
    port = _free_port()
    log = (tmp_path_factory.mktemp("logs") / "streamlit.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        yield url, home
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def page(app_server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1440, "height": 1000})
        context.set_default_timeout(60_000)
        context.add_init_script(COUNT_RUN_STATES)
        pg = context.new_page()
        try:
            yield pg
        finally:
            context.close()
            browser.close()


def _idle(pg) -> None:
    # A rerun may start a moment after the click: give it that moment, then wait it out.
    pg.wait_for_timeout(300)
    pg.wait_for_selector(IDLE, state="attached")


def _run_states(pg) -> int:
    return pg.evaluate("() => window.__coinsRunStates")


def _rerun_done(pg, states_before: int) -> None:
    """Wait for the rerun an action caused to start, then for it to finish.

    A rerun quick enough never to show "running" in the page leaves no trace: the wait for its
    start is bounded (the app is idle again by then), the wait for its end is not."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    with contextlib.suppress(PlaywrightTimeout):
        pg.wait_for_function(
            "(before) => window.__coinsRunStates > before", arg=states_before, timeout=10_000
        )
    _idle(pg)


def _open(pg, url: str, path: str, title: str) -> None:
    pg.goto(f"{url}/{path}")
    pg.get_by_role("heading", name=title).first.wait_for()
    _idle(pg)


def _shot(pg, name: str) -> None:
    """The whole page: Streamlit scrolls inside its main block, so grow the viewport to it."""
    ARTIFACTS.mkdir(exist_ok=True)
    _idle(pg)
    size = pg.viewport_size
    height = pg.evaluate(
        '() => Math.max(...[...document.querySelectorAll(\'[data-testid="stMain"], '
        '[data-testid="stMainBlockContainer"]\')].map(e => e.scrollHeight), 0)'
    )
    pg.set_viewport_size({"width": size["width"], "height": max(size["height"], height + 80)})
    pg.wait_for_timeout(500)
    pg.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    pg.set_viewport_size(size)


def _no_traceback(pg) -> None:
    assert pg.locator('[data-testid="stException"]').count() == 0, "a traceback reached the page"


def _sandbox_configs(home: Path) -> dict[tuple[str, str], tuple[str, int, str]]:
    with sqlite3.connect(home / "sandbox.sqlite3") as conn:
        rows = conn.execute(
            "SELECT company_id, event, configuration, amount, coin_config_id FROM configs"
        ).fetchall()
    return {(c, e): (conf, amount, cid) for c, e, conf, amount, cid in rows}


def _csv_50() -> bytes:
    lines = ["companyId,event,amount,configuration"]
    for i in range(50):
        lines.append(f"CEKBULK{i // 10:02d},E2E_EVENT_{i % 10:02d},{5 + i},DEFAULT")
    return ("\r\n".join(lines) + "\r\n").encode()


def test_a_new_user_creates_updates_uploads_and_sees_every_page(app_server, page):
    url, home = app_server
    pg = page

    # Overview: the sandbox banner, the demo data, the charts.
    _open(pg, url, "", "Overview")  # the default page lives at /
    assert pg.get_by_text("Sandbox — not connected to EnKash").first.is_visible()
    pg.locator('[data-testid="stVegaLiteChart"]').first.wait_for()
    _no_traceback(pg)
    _shot(pg, "01-overview")

    # Create: a validation message next to the field, then a real create.
    _open(pg, url, "create", "Create a configuration")
    pg.get_by_role("textbox", name="Company id", exact=True).fill("lower case")
    pg.get_by_role("textbox", name="Event", exact=True).fill("E2E_FORM_EVENT")
    pg.get_by_role("textbox", name="Coins per event", exact=True).fill("7")
    pg.get_by_role("button", name="Create").click()
    pg.get_by_text("Nothing was sent").wait_for()
    pg.get_by_text(re.compile("Company id must be")).first.wait_for()  # same run, maybe later
    assert pg.get_by_text(re.compile("Company id must be")).first.is_visible()
    pg.get_by_role("textbox", name="Company id", exact=True).fill(COMPANY)
    pg.get_by_role("button", name="Create").click()
    pg.get_by_text(re.compile(r"Created \S*WCC")).first.wait_for()
    _no_traceback(pg)
    _shot(pg, "03-create")
    created = _sandbox_configs(home)[(COMPANY, "E2E_FORM_EVENT")]
    assert created[:2] == ("DEFAULT", 7)
    config_id = created[2]

    # Configurations: pick it, change the amount, see before → after, update.
    _open(pg, url, "configurations", "Configurations")
    states = _run_states(pg)
    pg.get_by_role("textbox", name="Search id, company or event").fill(config_id)
    pg.keyboard.press("Enter")
    _rerun_done(pg, states)
    select = pg.locator('[data-testid="stSelectbox"]').filter(has_text="Configuration").last
    select.click()
    pg.keyboard.type(config_id)
    states = _run_states(pg)
    pg.keyboard.press("Enter")
    _rerun_done(pg, states)
    amount = pg.get_by_role("spinbutton", name="Coins per event")
    amount.fill("9")
    states = _run_states(pg)
    amount.press("Enter")
    _rerun_done(pg, states)
    pg.get_by_text("Before → after").wait_for()
    pg.get_by_role("button", name="Update").click()
    pg.get_by_text(re.compile(rf"Updated {config_id}")).wait_for()
    _no_traceback(pg)
    _shot(pg, "02-configurations")
    assert _sandbox_configs(home)[(COMPANY, "E2E_FORM_EVENT")][:2] == ("DEFAULT", 9)

    # Bulk upload: 50 rows → check → plan → run → results.
    _open(pg, url, "bulk-upload", "Bulk upload")
    pg.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
        files=[{"name": "e2e-50.csv", "mimeType": "text/csv", "buffer": _csv_50()}]
    )
    pg.get_by_text("2 · Plan (dry run)").wait_for()
    _idle(pg)
    pg.get_by_role("button", name=re.compile(r"Run — send 50 rows")).click()
    pg.get_by_text("4 · Results").wait_for(timeout=120_000)
    _idle(pg)
    _no_traceback(pg)
    _shot(pg, "04-bulk-upload")
    held = _sandbox_configs(home)
    for i in range(50):
        assert held[(f"CEKBULK{i // 10:02d}", f"E2E_EVENT_{i % 10:02d}")][:2] == ("DEFAULT", 5 + i)

    # Allocate & balances, Activity: they render, without errors.
    _open(pg, url, "allocate", "Allocate & balances")
    _no_traceback(pg)
    _shot(pg, "05-allocate")
    _open(pg, url, "activity", "Activity")
    pg.get_by_text(re.compile(r"entries")).first.wait_for()
    _no_traceback(pg)
    _shot(pg, "06-activity")
