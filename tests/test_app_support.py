"""Helpers for the app's AppTest files (no tests here).

The app reads its settings from the environment, as `streamlit run` would: these helpers point
it at the session's sandbox (``ENKASH_BASE_URL`` and credentials from ``handle.settings()``) or,
with no base URL, at a fresh ``COINS_HOME`` for the embedded sandbox.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
PAGES = {
    "overview": "toolkit/ui/overview.py",
    "configurations": "toolkit/ui/configurations.py",
    "create": "toolkit/ui/create.py",
    "bulk_upload": "toolkit/ui/bulk_upload.py",
    "allocate": "toolkit/ui/allocate.py",
    "activity": "toolkit/ui/activity.py",
}
TIMEOUT = 60


def point_app_at(
    monkeypatch: pytest.MonkeyPatch, home: Path, handle: Any = None, **overrides: Any
) -> None:
    """Environment for the app: ``handle``'s sandbox as "EnKash", or the embedded one. The
    server options are the shipped `.streamlit/config.toml`'s (AppTest does not read it):
    bound to loopback, so the app serves without sign-in."""
    serve_as_shipped(monkeypatch)
    for name in list(os.environ):
        if name.startswith(("ENKASH_", "COINS_")):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COINS_HOME", str(home))
    monkeypatch.setenv("COINS_ACTOR", "apptest")
    monkeypatch.chdir(home)  # no stray .env from the checkout
    if handle is not None:
        settings = handle.settings(**overrides)
        monkeypatch.setenv("ENKASH_BASE_URL", settings.base_url)
        monkeypatch.setenv("ENKASH_CLIENT_ID", settings.client_id)
        monkeypatch.setenv("ENKASH_CLIENT_SECRET", settings.client_secret)
        monkeypatch.setenv("ENKASH_USERNAME", settings.username)
        monkeypatch.setenv("ENKASH_PASSWORD", settings.password)


def serve_as_shipped(monkeypatch: pytest.MonkeyPatch, **options: Any) -> None:
    """Streamlit's server options as `.streamlit/config.toml` sets them, then ``options``
    (``address="0.0.0.0"``), each put back after the test."""
    import tomllib

    from streamlit import config

    shipped = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["server"]
    wanted = {k: shipped[k] for k in ("address", "allowedHosts")} | options
    for name, value in wanted.items():
        option = config.get_config_options()[f"server.{name}"]
        monkeypatch.setattr(option, "_get_val_func", lambda value=value: value)


def open_page(page: str) -> AppTest:
    """The app, run once, then switched to ``page`` and run again."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    if page != "overview":
        at.switch_page(PAGES[page]).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def workspace_for(home: Path, handle: Any):
    """The toolkit as a notebook would open it on the same registry and server as the app."""
    from toolkit.workspace import connect

    return connect(handle.settings(home=home), source="test")


_ESCAPED = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|<>~:$&=^\"'])")


def shown(markdown: str) -> str:
    """Markdown source as the page shows it: `toolkit.ui.text.esc`'s escapes, entities and word
    joiners removed."""
    return _ESCAPED.sub(r"\1", markdown.replace("&#58;", ":")).replace("\u2060", "")


def texts(at: AppTest, kind: str) -> list[str]:
    """The text of every element of ``kind`` (info, error, caption …) as shown."""
    return [shown(str(e.value)) for e in getattr(at, kind)]


def all_text(at: AppTest) -> str:
    """Every string the page shows (markdown, captions, alerts, metrics, widget labels)."""
    parts: list[str] = []
    for kind in ("markdown", "caption", "info", "error", "warning", "success", "title"):
        parts += texts(at, kind)
    parts += [f"{m.label} {m.value}" for m in at.metric]
    for kind in ("text_input", "number_input", "selectbox", "button"):
        parts += [str(w.label) for w in getattr(at, kind)]
    parts += [str(w.value) for w in at.text_input]
    return "\n".join(parts)


def button(at: AppTest, label: str):
    found = [b for b in at.button if b.label == label or b.label.startswith(label)]
    assert found, f"no button {label!r}: {[b.label for b in at.button]}"
    return found[0]


def run_to_results(at: AppTest, *, timeout: float = 60.0) -> AppTest:
    """Rerun the page until a bulk run shows its results (the run goes on in the server while
    the page is drawn; a browser redraws its progress every second)."""
    import time

    deadline = time.monotonic() + timeout
    while not any("4 · Results" in str(h.value) for h in at.subheader):
        assert time.monotonic() < deadline, "the run did not finish in time"
        assert not at.exception, [e.value for e in at.exception]
        time.sleep(0.2)
        at.run()
    return at


def frames(at: AppTest) -> list[pd.DataFrame]:
    return [d.value for d in at.dataframe]


def vega_charts(at: AppTest) -> list[tuple[dict, list[pd.DataFrame]]]:
    """Every altair chart on the page: its Vega-Lite spec and the data embedded with it."""
    import pyarrow as pa

    charts = []
    for element in at.get("vega_lite_chart"):
        proto = element.proto
        data = [
            pa.ipc.open_stream(dataset.data.data).read_all().to_pandas()
            for dataset in proto.datasets
        ]
        charts.append((json.loads(proto.spec), data))
    return charts


def sandbox_configs(handle: Any) -> pd.DataFrame:
    """Everything the sandbox holds (its test-only admin route)."""
    import requests

    payload = requests.get(handle.url + "/_sandbox/configs", timeout=10).json()["payload"]
    return pd.DataFrame(
        payload, columns=["coinConfigId", "companyId", "event", "configuration", "amount"]
    )
