"""Settings: the environment (and an optional `.env` file) read once into one object.

| variable | meaning | default |
| --- | --- | --- |
| ENKASH_BASE_URL | EnKash API root; unset = embedded sandbox | unset |
| ENKASH_CLIENT_ID, ENKASH_CLIENT_SECRET | OAuth client (Basic auth) | sandbox's (sandbox only) |
| ENKASH_USERNAME, ENKASH_PASSWORD | password grant | sandbox's (sandbox only) |
| ENKASH_ACCESS_TOKEN | a ready token instead of a login | unset |
| ENKASH_COOKIE | optional Cookie header | unset |
| ENKASH_TIMEOUT_S | per-request timeout | 15 |
| COINS_HOME | where the registry and sandbox files live | .coins/ |
| COINS_ACTOR | who the audit log names | the OS user |
| COINS_MAX_FILE_MB | largest sheet file read (MB) | 100 |
| COINS_MAX_ROWS | most data rows in a sheet | 1,048,576 |
| COINS_MAX_COLUMNS | most columns in a sheet | 1,000 |
| COINS_MAX_CELL_CHARS | longest cell (characters) | 32,767 |
| COINS_MAX_CELLS | most cells (rows × columns) in a sheet | 20,000,000 |
| COINS_MAX_XLSX_PART_MB | largest part of an .xlsx once unpacked (MB) | 512 |
| COINS_MAX_XLSX_RATIO | most an .xlsx part may expand when unpacked (times) | 100 |

With ``ENKASH_BASE_URL`` set, the client id and secret, username and password (or an
``ENKASH_ACCESS_TOKEN``) must all be given: the sandbox's credentials are the sandbox's only,
and a missing one is an error naming it before any login is tried. The `.env` file holds
secrets: keep it ``chmod 600`` (`check_dotenv_permissions` says when it is not).
| COINS_RUPEES_PER_COIN | the value of one coin in rupees | unset: ₹1 assumed, and said |
| COINS_MONTHLY_BUDGET | ₹ a month per company: `150000`, or `CEKEKCARDS=150000,*=50000` | unset |
"""

from __future__ import annotations

import getpass
import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

__all__ = [
    "LIMIT_VARIABLES",
    "SANDBOX_CREDENTIALS",
    "Limits",
    "Settings",
    "SettingsError",
    "check_dotenv_permissions",
    "mask",
    "sandbox_server_key",
]

logger = logging.getLogger(__name__)

# The sandbox's default credentials (documented in the README; not secrets of anyone's).
SANDBOX_CREDENTIALS: dict[str, str] = {
    "client_id": "SANDBOX",
    "client_secret": "sandbox-secret",
    "username": "analyst@example.com",
    "password": "sandbox-password",
}

_SECRET_FIELDS = frozenset({"client_secret", "password", "access_token", "cookie"})
# The settings a real server needs (unless a ready token is given), by field and variable.
_CREDENTIAL_VARIABLES = {
    "client_id": "ENKASH_CLIENT_ID",
    "client_secret": "ENKASH_CLIENT_SECRET",
    "username": "ENKASH_USERNAME",
    "password": "ENKASH_PASSWORD",
}

# The reader's limits: environment variable -> (Limits field, type).
LIMIT_VARIABLES: dict[str, tuple[str, type]] = {
    "COINS_MAX_FILE_MB": ("max_file_mb", float),
    "COINS_MAX_ROWS": ("max_rows", int),
    "COINS_MAX_COLUMNS": ("max_columns", int),
    "COINS_MAX_CELL_CHARS": ("max_cell_chars", int),
    "COINS_MAX_CELLS": ("max_cells", int),
    "COINS_MAX_XLSX_PART_MB": ("max_xlsx_part_mb", float),
    "COINS_MAX_XLSX_RATIO": ("max_xlsx_ratio", float),
}


class SettingsError(ValueError):
    """A setting is missing or not valid; the message names the variable and what to do."""


@dataclass(frozen=True, slots=True)
class Limits:
    """What the sheet reader accepts before it refuses a file (`toolkit.bulk.SheetError`).

    The defaults read a legitimate 1,000,000-row sheet (Excel's own maximum is 1,048,576 rows
    and 32,767 characters a cell) and refuse hostile files before they cost memory: an
    ``.xlsx`` part that would unpack past ``max_xlsx_part_mb``, or expand more than
    ``max_xlsx_ratio`` times, is refused from the ZIP directory alone. ``max_cells`` bounds rows
    × columns, so one far-away cell cannot widen a million rows.
    """

    max_file_mb: float = 100.0
    max_rows: int = 1_048_576
    max_columns: int = 1_000
    max_cell_chars: int = 32_767
    max_cells: int = 20_000_000
    max_xlsx_part_mb: float = 512.0
    max_xlsx_ratio: float = 100.0

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * 1_000_000)

    @property
    def max_xlsx_part_bytes(self) -> int:
        return int(self.max_xlsx_part_mb * 1_000_000)

    def variable(self, name: str) -> str:
        """The environment variable that sets field ``name`` (for messages)."""
        return next(var for var, (attr, _) in LIMIT_VARIABLES.items() if attr == name)

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, dotenv_path: str | Path | None = ".env"
    ) -> Limits:
        """The limits from ``env`` (default: the process environment) over a `.env` file."""
        return cls._from_values(_values(env, dotenv_path))

    @classmethod
    def _from_values(cls, values: Mapping[str, Any]) -> Limits:
        kwargs: dict[str, Any] = {}
        for variable, (attr, kind) in LIMIT_VARIABLES.items():
            raw = values.get(variable)
            text = "" if raw is None else str(raw).strip()
            if not text:
                continue
            try:
                number = float(text.replace(",", "").replace("_", ""))
            except ValueError:
                number = float("nan")
            if not number > 0 or number == float("inf") or (kind is int and number % 1):
                what = "a whole number" if kind is int else "a number"
                raise SettingsError(f"{variable} must be {what} above 0, not {text!r}")
            kwargs[attr] = kind(number)
        return cls(**kwargs)


def _values(env: Mapping[str, str] | None, dotenv_path: str | Path | None) -> dict[str, Any]:
    """The environment (default: the process's) over the `.env` file, as python-dotenv does."""
    values: dict[str, Any] = {}
    if dotenv_path is not None and Path(dotenv_path).is_file():
        values.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
    values.update(os.environ if env is None else env)
    return values


_dotenv_warned: set[Path] = set()


def check_dotenv_permissions(path: str | Path = ".env", *, once: bool = True) -> str | None:
    """A warning when the `.env` file (it holds the secrets) is readable by other users.

    Returns the sentence to show, or None when the file is private, absent, or the platform
    has no POSIX modes. With ``once`` (the default) only the first call for a file in this
    process returns it, so a surface warns once (a page redrawn on every rerun passes
    ``once=False``). The warning is logged the first time.
    """
    if os.name != "posix":
        return None
    target = Path(path).expanduser()
    try:
        mode = target.stat().st_mode
    except OSError:
        return None
    if not stat.S_ISREG(mode) or not mode & (stat.S_IRWXG | stat.S_IRWXO):
        return None
    key = target.resolve()
    seen = key in _dotenv_warned
    if once and seen:
        return None
    _dotenv_warned.add(key)
    message = (
        f"{target} can be read by other users of this machine (mode "
        f"{stat.S_IMODE(mode):04o}) and it holds your EnKash secrets: run chmod 600 {target}"
    )
    if not seen:
        logger.warning(message)
    return message


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
    # Empty = not given: the sandbox's own credentials with no base URL, an error with one.
    client_id: str = ""
    client_secret: str = field(default="", repr=False)
    username: str = ""
    password: str = field(default="", repr=False)
    access_token: str | None = field(default=None, repr=False)
    cookie: str | None = field(default=None, repr=False)
    timeout_s: float = 15.0
    home: Path = Path(".coins")
    actor: str = field(default_factory=_default_actor)
    rupees_per_coin: float | None = None  # None: cost figures assume ₹1 and say so
    monthly_budget: str | None = None  # parsed by toolkit.cost.Budgets.parse
    limits: Limits = field(default_factory=Limits)  # what the sheet reader accepts

    def __post_init__(self) -> None:
        if self.base_url is None:
            for name, value in SANDBOX_CREDENTIALS.items():
                if not getattr(self, name):
                    object.__setattr__(self, name, value)
            return
        if self.access_token:
            return  # a ready token needs no login
        missing = [var for name, var in _CREDENTIAL_VARIABLES.items() if not getattr(self, name)]
        if missing:
            names = " and ".join(missing) if len(missing) <= 2 else ", ".join(missing)
            raise SettingsError(
                f"ENKASH_BASE_URL is set ({self.base_url}) but {names} "
                f"{'is' if len(missing) == 1 else 'are'} not: set "
                f"{'it' if len(missing) == 1 else 'them'} in the environment or .env (or give "
                "ENKASH_ACCESS_TOKEN). No login was tried; the sandbox's own credentials are "
                "never sent to another server."
            )

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, dotenv_path: str | Path | None = ".env"
    ) -> Settings:
        """Read settings from ``env`` (default: the process environment) over a `.env` file.

        The process environment wins over `.env`, as python-dotenv's ``load_dotenv`` does.
        """
        values = _values(env, dotenv_path)

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
        kwargs["limits"] = Limits._from_values(values)
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
