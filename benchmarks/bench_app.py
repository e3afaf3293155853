"""The app stays fast with a large programme: an AppTest rerun of Overview and of Configurations
with 100,000 configurations in the registry costs at most 3× the same rerun with 100.

Both registries are built once without HTTP (as if the ids had been imported) under
`benchmarks/.data/` and reused by later runs; the app runs against the embedded sandbox of
each home, as `make run` would with no EnKash settings.
"""

from __future__ import annotations

import os
import statistics
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from benchmarks._harness import Ratio

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / ".data"
APP = str(ROOT / "app.py")
SIZES = (100, 100_000)
EVENTS = 15
RERUNS = 5
TARGET = 3.0


def _server_key(home: Path) -> str:
    # What toolkit.workspace.open_client uses for the embedded sandbox of this home.
    return "sandbox:" + str((home / "sandbox.sqlite3").resolve())


def _build(home: Path, n: int) -> None:
    from toolkit.client import ApiCall
    from toolkit.models import CoinConfig, Configuration
    from toolkit.registry import Registry

    home.mkdir(parents=True, exist_ok=True)
    partial = home / "registry.sqlite3"
    for stale in home.glob("registry.sqlite3*"):
        stale.unlink()
    server_key = _server_key(home)
    registry = Registry(partial, server_key=server_key, actor="bench")
    now = datetime.now(UTC)
    for i in range(n):
        company, event = divmod(i, EVENTS)
        config = CoinConfig(
            coin_config_id=f"WCCB{i:07d}",
            company_id=f"CEKB{company:06d}",
            event=f"BENCH_EVENT_{event:02d}",
            configuration=Configuration.CUSTOM if i % 5 == 0 else Configuration.DEFAULT,
            amount=(event + 1) * 3 + company % 11,
        )
        registry.record_call(
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
    registry.close()
    (home / "READY").write_text(str(n))


def _home(n: int) -> Path:
    home = DATA / f"app-{n}"
    ready = home / "READY"
    if not ready.exists() or ready.read_text() != str(n):
        print(f"   building a registry of {n:,} configurations (once)…", flush=True)
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


def _rerun_seconds(home: Path, page: str) -> float:
    """Median wall time of an AppTest rerun of ``page`` (after a first, warming run)."""
    from streamlit.testing.v1 import AppTest

    with _environment(home):
        at = AppTest.from_file(APP, default_timeout=300)
        at.run()
        if page != "toolkit/ui/overview.py":
            at.switch_page(page)
        at.run()  # warm: connection, caches
        if at.exception:
            raise RuntimeError(f"{page}: {[e.value for e in at.exception]}")
        times = []
        for _ in range(RERUNS):
            start = time.perf_counter()
            at.run()
            times.append(time.perf_counter() - start)
        return statistics.median(times)


def run() -> list[Ratio]:
    os.chdir(ROOT)
    homes = {n: _home(n) for n in SIZES}
    small, large = SIZES
    ratios = []
    for page, name in (
        ("toolkit/ui/overview.py", "Overview"),
        ("toolkit/ui/configurations.py", "Configurations"),
    ):
        t_small = _rerun_seconds(homes[small], page)
        t_large = _rerun_seconds(homes[large], page)
        ratios.append(
            Ratio(
                name=f"app {name} rerun, {large:,} vs {small:,} configurations",
                value=t_large / t_small,
                target=TARGET,
                higher_is_better=False,
                detail=f"({t_large * 1000:.0f} ms vs {t_small * 1000:.0f} ms, median of {RERUNS})",
            )
        )
    return ratios


if __name__ == "__main__":
    for ratio in run():
        print(ratio.line())
