"""Display glue for the notebooks in ``notebooks/``: settings lookup, tqdm progress, tables
an analyst can read, charts that carry their data.

No business rules live here (those are in ``toolkit.bulk``, ``toolkit.frames`` and
``toolkit.registry``); this module only adapts the library to a Jupyter kernel.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from toolkit.display import blank_missing, fill_from_inputs
from toolkit.settings import Settings

__all__ = [
    "connection_summary",
    "notebook_settings",
    "project_root",
    "readable",
    "setup_notebook",
    "show",
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


class _DisplayLine:
    """A file for tqdm that redraws one notebook output in place (an IPython display handle).

    A text bar written to stderr leaves one output per redraw in a saved notebook (papermill,
    nbconvert: hundreds of lines for a slow run), and the ipywidgets bar is saved as its first
    frame ("0%"). Updating one display keeps a single line, live and in the saved file.
    """

    def __init__(self) -> None:
        self._handle: Any = None

    def write(self, text: str) -> None:
        line = text.replace("\r", "").rstrip()
        if not line:  # tqdm's closing newline, or a clear
            return
        bundle = {"text/plain": line}
        if self._handle is None:
            self._handle = _ipython("display")(bundle, raw=True, display_id=True)
        else:
            self._handle.update(bundle, raw=True)

    def flush(self) -> None:
        pass


def _ipython(name: str) -> Callable[..., Any]:
    """``IPython.display.<name>`` (IPython ships no type information for it)."""
    import IPython.display

    found: Callable[..., Any] = getattr(IPython.display, name)
    return found


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with ipykernel
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def tqdm_progress(desc: str, *, unit: str = "row") -> Callable[..., None]:
    """The library's tqdm progress callback (`toolkit.bulk.ProgressBar`), drawn for a notebook.

    In a notebook the bar is one output updated in place (see ``_DisplayLine``), so a saved
    notebook keeps its final state, not one output per redraw; elsewhere a ``tqdm.auto`` bar.
    """
    from tqdm.std import tqdm as text_tqdm

    from toolkit.bulk import ProgressBar

    if _in_kernel():
        # ascii=False: the display line has no encoding for tqdm to look at.
        return ProgressBar(
            tqdm_class=text_tqdm, desc=desc, unit=unit, file=_DisplayLine(), ascii=False
        )
    return ProgressBar(desc=desc, unit=unit)


def readable(frame: pd.DataFrame, inputs: pd.DataFrame | None = None) -> pd.DataFrame:
    """A copy of ``frame`` for reading, not for computing.

    Blank cells instead of NaN, <NA> and None; where a plan keeps no value because the
    analyst's did not pass validation, the analyst's own text from ``inputs`` (same index;
    both rules are `toolkit.display`'s, as in the app);
    times as ``YYYY-MM-DD HH:MM:SS`` (UTC); decimals rounded to 2 places; the spreadsheet's
    ``row`` as the index, so no second row number sits beside it.
    """
    out = fill_from_inputs(frame, inputs)
    for column in out.columns:
        values = out[column]
        if pd.api.types.is_datetime64_any_dtype(values.dtype):
            out[column] = values.dt.strftime("%Y-%m-%d %H:%M:%S").astype(object)
        elif pd.api.types.is_float_dtype(values.dtype):
            out[column] = values.round(2)
    out = blank_missing(out)
    if "row" in out.columns and out["row"].notna().all():
        out = out.set_index("row")
    return out


def show(
    frame: pd.DataFrame, *, empty: str, inputs: pd.DataFrame | None = None, markdown: bool = True
) -> None:
    """Display ``readable(frame)``, or the sentence ``empty`` when there is no row to show
    (an analyst reads "Every row is valid.", not "Empty DataFrame")."""
    display = _ipython("display")
    if frame is None or len(frame) == 0:
        display(_ipython("Markdown")(empty) if markdown else empty)
    else:
        display(readable(frame, inputs))


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


def _chart_renderer(spec: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    """Altair's HTML output plus the chart's vega-lite spec as a JSON mimebundle.

    The page draws the HTML (JupyterLab 4 has no renderer for vega-lite 6); the saved notebook
    keeps the spec and its data under ``application/vnd.vegalite.v6+json`` for tools and
    readers. (Altair's own "mimetype" renderer names it ``….v6.json``, which nbformat refuses
    to save.) The plain-text form names the chart instead of ``alt.Chart(...)``.
    """
    from altair.vegalite.v6.display import VEGALITE_VERSION, html_renderer

    bundle: dict[str, Any] = dict(html_renderer(spec, **metadata))
    bundle[f"application/vnd.vegalite.v{VEGALITE_VERSION.split('.')[0]}+json"] = spec
    title = spec.get("title")
    if isinstance(title, dict):
        title = title.get("text")
    bundle["text/plain"] = f"[chart] {title}" if title else "[chart]"
    return bundle


def setup_notebook() -> None:
    """The first call of every notebook: readable tables, brief errors, charts with their data.

    Without ``ipywidgets`` (not needed to run the notebooks) ``tqdm.auto`` falls back to a text
    bar and warns about it on every import; that warning is noise for an analyst.
    """
    import warnings

    from tqdm import TqdmWarning

    warnings.filterwarnings("ignore", message="IProgress not found", category=TqdmWarning)
    pd.set_option("display.max_colwidth", None)  # a reason cut at "…" hides its hint
    pd.set_option("display.max_rows", 100)
    pd.set_option("display.min_rows", 20)
    try:
        import altair as alt

        alt.renderers.register("coins-notebook", _chart_renderer)
        alt.renderers.enable("coins-notebook")
    except ImportError:  # pragma: no cover - a different altair major: keep its default
        pass
    show_errors_briefly()
