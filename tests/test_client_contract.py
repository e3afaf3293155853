"""Every call of `CoinsClient` and every error path, against the real sandbox over loopback."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest
import requests

from toolkit.answers import error_for
from toolkit.client import CREATE_PATH, ApiCall, CoinsClient
from toolkit.errors import (
    AuthError,
    ConflictError,
    EnKashError,
    NotFoundError,
    RateLimitError,
    ServerError,
    TransportError,
    UnconfirmedError,
    ValidationError,
)
from toolkit.models import Allocation, CoinConfig, Configuration

QUICK_FAILING: dict[str, Any] = {
    "timeout_s": 2.0,
    "max_retries": 2,
    "backoff_factor": 0.01,
    "sleep": lambda seconds: None,
}


@pytest.fixture
def client_options() -> dict[str, Any]:
    """Every client of this module (`make_client` in conftest.py): quick to fail."""
    return QUICK_FAILING


@pytest.fixture
def client(make_client: Callable[..., CoinsClient], fresh_sandbox: Any) -> Any:
    with make_client(fresh_sandbox) as client:
        yield client


class ListRecorder:
    def __init__(self) -> None:
        self.calls: list[ApiCall] = []
        self.lock = threading.Lock()

    def record_call(self, call: ApiCall) -> None:
        with self.lock:
            self.calls.append(call)


# -- the calls --------------------------------------------------------------------------


def test_create_returns_the_configuration_with_its_new_id(client: CoinsClient) -> None:
    config = client.create_config(
        company_id="CEKEKCARDS", event="MEAL_CARD_PAYMENT", amount=6, configuration="default"
    )
    assert config.coin_config_id and config.coin_config_id.startswith("WCC")
    assert config == CoinConfig(
        config.coin_config_id, "CEKEKCARDS", "MEAL_CARD_PAYMENT", Configuration.DEFAULT, 6
    )


def test_get_returns_what_was_created(client: CoinsClient) -> None:
    created = client.create_config(
        company_id="CEK0TCW2W8", event="REFERRAL_EVENT", amount=25, configuration="CUSTOM"
    )
    assert client.get_config(created.coin_config_id) == created


def test_update_answer_without_company_id_is_merged_not_blanked(client: CoinsClient) -> None:
    created = client.create_config(company_id="CEKEKCARDS", event="INVOICE_PAYMENT", amount=4)
    updated = client.update_config(
        created.coin_config_id, amount=10, configuration="CUSTOM", known=created
    )
    assert updated == CoinConfig(
        created.coin_config_id, "CEKEKCARDS", "INVOICE_PAYMENT", Configuration.CUSTOM, 10
    )
    assert client.get_config(created.coin_config_id) == updated


def test_update_without_known_leaves_an_unanswered_field_unknown(client: CoinsClient) -> None:
    created = client.create_config(company_id="CEKEKCARDS", event="INVOICE_PAYMENT", amount=4)
    updated = client.update_config(created.coin_config_id, amount=10)
    # The answer names no company and none was sent: unknown (None), never invented or blank.
    assert updated == CoinConfig(
        created.coin_config_id, None, "INVOICE_PAYMENT", Configuration.DEFAULT, 10
    )


def test_update_prefers_what_was_sent_then_what_was_known(client: CoinsClient) -> None:
    created = client.create_config(company_id="CEKEKCARDS", event="INVOICE_PAYMENT", amount=4)
    moved = client.update_config(created.coin_config_id, company_id="CEK0TCW2W8", known=created)
    assert moved.company_id == "CEK0TCW2W8"
    assert moved.amount == 4 and moved.event == "INVOICE_PAYMENT"


def test_update_of_an_unknown_id_is_not_found(client: CoinsClient) -> None:
    with pytest.raises(NotFoundError) as caught:
        client.update_config("WCC000000", amount=1)
    assert caught.value.http_status == 404


def test_get_of_an_unknown_id_is_not_found(client: CoinsClient) -> None:
    with pytest.raises(NotFoundError) as caught:
        client.get_config("WCC000000")
    assert "WCC000000" in str(caught.value)
    assert "HTTP 404" in str(caught.value)


def test_allocate_generates_a_request_id_and_awards_the_configured_amount(
    client: CoinsClient,
) -> None:
    client.create_config(company_id="CEKEKCARDS", event="MEAL_CARD_PAYMENT", amount=6)
    before = client.get_balance("EKQZVMQK")
    allocation = client.allocate_coins(
        company_id="CEKEKCARDS", event="MEAL_CARD_PAYMENT", user_id="EKQZVMQK"
    )
    assert isinstance(allocation, Allocation)
    assert allocation.request_id.startswith("COIN_REQ")
    assert allocation.message == "Successfully allocated enkash Coins"
    assert not allocation.already_done
    assert client.get_balance("EKQZVMQK") == before + 6


def test_balance_of_an_unknown_user_is_zero(client: CoinsClient) -> None:
    assert client.get_balance("EKNOBODY") == 0


def test_repeated_request_id_is_a_conflict_unless_told_it_is_done(client: CoinsClient) -> None:
    client.create_config(company_id="CEKEKCARDS", event="MEAL_CARD_PAYMENT", amount=6)
    first = client.allocate_coins(
        company_id="CEKEKCARDS", event="MEAL_CARD_PAYMENT", user_id="EKU1", request_id="COIN_R1"
    )
    assert first.request_id == "COIN_R1"
    with pytest.raises(ConflictError) as caught:
        client.allocate_coins(
            company_id="CEKEKCARDS", event="MEAL_CARD_PAYMENT", user_id="EKU1", request_id="COIN_R1"
        )
    assert "COIN_R1" in str(caught.value)
    again = client.allocate_coins(
        company_id="CEKEKCARDS",
        event="MEAL_CARD_PAYMENT",
        user_id="EKU1",
        request_id="COIN_R1",
        duplicate_is_done=True,
    )
    assert again.already_done
    assert client.get_balance("EKU1") == 6


def test_allocate_without_a_configuration_is_not_found(client: CoinsClient) -> None:
    with pytest.raises(NotFoundError) as caught:
        client.allocate_coins(company_id="CEKNONE", event="NO_SUCH_EVENT", user_id="EKU1")
    assert caught.value.request_id and caught.value.request_id.startswith("COIN_REQ")


# -- error paths ------------------------------------------------------------------------


def test_second_create_of_a_pair_is_a_conflict_naming_the_existing_id(
    client: CoinsClient,
) -> None:
    first = client.create_config(company_id="CEKEKCARDS", event="MEAL_CARD_PAYMENT", amount=6)
    with pytest.raises(ConflictError) as caught:
        client.create_config(company_id="CEKEKCARDS", event="MEAL_CARD_PAYMENT", amount=6)
    error = caught.value
    assert error.existing_id == first.coin_config_id
    assert error.http_status == 409
    text = str(error)
    assert text.startswith("Could not create MEAL_CARD_PAYMENT for CEKEKCARDS: ")
    assert first.coin_config_id in text and text.endswith(")")


def test_server_side_validation_maps_to_validation_error(client: CoinsClient) -> None:
    # The client refuses bad input before sending; this reaches the server on purpose.
    answer = client.diagnose("POST", CREATE_PATH, json={"amount": "six"}, write="create")
    error = error_for(answer, "Could not create")
    assert isinstance(error, ValidationError)
    assert error.http_status == 400


def test_unknown_token_without_credentials_is_an_auth_error(fresh_sandbox: Any) -> None:
    client = CoinsClient(base_url=fresh_sandbox.url, access_token="not-a-token")
    with client, pytest.raises(AuthError) as caught:
        client.get_balance("EKU1")
    assert caught.value.http_status == 401
    assert "not-a-token" not in str(caught.value)


def test_server_errors_after_the_budget_are_server_errors(
    make_client: Callable[..., CoinsClient], fresh_sandbox: Any
) -> None:
    with make_client(fresh_sandbox) as client:
        client.get_balance("EKU1")  # log in before the faults
        fresh_sandbox.set_faults(error_rate=1.0)
        with pytest.raises(ServerError) as caught:
            client.get_balance("EKU1")
        assert caught.value.http_status in (500, 503)
        # A create answered 5xx to the end may have been made by any attempt: not "failed".
        with pytest.raises(UnconfirmedError):
            client.create_config(company_id="CEKEKCARDS", event="MEAL_CARD_PAYMENT", amount=6)


def test_rate_limit_after_the_budget_is_a_rate_limit_error(
    make_client: Callable[..., CoinsClient], fresh_sandbox: Any
) -> None:
    with make_client(fresh_sandbox) as client:
        client.get_balance("EKU1")
        fresh_sandbox.set_faults(rate_limit_rate=1.0)
        with pytest.raises(RateLimitError) as caught:
            client.get_balance("EKU1")
        assert caught.value.http_status == 429
        assert caught.value.retry_after == 1.0


def test_dropped_connections_after_the_budget_are_transport_errors(
    make_client: Callable[..., CoinsClient], fresh_sandbox: Any
) -> None:
    with make_client(fresh_sandbox) as client:
        client.get_balance("EKU1")
        fresh_sandbox.set_faults(drop_rate=1.0)
        with pytest.raises(TransportError) as caught:
            client.get_balance("EKU1")
        assert "closed before an answer" in str(caught.value)
        assert isinstance(caught.value.__cause__, requests.RequestException)


def test_no_answer_in_time_is_a_transport_error(
    make_client: Callable[..., CoinsClient], fresh_sandbox: Any
) -> None:
    # The timeout also bounds the warm-up call (login + balance), so it must leave room for a
    # busy machine; the injected latency is far above it, so the second call can never make it.
    with make_client(fresh_sandbox, timeout_s=1.5, max_retries=0) as client:
        client.get_balance("EKU1")
        fresh_sandbox.set_faults(latency_ms=6000)
        with pytest.raises(TransportError, match=r"no answer within 1\.5 s"):
            client.get_balance("EKU1")


def test_unreachable_server_is_a_transport_error(
    make_client: Callable[..., CoinsClient], fresh_sandbox: Any
) -> None:
    client = make_client(fresh_sandbox, base_url="http://127.0.0.1:9")
    with client, pytest.raises(TransportError, match="could not connect"):
        client.get_balance("EKU1")


# -- recorder, secrets, settings ---------------------------------------------------------


def test_recorder_sees_every_call_success_and_failure(
    make_client: Callable[..., CoinsClient], fresh_sandbox: Any
) -> None:
    recorder = ListRecorder()
    with make_client(fresh_sandbox, recorder=recorder, source="cli", actor="asha") as client:
        created = client.create_config(company_id="CEKEKCARDS", event="MEAL_CARD_PAYMENT", amount=6)
        client.get_config(created.coin_config_id, source="app")
        client.update_config(created.coin_config_id, amount=7, known=created)
        client.allocate_coins(company_id="CEKEKCARDS", event="MEAL_CARD_PAYMENT", user_id="EKU1")
        with pytest.raises(NotFoundError):
            client.get_config("WCC000000")
        with pytest.raises(ValidationError):
            client.create_config(company_id="bad", event="MEAL_CARD_PAYMENT", amount=1)
    actions = [(c.action, c.source, c.error is None) for c in recorder.calls]
    assert actions == [
        ("create", "cli", True),
        ("get", "app", True),
        ("update", "cli", True),
        ("allocate", "cli", True),
        ("get", "cli", False),
        ("create", "cli", False),
    ]
    create, _, update, allocate, missing, invalid = recorder.calls
    assert create.coin_config_id == created.coin_config_id and create.result == created
    assert create.request == {
        "companyId": "CEKEKCARDS",
        "event": "MEAL_CARD_PAYMENT",
        "configuration": "DEFAULT",
        "amount": 6,
    }
    assert update.known_before == created and update.result.amount == 7
    assert isinstance(allocate.result, Allocation)
    assert isinstance(missing.error, NotFoundError) and missing.coin_config_id == "WCC000000"
    assert isinstance(invalid.error, ValidationError) and invalid.error.http_status is None
    assert all(c.actor == "asha" and c.at.tzinfo is not None for c in recorder.calls)
    assert {c.server_key for c in recorder.calls} == {fresh_sandbox.url}


def test_a_failing_recorder_never_hides_the_result(
    make_client: Callable[..., CoinsClient], fresh_sandbox: Any, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        def record_call(self, call: ApiCall) -> None:
            raise RuntimeError("disk full")

    with make_client(fresh_sandbox, recorder=Broken()) as client:
        config = client.create_config(company_id="CEKEKCARDS", event="MEAL_CARD_PAYMENT", amount=6)
        assert config.coin_config_id
        with pytest.raises(NotFoundError):
            client.get_config("WCC000000")
    assert "recorder failed" in caplog.text


def test_secrets_never_appear_in_repr_errors_or_logs(
    make_client: Callable[..., CoinsClient], fresh_sandbox: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    creds = fresh_sandbox.credentials
    errors: list[EnKashError] = []
    with make_client(fresh_sandbox, cookie="JSESSIONID=cookie-secret-1") as client:
        client.create_config(company_id="CEKEKCARDS", event="MEAL_CARD_PAYMENT", amount=6)
        token = client._tokens.token()
        try:
            client.create_config(company_id="CEKEKCARDS", event="MEAL_CARD_PAYMENT", amount=6)
        except ConflictError as exc:
            errors.append(exc)
        shown = [repr(client), str(client.token_state()), repr(client._tokens)]
    with make_client(fresh_sandbox, password="wrong-password-1") as refused:
        try:
            refused.get_balance("EKU1")
        except AuthError as exc:
            errors.append(exc)
        shown.append(repr(refused))
    shown += [str(e) for e in errors] + [repr(e) for e in errors]
    shown += [record.getMessage() for record in caplog.records]
    assert (
        repr(client)
        == f"CoinsClient(base_url={fresh_sandbox.url!r}, username={creds['username']!r})"
    )
    secrets = [
        creds["client_secret"],
        creds["password"],
        token,
        "cookie-secret-1",
        "wrong-password-1",
    ]
    for text in shown:
        for secret in secrets:
            assert secret not in text


def test_cookie_setting_is_sent_as_a_cookie_header(
    make_client: Callable[..., CoinsClient], fresh_sandbox: Any
) -> None:
    seen: list[str | None] = []
    with make_client(fresh_sandbox, cookie="_cfuvid=abc; JSESSIONID=def") as client:
        client._session.hooks["response"].append(
            lambda response, **_: seen.append(response.request.headers.get("Cookie"))
        )
        client.get_balance("EKU1")
    assert seen and set(seen) == {"_cfuvid=abc; JSESSIONID=def"}


def test_from_settings_uses_the_given_server(fresh_sandbox: Any) -> None:
    with CoinsClient.from_settings(fresh_sandbox.settings(), max_retries=1) as client:
        assert client.base_url == fresh_sandbox.url.rstrip("/")
        assert client.server_key == client.base_url
        assert client.get_balance("EKU1") == 0


def test_without_a_base_url_the_embedded_sandbox_is_used(tmp_path: Any) -> None:
    from toolkit.settings import Settings
    from toolkit.workspace import open_client

    with open_client(Settings(home=tmp_path)) as client:
        assert client.server_key == "sandbox:" + str((tmp_path / "sandbox.sqlite3").resolve())
        assert client.base_url.startswith("http://127.0.0.1:")
        assert client.get_balance("EKNOBODY") == 0


def test_a_client_from_settings_alone_needs_a_base_url(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No sandbox is started behind the analyst's back: the error names `toolkit.connect()`."""
    from toolkit.settings import Settings, SettingsError

    with pytest.raises(SettingsError, match=r"toolkit\.connect\(\)"):
        CoinsClient.from_settings(Settings(home=tmp_path))
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.delenv("ENKASH_BASE_URL", raising=False)
    monkeypatch.setenv("COINS_HOME", str(tmp_path / "home"))
    with pytest.raises(SettingsError, match="ENKASH_BASE_URL"):
        CoinsClient.from_env()
    assert not (tmp_path / "sandbox.sqlite3").exists()
    assert not (tmp_path / "home" / "sandbox.sqlite3").exists()


def test_token_state_never_shows_the_token(client: CoinsClient) -> None:
    assert client.token_state()["state"] == "none"
    client.get_balance("EKU1")
    state = client.token_state()
    assert state["state"] == "valid" and 0 < state["expires_in_s"] <= 300
    assert client._tokens.token() not in str(state)


def test_from_env_reads_the_environment(
    fresh_sandbox: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("ENKASH_BASE_URL", fresh_sandbox.url + "/")
    monkeypatch.setenv("ENKASH_TIMEOUT_S", "3")
    for name, value in fresh_sandbox.credentials.items():
        monkeypatch.setenv(f"ENKASH_{name.upper()}", value)
    with CoinsClient.from_env(source="notebook") as client:
        assert client.base_url == fresh_sandbox.url.rstrip("/")
        assert client.timeout_s == 3.0 and client.source == "notebook"
        assert client.get_balance("EKU1") == 0
