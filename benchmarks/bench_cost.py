"""Cost figures stay fast with a large history.

1. With 1,000,000 allocation records, coins awarded per company and month
   (`toolkit.cost.awarded`) take at most 2× a plain two-column `groupby(...).sum()` of the
   coins over the same frame.
2. An AppTest rerun of the Cost page with 1,000,000 allocation records in the registry costs at
   most 3× the same rerun with 1,000.

The registries are built once under `benchmarks/.data/` (configurations recorded as if fetched,
allocation records written straight into the registry's table) and reused by later runs; the
app runs against the embedded sandbox of each home, as `make run` would.
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks._harness import Ratio, measure

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / ".data"
APP = str(ROOT / "app.py")
PAGE = "toolkit/ui/cost.py"
N = 1_000_000
SIZES = (1_000, N)
COMPANIES, EVENTS = 200, 15
RERUNS = 5


def allocation_frame(n: int = N, *, seed: int = 7) -> pd.DataFrame:
    """Allocation records as `Registry.allocations_frame` gives them: a year, 2,000
    companies, 20 events, 1% confirmed."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2025-01-01", tz="UTC")
    at = start + pd.to_timedelta(rng.integers(0, 365 * 86_400, n), unit="s")
    companies = np.array([f"CEK{i:05d}" for i in range(2_000)])
    events = np.array([f"EVENT_{i:02d}" for i in range(20)])
    return pd.DataFrame(
        {
            "at": pd.Series(at).astype("datetime64[us, UTC]"),
            "companyId": pd.array(companies[rng.integers(0, 2_000, n)], dtype="str"),
            "event": pd.array(events[rng.integers(0, 20, n)], dtype="str"),
            "coins": pd.array(rng.integers(1, 200, n), dtype="Int64"),
            "status": pd.array(
                np.where(rng.random(n) < 0.99, "allocated", "confirmed"), dtype="str"
            ),
        }
    )


def _awarded_ratio() -> Ratio:
    from toolkit import cost

    frame = allocation_frame()
    plain, _ = measure(lambda: frame.groupby(["companyId", "event"])["coins"].sum(), repeat=3)
    ours, result = measure(lambda: cost.awarded(frame, by="companyId", period="month"), repeat=3)
    assert int(result["coins"].sum()) == int(frame["coins"].sum())
    return Ratio(
        name=f"cost.awarded per company and month, {N:,} records vs a plain groupby",
        value=ours / plain,
        target=2.0,
        higher_is_better=False,
        detail=f"({ours * 1000:.0f} ms vs {plain * 1000:.0f} ms, best of 3)",
    )


# --------------------------------------------------------------------------- the Cost page


def _server_key(home: Path) -> str:
    return "sandbox:" + str((home / "sandbox.sqlite3").resolve())


def _build(home: Path, n: int) -> None:
    from toolkit.client import ApiCall
    from toolkit.models import CoinConfig, Configuration
    from toolkit.registry import Registry

    home.mkdir(parents=True, exist_ok=True)
    for stale in home.glob("registry.sqlite3*"):
        stale.unlink()
    server_key = _server_key(home)
    path = home / "registry.sqlite3"
    now = datetime.now(UTC)
    calls = []
    for i in range(COMPANIES * EVENTS):
        company, event = divmod(i, EVENTS)
        config = CoinConfig(
            coin_config_id=f"WCCC{i:07d}",
            company_id=f"CEKC{company:05d}",
            event=f"COST_EVENT_{event:02d}",
            configuration=Configuration.DEFAULT,
            amount=(event + 1) * 4,
        )
        calls.append(
            ApiCall(
                action="get",
                server_key=server_key,
                coin_config_id=config.coin_config_id,
                request={"coinConfigId": config.coin_config_id},
                result=config,
                source="bench",
                actor="bench",
                at=now,
            )
        )
    with Registry(path, server_key=server_key, actor="bench") as registry:
        registry.record_calls(calls)
    rng = np.random.default_rng(n)
    pairs = rng.integers(0, COMPANIES * EVENTS, n)
    ages = rng.integers(0, 60 * 86_400, n)  # the last 60 days: two months, a 30-day window
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT INTO allocations (server_key, request_id, at, company_id, event, user_id,"
            " coin_config_id, coins, status, source, actor) VALUES (?, ?, ?, ?, ?, ?, ?, ?,"
            " 'allocated', 'bench', 'bench')",
            (
                (
                    server_key,
                    f"BENCH{i:08d}",
                    (now - timedelta(seconds=int(age))).isoformat(timespec="microseconds"),
                    f"CEKC{int(p) // EVENTS:05d}",
                    f"COST_EVENT_{int(p) % EVENTS:02d}",
                    f"EKU{i % 50_000:06d}",
                    f"WCCC{int(p):07d}",
                    (int(p) % EVENTS + 1) * 4,
                )
                for i, (p, age) in enumerate(zip(pairs, ages, strict=True))
            ),
        )
    (home / "READY").write_text(str(n))


def _home(n: int) -> Path:
    home = DATA / f"cost-{n}"
    ready = home / "READY"
    if not ready.exists() or ready.read_text() != str(n):
        print(f"   building a registry of {n:,} allocation records (once)…", flush=True)
        _build(home, n)
    return home


@contextmanager
def _environment(home: Path):
    saved = {k: v for k, v in os.environ.items() if k.startswith(("ENKASH_", "COINS_"))}
    for name in saved:
        del os.environ[name]
    os.environ["COINS_HOME"] = str(home)
    os.environ["COINS_ACTOR"] = "bench"
    try:
        yield
    finally:
        for name in ("COINS_HOME", "COINS_ACTOR"):
            os.environ.pop(name, None)
        os.environ.update(saved)


def _rerun_seconds(home: Path) -> float:
    """Median wall time of an AppTest rerun of the Cost page (after warming runs)."""
    from streamlit.testing.v1 import AppTest

    with _environment(home):
        at = AppTest.from_file(APP, default_timeout=600)
        at.run()
        at.switch_page(PAGE).run()
        at.run()  # warm: connection, caches
        if at.exception:
            raise RuntimeError(f"{PAGE}: {[e.value for e in at.exception]}")
        times = []
        for _ in range(RERUNS):
            start = time.perf_counter()
            at.run()
            times.append(time.perf_counter() - start)
        return statistics.median(times)


def _page_ratio() -> Ratio:
    homes = {n: _home(n) for n in SIZES}
    small, large = SIZES
    t_small = _rerun_seconds(homes[small])
    t_large = _rerun_seconds(homes[large])
    return Ratio(
        name=f"app Cost rerun, {large:,} vs {small:,} allocation records",
        value=t_large / t_small,
        target=3.0,
        higher_is_better=False,
        detail=f"({t_large * 1000:.0f} ms vs {t_small * 1000:.0f} ms, median of {RERUNS})",
    )


def run() -> list[Ratio]:
    os.chdir(ROOT)
    return [_awarded_ratio(), _page_ratio()]


if __name__ == "__main__":
    for ratio in run():
        print(ratio.line())
