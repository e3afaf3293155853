"""Proxies are read once, when the client is made (not on every request), and still honoured:
HTTP(S)_PROXY sends the calls through the proxy, NO_PROXY bypasses it."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
import requests
from conftest import sandbox_profile

from toolkit.client import CoinsClient


class _Forwarder(http.server.BaseHTTPRequestHandler):
    """A plain HTTP proxy: forwards each absolute-URI request and counts it."""

    seen: ClassVar[list[str]] = []
    upstream = requests.Session()
    upstream.trust_env = False

    def _forward(self) -> None:
        type(self).seen.append(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {
            k: v for k, v in self.headers.items() if k.lower() not in ("host", "proxy-connection")
        }
        answer = self.upstream.request(
            self.command, self.path, data=body, headers=headers, timeout=10
        )
        self.send_response(answer.status_code)
        for key, value in answer.headers.items():
            if key.lower() not in (
                "content-length",
                "transfer-encoding",
                "connection",
                "content-encoding",
            ):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)

    do_GET = do_POST = do_PATCH = _forward

    def log_message(self, *args: Any) -> None:  # quiet
        pass


@pytest.fixture
def proxy() -> Iterator[str]:
    _Forwarder.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Forwarder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _client(handle: Any) -> CoinsClient:
    return CoinsClient(base_url=handle.url, **handle.credentials, profile=sandbox_profile(handle))


def test_http_proxy_from_the_environment_carries_every_call(
    fresh_sandbox: Any, proxy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.setenv("HTTPS_PROXY", proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with _client(fresh_sandbox) as client:
        config = client.create_config(company_id="CEKPROXY", event="MEAL_CARD_PAYMENT", amount=3)
        assert client.get_config(config.coin_config_id).amount == 3
    paths = _Forwarder.seen
    assert any(p.endswith("/oauth/token") for p in paths)
    assert any("create-coins-config" in p for p in paths)
    assert any(config.coin_config_id in p for p in paths)


def test_no_proxy_bypasses_the_proxy(
    fresh_sandbox: Any, proxy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    with _client(fresh_sandbox) as client:
        assert client.get_balance("EKPROXY") == 0
    assert _Forwarder.seen == []


def test_proxy_settings_are_read_once_when_the_client_is_made(
    fresh_sandbox: Any, proxy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HTTP_PROXY", raising=False)
    monkeypatch.delenv("http_proxy", raising=False)
    with _client(fresh_sandbox) as client:
        monkeypatch.setenv("HTTP_PROXY", proxy)  # too late for this client: read at creation
        assert client.get_balance("EKPROXY") == 0
    assert _Forwarder.seen == []
