"""Soak: 1,000 creates from 16 threads through one client under every fault at once."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from conftest import sandbox_profile

from toolkit.client import CoinsClient
from toolkit.sandbox import start_sandbox

EVENTS = [f"SOAK_EVENT_{n:02d}" for n in range(40)]
PAIRS = [(f"CEKSOAK{n // len(EVENTS):03d}", EVENTS[n % len(EVENTS)]) for n in range(1000)]


@pytest.fixture
def faulty_sandbox() -> Iterator[Any]:
    handle = start_sandbox(fault_seed=20240611)
    try:
        yield handle
    finally:
        handle.stop()


@pytest.mark.slow
def test_thousand_creates_under_faults_leave_exactly_a_thousand_configs(
    faulty_sandbox: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="toolkit.client")
    client = CoinsClient(
        base_url=faulty_sandbox.url,
        **faulty_sandbox.credentials,
        # Well above a normal answer on a busy 2-core machine (16 client threads share the GIL
        # with the sandbox), well below a slow-after-commit answer: those stay ambiguous.
        timeout_s=2.0,
        max_retries=8,
        backoff_factor=0.05,
        backoff_max=0.5,
        pool_maxsize=16,
        profile=sandbox_profile(faulty_sandbox),
    )
    client.get_balance("EKWARMUP")
    faulty_sandbox.set_faults(
        error_rate=0.10,
        rate_limit_rate=0.05,
        slow_after_commit_rate=0.03,
        slow_after_commit_ms=5000,
        drop_rate=0.02,
    )

    def create(pair: tuple[str, str]) -> str | None:
        company_id, event = pair
        config = client.create_config(company_id=company_id, event=event, amount=5)
        assert (config.company_id, config.event, config.amount) == (company_id, event, 5)
        return config.coin_config_id

    with client, ThreadPoolExecutor(16) as pool:
        returned = list(pool.map(create, PAIRS))
    faulty_sandbox.set_faults(
        error_rate=0, rate_limit_rate=0, slow_after_commit_rate=0, drop_rate=0
    )

    answer = requests.get(faulty_sandbox.url + "/_sandbox/configs", timeout=10)
    answer.raise_for_status()
    body = answer.json()
    configs = body.get("payload", body) if isinstance(body, dict) else body
    assert len(configs) == 1000
    assert len({(c["companyId"], c["event"]) for c in configs}) == 1000
    assert all(returned) and len(set(returned)) == 1000
    assert set(returned) == {c["coinConfigId"] for c in configs}
    # The ambiguous case really happened: creates whose answer was lost were found, not redone.
    assert any("an earlier attempt had created" in r.getMessage() for r in caplog.records)


@pytest.mark.slow
def test_allocations_under_faults_and_a_one_second_token_are_each_made_once() -> None:
    # Retries meet expired tokens here (backoff outlives the token), so the "duplicate requestId"
    # that follows a re-send must be read as our own earlier attempt, never as a conflict.
    with start_sandbox(token_ttl=1, fault_seed=7) as sandbox:
        client = CoinsClient(
            base_url=sandbox.url,
            **sandbox.credentials,
            timeout_s=1.5,  # above a normal answer on a busy machine, below a slow one
            backoff_factor=0.05,
            backoff_max=0.3,
            pool_maxsize=16,
            sleep=lambda s: time.sleep(min(s, 0.3)),  # Retry-After: 1 shortened
            profile=sandbox_profile(sandbox),
        )
        config = client.create_config(company_id="CEKSOAK", event="MEAL_CARD_PAYMENT", amount=3)
        sandbox.set_faults(
            error_rate=0.10,
            rate_limit_rate=0.05,
            slow_after_commit_rate=0.03,
            slow_after_commit_ms=4000,
            drop_rate=0.02,
        )
        users = [f"EKSOAK{n % 20:02d}" for n in range(400)]

        def allocate(n: int) -> str:
            done = client.allocate_coins(
                company_id=config.company_id,
                event=config.event,
                user_id=users[n],
                request_id=f"SOAK_REQ{n:04d}",
            )
            return done.request_id

        started = time.monotonic()
        with client, ThreadPoolExecutor(16) as pool:
            returned = list(pool.map(allocate, range(len(users))))
        renewals_possible = time.monotonic() - started > 1
        sandbox.clear_faults()
        allocations = sandbox.app.sandbox.store.list_allocations()
        balances = {user: sandbox.app.sandbox.store.balance(user) for user in set(users)}

    assert sorted(returned) == [f"SOAK_REQ{n:04d}" for n in range(len(users))]
    assert sorted(a["requestId"] for a in allocations) == sorted(returned)
    assert balances == {user: 3 * users.count(user) for user in set(users)}
    assert renewals_possible  # the run outlived at least one token
