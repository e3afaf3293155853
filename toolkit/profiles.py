"""Server profiles: what `coins doctor` learnt about a server, which the client trusts.

The coins API has no idempotency key on create, and EnKash does not document how it answers a
second create of the same (company, event) or a repeated ``requestId``. Whether an answer that
was lost may be sent again safely depends on exactly that, so the client asks the profile:

- ``create_repeat``: "refused_names_id" (a repeat is refused and the answer names the existing
  configuration: a lost create is re-sent and confirmed by that answer), "refused" (refused
  without naming it: re-sent, but a refusal leaves the row unconfirmed), "accepted" (a repeat
  makes a second configuration: never re-sent) or "unknown" (not probed: never re-sent);
- ``allocate_repeat``: "refused" (a repeated requestId is refused: re-sent, the refusal
  confirms), "accepted" (answered as success: cannot tell, never re-sent) or "unknown".

Without a profile a real server is the cautious case: nothing ambiguous is re-sent, and an
answer that was lost is reported ``unconfirmed``. Profiles live in
``COINS_HOME/server-profiles.json`` (0600), keyed by the client's ``server_key``.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["CAUTIOUS", "PROFILE_FILE", "ServerProfile", "load_profile", "save_profile"]

logger = logging.getLogger(__name__)

PROFILE_FILE = "server-profiles.json"
_CREATE_REPEATS = ("refused_names_id", "refused", "accepted", "unknown")
_ALLOCATE_REPEATS = ("refused", "accepted", "unknown")
_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class ServerProfile:
    """How one server answers, as probed (see the module docstring)."""

    server_key: str = ""
    create_repeat: str = "unknown"
    allocate_repeat: str = "unknown"
    probed_at: str | None = None
    token_expires_in_answered: float | None = None
    token_life_used_s: float | None = None
    token_style: str | None = None  # "snake_case" | "camelCase"
    auth_failure: str | None = None  # how a refused token looks
    not_found: str | None = None  # how an unknown id looks
    created: tuple[str, ...] = ()  # what the probe created (scratch configuration ids)
    dialect: str | None = None  # the embedded sandbox's dialect when it was profiled
    notes: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.create_repeat not in _CREATE_REPEATS:
            object.__setattr__(self, "create_repeat", "unknown")
        if self.allocate_repeat not in _ALLOCATE_REPEATS:
            object.__setattr__(self, "allocate_repeat", "unknown")

    @property
    def resend_create(self) -> bool:
        """A create whose answer was lost may be sent again: a repeat would be refused."""
        return self.create_repeat in ("refused_names_id", "refused")

    @property
    def resend_allocate(self) -> bool:
        """An allocation whose answer was lost may be sent again with its requestId."""
        return self.allocate_repeat == "refused"

    def describe(self) -> list[str]:
        """What the toolkit will do on this server, in sentences for people."""
        create = {
            "refused_names_id": "a second create of a pair is refused naming the existing id: "
            "ambiguous creates are re-sent and confirmed by the duplicate answer",
            "refused": "a second create of a pair is refused without naming the id: ambiguous "
            "creates are re-sent; a refusal after a lost answer is marked unconfirmed",
            "accepted": "a second create of a pair makes a second configuration: ambiguous "
            "creates are never re-sent, they are marked unconfirmed",
            "unknown": "not checked whether a second create is refused: ambiguous creates "
            "are never re-sent, they are marked unconfirmed",
        }[self.create_repeat]
        allocate = {
            "refused": "a repeated requestId is refused: ambiguous allocations are re-sent "
            "and confirmed by the duplicate answer",
            "accepted": "a repeated requestId is answered as success, so a repeat cannot be "
            "told from a first allocation: ambiguous allocations are marked unconfirmed",
            "unknown": "not checked how a repeated requestId is answered: ambiguous "
            "allocations are marked unconfirmed",
        }[self.allocate_repeat]
        lines = [f"Creates: {create}.", f"Allocations: {allocate}."]
        if self.token_life_used_s is not None:
            answered = (
                f"answered expires_in {self.token_expires_in_answered:g} s"
                if self.token_expires_in_answered is not None
                else "no expires_in answered"
            )
            lines.append(
                f"Tokens: {answered}; renewed as if they live {self.token_life_used_s:g} s"
                + (f" ({self.token_style} token fields)" if self.token_style else "")
                + "."
            )
        if self.auth_failure:
            lines.append(f"A refused token looks like: {self.auth_failure}.")
        if self.not_found:
            lines.append(f"An unknown id looks like: {self.not_found}.")
        lines.extend(self.notes)
        if self.probed_at:
            lines.append(f"Checked {self.probed_at}.")
        return lines

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["created"] = list(self.created)
        out["notes"] = list(self.notes)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ServerProfile:
        names = {f.name for f in fields(cls)}
        clean = {k: v for k, v in data.items() if k in names}
        for key in ("created", "notes"):
            if key in clean:
                clean[key] = tuple(str(v) for v in clean[key] or ())
        return cls(**clean)

    def stamped(self) -> ServerProfile:
        return replace(self, probed_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))


CAUTIOUS = ServerProfile()


def _path(home: str | Path) -> Path:
    return Path(home).expanduser() / PROFILE_FILE


def _read_all(home: str | Path) -> dict[str, Any]:
    path = _path(home)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        logger.warning("Ignoring an unreadable server profile file %s: %s", path, exc)
        return {}
    return data if isinstance(data, dict) else {}


def load_profile(home: str | Path, server_key: str) -> ServerProfile | None:
    """The profile kept for ``server_key`` under ``home``, or None."""
    entry = _read_all(home).get(server_key)
    if not isinstance(entry, dict):
        return None
    try:
        return ServerProfile.from_dict({**entry, "server_key": server_key})
    except (TypeError, ValueError):
        return None


def save_profile(home: str | Path, profile: ServerProfile) -> Path:
    """Keep ``profile`` under ``home`` (atomically, readable by its owner only)."""
    path = _path(home)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with _lock:
        data = _read_all(home)
        data[profile.server_key] = profile.to_dict()
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".profiles-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle, indent=2, sort_keys=True)
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return path
