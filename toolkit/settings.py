"""Settings: the environment (and an optional `.env` file) read once into one object.

| variable | meaning | default |
| --- | --- | --- |
| ENKASH_BASE_URL | EnKash API root; unset = embedded sandbox | unset |
| ENKASH_CLIENT_ID, ENKASH_CLIENT_SECRET | OAuth client (Basic auth) | sandbox's |
| ENKASH_USERNAME, ENKASH_PASSWORD | password grant | sandbox's |
| ENKASH_ACCESS_TOKEN | a ready token instead of a login | unset |
| ENKASH_COOKIE | optional Cookie header | unset |
| ENKASH_TIMEOUT_S | per-request timeout | 15 |
| COINS_HOME | where the registry and sandbox files live | .coins/ |
| COINS_ACTOR | who the audit log names | the OS user |
| COINS_RUPEES_PER_COIN | the value of one coin in rupees | unset: ₹1 assumed, and said |
| COINS_MONTHLY_BUDGET | ₹ a month per company: `150000`, or `CEKEKCARDS=150000,*=50000` | unset |
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

__all__ = ["SANDBOX_CREDENTIALS", "Settings", "mask", "sandbox_server_key"]

# The sandbox's default credentials (documented in the README; not secrets of anyone's).
SANDBOX_CREDENTIALS: dict[str, str] = {
    "client_id": "SANDBOX",
    "client_secret": "sandbox-secret",
    "username": "analyst@example.com",
    "password": "sandbox-password",
}

_SECRET_FIELDS = frozenset({"client_secret", "password", "access_token", "cookie"})


def sandbox_server_key(db_path: str | Path) -> str:
    """What registries key an embedded sandbox's rows by: its database file, never its port
    (each process runs its own sandbox on the same file)."""
    return "sandbox:" + str(Path(db_path).resolve())


def mask(value: str | None, *, keep: int = 0) -> str:
    """A secret shown as a mask; ``keep`` leading characters of non-secret ids may stay."""
    if not value:
        return "(not set)"
    if keep and len(value) > keep + 2:
        return value[:keep] + "…" + "•" * 4
    return "•" * 8


def _default_actor() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user database entry (containers): fall back, never fail
        return os.environ.get("USER") or "unknown"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the toolkit needs to reach the API and keep its files.

    ``base_url`` None means "use the embedded sandbox". Secrets are kept out of ``repr``.
    """

    base_url: str | None = None
    client_id: str = SANDBOX_CREDENTIALS["client_id"]
    client_secret: str = field(default=SANDBOX_CREDENTIALS["client_secret"], repr=False)
    username: str = SANDBOX_CREDENTIALS["username"]
    password: str = field(default=SANDBOX_CREDENTIALS["password"], repr=False)
    access_token: str | None = field(default=None, repr=False)
    cookie: str | None = field(default=None, repr=False)
    timeout_s: float = 15.0
    home: Path = Path(".coins")
    actor: str = field(default_factory=_default_actor)
    rupees_per_coin: float | None = None  # None: cost figures assume ₹1 and say so
    monthly_budget: str | None = None  # parsed by toolkit.cost.Budgets.parse

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, dotenv_path: str | Path | None = ".env"
    ) -> Settings:
        """Read settings from ``env`` (default: the process environment) over a `.env` file.

        The process environment wins over `.env`, as python-dotenv's ``load_dotenv`` does.
        """
        values: dict[str, Any] = {}
        if dotenv_path is not None and Path(dotenv_path).is_file():
            values.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
        values.update(os.environ if env is None else env)

        def get(name: str) -> str | None:
            raw = values.get(name)
            if raw is None:
                return None
            raw = str(raw).strip()
            return raw or None

        kwargs: dict[str, Any] = {}
        mapping = {
            "ENKASH_BASE_URL": "base_url",
            "ENKASH_CLIENT_ID": "client_id",
            "ENKASH_CLIENT_SECRET": "client_secret",
            "ENKASH_USERNAME": "username",
            "ENKASH_PASSWORD": "password",
            "ENKASH_ACCESS_TOKEN": "access_token",
            "ENKASH_COOKIE": "cookie",
            "COINS_ACTOR": "actor",
        }
        for env_name, attr in mapping.items():
            value = get(env_name)
            if value is not None:
                kwargs[attr] = value
        if kwargs.get("base_url"):
            kwargs["base_url"] = kwargs["base_url"].rstrip("/")
        timeout = get("ENKASH_TIMEOUT_S")
        if timeout is not None:
            try:
                kwargs["timeout_s"] = float(timeout)
            except ValueError:
                raise ValueError(
                    f"ENKASH_TIMEOUT_S must be a number of seconds, not {timeout!r}"
                ) from None
            if kwargs["timeout_s"] <= 0:
                raise ValueError("ENKASH_TIMEOUT_S must be more than 0 seconds")
        rupees = get("COINS_RUPEES_PER_COIN")
        if rupees is not None:
            try:
                kwargs["rupees_per_coin"] = float(rupees.replace("₹", "").replace(",", ""))
            except ValueError:
                raise ValueError(
                    f"COINS_RUPEES_PER_COIN must be rupees per coin (e.g. 0.25), not {rupees!r}"
                ) from None
            if not 0 <= kwargs["rupees_per_coin"] < float("inf"):
                raise ValueError("COINS_RUPEES_PER_COIN must be 0 or more rupees")
        kwargs["monthly_budget"] = get("COINS_MONTHLY_BUDGET")
        home = get("COINS_HOME")
        if home is not None:
            kwargs["home"] = Path(home).expanduser()
        return cls(**kwargs)

    @property
    def uses_sandbox(self) -> bool:
        """True when no EnKash base URL is configured (the embedded sandbox is used)."""
        return self.base_url is None

    @property
    def registry_path(self) -> Path:
        return self.home / "registry.sqlite3"

    @property
    def sandbox_db_path(self) -> Path:
        return self.home / "sandbox.sqlite3"

    def with_(self, **changes: Any) -> Settings:
        """A copy with some fields changed (e.g. the embedded sandbox's URL)."""
        return replace(self, **changes)

    def describe(self) -> dict[str, str]:
        """Every setting as text for display, secrets masked."""
        out: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _SECRET_FIELDS:
                out[f.name] = mask(value) if value else "(not set)"
            else:
                out[f.name] = "(embedded sandbox)" if value is None else str(value)
        return out
