"""Bulk create: the toolkit at concurrency 16 vs a sequential `requests.post` loop, same run.

The sandbox runs as a subprocess (``python -m toolkit.sandbox --latency-ms 50``), so every
create costs at least 50 ms of server time: the ideal for 16 in flight is 16 / 0.05 = 320
rows/s. The toolkit's time is the whole job an analyst runs (read the CSV, validate, plan
against the registry, run with the journal and the registry recording every call). The
baseline — what a notebook loop or Postman runner does — creates a 200-row subset one
request at a time; its rate is extrapolated to 5,000 rows (it is flat: one request per row).
The sandbox is reset between the two (`POST /_sandbox/reset`, allowed in benchmarks only; a
reset also clears faults, so the 50 ms latency is set again and checked before the toolkit runs).

Then against a fast server (latency 0, where the client is the bottleneck): the toolkit's run
with its defaults (``concurrency``/``rps`` auto) against a bare 16-thread loop of
``requests.Session().post`` doing the same creates against the same sandbox, 3,000 rows each,
the sandbox reset between: the toolkit must be at least as fast (≥ 1.0×).
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

import requests

from benchmarks._harness import Ratio
from benchmarks._sandbox import sandbox_process
from toolkit.settings import SANDBOX_CREDENTIALS

ROWS = 5_000
BASELINE_ROWS = 200
CONCURRENCY = 16
LATENCY_MS = 50
IDEAL_RPS = CONCURRENCY / (LATENCY_MS / 1000)
FAST_ROWS = 3_000
BARE_THREADS = 16


def _rows(n: int) -> list[tuple[str, str, int, str]]:
    return [(f"CB{i:06d}", "MEAL_CARD_PAYMENT", 1 + i % 50, "DEFAULT") for i in range(n)]


def _token(url: str) -> str:
    creds = SANDBOX_CREDENTIALS
    answer = requests.post(
        url + "/oauth/token",
        data={
            "username": creds["username"],
            "password": creds["password"],
            "grant_type": "password",
            "clientId": creds["client_id"],
        },
        auth=(creds["client_id"], creds["client_secret"]),
        timeout=15,
    )
    answer.raise_for_status()
    return answer.json()["access_token"]


CREATE_PATH = "/api/v0/enkash-coins/create-coins-config"


def _body(row: tuple[str, str, int, str]) -> dict[str, object]:
    company, event, amount, configuration = row
    return {"companyId": company, "event": event, "amount": amount, "configuration": configuration}


def _baseline(url: str) -> float:
    """Rows/s of a plain sequential loop (what analysts run today)."""
    headers = {"Authorization": f"Bearer {_token(url)}"}
    rows = _rows(BASELINE_ROWS)
    start = time.perf_counter()
    for row in rows:
        answer = requests.post(url + CREATE_PATH, json=_body(row), headers=headers, timeout=15)
        assert answer.json()["response_code"] == 0, answer.text
    return len(rows) / (time.perf_counter() - start)


def _bare_loop(url: str, rows: list[tuple[str, str, int, str]], threads: int) -> float:
    """Rows/s of ``threads`` threads sharing one plain ``requests.Session``, each posting the
    next row's create (what a hand-written concurrent notebook loop does)."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {_token(url)}"
    session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=threads))
    todo = iter(rows)
    lock = threading.Lock()
    bad: list[str] = []

    def worker() -> None:
        while True:
            with lock:
                row = next(todo, None)
            if row is None:
                return
            answer = session.post(url + CREATE_PATH, json=_body(row), timeout=15)
            if answer.status_code != 200 or answer.json().get("response_code") != 0:
                bad.append(answer.text)

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - start
    session.close()
    if bad:
        raise RuntimeError(f"the bare loop's creates failed: {bad[0]}")
    return len(rows) / elapsed


def _toolkit_run_only(url: str, workdir: Path, rows: int) -> float:
    """Rows/s of ``bulk.run`` alone, its defaults (auto), the sheet planned beforehand."""
    from toolkit import bulk
    from toolkit.client import CoinsClient
    from toolkit.registry import Registry

    csv = workdir / "fast.csv"
    lines = ["companyId,event,amount,configuration"]
    lines += [f"{c},{e},{a},{k}" for c, e, a, k in _rows(rows)]
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    client = CoinsClient(base_url=url, **SANDBOX_CREDENTIALS)
    for stale in workdir.glob("fast.sqlite3*"):  # a fresh registry and journal: no resume
        stale.unlink()
    registry = Registry(workdir / "fast.sqlite3", client=client)
    try:
        client.login()
        plan = bulk.plan(bulk.validate(bulk.read_configs(csv)), registry)
        start = time.perf_counter()
        result = bulk.run(plan, client=client, registry=registry)
        elapsed = time.perf_counter() - start
    finally:
        client.close()
        registry.close()
    if result.counts.get("created") != rows:
        raise RuntimeError(f"the toolkit did not create every row: {result.summary()}")
    return rows / elapsed


def _fast_server(url: str, workdir: Path) -> tuple[float, float]:
    """(toolkit rows/s, bare loop rows/s) against the sandbox at latency 0."""
    for attempt in ("bare", "toolkit"):
        requests.post(url + "/_sandbox/reset", timeout=30).raise_for_status()
        faults = requests.get(url + "/_sandbox/faults", timeout=30).json()["payload"]
        if faults.get("latency_ms"):
            raise RuntimeError(f"the sandbox still has latency after a reset: {faults}")
        if attempt == "bare":
            bare = _bare_loop(url, _rows(FAST_ROWS), BARE_THREADS)
        else:
            toolkit = _toolkit_run_only(url, workdir, FAST_ROWS)
    return toolkit, bare


def _toolkit(url: str, workdir: Path) -> tuple[float, float, int]:
    """(rows/s end to end, rows/s of the run alone, configurations on the server)."""
    from toolkit import bulk
    from toolkit.client import CoinsClient
    from toolkit.registry import Registry

    csv = workdir / "configs.csv"
    lines = ["companyId,event,amount,configuration"]
    lines += [f"{c},{e},{a},{k}" for c, e, a, k in _rows(ROWS)]
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    client = CoinsClient(base_url=url, **SANDBOX_CREDENTIALS, pool_maxsize=CONCURRENCY * 2)
    registry = Registry(workdir / "registry.sqlite3", client=client)
    try:
        client.get_balance("WARMUP")  # log in before the clock starts, as any session would
        start = time.perf_counter()
        sheet = bulk.read_configs(csv)
        plan = bulk.plan(bulk.validate(sheet), registry)
        run_start = time.perf_counter()
        result = bulk.run(plan, client=client, registry=registry, concurrency=CONCURRENCY)
        end = time.perf_counter()
    finally:
        client.close()
    if result.counts.get("created") != ROWS:
        raise RuntimeError(f"the toolkit did not create every row: {result.summary()}")
    configs = requests.get(url + "/_sandbox/configs", timeout=30).json()
    held = len(configs.get("payload", configs) if isinstance(configs, dict) else configs)
    return ROWS / (end - start), ROWS / (end - run_start), held


def run() -> list[Ratio]:
    with tempfile.TemporaryDirectory(prefix="bench-bulk-") as tmp:
        workdir = Path(tmp)
        with sandbox_process("--latency-ms", str(LATENCY_MS)) as url:
            baseline = _baseline(url)
            requests.post(url + "/_sandbox/reset", timeout=30).raise_for_status()
            # A reset clears the faults too: put the 50 ms back, and check it is there.
            requests.put(
                url + "/_sandbox/faults", json={"latency_ms": LATENCY_MS}, timeout=30
            ).raise_for_status()
            faults = requests.get(url + "/_sandbox/faults", timeout=30).json()["payload"]
            if faults.get("latency_ms") != LATENCY_MS:
                raise RuntimeError(f"the sandbox's latency is not {LATENCY_MS} ms: {faults}")
            toolkit_rps, run_rps, held = _toolkit(url, workdir)
            fast_toolkit, fast_bare = _fast_server(url, workdir)
    detail = (
        f"toolkit {toolkit_rps:.0f} rows/s end to end ({run_rps:.0f} rows/s for the run "
        f"alone; {ROWS} rows, {held} configs on the sandbox) vs sequential "
        f"{baseline:.1f} rows/s ({BASELINE_ROWS} rows, extrapolated to {ROWS})"
    )
    return [
        Ratio(
            "bulk-create speedup, concurrency 16 vs sequential",
            toolkit_rps / baseline,
            12,
            detail=detail,
        ),
        Ratio(
            f"bulk-create efficiency, rows/s ÷ {IDEAL_RPS:.0f} (ideal at 50 ms)",
            toolkit_rps / IDEAL_RPS,
            0.8,
        ),
        Ratio(
            f"latency 0: toolkit run (auto) ÷ a bare {BARE_THREADS}-thread requests loop",
            fast_toolkit / fast_bare,
            1.0,
            detail=f"({fast_toolkit:.0f} vs {fast_bare:.0f} rows/s, {FAST_ROWS} rows each)",
        ),
    ]


if __name__ == "__main__":
    for ratio in run():
        print(ratio.line())
