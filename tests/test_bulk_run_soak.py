"""Fault soak: a bulk create through errors, 429s, lost answers and dropped connections."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import sandbox_profile

from toolkit import bulk
from toolkit.client import CoinsClient
from toolkit.registry import Registry
from toolkit.sandbox import start_sandbox

ROWS = 2_000


def _configs(url: str) -> list[dict[str, Any]]:
    body = requests.get(url + "/_sandbox/configs", timeout=60).json()
    return body.get("payload", body) if isinstance(body, dict) else body


@pytest.mark.slow
def test_fault_soak_creates_exactly_one_config_per_row(tmp_path: Path) -> None:
    faults = {
        "error_rate": 0.10,
        # Each 429 carries Retry-After: 1, and a bulk run pauses every worker for it.
        "rate_limit_rate": 0.01,
        "slow_after_commit_rate": 0.03,
        "slow_after_commit_ms": 4000,
        "drop_rate": 0.02,
    }
    sheet = tmp_path / "soak.csv"
    lines = ["companyId,event,amount,configuration"]
    lines += [f"CEKSOAK{i:05d},MEAL_CARD_PAYMENT,{1 + i % 99},DEFAULT" for i in range(ROWS)]
    sheet.write_text("\n".join(lines) + "\n", encoding="utf-8")

    with start_sandbox(tmp_path / "sandbox.sqlite3", fault_seed=20240611, **faults) as sandbox:
        # The timeout turns slow-after-commit answers into ambiguous failures, yet stays well
        # above a normal answer on a busy 2-core machine (16 client threads share the GIL with
        # the sandbox); the client's backoff is shortened so the soak stays short.
        client = CoinsClient(
            base_url=sandbox.url,
            **sandbox.credentials,
            timeout_s=1.5,
            max_retries=10,
            backoff_factor=0.02,
            backoff_max=0.1,
            sleep=lambda s: time.sleep(min(s, 0.1)),
            profile=sandbox_profile(sandbox),
        )
        registry = Registry(tmp_path / "registry.sqlite3", client=client)
        the_plan = bulk.plan(bulk.validate(bulk.read_configs(sheet)), registry)
        started = time.monotonic()
        result = bulk.run(the_plan, client=client, registry=registry, concurrency=16)
        elapsed = time.monotonic() - started
        client.close()
        configs = _configs(sandbox.url)

    assert len(result.frame) == ROWS
    assert result.counts["created"] == ROWS, result.frame["message"].value_counts().head()
    assert len(configs) == ROWS
    assert max(Counter((c["companyId"], c["event"]) for c in configs).values()) == 1
    ids = result.frame["coinConfigId"]
    assert ids.is_unique and set(ids) == {c["coinConfigId"] for c in configs}
    assert elapsed < 90
