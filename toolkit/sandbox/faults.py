"""Faults the sandbox can be told to inject, and the pure ASGI middleware that injects them.

| fault | applies to | effect |
| --- | --- | --- |
| ``latency_ms`` | every answer | the answer leaves no sooner than this after the request arrived |
| ``error_rate`` | ``/api/*`` | 500 or 503 (envelope) before doing anything |
| ``rate_limit_rate`` | ``/api/*`` | 429 with ``Retry-After: 1`` before doing anything |
| ``slow_after_commit_rate`` | ``/api/*`` | work done and committed, then the answer waits |
|   + ``slow_after_commit_ms`` |  | that much longer (a client timeout fires: ambiguous) |
| ``drop_rate`` | ``/api/*`` | the TCP connection is closed with no answer, before doing anything |
| ``token_expiry_rate`` | ``/api/*`` | the request's bearer token dies now; answered as expired |
| ``challenge_rate`` | ``/api/*``, ``/oauth/token`` | a CDN's 403 HTML challenge page |

Every injected answer is rendered by the active dialect (``error_rate`` → its 5xx,
``rate_limit_rate`` → its throttling answer, ``token_expiry_rate`` → its expired-token answer).
``/_sandbox/*`` only ever gets the latency, and ``/oauth/token`` only the latency and the
challenge. Faults live in memory, per process; ``fault_seed`` makes the draws repeatable.
The token-bucket rate limit (``limiter.py``) runs in the same middleware, after the challenge.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from toolkit.sandbox.auth import bearer_token

if TYPE_CHECKING:
    from toolkit.sandbox.app import SandboxState

__all__ = [
    "FAULT_NAMES",
    "ConnectionDropped",
    "FaultMiddleware",
    "FaultState",
    "Faults",
]

_RATES = (
    "error_rate",
    "rate_limit_rate",
    "slow_after_commit_rate",
    "drop_rate",
    "token_expiry_rate",
    "challenge_rate",
)
_DURATIONS = ("latency_ms", "slow_after_commit_ms")
_MAX_MS = 600_000.0
FAULT_NAMES: tuple[str, ...] = (
    "latency_ms",
    "error_rate",
    "rate_limit_rate",
    "slow_after_commit_rate",
    "slow_after_commit_ms",
    "drop_rate",
    "token_expiry_rate",
    "challenge_rate",
)



class ConnectionDropped(ConnectionError):
    """Raised by a drop fault when no real transport can be closed (an in-memory ASGI client)."""


@dataclass(frozen=True, slots=True)
class Faults:
    """Fault settings; all off by default. Rates are probabilities from 0 to 1."""

    latency_ms: float = 0.0
    error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    slow_after_commit_rate: float = 0.0
    slow_after_commit_ms: float = 1000.0
    drop_rate: float = 0.0
    token_expiry_rate: float = 0.0
    challenge_rate: float = 0.0

    def updated(self, changes: Mapping[str, Any]) -> Faults:
        """A copy with ``changes`` applied; ``ValueError`` naming every bad name or value."""
        problems: list[str] = []
        clean: dict[str, float] = {}
        for name, value in changes.items():
            if name not in FAULT_NAMES:
                problems.append(f"unknown fault {name!r} (known: {', '.join(FAULT_NAMES)})")
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                problems.append(f"{name}={value!r} must be a number")
                continue
            number = float(value)
            if not math.isfinite(number):
                problems.append(f"{name}={value!r} must be a finite number")
            elif name in _RATES and not 0.0 <= number <= 1.0:
                problems.append(f"{name}={value!r} must be between 0 and 1")
            elif name in _DURATIONS and not 0.0 <= number <= _MAX_MS:
                problems.append(f"{name}={value!r} must be between 0 and {_MAX_MS:.0f} ms")
            else:
                clean[name] = number
        if problems:
            raise ValueError("; ".join(problems))
        return replace(self, **clean)

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


class FaultState:
    """The live faults of one sandbox process and the random source their draws use."""

    def __init__(self, faults: Faults | None = None, *, seed: int | None = None) -> None:
        self.faults = faults or Faults()
        self.seed = seed
        self.rng = random.Random(seed)

    def update(self, changes: Mapping[str, Any]) -> Faults:
        """Partial update (validated as a whole first); ``fault_seed`` re-seeds the draws."""
        changes = dict(changes)
        seed_given = "fault_seed" in changes
        seed = changes.pop("fault_seed", None)
        if (
            seed_given
            and seed is not None
            and (isinstance(seed, bool) or not isinstance(seed, int))
        ):
            raise ValueError(f"fault_seed={seed!r} must be an integer or null")
        new = self.faults.updated(changes)
        if seed_given:
            self.seed = seed
            self.rng = random.Random(seed)
        self.faults = new  # one assignment: a request sees the old or the new set, never a mix
        return new

    def clear(self) -> None:
        self.faults = Faults()

    def as_dict(self) -> dict[str, Any]:
        return self.faults.as_dict() | {"fault_seed": self.seed}

    def draw(self, rate: float) -> bool:
        return rate > 0.0 and self.rng.random() < rate


def _is_api(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


def _drop(send: Send) -> None:
    """Close the client's TCP connection without a byte of answer.

    Under uvicorn ``send`` is a bound method of the request cycle, whose ``transport`` is the
    connection. Marking the cycle disconnected stops uvicorn from writing its own 500 after the
    app returns without answering.
    """
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None or not hasattr(transport, "close"):
        raise ConnectionDropped("sandbox drop fault: connection closed without an answer")
    if cycle is not None and hasattr(cycle, "disconnected"):
        cycle.disconnected = True
    transport.close()


class FaultMiddleware:
    """Pure ASGI middleware; must wrap the app outermost so ``send`` is the server's own.

    Runs, in order, for ``/api/*``: the challenge fault, the token bucket, then the drop, error,
    rate-limit and token-expiry faults (each answered before anything is done) and the
    slow-after-commit fault; latency applies to every answer.
    """

    def __init__(self, app: ASGIApp, sandbox: SandboxState) -> None:
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sandbox = self.sandbox
        state = sandbox.faults
        faults = state.faults
        loop = asyncio.get_running_loop()
        ready_at = loop.time() + faults.latency_ms / 1000.0
        path = scope.get("path", "")
        slow_s = 0.0

        async def answer(response: Any) -> None:
            await _sleep_until(loop, ready_at)
            await response(scope, receive, send)

        is_api = _is_api(path)
        if (is_api or path == "/oauth/token") and state.draw(faults.challenge_rate):
            sandbox.stats.count("challenged")
            await answer(sandbox.dialect.challenge(path))
            return
        if is_api:
            dialect, stats = sandbox.dialect, sandbox.stats
            stats.count("api_requests")
            if not sandbox.bucket.take():
                stats.count("throttled")
                style = sandbox.bucket.limit.style
                await answer(dialect.throttle(path, "bucket", style))
                return
            if state.draw(faults.drop_rate):
                stats.count("dropped")
                await _sleep_until(loop, ready_at)
                _drop(send)
                return
            if state.draw(faults.error_rate):
                stats.count("server_faults")
                await answer(dialect.server_fault(path, state.rng))
                return
            if state.draw(faults.rate_limit_rate):
                stats.count("throttled_by_fault")
                await answer(dialect.throttle(path, "fault"))
                return
            if state.draw(faults.token_expiry_rate):
                token = bearer_token(Request(scope))
                if token is not None and sandbox.store.expire_token(token):
                    stats.count("token_expired")
                    await answer(dialect.token_expired(token, path))
                    return
            if state.draw(faults.slow_after_commit_rate):
                slow_s = faults.slow_after_commit_ms / 1000.0
            stats.count("accepted")
        if faults.latency_ms <= 0 and slow_s <= 0:
            await self.app(scope, receive, send)
            return

        async def late_send(message: Message) -> None:
            # The endpoint has finished (and committed) by the time it starts its answer.
            if message["type"] == "http.response.start":
                await _sleep_until(loop, ready_at)
                if slow_s > 0:
                    await asyncio.sleep(slow_s)
            await send(message)

        try:
            await self.app(scope, receive, late_send)
        except asyncio.CancelledError:
            # uvicorn cancels answers still waiting when its graceful shutdown runs out: close
            # the connection (as the client would see of a stopped server), no traceback.
            with suppress(ConnectionDropped):
                _drop(send)


async def _sleep_until(loop: asyncio.AbstractEventLoop, when: float) -> None:
    delay = when - loop.time()
    if delay > 0:
        await asyncio.sleep(delay)
