"""The run-wide pacer: its decisions with time passed in, and real threads against the real
sandbox's token bucket (raw requests through the `Pacer` protocol, no client involved)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from toolkit.pacing import AdaptivePacer, Pacer, PaceState, RateController
from toolkit.sandbox import SandboxHandle, start_sandbox

BALANCE = "/api/v0/coins/balance"


def answer(control: RateController, at: float, granted: float, **kw: Any) -> None:
    control.answered(at, granted, throttled=kw.get("throttled", False), retry_after=kw.get("ra"))


def send(control: RateController, now: float) -> float:
    """One request through the gate at the earliest slot from ``now``: its grant time."""
    return control.grant(max(now, control.ready_at(now)))


# -- decisions, with time passed in -------------------------------------------------------


def test_the_adaptive_pacer_is_a_pacer() -> None:
    assert isinstance(AdaptivePacer(), Pacer)


def test_slow_start_raises_the_rate_while_answers_are_clean() -> None:
    control = RateController(now=0.0)
    first = control.rate
    now = 0.0
    for _ in range(60):
        granted = send(control, now)
        now = granted + 0.05
        answer(control, now, granted)
    assert control.slow_start
    assert control.rate > 4 * first


def test_the_rate_grows_past_twice_the_sent_rate_only_while_requests_wait_for_it() -> None:
    """RFC 7661: a rate the workers do not fill is not raised unseen; a rate they queue for
    (backlogged: it is what limits sending) grows as slow start says."""

    def grown(backlogged: bool) -> float:
        control = RateController(now=0.0)
        granted = send(control, 0.0)  # one request in the last quarter second
        for i in range(20):
            control.answered(
                0.05 + i * 0.001, granted, throttled=False, retry_after=None, backlogged=backlogged
            )
        return control.rate

    idle, queued = grown(False), grown(True)
    assert idle <= 8.0  # capped: twice one request in 0.25 s, or the starting rate
    assert queued > 4 * idle


def test_a_throttle_cuts_the_rate_once_per_episode() -> None:
    control = RateController(now=0.0)
    now, in_flight = 0.0, []
    for _ in range(200):  # clean answers until the rate is well up
        granted = send(control, now)
        in_flight.append(granted)
        now = granted
        if len(in_flight) > 4:
            answer(control, now + 0.05, in_flight.pop(0))
    high = control.rate
    throttled_at = now + 0.05
    answer(control, throttled_at, in_flight.pop(0), throttled=True)
    after_first = control.rate
    # The others were sent before the cut: the same episode, no further cut.
    for granted in in_flight:
        answer(control, throttled_at + 0.001, granted, throttled=True)
    assert not control.slow_start
    assert after_first < high
    assert control.rate == after_first
    assert control.throttled == 1 + len(in_flight)


def test_a_throttle_after_the_cut_is_a_new_episode() -> None:
    control = RateController(now=0.0, start_rps=100.0)
    g1 = send(control, 0.0)
    answer(control, 0.05, g1, throttled=True)
    first_cut = control.rate
    g2 = send(control, 0.06)
    answer(control, 0.11, g2, throttled=True)
    assert control.rate < first_cut


def test_retry_after_stops_every_slot_until_the_pause_ends() -> None:
    control = RateController(now=0.0, start_rps=50.0, random_source=lambda: 0.5)
    granted = send(control, 0.0)
    answer(control, 0.05, granted, throttled=True, ra=2.0)
    assert control.ready_at(0.06) >= 2.05
    # Sending resumes one request per 1/rate, not all at once (no herd on the same second).
    now = 2.05
    slots = [send(control, now) for _ in range(5)]
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert slots[0] >= 2.05
    assert all(gap >= 0.99 / control.rate for gap in gaps)


def test_the_pause_start_is_jittered() -> None:
    starts = set()
    for draw in (0.0, 0.5, 0.99):
        control = RateController(now=0.0, start_rps=10.0, random_source=lambda d=draw: d)
        granted = send(control, 0.0)
        answer(control, 0.05, granted, throttled=True, ra=1.0)
        starts.add(round(control.ready_at(0.06), 6))
    assert len(starts) == 3


def test_an_rps_cap_is_never_exceeded() -> None:
    control = RateController(now=0.0, rps_cap=20.0)
    grants = []
    now = 0.0
    for _ in range(400):
        granted = send(control, now)
        grants.append(granted)
        answer(control, granted + 0.001, granted)
        now = granted
    assert control.rate <= 20.0
    for i in range(len(grants) - 21):
        assert grants[i + 21] - grants[i] >= 1.0 - 1e-9  # at most 21 sends in any second


def test_with_a_cap_the_run_starts_at_it() -> None:
    assert RateController(now=0.0, rps_cap=35.0).rate == 35.0
    assert RateController(now=0.0).rate < 35.0


def test_a_concurrency_cap_is_the_concurrency() -> None:
    control = RateController(now=0.0, concurrency_cap=3)
    granted = send(control, 0.0)
    answer(control, 0.05, granted)
    assert control.concurrency(0.06) == 3


def test_auto_concurrency_starts_where_told_and_follows_the_rate() -> None:
    control = RateController(now=0.0, start_concurrency=16)
    assert control.concurrency(0.0) == 16
    control.slow_start = False
    control.srtt = 0.05
    control.rate = 200.0
    assert control.concurrency(1.0) >= 200.0 * 0.05  # Little's law: rate x latency
    control.rate = 10.0
    assert control.concurrency(1.0) < 16


def test_a_bad_cap_is_refused() -> None:
    with pytest.raises(ValueError, match="rps"):
        RateController(rps_cap=0)
    with pytest.raises(ValueError, match="concurrency"):
        RateController(concurrency_cap=0)


# -- the threaded pacer --------------------------------------------------------------------


def test_a_cancelled_pacer_refuses_turns_even_during_a_pause() -> None:
    pacer = AdaptivePacer(start_rps=100.0)
    assert pacer.wait_turn()
    pacer.on_answer(throttled=True, retry_after=30.0)
    assert pacer.state().paused_s > 20
    answers: list[bool] = []
    waiter = threading.Thread(target=lambda: answers.append(pacer.wait_turn()))
    waiter.start()
    pacer.cancel.set()
    waiter.join(timeout=10)
    assert not waiter.is_alive()
    assert answers == [False]


def test_a_pacer_past_its_deadline_refuses_turns() -> None:
    pacer = AdaptivePacer(start_rps=100.0, deadline=time.monotonic() + 0.2)
    assert pacer.wait_turn()
    pacer.on_answer(throttled=True, retry_after=30.0)
    assert not pacer.wait_turn()
    assert pacer.expired()


def test_pace_state_says_when_the_server_throttles() -> None:
    pacer = AdaptivePacer(start_rps=100.0)
    assert pacer.wait_turn()
    pacer.on_answer(throttled=False, retry_after=None)
    calm = pacer.state()
    assert isinstance(calm, PaceState) and not calm.throttling and calm.answers == 1
    assert pacer.wait_turn()
    pacer.on_answer(throttled=True, retry_after=5.0)
    busy = pacer.state()
    assert busy.throttling and busy.throttled == 1 and busy.paused_s > 0
    assert "paused" in busy.describe()


# -- real threads against the sandbox's token bucket ----------------------------------------


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxHandle]:
    handle = start_sandbox(tmp_path_factory.mktemp("limited") / "sandbox.sqlite3")
    try:
        yield handle
    finally:
        handle.stop()


def _token(handle: SandboxHandle) -> str:
    creds = handle.credentials
    answer = requests.post(
        handle.url + "/oauth/token",
        data={
            "username": creds["username"],
            "password": creds["password"],
            "grant_type": "password",
            "clientId": creds["client_id"],
        },
        auth=(creds["client_id"], creds["client_secret"]),
        timeout=10,
    )
    answer.raise_for_status()
    return answer.json()["access_token"]


def _is_throttled(response: requests.Response) -> bool:
    if response.status_code == 429:
        return True
    try:
        return response.json().get("response_code") in (36, 37)
    except ValueError:
        return False


def _drive(
    handle: SandboxHandle, pacer: AdaptivePacer, requests_wanted: int, threads: int
) -> list[tuple[float, float, bool, float | None]]:
    """``threads`` workers, each sending until ``requests_wanted`` were accepted in all; every
    throttled one is sent again. Returns (sent at, answered at, throttled, retry-after)."""
    session = requests.Session()
    session.trust_env = False
    session.headers["Authorization"] = f"Bearer {_token(handle)}"
    session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=threads))
    lock = threading.Lock()
    left = [requests_wanted]
    log: list[tuple[float, float, bool, float | None]] = []

    def worker() -> None:
        while True:
            with lock:
                if left[0] <= 0:
                    return
                left[0] -= 1
            while True:
                assert pacer.wait_turn()
                sent = time.monotonic()
                response = session.get(handle.url + BALANCE, params={"userId": "U1"}, timeout=10)
                throttled = _is_throttled(response)
                raw = response.headers.get("Retry-After")
                retry_after = float(raw) if raw else None
                pacer.on_answer(throttled=throttled, retry_after=retry_after)
                with lock:
                    log.append((sent, time.monotonic(), throttled, retry_after))
                if not throttled:
                    break

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    session.close()
    assert not any(w.is_alive() for w in workers)
    return log


@pytest.mark.parametrize("style", ["no-retry-after", "velocity"])
def test_a_shared_pacer_finds_a_token_buckets_limit_with_few_throttles(
    limited: SandboxHandle, style: str
) -> None:
    limited.set_rate_limit(40, style=style)
    limited.clear_stats()
    pacer = AdaptivePacer(start_concurrency=16)
    log = _drive(limited, pacer, 300, threads=16)
    stats = limited.stats()
    # Every request got through in the end; the server throttled only a few of the attempts.
    assert sum(1 for *_, throttled, _ in log if not throttled) == 300
    assert stats["accepted"] == 300
    assert 0 < stats["throttled"] <= 0.15 * 300
    # It measured the limit it ran into.
    state = pacer.state()
    assert state.limit is not None and 20 <= state.limit <= 80
    assert state.throttled == stats["throttled"]


def test_retry_after_holds_back_every_worker_at_once(limited: SandboxHandle) -> None:
    limited.set_rate_limit(40, burst=5, style="retry-after")
    limited.clear_stats()
    pacer = AdaptivePacer(start_rps=200.0)  # far above the limit: throttled at once
    log = _drive(limited, pacer, 60, threads=12)
    throttles = [(answered, ra) for _, answered, throttled, ra in log if throttled]
    assert throttles and all(ra == 1.0 for _, ra in throttles)
    # No worker sent anything while a pause the server asked for was running.
    for answered_at, retry_after in throttles:
        assert retry_after is not None
        inside = [s for s, *_ in log if answered_at < s < answered_at + retry_after]
        assert inside == []
    assert limited.stats()["accepted"] == 60


def _bucket_run(rate: float, burst: int, retry_after: float, seconds: float) -> RateController:
    """A controller driving requests (50 ms each, up to its concurrency) at a token bucket of
    ``rate``/s holding ``burst``, whose over-limit answers ask for a ``retry_after`` pause."""
    control = RateController(now=0.0, random_source=lambda: 0.5)
    now, tokens, last = 0.0, float(burst), 0.0
    in_flight: list[tuple[float, float, bool]] = []
    while now < seconds:
        while len(in_flight) < control.concurrency(now) and control.ready_at(now) <= now:
            granted = control.grant(now)
            tokens, last = min(burst, tokens + (now - last) * rate), now
            accepted = tokens >= 1
            tokens -= 1 if accepted else 0
            in_flight.append((now + 0.05, granted, accepted))
            in_flight.sort()
        when = [in_flight[0][0]] if in_flight else []
        if len(in_flight) < control.concurrency(now):
            when.append(max(control.ready_at(now), now + 1e-4))
        now = max(min(when), now + 1e-6)
        while in_flight and in_flight[0][0] <= now:
            _, granted, accepted = in_flight.pop(0)
            control.answered(
                now, granted, throttled=not accepted, retry_after=None if accepted else retry_after
            )
    return control


@pytest.mark.parametrize("burst", [5, 10, 20])
def test_a_small_bucket_s_limit_is_measured_from_what_it_accepted_once_empty(
    burst: int,
) -> None:
    """A small bucket empties while slow start's average is still low (the first estimate
    would be half the limit): the limit comes from the requests that met the emptied bucket
    (enough of them in a round trip: 7 at 150/s and 50 ms), measured during the pause."""
    control = _bucket_run(150.0, burst, 1.0, 2.5)
    assert control.pauses == 1
    assert control.limit == pytest.approx(150.0, rel=0.15)


def test_a_pausing_server_is_not_probed_far_above_its_measured_limit() -> None:
    """Each throttle of a server that pauses every sender costs a whole pause: after the
    limit is measured, a long run throttles rarely."""
    control = _bucket_run(40.0, 5, 1.0, 60.0)
    assert control.pauses <= 5
    assert control.limit == pytest.approx(40.0, rel=0.05)
