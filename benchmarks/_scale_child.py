"""The child process of `bench_bulk_scale`: one allocation sheet read, validated, planned and
run against a sandbox, its peak RSS printed as JSON on the last line.

``python -m benchmarks._scale_child URL SHEET WORKDIR SEND`` — SEND rows are sent, then the run
is stopped (its other rows end ``skipped``, journaled and written to the results file like any
row); SEND 0 sends them all.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any


def main(url: str, sheet: str, workdir: str, send: int) -> dict[str, Any]:
    from benchmarks._harness import peak_rss_mb
    from toolkit import bulk
    from toolkit.client import CoinsClient
    from toolkit.registry import Registry
    from toolkit.settings import SANDBOX_CREDENTIALS

    client = CoinsClient(base_url=url, **SANDBOX_CREDENTIALS)
    registry = Registry(Path(workdir) / "registry.sqlite3", client=client)
    companies = sorted({line.split(",", 1)[0] for line in _first_lines(sheet, 10_000)})
    for company in companies:  # the pairs the sheet allocates for exist on the server
        client.create_config(company_id=company, event="MEAL_CARD_PAYMENT", amount=5)
    started = time.perf_counter()
    plan = bulk.plan_allocations(bulk.validate_allocations(bulk.read_allocations(sheet)), registry)
    planned = time.perf_counter()
    cancel = threading.Event()

    def progress(done: int, total: int, counts: dict[str, int]) -> None:
        if send and counts.get("allocated", 0) >= send:
            cancel.set()

    result = bulk.run(
        plan,
        client=client,
        registry=registry,
        progress=progress,
        cancel=cancel,
        results_path=Path(workdir) / "results.csv",
    )
    client.close()
    registry.close()
    return {
        "rows": len(result.frame),
        "allocated": result.counts.get("allocated", 0),
        "skipped": result.counts.get("skipped", 0),
        "plan_s": planned - started,
        "run_s": result.elapsed_s,
        "peak_mb": peak_rss_mb(),
    }


def _first_lines(path: str, n: int) -> list[str]:
    with open(path, encoding="utf-8") as handle:
        next(handle)  # the header
        return [line for _, line in zip(range(n), handle, strict=False)]


if __name__ == "__main__":
    url, sheet, workdir, send = sys.argv[1:5]
    print(json.dumps(main(url, sheet, workdir, int(send))), flush=True)
