"""Display glue for the notebooks in ``notebooks/``: settings lookup and tqdm progress.

No business rules live here (those are in ``toolkit.bulk``, ``toolkit.frames`` and
``toolkit.registry``); this module only adapts the library to a Jupyter kernel.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from toolkit.settings import Settings

__all__ = [
    "connection_summary",
    "notebook_settings",
    "project_root",
    "setup_notebook",
    "show_errors_briefly",
    "tqdm_progress",
]


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


def tqdm_progress(desc: str, *, unit: str = "row") -> Callable[..., None]:
    """A ``progress(done, total, ...)`` callback drawing a ``tqdm.auto`` bar.

    Fits every progress callback of the library: ``Registry.refresh``/``import_ids`` call it
    with ``(done, total)``, ``bulk.run`` with ``(done, total, counts)`` (shown beside the bar).
    The bar closes itself when ``done`` reaches ``total``.
    """
    from tqdm.auto import tqdm

    state: dict[str, Any] = {"bar": None}

    def callback(done: int, total: int, counts: dict[str, int] | None = None, *_: Any) -> None:
        bar = state["bar"]
        if bar is None:
            bar = state["bar"] = tqdm(total=total, desc=desc, unit=unit)
        bar.total = total
        if counts:
            bar.set_postfix({k: v for k, v in counts.items() if v}, refresh=False)
        # update() redraws at most every `mininterval`, so a text bar does not flood the cell.
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return callback


def show_errors_briefly() -> None:
    """In a notebook, show the toolkit's own errors as their one-line message, not a traceback.

    A refused sheet (`toolkit.bulk.SheetError`) or an API error (`toolkit.EnKashError`) already
    says what is wrong and what to do; the cell still stops, as any error does. Other
    exceptions (bugs) keep their full traceback. Outside IPython this does nothing.
    """
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with ipykernel
        return
    shell = get_ipython()
    if shell is None:
        return
    from toolkit.bulk import SheetError
    from toolkit.errors import EnKashError

    def handler(
        shell: Any, etype: type[BaseException], value: BaseException, tb: Any, tb_offset: Any = None
    ) -> list[str]:
        lines = [f"{etype.__name__}: {value}"]
        shell._showtraceback(etype, value, lines)
        return lines

    shell.set_custom_exc((SheetError, EnKashError), handler)


def setup_notebook() -> None:
    """The first call of every notebook: readable tables, brief errors, quiet progress bars.

    Without ``ipywidgets`` (not needed to run the notebooks) ``tqdm.auto`` falls back to a text
    bar and warns about it on every import; that warning is noise for an analyst.
    """
    import warnings

    import pandas as pd
    from tqdm import TqdmWarning

    warnings.filterwarnings("ignore", message="IProgress not found", category=TqdmWarning)
    pd.set_option("display.max_colwidth", 160)
    pd.set_option("display.max_rows", 100)
    show_errors_briefly()
