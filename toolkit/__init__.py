"""EnKash coins analyst toolkit: client, sandbox, registry, bulk CSV engine, charts and app.

The public names are imported lazily so that light modules (the sandbox, the models) do not
pull in pandas or requests when they do not need them.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from toolkit import errors as _errors

# The one table of the package's public names: where each lives. ``__all__`` is derived from it.
_PUBLIC: dict[str, tuple[str, ...]] = {
    "toolkit.client": ("CoinsClient",),
    # Every error class of the error tree (toolkit.errors is light: only the standard library).
    "toolkit.errors": tuple(n for n in _errors.__all__ if n[:1].isupper()),
    "toolkit.models": ("CoinConfig",),
    "toolkit.profiles": ("ServerProfile",),
    "toolkit.registry": ("Registry",),
    "toolkit.settings": ("Settings",),
    # The composition root: settings → (embedded sandbox) → client → registry.
    "toolkit.workspace": ("Workspace", "connect"),
}
_WHERE = {name: module for module, names in _PUBLIC.items() for name in names}

__all__ = sorted(_WHERE)

__version__ = "0.1.0"

# A library never configures logging; it only makes sure it stays quiet by default.
logging.getLogger(__name__).addHandler(logging.NullHandler())


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'toolkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
