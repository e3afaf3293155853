"""Sign-in and roles in a real headless Chromium, against a real OpenID Connect provider
(`oidc-provider-mock`, started here on loopback) and the app as `streamlit run app.py` with
`[auth]` in a secrets file of its own.

Not signed in, every address shows only the sign-in page. A viewer sees the pages and no write
control, and a widget event forged into their own web socket (the ids of an editor's Create
form, taken from an editor's session) writes nothing, while the same forgery in an editor's
session does: the check is the role, not the missing button. An editor's change is audited
under their e-mail. After signing out, nothing but the sign-in page again.
"""

from __future__ import annotations

import re
import secrets
import sqlite3
import threading
from pathlib import Path

import pytest
from test_browser_support import app_env as base_env
from test_browser_support import (
    chromium,
    evidence,
    free_port,
    idle,
    new_page,
    no_traceback,
    open_page,
    require_browser,
    shot,
    streamlit_app,
)

pytestmark = pytest.mark.browser

VIEWER = "viewer@example.com"
EDITOR = "ed@corp.example"
STRANGER = "stranger@elsewhere.example"


@pytest.fixture(scope="module")
def oidc():
    """A real OIDC provider on 127.0.0.1 with three people on its sign-in form."""
    require_browser()
    import werkzeug.serving
    from oidc_provider_mock import User
    from oidc_provider_mock import app as provider

    people = [
        User(
            sub=email, claims={"email": email, "email_verified": True, "name": email.split("@")[0]}
        )
        for email in (VIEWER, EDITOR, STRANGER)
    ]
    server = werkzeug.serving.make_server(
        "127.0.0.1", 0, provider(require_nonce=True, user_claims=people), threaded=True
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)


@pytest.fixture(scope="module")
def shared_app(oidc, tmp_path_factory):
    home = tmp_path_factory.mktemp("coins-home")
    port = free_port()
    secrets_file = tmp_path_factory.mktemp("secrets") / "secrets.toml"
    secrets_file.write_text(
        "[auth]\n"
        f'redirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
        f'cookie_secret = "{secrets.token_urlsafe(32)}"\n'
        'client_id = "coins-app"\n'
        f'client_secret = "{secrets.token_urlsafe(16)}"\n'
        f'server_metadata_url = "{oidc}/.well-known/openid-configuration"\n'
    )
    env = base_env(home, COINS_VIEWERS=VIEWER, COINS_EDITORS="@corp.example")
    log = tmp_path_factory.mktemp("logs") / "streamlit.log"
    with streamlit_app(env, log, "--secrets.files", str(secrets_file), port=port) as (url, _):
        yield url, home


@pytest.fixture(scope="module")
def browser(shared_app):
    with chromium() as b:
        yield b


def _sign_in(pg, url: str, who: str) -> None:
    pg.goto(url + "/")
    pg.get_by_role("button", name="Sign in").click()
    pg.get_by_role("button", name=who, exact=True).click()  # the provider's form
    pg.wait_for_url(re.compile(re.escape(url)))
    pg.get_by_role("heading", name="Overview").first.wait_for()
    idle(pg)


def _configs(home: Path) -> dict[str, int]:
    with sqlite3.connect(home / "sandbox.sqlite3") as conn:
        rows = conn.execute("SELECT company_id, amount FROM configs").fetchall()
    return dict(rows)


def _audit_actors(home: Path) -> set[str]:
    with sqlite3.connect(home / "registry.sqlite3") as conn:
        return {a for (a,) in conn.execute("SELECT DISTINCT actor FROM audit").fetchall()}


WRITE_CONTROLS = re.compile(
    r"^(Create|Update|Revert|Refresh from EnKash|Import|Review|Allocate|Run|Resume|Apply)"
)


def _write_buttons(pg) -> list[str]:
    names = pg.locator('[data-testid="stMain"] button').all_inner_texts()
    return [n.strip() for n in names if WRITE_CONTROLS.match(n.strip())]


class Tap:
    """A page's Streamlit web socket, passed through, with the server's messages kept and a way
    to send the server a message of our own (what a user could do from the browser's tools)."""

    def __init__(self, pg) -> None:
        self.received: list[bytes] = []
        self.server = None
        pg.route_web_socket(re.compile(r".*/_stcore/stream$"), self._route)

    def _route(self, ws) -> None:
        server = ws.connect_to_server()

        def down(message) -> None:
            if isinstance(message, bytes):
                self.received.append(message)
            ws.send(message)

        server.on_message(down)
        ws.on_message(lambda message: server.send(message))
        self.server = server

    def widgets(self) -> dict[str, tuple[str, str]]:
        """label → (widget type, id) of every widget the server drew on this socket."""
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        found: dict[str, tuple[str, str]] = {}
        for raw in self.received:
            msg = ForwardMsg()
            msg.ParseFromString(raw)
            if msg.WhichOneof("type") != "delta":
                continue
            if msg.delta.WhichOneof("type") != "new_element":
                continue
            element = msg.delta.new_element
            kind = element.WhichOneof("type")
            widget = getattr(element, kind)
            if hasattr(widget, "id") and hasattr(widget, "label") and widget.id:
                found[widget.label] = (kind, widget.id)
        return found

    def page_hash(self, url_path: str) -> str:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        for raw in reversed(self.received):
            msg = ForwardMsg()
            msg.ParseFromString(raw)
            if msg.WhichOneof("type") == "navigation":
                for page in msg.navigation.app_pages:
                    if page.url_pathname == url_path:
                        return page.page_script_hash
        raise AssertionError(f"no page {url_path!r} in the navigation")

    def forge_submit(self, page_hash: str, ids: dict[str, tuple[str, str]], values: dict) -> None:
        """Send a rerun as if the Create form had been filled in and submitted."""
        from streamlit.proto.BackMsg_pb2 import BackMsg

        back = BackMsg()
        back.rerun_script.page_script_hash = page_hash
        for label, value in values.items():
            state = back.rerun_script.widget_states.widgets.add()
            state.id = ids[label][1]
            state.string_value = value
        submit = back.rerun_script.widget_states.widgets.add()
        submit.id = ids["Create"][1]
        submit.trigger_value = True
        assert self.server is not None
        self.server.send(back.SerializeToString())


def test_sign_in_roles_forged_events_audit_and_sign_out(shared_app, browser):
    url, home = shared_app

    # Not signed in: every address is the sign-in page, and nothing of the programme shows.
    pg = new_page(browser)
    with evidence(pg, "auth-signed-out"):
        for path in ("", "create", "activity"):
            pg.goto(f"{url}/{path}")
            pg.get_by_role("button", name="Sign in").wait_for()
            idle(pg)
            assert pg.get_by_role("heading", name="Create a configuration").count() == 0
            assert pg.get_by_text("Sandbox — not connected to EnKash").count() == 0
            assert pg.locator('[data-testid="stDataFrame"]').count() == 0
        no_traceback(pg)
        shot(pg, "auth-01-sign-in")

    # An editor's session: its Create form's widget ids, and the forgery works there (the
    # positive control: the same message from a viewer must not write).
    editor = new_page(browser)
    editor_tap = Tap(editor)
    with evidence(editor, "auth-editor"):
        _sign_in(editor, url, EDITOR)
        open_page(editor, url, "create", "Create a configuration")
        ids = editor_tap.widgets()
        assert {"Company id", "Event", "Coins per event", "Create"} <= set(ids), ids
        create_hash = editor_tap.page_hash("create")
        editor_tap.forge_submit(
            create_hash,
            ids,
            {"Company id": "CEKFORGEDED", "Event": "EV_FORGED", "Coins per event": "3"},
        )
        editor.get_by_text(re.compile(r"Created \S*WCC")).first.wait_for()
        assert _configs(home).get("CEKFORGEDED") == 3

    # A viewer: sees the pages, no write control anywhere, and the forged Create writes nothing.
    viewer = new_page(browser)
    viewer_tap = Tap(viewer)
    with evidence(viewer, "auth-viewer"):
        _sign_in(viewer, url, VIEWER)
        assert viewer.get_by_text(VIEWER).first.is_visible()
        for path, title in (  # every page with write controls for an editor
            ("configurations", "Configurations"),
            ("bulk-upload", "Bulk upload"),
            ("allocate", "Allocate & balances"),
            ("create", "Create a configuration"),
        ):
            open_page(viewer, url, path, title)
            no_traceback(viewer)
            assert _write_buttons(viewer) == [], (path, _write_buttons(viewer))
        shot(viewer, "auth-02-viewer-create")
        before = _configs(home)
        viewer_tap.forge_submit(
            create_hash,
            ids,
            {"Company id": "CEKFORGEDVI", "Event": "EV_FORGED", "Coins per event": "4"},
        )
        viewer.wait_for_timeout(1500)
        idle(viewer)
        assert _configs(home) == before
        assert "CEKFORGEDVI" not in _configs(home)
        assert VIEWER not in _audit_actors(home)

    # The editor's own change, through the form: audited under their e-mail.
    with evidence(editor, "auth-editor-create"):
        open_page(editor, url, "create", "Create a configuration")
        editor.get_by_role("textbox", name="Company id", exact=True).fill("CEKBYEDITOR")
        editor.get_by_role("textbox", name="Event", exact=True).fill("EV_EDITOR")
        editor.get_by_role("textbox", name="Coins per event", exact=True).fill("11")
        editor.get_by_role("button", name="Create").click()
        editor.get_by_text(re.compile(r"Created \S*WCC")).first.wait_for()
        assert _configs(home)["CEKBYEDITOR"] == 11
        with sqlite3.connect(home / "registry.sqlite3") as conn:
            actors = conn.execute(
                "SELECT actor FROM audit WHERE action = 'create' AND company_id IN (?, ?)",
                ("CEKBYEDITOR", "CEKFORGEDED"),
            ).fetchall()
        assert actors == [(EDITOR,), (EDITOR,)]
        shot(editor, "auth-03-editor-create")

    # Someone the provider knows but no list names: no access.
    stranger = new_page(browser)
    with evidence(stranger, "auth-stranger"):
        stranger.goto(url + "/")
        stranger.get_by_role("button", name="Sign in").click()
        stranger.get_by_role("button", name=STRANGER, exact=True).click()
        stranger.get_by_role("heading", name="No access").wait_for()
        assert stranger.get_by_role("heading", name="Overview").count() == 0

    # Signing out: back to the sign-in page, and the pages are gone again.
    with evidence(viewer, "auth-sign-out"):
        viewer.get_by_role("button", name="Sign out").click()
        # The app also ends the provider's session: this provider asks to confirm it.
        viewer.get_by_role("button", name="End session").click()
        viewer.get_by_role("button", name="Sign in").wait_for()
        viewer.goto(url + "/configurations")
        viewer.get_by_role("button", name="Sign in").wait_for()
        idle(viewer)
        assert viewer.get_by_role("heading", name="Configurations").count() == 0
        no_traceback(viewer)
