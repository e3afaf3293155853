"""The composition root: the one place that wires settings → client → registry.

`connect` is the one call every surface (app, notebooks, CLI) uses to get a working toolkit:
settings → (the embedded sandbox, started and profiled, when no EnKash base URL is set) → the
server profile → a `CoinsClient` → a `Registry` attached to it as its recorder, so every write
made through any surface lands in the audit log. Nothing below this module builds any of these
for another: the client never imports the registry, the doctor or the sandbox.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from toolkit import sync
from toolkit.client import CoinsClient
from toolkit.doctor import profile_embedded
from toolkit.profiles import load_profile
from toolkit.registry import Registry, RevertResult
from toolkit.settings import Settings, sandbox_server_key

__all__ = ["Workspace", "connect", "open_client"]


@dataclass
class Workspace:
    """The settings, the client and the registry a surface works with."""

    settings: Settings
    client: CoinsClient
    registry: Registry

    @property
    def is_sandbox(self) -> bool:
        """True when talking to the embedded sandbox, not to EnKash."""
        return self.settings.uses_sandbox

    def refresh(
        self,
        *,
        concurrency: int = 16,
        progress: Callable[[int, int], Any] | None = None,
        source: str | None = None,
    ) -> pd.DataFrame:
        """Re-fetch every known configuration: `toolkit.sync.refresh` with this workspace's
        client and registry (the report frame: unchanged / drift / gone / error per id)."""
        return sync.refresh(
            self.client, self.registry, concurrency=concurrency, progress=progress, source=source
        )

    def import_ids(
        self,
        ids: Iterable[str],
        *,
        progress: Callable[[int, int], Any] | None = None,
        concurrency: int = 8,
        source: str | None = None,
    ) -> pd.DataFrame:
        """Fetch ids learned elsewhere and remember them: `toolkit.sync.import_ids` (the
        report frame: imported / known / drift / unknown / invalid / error per id)."""
        return sync.import_ids(
            self.client,
            self.registry,
            ids,
            progress=progress,
            concurrency=concurrency,
            source=source,
        )

    def revert(self, audit_id: int, *, source: str | None = None) -> RevertResult:
        """Undo an audited change through the API: `toolkit.sync.revert` (`RevertRefused`
        when it could overwrite a later change)."""
        return sync.revert(self.client, self.registry, audit_id, source=source)

    def close(self) -> None:
        """Close the client's connections and the registry's file."""
        self.client.close()
        self.registry.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(settings: Settings | None = None, *, source: str = "library") -> Workspace:
    """Open the toolkit: ``source`` (app, notebook, cli, …) is recorded in the audit log.

    ``settings`` default to the environment and `.env` (`Settings.from_env`). The client is
    `open_client`'s; the registry under ``COINS_HOME`` records every call it makes.
    """
    settings = settings or Settings.from_env()
    client = open_client(settings, source=source, actor=settings.actor)
    registry = Registry(settings.registry_path, client=client, actor=settings.actor)
    if settings.uses_sandbox:
        _import_sandbox_ids(settings, client, registry, source)
    return Workspace(settings=settings, client=client, registry=registry)


def open_client(settings: Settings, **overrides: Any) -> CoinsClient:
    """The client for ``settings``, recording nothing (``overrides`` are constructor arguments).

    With a base URL, `CoinsClient.from_settings` (the profile kept under ``COINS_HOME`` for that
    server). Without one, the embedded sandbox of ``COINS_HOME`` is started (once per process),
    the client gets its credentials and server key, and the sandbox is profiled on first use
    without asking (`toolkit.doctor.profile_embedded`).
    """
    if overrides.get("base_url", settings.base_url):
        return CoinsClient.from_settings(settings, **overrides)
    from toolkit.sandbox import embedded  # only when it is needed: it brings the server along

    handle = embedded(settings.home)
    db_path = getattr(handle, "db_path", None) or settings.sandbox_db_path
    sandbox: dict[str, Any] = {
        **handle.credentials,
        "base_url": handle.url,
        "access_token": None,
        "cookie": None,
        "server_key": sandbox_server_key(db_path),
    }
    given = {k: v for k, v in overrides.items() if k != "base_url"}
    client = CoinsClient.from_settings(settings, **{**sandbox, **given})
    if "profile" not in given and load_profile(settings.home, client.server_key) is None:
        client.profile = profile_embedded(client, settings.home)
    return client


def _import_sandbox_ids(
    settings: Settings, client: CoinsClient, registry: Registry, source: str
) -> None:
    """The embedded sandbox starts with demo data; a registry that knows none of this server's
    configurations learns them once (the API has no list call, the sandbox tells us in process).
    """
    if len(registry.known_pairs()):
        return
    from toolkit.sandbox import embedded

    ids = embedded(settings.home).config_ids()
    if ids:
        sync.import_ids(client, registry, ids, source=source)
