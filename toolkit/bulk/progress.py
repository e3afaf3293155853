"""Progress of a run, a refresh or an import: the callback shapes, and the one tqdm bar.

A progress callback is ``progress(done, total, counts)``; one that takes a ``pace`` keyword
(or ``**kwargs``) also gets the run's `toolkit.pacing.PaceState`. `ProgressBar` fits every
progress callback of the toolkit (the CLI and the notebooks use it).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from toolkit.pacing import PaceState

__all__ = ["PacedProgress", "ProgressBar", "ProgressCallback", "progress_bar", "with_pace"]

ProgressCallback = Callable[[int, int, dict[str, int]], Any]
# ``(done, total, counts, pace)``: any progress callback, called the way it takes it.
PacedProgress = Callable[[int, int, dict[str, int], PaceState], Any]


class ProgressBar:
    """A tqdm bar as a progress callback: ``progress(done, total[, counts])``.

    Fits every progress callback of the toolkit (``sync.refresh``/``import_ids`` call it
    with ``(done, total)``, ``run`` with ``(done, total, counts)``, shown beside the bar). The
    bar starts at the first call's ``done`` (rows reused from an earlier run or invalid), so
    its rate counts only rows sent now, and closes itself when ``done`` reaches ``total``.
    Given ``pace`` (`run` passes a `toolkit.pacing.PaceState`), the bar also shows the send
    rate and when the server is throttling. ``tqdm_class`` picks the bar (default
    ``tqdm.auto``); other keywords go to it.
    """

    def __init__(self, *, tqdm_class: Any = None, **tqdm_kwargs: Any) -> None:
        self._tqdm_class = tqdm_class
        self._kwargs = {"unit": "row", **tqdm_kwargs}
        self.bar: Any = None

    def __call__(
        self,
        done: int,
        total: int | None = None,
        counts: dict[str, int] | None = None,
        *_: Any,
        pace: PaceState | None = None,
    ) -> None:
        bar = self.bar
        if bar is None:
            if self._tqdm_class is None:
                from tqdm.auto import tqdm as tqdm_class
            else:
                tqdm_class = self._tqdm_class
            bar = self.bar = tqdm_class(total=total, initial=done, **self._kwargs)
        if total is not None:
            bar.total = total
        if counts or pace is not None:
            shown: dict[str, Any] = {k: v for k, v in (counts or {}).items() if v}
            if pace is not None:
                shown["req/s"] = f"{pace.sent_per_s:.0f}"
                if pace.paused_s > 0:
                    shown["server"] = f"paused {pace.paused_s:.1f}s"
                elif pace.throttling:
                    shown["server"] = "throttling"
            bar.set_postfix(shown, refresh=False)
        # update() redraws at most every `mininterval`; close() draws the final state.
        if done > bar.n:
            bar.update(done - bar.n)
        if total is not None and done >= total:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def progress_bar(**tqdm_kwargs: Any) -> ProgressBar:
    """A `ProgressBar` (tqdm) to pass as ``progress=`` to `run`, ``refresh`` or ``import_ids``."""
    return ProgressBar(**tqdm_kwargs)


def with_pace(progress: ProgressCallback | None) -> PacedProgress | None:
    """``progress`` called as ``(done, total, counts)``, with ``pace=`` when it takes it."""
    if progress is None:
        return None
    try:
        params = inspect.signature(progress).parameters.values()
    except (TypeError, ValueError):  # a builtin or C callable: the three arguments only
        return lambda done, total, counts, pace: progress(done, total, counts)
    if any(p.name == "pace" or p.kind is p.VAR_KEYWORD for p in params):
        takes_pace: Callable[..., Any] = progress
        return lambda done, total, counts, pace: takes_pace(done, total, counts, pace=pace)
    return lambda done, total, counts, pace: progress(done, total, counts)
