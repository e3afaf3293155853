"""Soak: 1,000 creates from 16 threads through one client under every fault at once."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

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
        timeout_s=0.5,
        max_retries=8,
        backoff_factor=0.05,
        backoff_max=0.5,
        pool_maxsize=16,
    )
    client.get_balance("EKWARMUP")
    faulty_sandbox.set_faults(
        error_rate=0.10,
        rate_limit_rate=0.05,
        slow_after_commit_rate=0.03,
        slow_after_commit_ms=1500,
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
