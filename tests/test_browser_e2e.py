"""The app in a real headless Chromium, started as a new user would: `streamlit run app.py` with a
fresh COINS_HOME and no EnKash settings (the embedded sandbox), bound to loopback by the shipped
`.streamlit/config.toml`.

A new analyst's day: hostile values in the forms shown as text, a create, an update and a
confirmed revert, an inline edit of `6.5` refused with its reason (the table does not move), a
50-row sheet sent while its tab reloads and a second tab re-attaches (each row audited once,
the plan kept beside the results), then every page at phone width. A web socket naming a
foreign host (DNS rebinding) is refused. Screenshots of each page land in `test-artifacts/`,
and a ``FAILED-…`` one when a step fails. Uses Debian's chromium (no browser download);
skipped when it is missing, except when COINS_REQUIRE_BROWSER=1 (CI), where it fails.
"""

from __future__ import annotations

import base64
import os
import re
import socket
import sqlite3
from pathlib import Path

import pytest
from test_browser_support import (
    PHONE,
    app_env,
    chromium,
    evidence,
    idle,
    new_page,
    no_traceback,
    open_page,
    require_browser,
    rerun_done,
    run_states,
    shot,
    streamlit_app,
)

pytestmark = pytest.mark.browser

COMPANY = "CEKE2ETEST"
HOSTILE = "[x](https://evil.example) **bold**"


@pytest.fixture(scope="module")
def app_server(tmp_path_factory):
    require_browser()
    home = tmp_path_factory.mktemp("coins-home")
    log = tmp_path_factory.mktemp("logs") / "streamlit.log"
    with streamlit_app(app_env(home), log) as (url, _):
        yield url, home
    # The server's whole log, after every test of the module: no secret of the connection.
    from toolkit.settings import SANDBOX_CREDENTIALS

    text = log.read_text()
    for name in ("client_secret", "password"):
        assert SANDBOX_CREDENTIALS[name] not in text, f"the {name} reached the server log"


@pytest.fixture(scope="module")
def browser(app_server):
    with chromium() as b:
        yield b


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


def _no_evil_link(pg) -> None:
    hrefs = [a.get_attribute("href") or "" for a in pg.locator('[data-testid="stMain"] a').all()]
    assert not [h for h in hrefs if "evil" in h], hrefs
    assert pg.locator('[data-testid="stMain"] strong', has_text="bold").count() == 0


def _websocket_status(url: str, host: str, origin: str | None = None) -> str:
    """The first line of the server's answer to a web socket handshake naming ``host`` (and
    coming from a page of ``origin``, by default the same host)."""
    port = int(url.rsplit(":", 1)[1])
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        "GET /_stcore/stream HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        f"Origin: {origin or f'http://{host}:{port}'}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request.encode())
        return sock.recv(4096).split(b"\r\n", 1)[0].decode()


def test_only_the_configured_host_names_get_a_web_socket(app_server):
    url, _ = app_server
    assert " 101 " in _websocket_status(url, "127.0.0.1")
    # A page of evil.example whose name was re-pointed at this machine (DNS rebinding).
    assert " 101 " not in _websocket_status(url, "evil.example")
    assert " 101 " not in _websocket_status(url, "localhost.evil.example")
    # A page of another site opening a socket to the right host (cross-site web socket).
    assert " 101 " not in _websocket_status(url, "127.0.0.1", "http://evil.example")


def test_a_new_analysts_day_in_the_browser(app_server, browser):
    url, home = app_server
    pg = new_page(browser)

    with evidence(pg, "e2e-overview"):
        _open = open_page
        _open(pg, url, "", "Overview")  # the default page lives at /
        assert pg.get_by_text("Sandbox — not connected to EnKash").first.is_visible()
        pg.locator('[data-testid="stVegaLiteChart"]').first.wait_for()
        no_traceback(pg)
        shot(pg, "01-overview")
        _open(pg, url, "overview", "Overview")  # and as a deep link

    with evidence(pg, "e2e-create"):
        _open(pg, url, "create", "Create a configuration")
        company = pg.get_by_role("textbox", name="Company id", exact=True)
        amount = pg.get_by_role("textbox", name="Coins per event", exact=True)
        company.fill(HOSTILE[:32])
        pg.get_by_role("textbox", name="Event", exact=True).fill("E2E_FORM_EVENT")
        amount.fill("9" * 10_000)
        pg.get_by_role("button", name="Create").click()
        pg.get_by_text("Nothing was sent").wait_for()
        pg.get_by_text("Coins per event must be at most 1,000,000").wait_for()
        pg.get_by_text(re.compile("Company id must be")).first.wait_for()
        _no_evil_link(pg)
        no_traceback(pg)
        company.fill(COMPANY)
        amount.fill("7")
        pg.get_by_role("button", name="Create").click()
        pg.get_by_text(re.compile(r"Created \S*WCC")).first.wait_for()
        no_traceback(pg)
        shot(pg, "03-create")
    created = _sandbox_configs(home)[(COMPANY, "E2E_FORM_EVENT")]
    assert created[:2] == ("DEFAULT", 7)
    config_id = created[2]

    with evidence(pg, "e2e-configurations"):
        _open(pg, url, "configurations", "Configurations")
        states = run_states(pg)
        pg.get_by_role("textbox", name="Search id, company or event").fill(config_id)
        pg.keyboard.press("Enter")
        rerun_done(pg, states)
        # Inline edit: 6.5 typed in the Coins cell stays 6.5, and is refused with the reason.
        grid = pg.locator('[data-testid="stDataFrame"]').first
        top_before = grid.bounding_box()["y"]
        box = grid.bounding_box()
        pg.mouse.click(box["x"] + 40, box["y"] + 35 + 17)  # the first row's Id cell
        pg.wait_for_timeout(300)  # the grid takes the focus
        for _ in range(4):  # → Company, Event, Configuration, Coins
            pg.keyboard.press("ArrowRight")
        pg.keyboard.press("Enter")  # open the cell's editor, as a double-click does
        pg.wait_for_timeout(300)
        pg.keyboard.press("ControlOrMeta+a")
        pg.keyboard.type("6.5", delay=50)
        states = run_states(pg)
        pg.keyboard.press("Enter")
        rerun_done(pg, states)
        pg.get_by_text("1 unsaved change").wait_for()
        assert grid.bounding_box()["y"] == top_before, "the table moved while editing"
        pg.get_by_role("button", name="Review changes").click()
        pg.get_by_text("These PATCH requests will be sent").wait_for()
        idle(pg)
        review = pg.locator('[data-testid="stDataFrame"]').nth(1)
        review.wait_for()
        shot(pg, "02a-inline-edit-review")
        assert pg.get_by_role("button", name="Apply 0 changes").is_disabled()
        pg.get_by_role("button", name="Discard").click()
        idle(pg)
        # The update form, then Revert with its confirmation.
        select = pg.locator('[data-testid="stSelectbox"]').filter(has_text="Configuration").last
        select.click()
        pg.keyboard.type(config_id)
        states = run_states(pg)
        pg.keyboard.press("Enter")
        rerun_done(pg, states)
        coins = pg.get_by_role("textbox", name="Coins per event")
        coins.fill("9")
        states = run_states(pg)
        coins.press("Enter")
        rerun_done(pg, states)
        pg.get_by_text("Before → after").wait_for()
        pg.get_by_role("button", name="Update").click()
        pg.get_by_text(re.compile(rf"Updated {config_id}")).wait_for()
        assert _sandbox_configs(home)[(COMPANY, "E2E_FORM_EVENT")][:2] == ("DEFAULT", 9)
        pg.get_by_role("tab", name="History").click()
        pg.get_by_role("button", name="Revert…").click()
        pg.get_by_text(re.compile(r"Revert entry #\d+\?")).wait_for()
        assert _sandbox_configs(home)[(COMPANY, "E2E_FORM_EVENT")][1] == 9  # asked first
        shot(pg, "02-configurations-revert")
        pg.get_by_role("button", name="Yes, revert").click()
        pg.get_by_text(re.compile("^Reverted")).first.wait_for()
        no_traceback(pg)
    assert _sandbox_configs(home)[(COMPANY, "E2E_FORM_EVENT")][:2] == ("DEFAULT", 7)

    with evidence(pg, "e2e-bulk"):
        sheet = [{"name": "e2e-50.csv", "mimeType": "text/csv", "buffer": _csv_50()}]
        other = new_page(browser)  # a second tab, ready before the run starts
        open_page(other, url, "bulk-upload", "Bulk upload")
        _open(pg, url, "bulk-upload", "Bulk upload")
        pg.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(files=sheet)
        pg.get_by_text("2 · Plan (dry run)").wait_for()
        idle(pg)
        pg.get_by_text("Run options").click()
        rate = pg.get_by_role("spinbutton", name=re.compile("rows per second"))
        rate.fill("2")  # about 25 s: long enough to look from another tab and to reload
        states = run_states(pg)
        rate.press("Enter")
        rerun_done(pg, states)
        pg.get_by_role("button", name=re.compile(r"Run — send 50 rows")).click()
        pg.get_by_text(re.compile(r"Sending… \d+ of 50 rows")).first.wait_for()

        # The second tab uploads the same sheet: the run is found again, live; no second Run.
        with evidence(other, "e2e-bulk-second-tab"):
            other.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
                files=sheet
            )
            other.get_by_text(re.compile(r"Sending… \d+ of 50 rows .* elapsed")).first.wait_for()
            assert other.get_by_role("button", name=re.compile(r"^Run — ")).count() == 0
        other.context.close()

        # Reload the first tab mid-run: the run goes on, and the runs list re-attaches to it.
        pg.reload()
        pg.get_by_role("heading", name="Bulk upload").wait_for()
        pg.get_by_text("Runs on this server").wait_for()
        assert pg.get_by_text(re.compile(r"e2e-50\.csv · running")).count() == 1  # mid-run
        pg.get_by_role("button", name="Open").first.click()
        pg.get_by_text("4 · Results").wait_for(timeout=120_000)
        idle(pg)
        no_traceback(pg)
        # The plan it was started from, beside the results.
        create = pg.locator('[data-testid="stMetric"]').filter(has_text="Create").first
        assert "50" in create.inner_text()
        shot(pg, "04-bulk-upload")
    held = _sandbox_configs(home)
    for i in range(50):
        assert held[(f"CEKBULK{i // 10:02d}", f"E2E_EVENT_{i % 10:02d}")][:2] == ("DEFAULT", 5 + i)
    with sqlite3.connect(home / "registry.sqlite3") as conn:
        audited = conn.execute(
            "SELECT company_id, event, COUNT(*) FROM audit WHERE action = 'create'"
            " AND company_id LIKE 'CEKBULK%' GROUP BY company_id, event"
        ).fetchall()
    assert len(audited) == 50 and {n for *_, n in audited} == {1}, "each row audited once"

    with evidence(pg, "e2e-allocate"):
        _open(pg, url, "allocate", "Allocate & balances")
        pg.get_by_role("textbox", name="User id", exact=True).first.fill(HOSTILE)
        pg.get_by_role("button", name="Review").click()
        pg.get_by_text(re.compile("User id must be")).first.wait_for()
        _no_evil_link(pg)
        no_traceback(pg)
        shot(pg, "05-allocate")
        _open(pg, url, "activity", "Activity")
        pg.get_by_text(re.compile(r"entries")).first.wait_for()
        no_traceback(pg)
        shot(pg, "06-activity")

    # EnKash's credentials stay on the server: not in the page, nor in a cookie.
    from toolkit.settings import SANDBOX_CREDENTIALS

    page_text = pg.content()
    cookies = " ".join(f"{c['name']}={c['value']}" for c in pg.context.cookies())
    for name in ("client_secret", "password", "username"):
        assert SANDBOX_CREDENTIALS[name] not in page_text, name
        assert SANDBOX_CREDENTIALS[name] not in cookies, name


def test_every_page_at_phone_width(app_server, browser):
    url, _ = app_server
    pg = new_page(browser, PHONE)
    with evidence(pg, "phone"):
        open_page(pg, url, "overview", "Overview")
        sidebar = pg.locator('[data-testid="stSidebar"]')
        assert sidebar.get_attribute("data-collapsed") == "true", "the sidebar covers the page"
        assert sidebar.bounding_box()["x"] + sidebar.bounding_box()["width"] <= 0
        chart = pg.locator('[data-testid="stVegaLiteChart"]').first
        chart.wait_for()
        assert chart.bounding_box()["width"] <= PHONE["width"]
        shot(pg, "phone-01-overview")
        for path, title in (
            ("configurations", "Configurations"),
            ("bulk-upload", "Bulk upload"),
            ("activity", "Activity"),
        ):
            open_page(pg, url, path, title)
            no_traceback(pg)
            width = pg.evaluate("() => document.documentElement.scrollWidth")
            assert width <= PHONE["width"] + 1, (path, width)
        shot(pg, "phone-02-activity")


def test_started_beyond_loopback_without_sign_in_it_refuses_and_stops(tmp_path, browser):
    log = tmp_path / "exposed.log"
    with streamlit_app(app_env(tmp_path), log, "--server.address", "0.0.0.0") as (url, proc):
        pg = new_page(browser)
        with evidence(pg, "exposed"):
            pg.goto(url + "/")
            pg.get_by_text(re.compile("^Refusing to serve the coins app")).wait_for()
            assert pg.get_by_role("heading", name="Overview").count() == 0
            proc.wait(timeout=30)  # and the server shuts itself down
        pg.context.close()
    refusals = [line for line in log.read_text().splitlines() if "Refusing to serve" in line]
    assert len(refusals) == 1, refusals
    assert not (tmp_path / "registry.sqlite3").exists()  # nothing was opened
