"""EnKash coins analyst toolkit: client, sandbox, registry, bulk CSV engine, charts and app.

The public names are imported lazily so that light modules (the sandbox, the models) do not
pull in pandas or requests when they do not need them.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

__all__ = [
    "AuthError",
    "CoinConfig",
    "CoinsClient",
    "ConflictError",
    "EnKashError",
    "LoginUnavailableError",
    "NotFoundError",
    "RateLimitError",
    "Registry",
    "ServerError",
    "Settings",
    "TransportError",
    "ValidationError",
]

__version__ = "0.1.0"

# A library never configures logging; it only makes sure it stays quiet by default.
logging.getLogger(__name__).addHandler(logging.NullHandler())

_WHERE = {
    "AuthError": "toolkit.errors",
    "CoinConfig": "toolkit.models",
    "CoinsClient": "toolkit.client",
    "ConflictError": "toolkit.errors",
    "EnKashError": "toolkit.errors",
    "LoginUnavailableError": "toolkit.errors",
    "NotFoundError": "toolkit.errors",
    "RateLimitError": "toolkit.errors",
    "Registry": "toolkit.registry",
    "ServerError": "toolkit.errors",
    "Settings": "toolkit.settings",
    "TransportError": "toolkit.errors",
    "ValidationError": "toolkit.errors",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'toolkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
