"""Bulk create against a sandbox behind a token bucket of R requests/s: the run finds R itself.

For R = 40 and R = 150 (50 ms latency, bucket R: one second's worth), each over-limit answer
(429 with ``Retry-After: 1``, 429 without it, HTTP 200 with EnKash's velocity code 36), starting
at 4, 16 and 64 rows in flight, no ``--rps``: rows/s ÷ R ≥ 0.95, throttled answers ≤ 5% of the
rows, no row failed. Side by side, the same sheet run with ``rps=R`` (the limit known, as an
analyst who guessed right): the automatic runs must reach 0.95 of it, worst case over the
table (how the issue is checked; it also shows what this machine can do at R).

The sandbox is a subprocess (``--latency-ms 50``); between runs it is reset, its bucket set
again (it starts full) and the run gets a fresh registry. Rows: 800 at R = 40 and 2,400 at
R = 150 (about 20 s a run, 18 runs plus 2 with the limit known: ~7 minutes) — the issue's
2,000 rows at R = 40 would take 50 s a run. ``BENCH_THROTTLE_ROWS=N`` runs N rows for both.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from benchmarks._harness import Ratio
from benchmarks._sandbox import sandbox_process
from toolkit.settings import SANDBOX_CREDENTIALS

LATENCY_MS = 50
LIMITS = (40, 150)
STYLES = ("retry-after", "no-retry-after", "velocity")
STARTS = (4, 16, 64)
ROWS = {40: 800, 150: 2400}


def _rows(limit: int) -> int:
    return int(os.environ.get("BENCH_THROTTLE_ROWS", ROWS[limit]))


def _admin(url: str, method: str, path: str, **kw: Any) -> Any:
    answer = requests.request(method, url + path, timeout=30, **kw)
    answer.raise_for_status()
    body = answer.json()
    return body.get("payload", body) if isinstance(body, dict) else body


def _one_run(
    url: str,
    workdir: Path,
    *,
    name: str,
    limit: int,
    style: str,
    start: int,
    rps: float | None = None,
) -> dict[str, float]:
    """One bulk create of a fresh sheet against a freshly limited sandbox."""
    from toolkit import bulk
    from toolkit.client import CoinsClient
    from toolkit.registry import Registry

    rows = _rows(limit)
    _admin(url, "POST", "/_sandbox/reset")
    _admin(url, "PUT", "/_sandbox/faults", json={"latency_ms": LATENCY_MS})
    csv = workdir / f"{name}.csv"
    lines = ["companyId,event,amount"]
    prefix = "CT" + re.sub(r"[^A-Z0-9]", "", name.upper())[:10]
    lines += [f"{prefix}{i:06d},MEAL_CARD_PAYMENT,{1 + i % 50}" for i in range(rows)]
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    client = CoinsClient(base_url=url, **SANDBOX_CREDENTIALS)
    registry = Registry(workdir / f"{name}.sqlite3", client=client)
    try:
        client.login()  # before the clock and before the limit: a session already logged in
        plan = bulk.plan(bulk.validate(bulk.read_configs(csv)), registry)
        _admin(url, "PUT", "/_sandbox/rate-limit", json={"rate": limit, "style": style})
        before = _admin(url, "GET", "/_sandbox/stats")
        started = time.perf_counter()
        result = bulk.run(
            plan,
            client=client,
            registry=registry,
            rps=rps if rps is not None else "auto",
            start_concurrency=start,
        )
        elapsed = time.perf_counter() - started
        after = _admin(url, "GET", "/_sandbox/stats")
    finally:
        _admin(url, "PUT", "/_sandbox/rate-limit", json={"rate": None})
        client.close()
        registry.close()
    throttled = after["throttled"] - before["throttled"]
    frame = result.frame
    others = frame[frame["status"] != "created"]
    why = ", ".join(f"{n} {status}" for status, n in others["status"].value_counts().items())
    if len(others):
        why += f" ({str(others['message'].iloc[0])[:160]})"
    return {
        "why": why,
        "rows_per_s": result.counts.get("created", 0) / elapsed,
        "throttled": throttled / rows,
        "failed": rows - result.counts.get("created", 0),
        "limit": (result.pace.limit or 0.0) if result.pace else 0.0,
        "requests": after["api_requests"] - before["api_requests"],
        "elapsed": elapsed,
    }


def run() -> list[Ratio]:
    ratios: list[Ratio] = []
    with tempfile.TemporaryDirectory(prefix="bench-throttle-") as tmp:
        workdir = Path(tmp)
        with sandbox_process("--latency-ms", str(LATENCY_MS), "--dialect", "enkash") as url:
            for limit in LIMITS:
                known = _one_run(
                    url, workdir, name=f"k{limit}", limit=limit, style="no-retry-after",
                    start=16, rps=limit,
                )  # fmt: skip
                worst_rate, worst_throttled, failed, worst_known = 9.0, 0.0, 0, 9.0
                why: list[str] = []
                lines = []
                for style in STYLES:
                    for start in STARTS:
                        got = _one_run(
                            url, workdir, name=f"{style[:3]}{limit}s{start}", limit=limit,
                            style=style, start=start,
                        )  # fmt: skip
                        worst_rate = min(worst_rate, got["rows_per_s"] / limit)
                        worst_known = min(worst_known, got["rows_per_s"] / known["rows_per_s"])
                        worst_throttled = max(worst_throttled, got["throttled"])
                        failed += int(got["failed"])
                        if got["why"]:
                            why.append(f"{style}/{start}: {got['why']}")
                        lines.append(
                            f"{style}/{start}: {got['rows_per_s'] / limit:.2f} R, "
                            f"{got['throttled']:.1%} throttled, limit ~{got['limit']:.0f}"
                        )
                        print(f"   R={limit} {lines[-1]}", flush=True)
                rows = _rows(limit)
                ratios += [
                    Ratio(
                        f"R={limit}: rows/s ÷ R, worst of 3 styles × start 4/16/64, no --rps",
                        worst_rate,
                        0.95,
                        detail=f"({rows} rows a run; with rps=R known: "
                        f"{known['rows_per_s'] / limit:.2f} R)",
                    ),
                    Ratio(
                        f"R={limit}: rows/s ÷ the same run with rps=R given, worst",
                        worst_known,
                        0.95,
                    ),
                    Ratio(
                        f"R={limit}: throttled answers ÷ rows, worst",
                        worst_throttled,
                        0.05,
                        higher_is_better=False,
                    ),
                    Ratio(
                        f"R={limit}: rows not created, all runs",
                        failed,
                        0,
                        higher_is_better=False,
                        detail="; ".join(why),
                    ),
                ]
    return ratios


if __name__ == "__main__":
    for ratio in run():
        print(ratio.line())
