"""One call that every surface (app, notebooks, CLI) uses to get a working toolkit.

Settings → a `CoinsClient` (the embedded sandbox when no EnKash base URL is set) → a `Registry`
attached to it, so every write made through any surface lands in the audit log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from toolkit.settings import Settings

if TYPE_CHECKING:
    from toolkit.client import CoinsClient
    from toolkit.registry import Registry

__all__ = ["Workspace", "connect"]


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

    def close(self) -> None:
        """Close the client's connections and the registry's file."""
        self.client.close()
        self.registry.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(settings: Settings | None = None, *, source: str = "library") -> Workspace:
    """Open the toolkit: ``source`` (app, notebook, cli, …) is recorded in the audit log."""
    from toolkit.client import CoinsClient
    from toolkit.registry import Registry

    settings = settings or Settings.from_env()
    client = CoinsClient.from_settings(settings, record=False, source=source, actor=settings.actor)
    registry = Registry(settings.registry_path, client=client, actor=settings.actor)
    if settings.uses_sandbox:
        _import_sandbox_ids(settings, registry, source)
    return Workspace(settings=settings, client=client, registry=registry)


def _import_sandbox_ids(settings: Settings, registry: Registry, source: str) -> None:
    """The embedded sandbox starts with demo data; a registry that knows none of this server's
    configurations learns them once (the API has no list call, the sandbox tells us in process).
    """
    if len(registry.known_pairs()):
        return
    from toolkit.sandbox import embedded

    ids = embedded(settings.home).config_ids()
    if ids:
        registry.import_ids(ids, source=source)
