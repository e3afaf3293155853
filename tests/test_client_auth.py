"""Tokens: renewal across a short token life, refused logins tried exactly once, given tokens."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from test_client_contract import QUICK_FAILING  # one quick-failing client for both files

from toolkit.client import CoinsClient
from toolkit.errors import AuthError, TransportError
from toolkit.sandbox import start_sandbox


@pytest.fixture
def client_options() -> dict[str, Any]:
    """Every client of this module (`make_client` in conftest.py): quick to fail."""
    return QUICK_FAILING


def login(handle: Any) -> str:
    creds = handle.credentials
    answer = requests.post(
        handle.url + "/oauth/token",
        auth=(creds["client_id"], creds["client_secret"]),
        data={
            "username": creds["username"],
            "password": creds["password"],
            "grant_type": "password",
            "clientId": creds["client_id"],
        },
        timeout=5,
    )
    answer.raise_for_status()
    return answer.json()["access_token"]


@pytest.fixture(scope="module")
def short_lived() -> Iterator[Any]:
    # The project dialect answers the token's true life in expires_in (enkash's 86399 is not
    # its life: a client can only learn that from the 401, tested on every dialect elsewhere).
    handle = start_sandbox(token_ttl=1, dialect="project")
    try:
        yield handle
    finally:
        handle.stop()


def test_token_is_renewed_after_it_expires(
    make_client: Callable[..., CoinsClient], short_lived: Any
) -> None:
    with make_client(short_lived) as client:
        config = client.create_config(company_id="CEKTTL1", event="MEAL_CARD_PAYMENT", amount=6)
        first = client._tokens.token()
        time.sleep(1.2)
        assert client.token_state()["state"] == "expired"
        assert client.get_config(config.coin_config_id) == config
        assert client.token_state()["state"] == "valid"
        assert client._tokens.token() != first


def test_a_token_the_server_calls_expired_is_renewed_once_on_401(
    make_client: Callable[..., CoinsClient], short_lived: Any
) -> None:
    with make_client(short_lived) as client:
        client.get_balance("EKU1")
        # Freeze the client's clock: it believes its token is fresh, the server does not.
        frozen = time.monotonic()
        client._tokens._clock = lambda: frozen
        time.sleep(1.2)
        assert client.token_state()["state"] == "valid"
        assert client.get_balance("EKU1") == 0


def test_many_threads_share_one_login(
    make_client: Callable[..., CoinsClient], fresh_sandbox: Any
) -> None:
    logins: list[int] = []
    with make_client(fresh_sandbox) as client:
        send = client._tokens._send_login

        def counting(*args: Any) -> requests.Response:
            logins.append(1)
            return send(*args)

        client._tokens._send_login = counting
        with ThreadPoolExecutor(16) as pool:
            balances = list(pool.map(client.get_balance, [f"EKU{i}" for i in range(32)]))
    assert balances == [0] * 32
    assert len(logins) == 1


def test_refused_login_is_tried_exactly_once_even_from_eight_threads(
    make_client: Callable[..., CoinsClient], fresh_sandbox: Any
) -> None:
    barrier = threading.Barrier(8)

    with make_client(fresh_sandbox, password="not-the-password") as client:

        def call(_: int) -> BaseException | None:
            barrier.wait()
            try:
                client.get_balance("EKU1")
            except AuthError as exc:
                return exc
            return None

        with ThreadPoolExecutor(8) as pool:
            outcomes = list(pool.map(call, range(8)))
        assert all(isinstance(o, AuthError) for o in outcomes)
        assert "refused the login" in str(outcomes[0])
        assert client.token_state()["state"] == "refused"
        with pytest.raises(AuthError):
            client.create_config(company_id="CEKEKCARDS", event="MEAL_CARD_PAYMENT", amount=6)

    # The account locks after 3 failures in a row. One more failure from another client makes
    # 2 if ours tried once — and then the right password must still be accepted.
    with make_client(fresh_sandbox, password="still-not-it") as other, pytest.raises(AuthError):
        other.get_balance("EKU1")
    with make_client(fresh_sandbox) as good:
        assert good.get_balance("EKU1") == 0


def test_unknown_client_is_refused_at_once(
    make_client: Callable[..., CoinsClient], fresh_sandbox: Any
) -> None:
    with make_client(fresh_sandbox, client_secret="wrong-secret") as client:
        with pytest.raises(AuthError) as caught:
            client.get_balance("EKU1")
        assert caught.value.http_status == 401
        assert caught.value.response_code == "invalid_client"
        assert "wrong-secret" not in str(caught.value)


def test_a_given_access_token_is_used_as_given(fresh_sandbox: Any) -> None:
    token = login(fresh_sandbox)
    with CoinsClient(base_url=fresh_sandbox.url, access_token=token) as client:
        assert client.token_state() == {"state": "valid", "expires_in_s": None, "source": "given"}
        assert client.get_balance("EKU1") == 0


def test_a_refused_access_token_falls_back_to_one_login(
    make_client: Callable[..., CoinsClient], fresh_sandbox: Any
) -> None:
    with make_client(fresh_sandbox, access_token="stale-token") as client:
        assert client.get_balance("EKU1") == 0
        assert client.token_state()["source"] == "login"


def test_a_login_without_an_answer_is_not_a_refusal(
    make_client: Callable[..., CoinsClient], fresh_sandbox: Any
) -> None:
    # The same timeout bounds the successful call at the end: it must leave room for a busy
    # machine, and the injected latency must stay far above it.
    with make_client(fresh_sandbox, timeout_s=1.0) as client:
        fresh_sandbox.set_faults(latency_ms=5000)
        with pytest.raises(TransportError, match="Could not log in"):
            client.get_balance("EKU1")
        assert client.token_state()["state"] == "none"
        fresh_sandbox.set_faults(latency_ms=0)
        assert client.get_balance("EKU1") == 0


def test_allocation_whose_retry_meets_an_expired_token_is_made_once(
    make_client: Callable[..., CoinsClient], short_lived: Any
) -> None:
    # The first attempt commits but answers late; by the time urllib3 retries it, the token has
    # expired, so the retry is refused (401) and re-sent with a new token. That re-send hears
    # "duplicate requestId": our own first attempt, so the allocation is done, not a conflict.
    def sleep(seconds: float) -> None:
        short_lived.set_faults(slow_after_commit_rate=0.0)
        time.sleep(1.1)

    # A timeout well above a normal answer on a busy machine, well below the slow answer.
    with make_client(short_lived, timeout_s=1.0, sleep=sleep) as client:
        client.create_config(company_id="CEKTTL2", event="MEAL_CARD_PAYMENT", amount=6)
        short_lived.set_faults(slow_after_commit_rate=1.0, slow_after_commit_ms=4000)
        allocation = client.allocate_coins(
            company_id="CEKTTL2", event="MEAL_CARD_PAYMENT", user_id="EKTTL2"
        )
        assert allocation.confirmed and not allocation.already_done
        assert client.get_balance("EKTTL2") == 6


def test_a_token_that_expires_during_backoff_twice_in_one_call_is_renewed_again(
    make_client: Callable[..., CoinsClient],
    short_lived: Any,
) -> None:
    # Backoff after a 5xx outlives a 1 s token twice within one call: each time the retry is
    # refused as expired, and each time a new token must be fetched (not an AuthError).
    def sleep(seconds: float) -> None:
        short_lived.set_faults(error_rate=0.0)
        time.sleep(1.1)

    with make_client(short_lived, max_retries=3, sleep=sleep) as client:
        client.get_balance("EKTTL3")
        send = client._tokens._send_login
        logins: list[int] = []

        def login_then_fail(*args: Any) -> requests.Response:
            answer = send(*args)
            logins.append(1)
            if len(logins) == 1:
                short_lived.set_faults(error_rate=1.0)  # the next API answer is a 503
            return answer

        client._tokens._send_login = login_then_fail
        short_lived.set_faults(error_rate=1.0)
        try:
            assert client.get_balance("EKTTL3") == 0
            assert len(logins) == 2
        finally:
            short_lived.set_faults(error_rate=0.0)


def test_an_expired_given_token_without_credentials_says_what_to_set(short_lived: Any) -> None:
    with CoinsClient(base_url=short_lived.url, access_token=login(short_lived)) as client:
        assert client.get_balance("EKU1") == 0
        time.sleep(1.2)
        with pytest.raises(AuthError) as caught:
            client.get_balance("EKU1")
    assert "ENKASH_ACCESS_TOKEN" in str(caught.value)
    assert "ENKASH_PASSWORD" in str(caught.value)


def test_a_base_url_with_no_login_is_a_wrong_address_not_refused_credentials(
    make_client: Callable[..., CoinsClient],
    fresh_sandbox: Any,
) -> None:
    with make_client(fresh_sandbox, base_url=fresh_sandbox.url + "/not-the-api-root") as client:
        with pytest.raises(TransportError) as caught:
            client.get_balance("EKU1")
        assert caught.value.http_status == 404
        assert "ENKASH_BASE_URL" in str(caught.value)
        # Not remembered as a refusal: nothing was counted against the account.
        assert client.token_state()["state"] != "refused"


def test_a_redirected_login_is_not_followed_nor_a_refusal(
    make_client: Callable[..., CoinsClient],
    fresh_sandbox: Any,
) -> None:
    """A gateway's 302 to its sign-in page: the password is not sent on to it, the login is
    unavailable (saying where the redirect pointed), nothing is counted against the account."""
    with make_client(fresh_sandbox) as client:
        fresh_sandbox.set_faults(redirect_rate=1.0)
        with pytest.raises(TransportError) as caught:
            client.get_balance("EKU1")
        assert caught.value.http_status == 302
        assert "redirect (HTTP 302 to /sso/login?next=/oauth/token" in str(caught.value)
        assert client.token_state()["state"] != "refused"
        fresh_sandbox.set_faults(redirect_rate=0.0)
        assert client.get_balance("EKU1") == 0
