"""Bulk runs against a sandbox behind a token bucket: the run finds the pace on its own.

Every test has its own limit on one module sandbox (``set_rate_limit``), and checks outcomes,
never speed: every row created once, none failed for being throttled, pauses honoured, a
cancelled run resumed, the deadline kept.
"""

from __future__ import annotations

import io
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from toolkit import bulk
from toolkit.bulk.outcomes import DEADLINE_MESSAGE, THROTTLED_AT_DEADLINE_MESSAGE
from toolkit.bulk.planning import plan
from toolkit.bulk.results import RunResult
from toolkit.bulk.running import run
from toolkit.client import CoinsClient
from toolkit.pacing import PaceState
from toolkit.registry import Registry
from toolkit.sandbox import SandboxHandle, start_sandbox


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxHandle]:
    handle = start_sandbox(tmp_path_factory.mktemp("throttle") / "sandbox.sqlite3")
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def server(limited: SandboxHandle) -> Iterator[SandboxHandle]:
    limited.reset()
    limited.set_rate_limit(None)
    limited.clear_stats()
    yield limited
    limited.set_rate_limit(None)


@pytest.fixture
def client_options() -> dict[str, Any]:
    """Every client of this module (`make_client` in conftest.py): no server profile."""
    return {"timeout_s": 10.0, "backoff_factor": 0.05, "backoff_max": 0.2, "profile": None}


def sheet(path: Path, n: int, prefix: str = "CTHR") -> Path:
    lines = ["companyId,event,amount"]
    lines += [f"{prefix}{i:05d},MEAL_CARD_PAYMENT,{1 + i % 20}" for i in range(n)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def server_pairs(url: str) -> Counter[tuple[str, str]]:
    body = requests.get(url + "/_sandbox/configs", timeout=30).json()
    configs = body.get("payload", body) if isinstance(body, dict) else body
    return Counter((c["companyId"], c["event"]) for c in configs)


@pytest.fixture
def send(
    make_client: Callable[..., CoinsClient], server: SandboxHandle, tmp_path: Path
) -> Callable[..., RunResult]:
    """``send(sheet_path, **run_options)``: plan the sheet against one registry and run it with
    one client on ``server`` (the same client and registry for every call of a test)."""
    client = make_client(server)
    registry = Registry(tmp_path / "registry.sqlite3", client=client)

    def send_sheet(path: Path, **options: Any) -> RunResult:
        the_plan = plan(bulk.validate(bulk.read_configs(path)), registry)
        return run(the_plan, client=client, registry=registry, **options)

    return send_sheet


class Watch:
    """A progress callback that keeps every pace it was shown."""

    def __init__(self) -> None:
        self.paces: list[PaceState] = []
        self.calls = 0

    def __call__(self, done: int, total: int, counts: dict[str, int], *, pace: PaceState) -> None:
        self.calls += 1
        self.paces.append(pace)


@pytest.mark.parametrize("style", ["no-retry-after", "retry-after", "retry-after-decimal"])
def test_a_throttled_run_creates_every_row_and_fails_none(
    send: Callable[..., RunResult], server: SandboxHandle, tmp_path: Path, style: str
) -> None:
    server.set_rate_limit(25, burst=5, style=style)
    watch = Watch()
    result = send(sheet(tmp_path / "c.csv", 120), progress=watch)

    stats = server.stats()
    assert stats["throttled"] > 0  # the limit was met
    assert result.counts["created"] == 120
    assert result.counts["failed"] == 0 and result.ok
    pairs = server_pairs(server.url)
    assert len(pairs) == 120 and max(pairs.values()) == 1
    # Every throttled answer was seen as such, and progress said the server was throttling.
    assert result.throttled == stats["throttled"]
    assert any(p.throttling for p in watch.paces)
    assert result.pace is not None and result.pace.limit is not None
    if style != "no-retry-after":
        assert any(p.paused_s > 0 for p in watch.paces)  # the server's pause, for all workers
    assert "throttled" in result.summary()


def test_the_progress_bar_shows_the_rate_and_the_servers_throttling(
    send: Callable[..., RunResult], server: SandboxHandle, tmp_path: Path
) -> None:
    server.set_rate_limit(20, burst=2, style="no-retry-after")
    shown = io.StringIO()
    bar = bulk.ProgressBar(file=shown, mininterval=0, desc="bulk-create")
    result = send(sheet(tmp_path / "p.csv", 60), progress=bar)
    assert result.counts["created"] == 60 and result.throttled > 0
    text = shown.getvalue()
    assert "req/s=" in text and "server=throttling" in text
    assert "60/60" in text


def test_velocity_codes_are_throttling_not_failures(
    send: Callable[..., RunResult], server: SandboxHandle, tmp_path: Path
) -> None:
    # EnKash's velocity limit answers HTTP 200 with response_code 36 (the client reads it as
    # throttled; see toolkit.answers): the rows are sent again, never failed.
    server.set_rate_limit(25, burst=5, style="velocity")
    result = send(sheet(tmp_path / "v.csv", 80))

    assert server.stats()["throttled"] > 0
    assert result.counts["created"] == 80 and result.counts["failed"] == 0
    assert result.throttled == server.stats()["throttled"]
    assert max(server_pairs(server.url).values()) == 1


def test_a_run_cancelled_mid_throttle_resumes_cleanly(
    send: Callable[..., RunResult], server: SandboxHandle, tmp_path: Path
) -> None:
    server.set_rate_limit(10, burst=2, style="retry-after")
    path = sheet(tmp_path / "cancel.csv", 200, prefix="CCAN")
    cancel = threading.Event()

    def stop_when_throttled(done: int, total: int, counts: dict[str, int], **kw: Any) -> None:
        pace: PaceState = kw["pace"]
        if counts.get("created", 0) >= 10 and (pace.throttling or pace.paused_s > 0):
            cancel.set()

    first = send(path, progress=stop_when_throttled, cancel=cancel)
    assert first.cancelled
    assert first.counts["failed"] == 0
    assert first.counts["created"] + first.counts["skipped"] == 200
    assert 10 <= first.counts["created"] < 200
    assert set(first.frame.loc[first.frame["status"] == "skipped", "message"]) == {
        "cancelled — run again to resume"
    }

    server.set_rate_limit(None)
    again = send(path)

    assert again.run_id == first.run_id  # the same file: resumed
    assert again.reused == first.counts["created"]
    assert again.counts["created"] == 200 and again.ok
    pairs = server_pairs(server.url)
    assert len(pairs) == 200 and max(pairs.values()) == 1


def test_rows_fail_only_when_the_runs_deadline_passes(
    send: Callable[..., RunResult], server: SandboxHandle, tmp_path: Path
) -> None:
    # A server that lets through two requests, then almost nothing: the deadline ends the run.
    server.set_rate_limit(0.2, burst=2, style="no-retry-after")
    path = sheet(tmp_path / "deadline.csv", 30, prefix="CDED")
    result = send(path, concurrency=4, deadline_s=3.0)

    assert result.deadline_reached and not result.cancelled
    counts = result.counts
    assert counts["created"] >= 1
    assert counts["created"] + counts["failed"] + counts["skipped"] == 30
    # Rows that did not get through say it was the deadline: those the server was throttling
    # failed (never more than were in flight), the others were not sent.
    frame = result.frame
    assert set(frame.loc[frame["status"] == "failed", "message"]) <= {THROTTLED_AT_DEADLINE_MESSAGE}
    assert set(frame.loc[frame["status"] == "skipped", "message"]) == {DEADLINE_MESSAGE}
    assert counts["failed"] <= 4
    assert "deadline" in result.summary()
    # Nothing was created twice, and the rows the server did accept are on it.
    pairs = server_pairs(server.url)
    assert max(pairs.values()) == 1 and len(pairs) == counts["created"]


def test_explicit_caps_are_never_exceeded(send: Callable[..., RunResult], tmp_path: Path) -> None:
    watch = Watch()
    result = send(sheet(tmp_path / "caps.csv", 40), concurrency=2, rps=15, progress=watch)

    assert result.counts["created"] == 40
    assert all(p.rate <= 15 and p.concurrency == 2 for p in watch.paces)
    # 40 requests at 15 a second take at least 39 / 15 seconds, whatever the machine.
    assert result.elapsed_s >= 39 / 15


def test_bad_caps_are_refused(
    send: Callable[..., RunResult], server: SandboxHandle, tmp_path: Path
) -> None:
    path = sheet(tmp_path / "bad.csv", 2)
    for kwargs, match in (
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": "lots"}, "concurrency"),
        ({"rps": -1}, "rps"),
        ({"deadline_s": 0}, "deadline"),
    ):
        with pytest.raises(ValueError, match=match):
            send(path, **kwargs)
    assert server.stats()["api_requests"] == 0
