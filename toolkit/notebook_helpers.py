"""Display glue for the notebooks in ``notebooks/``: settings lookup and tqdm progress.

No business rules live here (those are in ``toolkit.bulk``, ``toolkit.frames`` and
``toolkit.registry``); this module only adapts the library to a Jupyter kernel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from toolkit.settings import Settings

__all__ = ["connection_summary", "notebook_settings", "project_root"]


def project_root(start: Path | None = None) -> Path | None:
    """The checkout this kernel runs in: the nearest folder up with ``pyproject.toml`` and
    ``toolkit/``. None when the notebook was copied somewhere else (e.g. a test's tmp dir)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "toolkit").is_dir():
            return folder
    return None


def notebook_settings(start: Path | None = None) -> Settings:
    """Settings as the app and the CLI see them, from inside ``notebooks/``.

    Jupyter starts kernels in the notebook's folder, so the project's ``.env`` and a relative
    ``COINS_HOME`` (default ``.coins``) are taken from the project root: the notebooks, the app
    and the CLI then share one registry and one embedded sandbox.
    """
    base = project_root(start) or (start or Path.cwd()).resolve()
    settings = Settings.from_env(dotenv_path=base / ".env")
    if not settings.home.is_absolute():
        settings = settings.with_(home=(base / settings.home).resolve())
    return settings


def connection_summary(settings: Settings) -> dict[str, Any]:
    """What a notebook prints about where it works: server, home, actor (secrets masked)."""
    shown = settings.describe()
    return {
        "server": "embedded sandbox (no ENKASH_BASE_URL set)"
        if settings.uses_sandbox
        else settings.base_url,
        "client_id": shown["client_id"],
        "username": shown["username"],
        "password": shown["password"],
        "home (registry, sandbox files)": str(settings.home),
        "actor (audit log)": settings.actor,
    }
