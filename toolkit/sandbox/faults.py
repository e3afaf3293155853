"""Faults the sandbox can be told to inject (`toolkit.sandbox.middleware` injects them).

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
| ``redirect_rate`` | ``/api/*``, ``/oauth/token`` | 302 to a sign-in page (a gateway's), first |

Every injected answer is rendered by the active dialect (``error_rate`` → its 5xx,
``rate_limit_rate`` → its throttling answer, ``token_expiry_rate`` → its expired-token answer).
``/_sandbox/*`` only ever gets the latency, and ``/oauth/token`` only the latency, the
challenge and the redirect. Faults live in memory, per process; ``fault_seed`` makes the
draws repeatable. The token-bucket rate limit (``limiter.py``) runs in the same middleware,
after the challenge and the redirect.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

__all__ = [
    "FAULT_NAMES",
    "ConnectionDropped",
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
    "redirect_rate",
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
    "redirect_rate",
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
    redirect_rate: float = 0.0

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
