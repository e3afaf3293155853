"""Reading and validating a 1,000,000-row configuration CSV vs `pandas.read_csv(dtype=str)`.

The file is generated once into benchmarks/.data/ (git-ignored): 50,000 companies × 20 events,
realistic amounts, one row in a thousand broken in some way. Both sides are timed in this
process, interleaved, best of three; the peak memory of read + validate is the whole-process
peak RSS (``VmHWM``) of a child that does only that, so pyarrow's and numpy's buffers and
the interpreter itself all count.
"""

from __future__ import annotations

import gc
import random
import subprocess
import sys
import time
from pathlib import Path

from benchmarks._harness import Ratio, peak_rss_mb

N = 1_000_000
ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / ".data"
PATH = DATA / "bulk_read_1m.csv"
BROKEN = ["6.5", "abc", "-5", "", "1e3"]


def make_file(path: Path = PATH, n: int = N) -> Path:
    """Write the benchmark CSV once (about 40 MB); later runs reuse it."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    events = [f"EVENT_{i:02d}_PAYMENT" for i in range(20)]
    base = [rng.randint(5, 50) for _ in events]
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as out:
        out.write("companyId,event,amount,configuration,note\n")
        for i in range(n):
            company, e = divmod(i, len(events))
            amount = str(base[e] + rng.randint(-3, 3))
            if i % 1000 == 999:
                amount = BROKEN[(i // 1000) % len(BROKEN)]
            kind = "CUSTOM" if i % 5 == 0 else "DEFAULT"
            out.write(f"CEK{company:07d},{events[e]},{amount},{kind},batch {i // 10000}\n")
    tmp.replace(path)
    return path


def _ours(path: Path):
    from toolkit.bulk import read_configs, validate

    return validate(read_configs(path))


def _baseline(path: Path):
    import pandas as pd

    return pd.read_csv(path, dtype=str)


def _child(path: str) -> None:
    result = _ours(Path(path))
    peak_kib = round(peak_rss_mb() * 1024)
    print(peak_kib, len(result.frame), result.errors)


def run() -> list[Ratio]:
    path = make_file()
    best_ours = best_base = float("inf")
    result = None
    for _ in range(3):
        gc.collect()
        start = time.perf_counter()
        _baseline(path)
        best_base = min(best_base, time.perf_counter() - start)
        gc.collect()
        start = time.perf_counter()
        result = _ours(path)
        best_ours = min(best_ours, time.perf_counter() - start)
    assert result is not None and len(result.frame) == N, "every row must be accounted for"
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_bulk_read", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    peak_kib, rows, errors = (int(x) for x in out.stdout.split())
    peak_gib = peak_kib / 2**20
    return [
        Ratio(
            "read_configs+validate / pandas.read_csv(dtype=str), 1M rows",
            best_ours / best_base,
            2.0,
            higher_is_better=False,
            detail=f"({best_ours:.2f} s vs {best_base:.2f} s; {result.errors:,} errors found)",
        ),
        Ratio(
            "peak memory of read_configs+validate, 1M rows (GiB)",
            peak_gib,
            2.0,
            higher_is_better=False,
            detail=f"(child peak RSS {peak_kib / 1024:.0f} MiB; {rows:,} rows, {errors:,} errors)",
        ),
    ]


if __name__ == "__main__":
    if len(sys.argv) > 1:
        _child(sys.argv[1])
    else:
        for ratio in run():
            print(ratio.line())
