"""Tiny shared harness: every benchmark reports ratios against a baseline from the same run."""

from __future__ import annotations

import resource
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Ratio", "measure", "peak_memory", "peak_rss_mb", "proc_status"]


@dataclass(frozen=True)
class Ratio:
    """One measured ratio and the target it must meet (``higher_is_better`` picks the side)."""

    name: str
    value: float
    target: float
    higher_is_better: bool = True
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.value >= self.target if self.higher_is_better else self.value <= self.target

    def line(self) -> str:
        op = ">=" if self.higher_is_better else "<="
        mark = "PASS" if self.ok else "FAIL"
        return f"[{mark}] {self.name}: {self.value:.2f} (target {op} {self.target:g}) {self.detail}"


def measure(fn: Callable[[], Any], *, repeat: int = 1) -> tuple[float, Any]:
    """Best wall time of ``repeat`` runs of ``fn`` and the last result."""
    best = float("inf")
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def peak_memory(fn: Callable[[], Any]) -> tuple[int, Any]:
    """Peak Python-allocated bytes while ``fn`` runs (tracemalloc; numpy/pyarrow buffers
    are tracked through their allocators' Python hooks where they report them)."""
    tracemalloc.start()
    try:
        result = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, result


def proc_status(field: str) -> int:
    """A ``/proc/self/status`` figure (``VmRSS``, ``VmHWM``, …) in bytes (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_rss_mb() -> float:
    """This process's own peak resident memory in MB: ``VmHWM``, the high-water mark of its
    memory since it was exec'd. Not ``ru_maxrss``: Linux carries into a child the resident
    size of the parent it was forked from, so the child of a big benchmark process reported
    the parent's size, not its own."""
    try:
        return proc_status("VmHWM") / 2**20
    except (OSError, RuntimeError):  # not Linux
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
