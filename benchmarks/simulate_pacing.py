"""The run-wide pacer against simulated token buckets: a fast look at a pacing change.

``python -m benchmarks.simulate_pacing`` drives the real `toolkit.pacing.RateController` (no
threads, no HTTP, time simulated) against a token bucket of R requests/s holding B, whose
over-limit answers ask for a ``Retry-After`` pause or none, each request taking about 53 ms
(as the sandbox at 50 ms). It prints rows/s ÷ R and throttled answers per row, the worst over
starts of 4, 16 and 64 in flight and two seeds, beside the same run with the rate known
(``rps=R``). A discrete-event model: it leaves out the client's CPU and the GIL, so it runs a
few percent above the real sandbox (`bench_bulk_throttle` is the measurement); it is a way to
see a change's effect on shapes the benchmark does not cover in seconds, not a benchmark.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass

from toolkit.pacing import RateController

RTT_S = 0.053
# (R, bucket, Retry-After seconds or None, rows)
SHAPES: tuple[tuple[float, int, float | None, int], ...] = (
    (40, 40, 1.0, 2000),
    (40, 40, None, 2000),
    (40, 5, 1.0, 2000),
    (40, 200, 1.0, 2000),
    (40, 40, 2.0, 2000),
    (150, 150, 1.0, 2400),
    (150, 10, 1.0, 2400),
    (150, 150, None, 2400),
    (100, 20, None, 2400),
)


@dataclass(frozen=True)
class Outcome:
    rows_per_s: float
    throttled_per_row: float


def simulate(
    *,
    limit: float,
    burst: int,
    retry_after: float | None,
    rows: int,
    start: int = 16,
    seed: int = 1,
    known: bool = False,
) -> Outcome:
    """One run of ``rows`` requests through a `RateController` against the bucket."""
    draw = random.Random(seed)
    control = RateController(
        start_concurrency=start,
        rps_cap=limit if known else None,
        random_source=draw.random,
        now=0.0,
    )
    now, tokens, last = 0.0, float(burst), 0.0
    in_flight: list[tuple[float, float, bool]] = []  # (answer at, granted at, accepted)
    sent = done = throttled = 0
    while done < rows:
        while (
            sent < rows
            and len(in_flight) < control.concurrency(now)
            and control.ready_at(now) <= now
        ):
            granted = control.grant(now)
            sent += 1
            tokens, last = min(burst, tokens + (now - last) * limit), now
            accepted = tokens >= 1
            if accepted:
                tokens -= 1
            heapq.heappush(
                in_flight, (now + RTT_S * (0.9 + 0.2 * draw.random()), granted, accepted)
            )
        moments = [in_flight[0][0]] if in_flight else []
        if sent < rows and len(in_flight) < control.concurrency(now):
            moments.append(max(control.ready_at(now), now + 1e-6))
        now = max(min(moments), now + 1e-6)
        while in_flight and in_flight[0][0] <= now:
            _, granted, accepted = heapq.heappop(in_flight)
            waiting = (
                sent < rows
                and len(in_flight) < control.concurrency(now)
                and control.ready_at(now) > now
            )
            control.answered(
                now,
                granted,
                throttled=not accepted,
                retry_after=None if accepted else retry_after,
                backlogged=waiting,
            )
            if accepted:
                done += 1
            else:
                throttled += 1
                sent -= 1  # sent again later
    return Outcome(rows / now / limit, throttled / rows)


def main() -> None:
    for limit, burst, retry_after, rows in SHAPES:
        runs = [
            simulate(
                limit=limit, burst=burst, retry_after=retry_after, rows=rows, start=s, seed=seed
            )
            for s in (4, 16, 64)
            for seed in (1, 2)
        ]
        known = simulate(limit=limit, burst=burst, retry_after=retry_after, rows=rows, known=True)
        answer = "no Retry-After" if retry_after is None else f"Retry-After {retry_after:g} s"
        print(
            f"R={limit:g} bucket {burst}, {answer}, {rows} rows: "
            f"{min(r.rows_per_s for r in runs):.3f} R worst, "
            f"{max(r.throttled_per_row for r in runs):.1%} throttled "
            f"(rps=R known: {known.rows_per_s:.3f} R)",
            flush=True,
        )


if __name__ == "__main__":
    main()
