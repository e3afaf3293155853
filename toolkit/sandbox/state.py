"""What one sandbox process holds: its settings (`SandboxConfig`) and the state the routes and
the fault middleware share (`SandboxState`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from toolkit.sandbox.dialects import Dialect, ProjectDialect
from toolkit.sandbox.faults import FaultState
from toolkit.sandbox.limiter import SandboxStats, TokenBucket
from toolkit.sandbox.store import Store

__all__ = ["DEFAULT_CREDENTIALS", "SandboxConfig", "SandboxState"]

DEFAULT_CREDENTIALS: dict[str, str] = {
    # The same values as toolkit.settings.SANDBOX_CREDENTIALS (not imported: it pulls dotenv).
    "client_id": "SANDBOX",
    "client_secret": "sandbox-secret",
    "username": "analyst@example.com",
    "password": "sandbox-password",
}


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    """Per-process settings: credentials and token lifetime. Secrets stay out of ``repr``."""

    client_id: str = DEFAULT_CREDENTIALS["client_id"]
    client_secret: str = field(default=DEFAULT_CREDENTIALS["client_secret"], repr=False)
    username: str = DEFAULT_CREDENTIALS["username"]
    password: str = field(default=DEFAULT_CREDENTIALS["password"], repr=False)
    token_ttl: int = 300


@dataclass(slots=True)
class SandboxState:
    """What the routes and the middleware share: the store (all durable state), the dialect,
    this process's faults, rate limit and counters, and whether admin routes are open to all."""

    store: Store
    config: SandboxConfig
    faults: FaultState
    dialect: Dialect = field(default_factory=ProjectDialect)
    bucket: TokenBucket = field(default_factory=TokenBucket)
    stats: SandboxStats = field(default_factory=SandboxStats)
    admin_anywhere: bool = False

    def reset(self) -> None:
        """Forget all state and turn faults off (the rate limit and the dialect stay)."""
        self.store.reset()
        self.faults.clear()
