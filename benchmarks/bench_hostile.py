"""How fast, and in how little memory, the reader refuses the issue's five hostile files.

The files come from `tests/data/make_hostile.py` (made once into benchmarks/.data/hostile/,
git-ignored): an .xlsx declaring A1:XFD200000, a 1 GiB shared string in 1 MB, 100,000
columns, a 210 MB CSV and 6 million rows. Each is refused by `read_configs` in a fresh child
process (so imports, caches and an earlier file's buffers do not count); the figures are the
worst wall time of the refusal itself and the worst whole-process peak RSS (``VmHWM``),
against the issue's targets of 2 s and 300 MB.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks._harness import Ratio

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / ".data" / "hostile"

CHILD = """
import json, sys, time
from benchmarks._harness import peak_rss_mb
from toolkit.bulk import SheetError, read_configs
start = time.perf_counter()
try:
    read_configs(sys.argv[1])
    refused = False
except SheetError:
    refused = True
seconds = time.perf_counter() - start
print(json.dumps({"refused": refused, "seconds": seconds,
                  "peak_mb": peak_rss_mb()}))
"""


def _corpus() -> dict[str, Path]:
    sys.path.insert(0, str(ROOT / "tests" / "data"))
    import make_hostile

    names = [h.name for h in make_hostile.CORPUS if h.issue]
    return make_hostile.write(DATA, names)


def run() -> list[Ratio]:
    files = _corpus()
    seconds: dict[str, float] = {}
    peaks: dict[str, float] = {}
    for name, path in files.items():
        best = None
        for _ in range(3):
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(path)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            )
            answer = json.loads(out.stdout)
            assert answer["refused"], f"{name} was not refused"
            if best is None or answer["seconds"] < best["seconds"]:
                best = answer
        assert best is not None
        seconds[name], peaks[name] = best["seconds"], best["peak_mb"]
    slowest = max(seconds, key=seconds.__getitem__)
    biggest = max(peaks, key=peaks.__getitem__)
    return [
        Ratio(
            "refusing the issue's hostile files, worst time (s)",
            seconds[slowest],
            2.0,
            higher_is_better=False,
            detail=f"({slowest}; " + ", ".join(f"{n} {s:.2f}" for n, s in seconds.items()) + ")",
        ),
        Ratio(
            "refusing the issue's hostile files, worst peak memory (MB)",
            peaks[biggest],
            300.0,
            higher_is_better=False,
            detail=f"(child peak RSS, {biggest})",
        ),
    ]


if __name__ == "__main__":
    for ratio in run():
        print(ratio.line())
