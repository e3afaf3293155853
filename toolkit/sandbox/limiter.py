"""A token-bucket rate limit on ``/api/*`` and the counters benchmarks read.

``rate`` tokens a second flow into a bucket holding at most ``burst``; each ``/api`` request
takes one or, when none is left, is answered as throttled before anything is done (in the
dialect's style, or the forced ``style``). ``None`` rate = no limit.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from toolkit.sandbox.dialects import RATE_LIMIT_STYLES

__all__ = ["RateLimit", "SandboxStats", "TokenBucket"]


@dataclass(frozen=True, slots=True)
class RateLimit:
    """The limit's settings: requests a second, bucket size and over-limit answer style."""

    rate: float | None = None
    burst: float | None = None
    style: str | None = None

    def __post_init__(self) -> None:
        problems: list[str] = []
        for name in ("rate", "burst"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                problems.append(f"{name}={value!r} must be a number or None")
            elif not math.isfinite(value) or value <= 0:
                problems.append(f"{name}={value!r} must be a positive number")
        if self.burst is not None and self.rate is None and not problems:
            problems.append("burst needs a rate")
        if self.style is not None and self.style not in RATE_LIMIT_STYLES:
            problems.append(
                f"style={self.style!r} is not one of {', '.join(RATE_LIMIT_STYLES)} (or None)"
            )
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def capacity(self) -> float:
        """The bucket size: ``burst``, else one second's worth of requests (at least 1)."""
        if self.burst is not None:
            return float(self.burst)
        return max(1.0, float(self.rate or 0.0))

    def as_dict(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "burst": None if self.rate is None else self.capacity,
            "style": self.style,
        }


class TokenBucket:
    """The live bucket; ``take()`` is True when the request may go ahead. Thread-safe."""

    def __init__(
        self, limit: RateLimit | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.limit = limit or RateLimit()
        self._tokens = self.limit.capacity
        self._at = clock()

    def set(self, limit: RateLimit) -> None:
        """New settings; the bucket starts full."""
        with self._lock:
            self.limit = limit
            self._tokens = limit.capacity
            self._at = self._clock()

    def take(self) -> bool:
        limit = self.limit
        if limit.rate is None:
            return True
        with self._lock:
            now = self._clock()
            capacity = limit.capacity
            self._tokens = min(capacity, self._tokens + (now - self._at) * limit.rate)
            self._at = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False


_COUNTERS = (
    "api_requests",
    "accepted",
    "throttled",
    "throttled_by_fault",
    "server_faults",
    "dropped",
    "token_expired",
    "challenged",
    "redirected",
)


class SandboxStats:
    """Counters of ``/api`` requests by what happened to them before the routes ran.

    ``api_requests`` = every /api request; ``accepted`` = those handed to the routes (whatever
    the routes answered); ``throttled`` = refused by the token bucket; ``throttled_by_fault`` =
    the rate_limit_rate fault; ``server_faults``, ``dropped``, ``token_expired``,
    ``challenged``, ``redirected`` = the other injected failures (``challenged`` counts
    /oauth/token too).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(_COUNTERS, 0)

    def count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def clear(self) -> None:
        with self._lock:
            self._counts = dict.fromkeys(_COUNTERS, 0)
