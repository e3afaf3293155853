"""The one function that maps an answer to an error, and the client's pure pieces.

Answers the sandbox never gives (an error on HTTP 200, a proxy's HTML page) are built as
`requests.Response` objects here; everything that travels over HTTP is tested against the
real sandbox in the other `test_client_*` files.
"""

from __future__ import annotations

import json

import pytest
import requests

from toolkit.answers import error_from_response
from toolkit.auth import TokenManager
from toolkit.client import CoinsClient
from toolkit.errors import (
    AuthError,
    ConflictError,
    DuplicateRequestError,
    EnKashError,
    ForbiddenError,
    NotFoundError,
    RateLimitError,
    ServerError,
    TransportError,
    ValidationError,
)
from toolkit.session import Backoff


def answer(status: int, body: object, headers: dict[str, str] | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.reason = "Reason"
    response._content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response.headers.update(headers or {})
    return response


def envelope(code: int, message: str) -> dict[str, object]:
    return {"payload": None, "response_code": code, "response_message": message}


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, 4000, ValidationError),
        (401, 4010, AuthError),
        (403, 4030, ForbiddenError),  # EnKash: "APIs not enabled" (an AuthError)
        (404, 4040, NotFoundError),
        (409, 4090, ConflictError),
        (422, 4000, ValidationError),
        (429, 4290, RateLimitError),
        (500, 5000, ServerError),
        (503, 5030, ServerError),
        (418, 4180, EnKashError),
    ],
)
def test_non_2xx_status_maps_to_its_error_class(status: int, code: int, cls: type) -> None:
    error = error_from_response(answer(status, envelope(code, "nope")), "Could not do it")
    assert type(error) is cls
    assert error.http_status == status
    assert error.response_code == code


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (4000, ValidationError),
        (4010, AuthError),
        (4041, NotFoundError),
        (4091, DuplicateRequestError),  # a ConflictError: the requestId was used before
        (4290, RateLimitError),
        (5030, ServerError),
        (7, EnKashError),
    ],
)
def test_non_zero_code_on_http_200_is_an_error_by_code(code: int, cls: type) -> None:
    error = error_from_response(answer(200, envelope(code, "refused")), "Could not do it")
    assert type(error) is cls
    assert "refused" in str(error)


def test_non_json_error_body_still_maps_by_status() -> None:
    error = error_from_response(answer(502, b"<html>Bad gateway</html>"), "Could not fetch X")
    assert isinstance(error, ServerError)
    assert str(error) == "Could not fetch X: the server answered HTTP 502 Reason (HTTP 502)"


def test_conflict_message_reads_well_and_names_the_existing_id() -> None:
    body = envelope(4090, "configuration WCC817428 already exists for CEKEKCARDS")
    error = error_from_response(answer(409, body), "Could not create MEAL_CARD_PAYMENT for X")
    assert isinstance(error, ConflictError)
    assert error.existing_id == "WCC817428"
    assert str(error) == (
        "Could not create MEAL_CARD_PAYMENT for X: configuration WCC817428 already exists "
        "for CEKEKCARDS (HTTP 409, code 4090)"
    )


def test_rate_limit_carries_retry_after() -> None:
    error = error_from_response(
        answer(429, envelope(4290, "slow down"), {"Retry-After": "1"}), "Could not"
    )
    assert isinstance(error, RateLimitError)
    assert error.retry_after == 1.0


def test_secrets_echoed_by_a_server_are_scrubbed() -> None:
    body = envelope(4010, "token abc.def-123 is unknown")
    error = error_from_response(answer(401, body), "Could not", secrets=("abc.def-123", None))
    assert "abc.def-123" not in str(error)
    assert "•••" in str(error)


def test_backoff_is_exponential_bounded_and_jitter_can_be_pinned() -> None:
    policy = Backoff(factor=0.5, maximum=5.0, jitter=0.5, sleep=lambda s: None, random=lambda: 0)
    assert [policy.delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    jittered = Backoff(factor=0.5, maximum=5.0, jitter=0.5, sleep=print, random=lambda: 1.0)
    assert jittered.delay(1) == 1.0


def test_unreachable_server_is_a_transport_error_after_bounded_retries() -> None:
    slept: list[float] = []
    client = CoinsClient(
        base_url="http://127.0.0.1:9",
        access_token="given-token",
        max_retries=2,
        backoff_factor=0.01,
        sleep=slept.append,
        jitter_random=lambda: 0.0,
    )
    with client, pytest.raises(TransportError, match="could not connect") as caught:
        client.get_config("WCC1")
    assert slept == [0.01, 0.02]
    assert isinstance(caught.value.__cause__, requests.RequestException)


def test_invalid_arguments_are_refused_before_sending() -> None:
    client = CoinsClient(base_url="http://127.0.0.1:9", access_token="t", max_retries=0)
    with pytest.raises(ValidationError) as caught:
        client.create_config(company_id="cekek", event="meal card", amount=-1)
    assert [p.field for p in caught.value.problems] == ["companyId", "event", "amount"]
    assert caught.value.http_status is None
    with pytest.raises(ValidationError):
        client.update_config("WCC1")  # nothing to change
    with pytest.raises(ValidationError):
        client.get_config("not an id")
    with pytest.raises(ValidationError):
        client.get_balance("")


def test_base_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="http"):
        CoinsClient(base_url="api.enkash.in")


def test_secrets_echoed_in_an_error_body_are_scrubbed_from_the_body_too() -> None:
    body = envelope(4000, "bad")
    body["payload"] = {"auth": "Bearer tok-abcdef", "seen": ["JSESSIONID=cookie123"]}
    error = error_from_response(answer(400, body), "Could not", secrets=("tok-abcdef",))
    assert "tok-abcdef" not in repr(error.body)
    assert error.body["payload"]["auth"] == "Bearer •••"


def test_a_cookie_value_echoed_alone_is_scrubbed() -> None:
    client = CoinsClient(
        base_url="http://127.0.0.1:9", access_token="tok-abcdef", cookie="JSESSIONID=cookie123"
    )
    body = envelope(4010, "unknown session cookie123 for token tok-abcdef")
    with client:
        error = client._error(answer(401, body), "Could not", None)
    shown = str(error) + repr(error.body)
    assert "cookie123" not in shown
    assert "tok-abcdef" not in shown


def test_a_login_refusal_that_echoes_the_password_does_not_repeat_it() -> None:
    refusal = answer(
        400, {"error": "invalid_grant", "error_description": "password s3cr3t-pass is wrong"}
    )
    tokens = TokenManager(
        send_login=lambda form, basic: refusal,
        client_id="C",
        client_secret="client-s3cret",
        username="u",
        password="s3cr3t-pass",
    )
    with pytest.raises(AuthError) as caught:
        tokens.token()
    shown = str(caught.value) + repr(caught.value) + repr(caught.value.body)
    assert "s3cr3t-pass" not in shown


def test_a_host_name_that_does_not_exist_fails_at_once_naming_the_host() -> None:
    slept: list[float] = []
    client = CoinsClient(
        base_url="http://nonexistent.invalid", access_token="given-token", sleep=slept.append
    )
    with client, pytest.raises(TransportError) as caught:
        client.get_config("WCC1")
    assert slept == []  # a name that does not resolve will not resolve in a few seconds either
    assert "nonexistent.invalid" in str(caught.value)
    assert "not found" in str(caught.value)
    assert isinstance(caught.value.__cause__, requests.RequestException)


def test_the_default_retry_budget_outlasts_a_twenty_percent_failure_rate() -> None:
    # A call fails for good only when every attempt fails. At 20% failed attempts (the fault
    # soak's mix) that must stay well under a 1% chance across a 10,000-row bulk run.
    with CoinsClient(base_url="http://127.0.0.1:9", access_token="t") as client:
        attempts = client.max_retries + 1
    assert 10_000 * 0.2**attempts < 0.01
