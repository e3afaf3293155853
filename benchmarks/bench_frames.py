"""`configs_to_frame` on 1,000,000 payload dicts vs `pandas.json_normalize` on the same list.

Each side runs in its own child process that builds the same list, then measures the wall time
(best of two) and the peak resident memory the call adds (Linux ``VmHWM`` reset through
``/proc/self/clear_refs`` just before the call, minus ``VmRSS`` then). RSS sees pyarrow's and
numpy's buffers, which tracemalloc would miss.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import time
from pathlib import Path

from benchmarks._harness import Ratio, proc_status

N = 1_000_000
ROOT = Path(__file__).resolve().parents[1]


def make_payloads(n: int = N) -> list[dict]:
    """API-shaped payloads: unique ids, 5,000 companies, 40 events, every 7th answer an update
    answer without companyId (as the portal documents it)."""
    companies = [f"CEK{i:05d}" for i in range(5000)]
    events = [f"EVENT_{i:02d}" for i in range(40)]
    out = []
    for i in range(n):
        row = {
            "coinConfigId": f"WCC{i:07d}",
            "configuration": "CUSTOM" if i % 5 == 0 else "DEFAULT",
            "companyId": companies[i % 5000],
            "event": events[i % 40],
            "amount": i % 997,
        }
        if i % 7 == 0:
            del row["companyId"]
        out.append(row)
    return out


def _child(which: str) -> None:
    import pandas as pd

    from toolkit.frames import configs_to_frame

    fn = configs_to_frame if which == "ours" else pd.json_normalize
    data = make_payloads()
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS to the current RSS
    before = proc_status("VmRSS")
    start = time.perf_counter()
    frame = fn(data)
    first = time.perf_counter() - start
    peak = proc_status("VmHWM") - before
    rows = len(frame)
    del frame
    gc.collect()
    start = time.perf_counter()
    fn(data)
    second = time.perf_counter() - start
    print(json.dumps({"seconds": min(first, second), "peak_bytes": peak, "rows": rows}))


def _measure(which: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_frames", "--child", which],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def run() -> list[Ratio]:
    ours = _measure("ours")
    base = _measure("json_normalize")
    assert ours["rows"] == base["rows"] == N
    speed = base["seconds"] / ours["seconds"]
    memory = ours["peak_bytes"] / max(base["peak_bytes"], 1)
    mb = 1024 * 1024
    return [
        Ratio(
            "configs_to_frame speed vs json_normalize (1M dicts)",
            speed,
            3.0,
            detail=f"({ours['seconds']:.2f} s vs {base['seconds']:.2f} s)",
        ),
        Ratio(
            "configs_to_frame peak RSS vs json_normalize (1M dicts)",
            memory,
            1.0,
            higher_is_better=False,
            detail=f"({ours['peak_bytes'] / mb:.0f} MB vs {base['peak_bytes'] / mb:.0f} MB)",
        ),
    ]


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        _child(sys.argv[2])
    else:
        for ratio in run():
            print(ratio.line())
