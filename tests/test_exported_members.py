"""The public surface stays honest: `__all__` is sorted, complete and importable."""

from __future__ import annotations

import importlib
import types

import pytest

import toolkit

PUBLIC_MODULES = [
    "toolkit",
    "toolkit.bulk",
    "toolkit.charts",
    "toolkit.client",
    "toolkit.errors",
    "toolkit.frames",
    "toolkit.models",
    "toolkit.registry",
    "toolkit.sandbox",
    "toolkit.settings",
    "toolkit.workspace",
]


def _isort_key(name: str) -> tuple[int, str]:
    """Ruff's RUF022 order: CONSTANTS, then Classes, then functions, each alphabetical."""
    if name.isupper():
        return (0, name)
    return (1, name) if name[:1].isupper() else (2, name)


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_all_is_sorted_and_every_name_resolves(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert list(exported) == sorted(exported, key=_isort_key), f"{name}.__all__ is not sorted"
    assert len(set(exported)) == len(exported), f"{name}.__all__ repeats a name"
    for member in exported:
        assert getattr(module, member) is not None, f"{name}.{member} does not resolve"


def test_design_names_are_importable_from_the_package() -> None:
    from toolkit import (  # noqa: F401
        AuthError,
        CoinConfig,
        CoinsClient,
        ConflictError,
        EnKashError,
        NotFoundError,
        RateLimitError,
        Registry,
        ServerError,
        Settings,
        TransportError,
        ValidationError,
    )

    for error in (AuthError, ConflictError, NotFoundError, RateLimitError, ServerError):
        assert issubclass(error, EnKashError)
    assert issubclass(TransportError, EnKashError)
    assert issubclass(ValidationError, EnKashError)


def test_every_public_class_of_the_package_is_exported() -> None:
    from toolkit import errors

    error_classes = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, Exception) and not name.startswith("_")
    }
    assert error_classes <= set(toolkit.__all__)


def test_importing_the_sandbox_does_not_pull_in_pandas_or_requests() -> None:
    """The sandbox is light: the app imports it on start, the fuzzer builds it often."""
    import subprocess
    import sys

    code = (
        "import sys, toolkit.sandbox; "
        "print(','.join(m for m in ('pandas', 'requests') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def _library_modules() -> list[str]:
    import pkgutil

    names = []
    for info in pkgutil.walk_packages(toolkit.__path__, "toolkit."):
        if info.name.startswith(("toolkit.ui", "toolkit.__main__", "toolkit.sandbox.__main__")):
            continue
        names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("name", _library_modules())
def test_every_module_declares_all_its_public_names(name: str) -> None:
    """A public class or function defined in a module is in its ``__all__`` (and only those
    names the module has)."""
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    # Functions registered as routes are the router's business (it is what the module exports).
    endpoints = {
        route.endpoint
        for value in vars(module).values()
        if not isinstance(value, type)
        for route in getattr(value, "routes", None) or ()
        if hasattr(route, "endpoint")
    }
    defined = {
        member
        for member, value in vars(module).items()
        if not member.startswith("_")
        and isinstance(value, type | types.FunctionType)
        and getattr(value, "__module__", None) == name
        and value not in endpoints
    }
    assert defined <= set(exported), f"{name}.__all__ misses {sorted(defined - set(exported))}"
    assert all(hasattr(module, member) for member in exported)


def test_the_package_table_names_every_error() -> None:
    from toolkit import errors

    classes = {n for n in errors.__all__ if isinstance(getattr(errors, n), type)}
    assert classes <= set(toolkit.__all__)
