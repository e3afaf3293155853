"""Retries under each sandbox fault: transient failures end in success, nothing happens twice.

Each test turns a fault on at rate 1 and turns it off from the client's own backoff sleep, so
the first attempt always fails and the retry always meets a healthy server — no timing races.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests

from toolkit.client import CoinsClient
from toolkit.errors import ConflictError, EnKashError, ServerError, UnconfirmedError

HEALTHY = {
    "latency_ms": 0,
    "error_rate": 0.0,
    "rate_limit_rate": 0.0,
    "slow_after_commit_rate": 0.0,
    "drop_rate": 0.0,
}


def healing_sleep(handle: Any, slept: list[float], then: Callable[[], None] | None = None):
    """A backoff sleep that records its delay and makes the sandbox healthy again."""

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        handle.set_faults(**HEALTHY)
        if then is not None:
            then()

    return sleep


@pytest.fixture
def client_options() -> dict[str, Any]:
    """Every client of this module (`make_client` in conftest.py)."""
    return {
        "timeout_s": 0.5,
        "max_retries": 3,
        "backoff_factor": 0.05,
        "jitter_random": lambda: 0.0,
    }


def healing_client(
    make_client: Callable[..., CoinsClient], handle: Any, slept: list[float], **overrides: Any
) -> CoinsClient:
    """A client whose backoff sleep heals the sandbox (`healing_sleep`), logged in already."""
    client = make_client(handle, **{"sleep": healing_sleep(handle, slept), **overrides})
    client.get_balance("EKWARMUP")  # log in while the sandbox is healthy
    return client


def sandbox_configs(handle: Any) -> list[dict[str, Any]]:
    answer = requests.get(handle.url + "/_sandbox/configs", timeout=5)
    answer.raise_for_status()
    body = answer.json()
    return body.get("payload", body) if isinstance(body, dict) else body


@pytest.mark.parametrize(
    "fault",
    [
        {"error_rate": 1.0},
        {"rate_limit_rate": 1.0},
        {"drop_rate": 1.0},
        {"latency_ms": 1500},
    ],
    ids=["5xx", "429", "drop", "read-timeout"],
)
def test_get_and_update_succeed_after_a_transient_fault(
    make_client: Callable[..., CoinsClient], fresh_sandbox: Any, fault: dict[str, Any]
) -> None:
    slept: list[float] = []
    with healing_client(make_client, fresh_sandbox, slept) as client:
        created = client.create_config(company_id="CEKEKCARDS", event="MEAL_CARD_PAYMENT", amount=6)
        fresh_sandbox.set_faults(**fault)
        assert client.get_config(created.coin_config_id) == created
        assert len(slept) == 1
        fresh_sandbox.set_faults(**fault)
        assert client.update_config(created.coin_config_id, amount=9).amount == 9
        assert len(slept) == 2


@pytest.mark.parametrize(
    "fault",
    [
        {"error_rate": 1.0},
        {"rate_limit_rate": 1.0},
        {"drop_rate": 1.0},
        {"slow_after_commit_rate": 1.0, "slow_after_commit_ms": 1500},
        {"latency_ms": 1500},
    ],
    ids=["5xx", "429", "drop", "slow-after-commit", "read-timeout"],
)
def test_create_after_a_transient_fault_creates_exactly_one_config(
    make_client: Callable[..., CoinsClient], fresh_sandbox: Any, fault: dict[str, Any]
) -> None:
    slept: list[float] = []
    with healing_client(make_client, fresh_sandbox, slept) as client:
        fresh_sandbox.set_faults(**fault)
        config = client.create_config(company_id="CEKEKCARDS", event="MEAL_CARD_PAYMENT", amount=6)
        assert len(slept) == 1
    configs = sandbox_configs(fresh_sandbox)
    mine = [c for c in configs if c["companyId"] == "CEKEKCARDS"]
    assert [c["coinConfigId"] for c in mine] == [config.coin_config_id]


def test_retry_after_is_honoured(
    make_client: Callable[..., CoinsClient], fresh_sandbox: Any
) -> None:
    slept: list[float] = []
    with healing_client(make_client, fresh_sandbox, slept) as client:
        fresh_sandbox.set_faults(rate_limit_rate=1.0)
        client.get_balance("EKU1")
        fresh_sandbox.set_faults(rate_limit_rate=1.0)
        client.create_config(company_id="CEKEKCARDS", event="MEAL_CARD_PAYMENT", amount=6)
    assert slept == pytest.approx([1.0, 1.0], abs=0.05)


def test_backoff_grows_and_the_budget_is_bounded(
    make_client: Callable[..., CoinsClient], fresh_sandbox: Any
) -> None:
    slept: list[float] = []
    with healing_client(make_client, fresh_sandbox, slept, sleep=slept.append) as client:
        fresh_sandbox.set_faults(error_rate=1.0)
        with pytest.raises(ServerError):
            client.get_balance("EKU1")
        assert slept == [0.05, 0.1, 0.2]
        slept.clear()
        # Every attempt answered 5xx: any of them may have been processed.
        with pytest.raises(UnconfirmedError):
            client.create_config(company_id="CEKEKCARDS", event="MEAL_CARD_PAYMENT", amount=6)
        assert slept == [0.05, 0.1, 0.2]


def test_allocation_after_slow_after_commit_is_made_once(
    make_client: Callable[..., CoinsClient], fresh_sandbox: Any
) -> None:
    slept: list[float] = []
    with healing_client(make_client, fresh_sandbox, slept) as client:
        client.create_config(company_id="CEKEKCARDS", event="MEAL_CARD_PAYMENT", amount=6)
        fresh_sandbox.set_faults(slow_after_commit_rate=1.0, slow_after_commit_ms=1500)
        allocation = client.allocate_coins(
            company_id="CEKEKCARDS", event="MEAL_CARD_PAYMENT", user_id="EKU1"
        )
        # Our own repeat was refused as a duplicate: the first attempt had made it.
        assert allocation.confirmed and not allocation.already_done
        assert len(slept) == 1
        assert client.get_balance("EKU1") == 6


def test_allocation_after_a_5xx_is_made_once(
    make_client: Callable[..., CoinsClient], fresh_sandbox: Any
) -> None:
    slept: list[float] = []
    with healing_client(make_client, fresh_sandbox, slept) as client:
        client.create_config(company_id="CEKEKCARDS", event="MEAL_CARD_PAYMENT", amount=6)
        fresh_sandbox.set_faults(error_rate=1.0)
        allocation = client.allocate_coins(
            company_id="CEKEKCARDS", event="MEAL_CARD_PAYMENT", user_id="EKU1"
        )
        assert not allocation.already_done
        assert client.get_balance("EKU1") == 6


def test_create_conflict_with_other_values_after_a_failure_is_a_conflict(
    make_client: Callable[..., CoinsClient],
    fresh_sandbox: Any,
) -> None:
    slept: list[float] = []
    rival = CoinsClient(base_url=fresh_sandbox.url, **fresh_sandbox.credentials)

    def rival_creates() -> None:
        rival.create_config(company_id="CEKEKCARDS", event="MEAL_CARD_PAYMENT", amount=99)

    client = healing_client(
        make_client,
        fresh_sandbox,
        slept,
        sleep=healing_sleep(fresh_sandbox, slept, then=rival_creates),
    )
    with client, rival:
        fresh_sandbox.set_faults(error_rate=1.0)
        with pytest.raises(ConflictError) as caught:
            client.create_config(company_id="CEKEKCARDS", event="MEAL_CARD_PAYMENT", amount=6)
    existing = [c for c in sandbox_configs(fresh_sandbox) if c["companyId"] == "CEKEKCARDS"]
    assert len(existing) == 1 and existing[0]["amount"] == 99
    assert caught.value.existing_id == existing[0]["coinConfigId"]
    assert "other values" in str(caught.value)


def test_a_redirect_is_never_followed_and_says_where_it_pointed(
    make_client: Callable[..., CoinsClient], fresh_sandbox: Any
) -> None:
    """A gateway's 302 to its sign-in page: a read is tried again, then refused naming the
    redirect; a create is unconfirmed (a redirected write may have been processed), never
    followed as a GET to the sign-in page."""
    slept: list[float] = []
    with healing_client(make_client, fresh_sandbox, slept, sleep=slept.append) as client:
        fresh_sandbox.set_faults(redirect_rate=1.0)
        with pytest.raises(EnKashError) as read:
            client.get_balance("EKU1")
        assert "redirect (HTTP 302 to /sso/login?next=" in str(read.value)
        assert "ENKASH_BASE_URL" in str(read.value)
        assert len(slept) == 3  # read again, as after any unreadable answer
        with pytest.raises(UnconfirmedError) as write:
            client.create_config(company_id="CEKEKCARDS", event="MEAL_CARD_PAYMENT", amount=6)
        assert "redirect (HTTP 302" in str(write.value)
    assert sandbox_configs(fresh_sandbox) == []
    stats = requests.get(fresh_sandbox.url + "/_sandbox/stats", timeout=5).json()["payload"]
    assert stats["redirected"] >= 2
