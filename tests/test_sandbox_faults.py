"""Each fault at rate 1 does exactly what it says, over real TCP."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from toolkit.models import ResponseCode

CREATE = "/api/v0/enkash-coins/create-coins-config"
BALANCE = "/api/v0/coins/balance"
BODY = {
    "configuration": "DEFAULT",
    "companyId": "CEKEKCARDS",
    "event": "MEAL_CARD_PAYMENT",
    "amount": 6,
}


def configs(handle: Any) -> list[dict]:
    return requests.get(handle.url + "/_sandbox/configs", timeout=10).json()["payload"]


def raw_exchange(url: str, request: bytes) -> bytes:
    """Send ``request`` on a fresh TCP connection; everything the server sent until it closed."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(request)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
    return received


def test_error_fault_answers_500_or_503_and_does_nothing(api: Any, fresh_sandbox: Any) -> None:
    fresh_sandbox.set_faults(error_rate=1)
    statuses = set()
    for _ in range(12):
        answer = api.post(CREATE, json=BODY)
        statuses.add(answer.status_code)
        assert answer.json()["response_code"] in (
            ResponseCode.SERVER_ERROR,
            ResponseCode.UNAVAILABLE,
        )
    assert statuses <= {500, 503} and statuses
    assert configs(fresh_sandbox) == []


def test_rate_limit_fault_answers_429_with_retry_after(api: Any, fresh_sandbox: Any) -> None:
    fresh_sandbox.set_faults(rate_limit_rate=1)
    answer = api.post(CREATE, json=BODY)
    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "1"
    assert answer.json()["response_code"] == ResponseCode.RATE_LIMITED
    assert configs(fresh_sandbox) == []


def test_drop_fault_closes_the_connection_with_zero_bytes(fresh_sandbox: Any) -> None:
    fresh_sandbox.set_faults(drop_rate=1)
    request = b"GET /api/v0/coins/balance?userId=U1 HTTP/1.1\r\nHost: sandbox\r\n\r\n"
    assert raw_exchange(fresh_sandbox.url, request) == b""


def test_drop_fault_is_a_connection_error_for_requests(api: Any, fresh_sandbox: Any) -> None:
    fresh_sandbox.set_faults(drop_rate=1)
    with pytest.raises(requests.ConnectionError):
        api.post(CREATE, json=BODY)
    fresh_sandbox.clear_faults()
    assert configs(fresh_sandbox) == []
    assert api.post(CREATE, json=BODY).status_code == 200  # the session recovers


def test_slow_after_commit_commits_before_answering(api: Any, fresh_sandbox: Any) -> None:
    # The client waits long enough for the work to be done even on a busy machine, and gives up
    # long before the answer comes.
    fresh_sandbox.set_faults(slow_after_commit_rate=1, slow_after_commit_ms=6000)
    with pytest.raises(requests.Timeout):
        api.post(CREATE, json=BODY, timeout=2)
    # The client gave up, yet the configuration exists: the ambiguous case.
    assert [c["event"] for c in configs(fresh_sandbox)] == ["MEAL_CARD_PAYMENT"]


def test_slow_after_commit_answer_arrives_late_but_complete(api: Any, fresh_sandbox: Any) -> None:
    fresh_sandbox.set_faults(slow_after_commit_rate=1, slow_after_commit_ms=300)
    start = time.perf_counter()
    answer = api.post(CREATE, json=BODY)
    assert time.perf_counter() - start >= 0.29
    assert answer.status_code == 200 and answer.json()["payload"]["coinConfigId"]


def test_latency_delays_every_answer_including_the_token(api: Any, fresh_sandbox: Any) -> None:
    fresh_sandbox.set_faults(latency_ms=200)
    for call in (
        lambda: api.get(BALANCE, params={"userId": "U1"}),
        api.token_response,
        lambda: api.get("/api/v0/nothing"),
    ):
        start = time.perf_counter()
        call()
        assert time.perf_counter() - start >= 0.19


def test_failure_faults_spare_token_and_admin_routes(api: Any, fresh_sandbox: Any) -> None:
    fresh_sandbox.set_faults(error_rate=1, rate_limit_rate=1, drop_rate=1)
    assert api.token_response().status_code == 200
    assert requests.get(fresh_sandbox.url + "/_sandbox/configs", timeout=5).status_code == 200


def test_faults_over_http_partial_update_and_read_back(fresh_sandbox: Any) -> None:
    url = fresh_sandbox.url + "/_sandbox/faults"
    answer = requests.put(url, json={"error_rate": 0.25, "latency_ms": 5}, timeout=5)
    assert answer.status_code == 200
    answer = requests.put(url, json={"drop_rate": 0.5}, timeout=5)
    current = requests.get(url, timeout=5).json()["payload"]
    assert current["error_rate"] == 0.25 and current["drop_rate"] == 0.5
    assert current["latency_ms"] == 5
    assert answer.json()["payload"] == current


@pytest.mark.parametrize(
    "body",
    [{"error_rate": 1.5}, {"drop_rate": -0.1}, {"error_rate": "0.1"}, {"nope": 1}, [1]],
)
def test_faults_over_http_refuse_bad_values(fresh_sandbox: Any, body: Any) -> None:
    url = fresh_sandbox.url + "/_sandbox/faults"
    answer = requests.put(url, json=body, timeout=5)
    assert answer.status_code == 400
    assert answer.json()["response_code"] == ResponseCode.INVALID_REQUEST
    assert requests.get(url, timeout=5).json()["payload"]["error_rate"] == 0


def test_set_faults_in_process_refuses_bad_values(fresh_sandbox: Any) -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        fresh_sandbox.set_faults(error_rate=2)
    with pytest.raises(ValueError, match="unknown fault"):
        fresh_sandbox.set_faults(eror_rate=0.1)


def test_reset_turns_faults_off(api: Any, fresh_sandbox: Any) -> None:
    fresh_sandbox.set_faults(error_rate=1)
    requests.post(fresh_sandbox.url + "/_sandbox/reset", timeout=5)
    api.login()  # the reset forgot the tokens too
    assert api.get(BALANCE, params={"userId": "U1"}).status_code == 200


def test_fault_seed_makes_draws_repeatable(api: Any, fresh_sandbox: Any) -> None:
    def pattern() -> list[int]:
        fresh_sandbox.set_faults(rate_limit_rate=0.5, fault_seed=42)
        return [api.get(BALANCE, params={"userId": "U1"}).status_code for _ in range(12)]

    first = pattern()
    assert set(first) == {200, 429}
    assert pattern() == first


def test_drop_without_a_real_connection_raises_connection_dropped(tmp_path: Any) -> None:
    import httpx

    from toolkit.sandbox import ConnectionDropped, create_app

    app = create_app(tmp_path / "asgi.sqlite3")
    app.sandbox.faults.update({"drop_rate": 1})
    transport = httpx.ASGITransport(app=app)
    with pytest.raises(ConnectionDropped):
        asyncio.run(_get(transport, BALANCE))
    app.sandbox.store.close()


async def _get(transport: Any, path: str) -> Any:
    import httpx

    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
        return await client.get(path)


def test_redirect_fault_answers_302_to_a_sign_in_page_and_does_nothing(
    api: Any, fresh_sandbox: Any
) -> None:
    fresh_sandbox.set_faults(redirect_rate=1)
    answer = api.post(CREATE, json=BODY, allow_redirects=False)
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/sso/login?next=" + CREATE
    assert configs(fresh_sandbox) == []
