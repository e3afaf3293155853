"""`toolkit.sync.refresh()` of 2,000 ids against a sandbox answering after 50 ms, 16 at a time.

The ideal is 16 / 0.05 s = 320 fetches/s; the ratio is measured fetches/s ÷ 320. The sandbox
runs as its own process (``python -m toolkit.sandbox``), as the real API would be remote. The
2,000 configurations are created through the client with no latency first, then the latency
is switched on through the sandbox's admin route (benchmarks may; the toolkit never does).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from benchmarks._harness import Ratio

IDS = 2_000
CONCURRENCY = 16
LATENCY_S = 0.05
ROOT = Path(__file__).resolve().parents[1]


def _start_sandbox(db_path: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "toolkit.sandbox", "--port", "0", "--db", str(db_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    line = proc.stdout.readline() if proc.stdout else ""
    if "http" not in line:
        proc.kill()
        raise RuntimeError(f"the sandbox did not start: {line!r}")
    return proc, line.strip().split()[-1]


def run() -> list[Ratio]:
    from toolkit import sync
    from toolkit.client import CoinsClient
    from toolkit.registry import Registry
    from toolkit.settings import SANDBOX_CREDENTIALS

    with tempfile.TemporaryDirectory() as tmp:
        proc, url = _start_sandbox(Path(tmp) / "sandbox.sqlite3")
        try:
            client = CoinsClient(base_url=url, **SANDBOX_CREDENTIALS, pool_maxsize=32)
            registry = Registry(Path(tmp) / "registry.sqlite3", client=client, actor="bench")
            with ThreadPoolExecutor(CONCURRENCY) as pool:
                list(
                    pool.map(
                        lambda i: client.create_config(
                            company_id=f"BENCH{i // 20:04d}", event=f"EVENT_{i % 20:02d}", amount=i
                        ),
                        range(IDS),
                    )
                )
            assert len(registry.to_frame()) == IDS
            requests.put(
                f"{url}/_sandbox/faults", json={"latency_ms": LATENCY_S * 1000}, timeout=10
            ).raise_for_status()
            start = time.perf_counter()
            report = sync.refresh(client, registry, concurrency=CONCURRENCY)
            elapsed = time.perf_counter() - start
            assert (report["status"] == "unchanged").all(), report["status"].value_counts()
            registry.close()
            client.close()
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
    rate = IDS / elapsed
    ideal = CONCURRENCY / LATENCY_S
    return [
        Ratio(
            f"sync.refresh {IDS} ids, latency 50 ms, concurrency 16: fetches/s ÷ ideal",
            rate / ideal,
            0.8,
            detail=f"({rate:.0f}/s vs ideal {ideal:.0f}/s, {elapsed:.2f} s)",
        )
    ]


if __name__ == "__main__":
    for ratio in run():
        print(ratio.line())
