"""Bulk runs against the real sandbox: accounting, resume, cancel, crash, tokens, allocations."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests

from toolkit import bulk
from toolkit.bulk.journal import Journal, make_run_key
from toolkit.bulk.outcomes import CANCELLED_MESSAGE
from toolkit.bulk.planning import plan, plan_allocations
from toolkit.bulk.results import write_results
from toolkit.bulk.running import RateLimiter, run
from toolkit.client import CoinsClient
from toolkit.registry import Registry
from toolkit.sandbox import start_sandbox

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def client_options() -> dict[str, Any]:
    """Every client of this module (`make_client` in conftest.py)."""
    return {"timeout_s": 5.0, "backoff_factor": 0.05, "backoff_max": 0.2}


def server_configs(url: str) -> list[dict[str, Any]]:
    body = requests.get(url + "/_sandbox/configs", timeout=30).json()
    return body.get("payload", body) if isinstance(body, dict) else body


def server_allocations(url: str) -> list[dict[str, Any]]:
    body = requests.get(url + "/_sandbox/allocations", timeout=30).json()
    return body.get("payload", body) if isinstance(body, dict) else body


def write_sheet(path: Path, rows: list[str], header: str = "companyId,event,amount") -> Path:
    path.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def config_rows(n: int, *, prefix: str = "CEK") -> list[str]:
    return [f"{prefix}{i:05d},MEAL_CARD_PAYMENT,{1 + i % 20}" for i in range(n)]


def plan_file(path: Path, registry: Registry, mode: str = "create") -> bulk.Plan:
    return plan(bulk.validate(bulk.read_configs(path)), registry, mode=mode)


def assert_one_config_per_row(url: str, companies: set[str]) -> None:
    configs = server_configs(url)
    pairs = Counter((c["companyId"], c["event"]) for c in configs)
    assert all(n == 1 for n in pairs.values())
    assert {c["companyId"] for c in configs} == companies


def left_sending(the_plan: bulk.Plan, client: CoinsClient, registry: Registry, n: int) -> str:
    """The journal as a crash leaves it: a run of ``the_plan`` whose first ``n`` rows were
    marked `sending` and never got an answer journaled. Returns the run id."""
    key = make_run_key(the_plan.file_sha256, the_plan.kind, the_plan.mode, client.server_key)
    with Journal(registry.path) as journal:
        run_id = journal.start_run(
            run_key=key,
            kind=the_plan.kind,
            mode=the_plan.mode,
            server_key=client.server_key,
            rows=the_plan.frame.rename(columns={"requestId": "request_id"})
            .reindex(columns=["row", "action", "request_id"])
            .assign(status="pending"),
        )
        journal.mark_sending(run_id, the_plan.frame["row"].tolist()[:n])
    return run_id


@pytest.fixture
def ws(
    make_client: Callable[..., CoinsClient], fresh_sandbox: Any, tmp_path: Path
) -> tuple[CoinsClient, Registry]:
    client = make_client(fresh_sandbox)
    registry = Registry(tmp_path / "registry.sqlite3", client=client)
    yield client, registry
    client.close()


# -- accounting ---------------------------------------------------------------------------


def test_rows_in_equal_rows_out_for_a_mix_of_valid_and_invalid_rows(
    ws: tuple[CoinsClient, Registry], fresh_sandbox: Any, tmp_path: Path
) -> None:
    client, registry = ws
    rows = [f"{r},note {i}" for i, r in enumerate(config_rows(40))]
    rows += [
        "CEKBAD1,MEAL_CARD_PAYMENT,6.5,amount has decimals",
        "cekbad2,MEAL_CARD_PAYMENT,6,lower-case company",
        "CEKBAD3,meal,6,bad event",
        "CEK00000,MEAL_CARD_PAYMENT,9,repeats the first pair",
        ",,,",
        "CEKBAD4,MEAL_CARD_PAYMENT,,missing amount",
    ]
    path = write_sheet(tmp_path / "mix.csv", rows, header="companyId,event,amount,note")
    sheet = bulk.read_configs(path)
    result = run(plan_file(path, registry), client=client, registry=registry, concurrency=4)

    assert len(result.frame) == len(sheet.frame)
    assert result.frame["row"].tolist() == sheet.frame["row"].tolist()
    assert result.counts["created"] == 40
    assert result.counts["invalid"] == len(sheet.frame) - 40
    assert result.frame["note"].tolist() == sheet.frame["note"].tolist()
    assert set(result.frame.columns) >= {"row", "companyId", "amount", "status", "message"}
    assert result.frame.loc[result.frame["status"] == "invalid", "message"].str.len().min() > 0
    created = result.frame[result.frame["status"] == "created"]
    assert created["coinConfigId"].str.startswith("WCC").all()
    assert_one_config_per_row(fresh_sandbox.url, {f"CEK{i:05d}" for i in range(40)})
    assert not result.ok


def test_upsert_updates_and_create_mode_reports_conflicts(
    ws: tuple[CoinsClient, Registry], fresh_sandbox: Any, tmp_path: Path
) -> None:
    client, registry = ws
    client.create_config(company_id="CEKA", event="MEAL_CARD_PAYMENT", amount=6)
    client.create_config(company_id="CEKB", event="MEAL_CARD_PAYMENT", amount=6)
    path = write_sheet(
        tmp_path / "c.csv",
        ["CEKA,MEAL_CARD_PAYMENT,6", "CEKB,MEAL_CARD_PAYMENT,8", "CEKC,MEAL_CARD_PAYMENT,1"],
    )

    created = run(plan_file(path, registry, "create"), client=client, registry=registry)
    assert created.frame["status"].tolist() == ["unchanged", "conflict", "created"]
    assert "not changed" in created.frame["message"].iloc[1]

    upserted = run(plan_file(path, registry, "upsert"), client=client, registry=registry)
    assert upserted.frame["status"].tolist() == ["unchanged", "updated", "unchanged"]
    amounts = {c["companyId"]: c["amount"] for c in server_configs(fresh_sandbox.url)}
    assert amounts == {"CEKA": 6, "CEKB": 8, "CEKC": 1}


def test_a_conflict_the_registry_did_not_know_is_resolved_by_mode(
    make_client: Callable[..., CoinsClient],
    ws: tuple[CoinsClient, Registry],
    fresh_sandbox: Any,
    tmp_path: Path,
) -> None:
    client, registry = ws
    with make_client(fresh_sandbox) as elsewhere:  # not recorded in this registry
        elsewhere.create_config(company_id="CEKX", event="MEAL_CARD_PAYMENT", amount=3)
        elsewhere.create_config(company_id="CEKY", event="MEAL_CARD_PAYMENT", amount=5)
    path = write_sheet(tmp_path / "c.csv", ["CEKX,MEAL_CARD_PAYMENT,3", "CEKY,MEAL_CARD_PAYMENT,9"])

    created = run(plan_file(path, registry), client=client, registry=registry)
    assert created.frame["status"].tolist() == ["unchanged", "conflict"]
    upserted = run(plan_file(path, registry, "upsert"), client=client, registry=registry)
    assert upserted.frame["status"].tolist() == ["unchanged", "updated"]
    assert len(server_configs(fresh_sandbox.url)) == 2


# -- resume, cancel, crash ------------------------------------------------------------------


def test_running_the_same_file_again_reuses_every_result(
    ws: tuple[CoinsClient, Registry], tmp_path: Path
) -> None:
    client, registry = ws
    path = write_sheet(tmp_path / "c.csv", config_rows(30))
    first = run(plan_file(path, registry), client=client, registry=registry, concurrency=4)
    again = run(plan_file(path, registry), client=client, registry=registry, concurrency=4)

    assert again.run_id == first.run_id
    assert again.sent == 0 and again.reused == 30
    assert again.frame["status"].tolist() == ["created"] * 30
    assert again.frame["coinConfigId"].tolist() == first.frame["coinConfigId"].tolist()


def test_rows_decided_without_sending_are_decided_again_when_the_file_runs_again(
    ws: tuple[CoinsClient, Registry], tmp_path: Path
) -> None:
    client, registry = ws
    known = client.create_config(company_id="CEKA", event="MEAL_CARD_PAYMENT", amount=6)
    path = write_sheet(tmp_path / "c.csv", ["CEKA,MEAL_CARD_PAYMENT,9", "CEKB,MEAL_CARD_PAYMENT,1"])
    first = run(plan_file(path, registry), client=client, registry=registry)
    assert first.frame["status"].tolist() == ["conflict", "created"]

    client.update_config(known.coin_config_id, amount=9)  # the analyst settles it by hand
    again = run(plan_file(path, registry), client=client, registry=registry)

    assert again.run_id == first.run_id
    assert again.frame["status"].tolist() == ["unchanged", "created"]
    assert again.sent == 0 and again.reused == 1
    with Journal(registry.path) as journal:
        runs = journal.runs()
    assert runs.loc[runs["run_id"] == first.run_id, "unchanged"].item() == 1


def test_cancel_then_resume_completes_without_duplicates(
    ws: tuple[CoinsClient, Registry], fresh_sandbox: Any, tmp_path: Path
) -> None:
    client, registry = ws
    path = write_sheet(tmp_path / "c.csv", config_rows(120))
    cancel = threading.Event()
    seen: list[tuple[int, int]] = []

    def progress(done: int, total: int, counts: dict[str, int]) -> None:
        seen.append((done, total))
        if counts.get("created", 0) >= 20:
            cancel.set()

    first = run(
        plan_file(path, registry),
        client=client,
        registry=registry,
        concurrency=4,
        rps=60,
        progress=progress,
        cancel=cancel,
    )
    assert first.cancelled
    assert len(first.frame) == 120
    skipped = first.frame[first.frame["status"] == "skipped"]
    assert len(skipped) > 0 and (skipped["message"] == CANCELLED_MESSAGE).all()
    assert first.counts["created"] + first.counts["skipped"] == 120
    assert seen[-1] == (120, 120)

    second = run(plan_file(path, registry), client=client, registry=registry, concurrency=4)
    assert second.run_id == first.run_id
    assert second.counts["created"] == 120
    assert second.sent == 120 - first.counts["created"]
    assert_one_config_per_row(fresh_sandbox.url, {f"CEK{i:05d}" for i in range(120)})


def test_rows_left_sending_by_a_crash_are_resolved_without_duplicates(
    make_client: Callable[..., CoinsClient],
    ws: tuple[CoinsClient, Registry],
    fresh_sandbox: Any,
    tmp_path: Path,
) -> None:
    """A crash after some creates reached the server but before their answers were journaled."""
    client, registry = ws
    path = write_sheet(tmp_path / "c.csv", config_rows(30))
    the_plan = plan_file(path, registry)
    run_id = left_sending(the_plan, client, registry, 10)
    # Half of the rows marked `sending` reached the server; their answers were lost.
    with make_client(fresh_sandbox) as lost:
        for line in config_rows(5):
            company, event, amount = line.split(",")
            lost.create_config(company_id=company, event=event, amount=int(amount))

    result = run(plan_file(path, registry), client=client, registry=registry, concurrency=4)

    assert result.run_id == run_id
    assert result.counts["created"] == 30, result.frame["message"].tolist()
    assert_one_config_per_row(fresh_sandbox.url, {f"CEK{i:05d}" for i in range(30)})


KILL_SCRIPT = textwrap.dedent(
    """
    import sys
    from toolkit import bulk
    from toolkit.client import CoinsClient
    from toolkit.registry import Registry

    url, client_id, secret, user, password, sheet, registry_path = sys.argv[1:]
    client = CoinsClient(base_url=url, client_id=client_id, client_secret=secret,
                         username=user, password=password)
    registry = Registry(registry_path, client=client)
    the_plan = bulk.plan(bulk.validate(bulk.read_configs(sheet)), registry)
    bulk.run(the_plan, client=client, registry=registry, concurrency=4, rps=40)
    """
)


def test_kill_9_mid_run_then_resume_loses_nothing(
    make_client: Callable[..., CoinsClient], fresh_sandbox: Any, tmp_path: Path
) -> None:
    path = write_sheet(tmp_path / "c.csv", config_rows(300))
    registry_path = tmp_path / "registry.sqlite3"
    creds = fresh_sandbox.credentials
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            KILL_SCRIPT,
            fresh_sandbox.url,
            creds["client_id"],
            creds["client_secret"],
            creds["username"],
            creds["password"],
            str(path),
            str(registry_path),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        deadline = time.monotonic() + 60
        done = 0
        while done < 60 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            try:
                with sqlite3.connect(registry_path) as conn:
                    done = conn.execute(
                        "SELECT COUNT(*) FROM bulk_rows WHERE status = 'created'"
                    ).fetchone()[0]
            except sqlite3.Error:
                done = 0
        assert proc.poll() is None, "the run ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert len(server_configs(fresh_sandbox.url)) < 300

    with make_client(fresh_sandbox) as client:
        registry = Registry(registry_path, client=client)
        result = run(plan_file(path, registry), client=client, registry=registry, concurrency=8)

    assert len(result.frame) == 300
    assert result.counts["created"] == 300, result.summary()
    assert result.reused >= 60
    assert_one_config_per_row(fresh_sandbox.url, {f"CEK{i:05d}" for i in range(300)})


# -- tokens -----------------------------------------------------------------------------------


def test_tokens_expiring_mid_run_are_renewed(
    make_client: Callable[..., CoinsClient], tmp_path: Path
) -> None:
    with start_sandbox(tmp_path / "sandbox.sqlite3", token_ttl=2) as sandbox:
        client = make_client(sandbox)
        registry = Registry(tmp_path / "registry.sqlite3", client=client)
        path = write_sheet(tmp_path / "c.csv", config_rows(100))
        started = time.monotonic()
        result = run(plan_file(path, registry), client=client, registry=registry, rps=20)
        client.close()
        assert time.monotonic() - started > 4  # two token lifetimes at least
        assert result.counts["created"] == 100, result.summary()
        assert len(server_configs(sandbox.url)) == 100


def test_refused_credentials_stop_the_run_and_every_row_is_skipped_not_failed(
    make_client: Callable[..., CoinsClient], fresh_sandbox: Any, tmp_path: Path
) -> None:
    client = make_client(fresh_sandbox, password="not-the-password")
    registry = Registry(tmp_path / "registry.sqlite3", client=client)
    path = write_sheet(tmp_path / "c.csv", config_rows(40))
    result = run(plan_file(path, registry), client=client, registry=registry, concurrency=4)
    client.close()

    assert result.fatal_error is not None
    assert len(result.frame) == 40
    # Nothing reached the server: every row is `skipped` (sent again on the next run), none
    # `failed`, and the run sent nothing.
    assert result.counts["skipped"] == 40 and result.sent == 0
    assert result.frame["message"].str.startswith("not sent:").all()
    assert "not-the-password" not in " ".join(result.frame["message"])
    assert server_configs(fresh_sandbox.url) == []


def test_progress_bar_counts_every_row(
    ws: tuple[CoinsClient, Registry], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client, registry = ws
    path = write_sheet(tmp_path / "c.csv", config_rows(10))
    progress = bulk.progress_bar(desc="bulk-create", file=sys.stderr, mininterval=0)
    run(plan_file(path, registry), client=client, registry=registry, progress=progress)
    assert "10/10" in capsys.readouterr().err


# -- allocations ------------------------------------------------------------------------------


def test_running_an_allocation_file_again_allocates_nothing_twice(
    ws: tuple[CoinsClient, Registry], fresh_sandbox: Any, tmp_path: Path
) -> None:
    client, registry = ws
    client.create_config(company_id="CEKA", event="MEAL_CARD_PAYMENT", amount=6)
    client.create_config(company_id="CEKA", event="REFERRAL_EVENT", amount=50)
    lines = [f"CEKA,MEAL_CARD_PAYMENT,EKUSER{i % 7}," for i in range(21)]
    lines += ["CEKA,REFERRAL_EVENT,EKUSER1,MYREQ-1", "CEKA,REFERRAL_EVENT,EKUSER2,MYREQ-2"]
    lines += ["CEKA,NOT_CONFIGURED,EKUSER3,", "CEKA,MEAL_CARD_PAYMENT,,"]
    path = write_sheet(tmp_path / "a.csv", lines, header="companyId,event,userId,requestId")

    def allocation_plan() -> bulk.Plan:
        return plan_allocations(bulk.validate_allocations(bulk.read_allocations(path)), registry)

    first = run(allocation_plan(), client=client, registry=registry, concurrency=4)
    assert first.counts["allocated"] == 23
    assert first.counts["failed"] == 1 and first.counts["invalid"] == 1
    assert first.frame["requestId"].iloc[0].startswith("BULK-")
    balances = {f"EKUSER{u}": client.get_balance(f"EKUSER{u}") for u in range(7)}
    assert balances["EKUSER1"] == 3 * 6 + 50
    allocations = len(server_allocations(fresh_sandbox.url))

    again = run(allocation_plan(), client=client, registry=registry, concurrency=4)
    assert again.run_id == first.run_id and again.counts["allocated"] == 23
    fresh = run(allocation_plan(), client=client, registry=registry, resume=False)
    assert fresh.run_id != first.run_id
    # Derived ids are this file's own: a repeat is "already done". A requestId the analyst
    # gave that the server has seen is reported, since it may belong to another allocation.
    assert fresh.counts["allocated"] == 0 and fresh.counts["unchanged"] == 21
    assert fresh.counts["conflict"] == 2
    assert "nothing allocated twice" in fresh.frame["message"].iloc[0]
    assert "MYREQ-1 was used before" in fresh.frame["message"].iloc[21]

    assert {u: client.get_balance(u) for u in balances} == balances
    assert len(server_allocations(fresh_sandbox.url)) == allocations


def test_allocations_left_sending_count_as_allocated_once_when_resumed(
    ws: tuple[CoinsClient, Registry], fresh_sandbox: Any, tmp_path: Path
) -> None:
    client, registry = ws
    client.create_config(company_id="CEKA", event="MEAL_CARD_PAYMENT", amount=6)
    lines = [f"CEKA,MEAL_CARD_PAYMENT,EKUSER{i},REQ-{i}" for i in range(10)]
    path = write_sheet(tmp_path / "a.csv", lines, header="companyId,event,userId,requestId")
    the_plan = plan_allocations(bulk.validate_allocations(bulk.read_allocations(path)), registry)
    left_sending(the_plan, client, registry, 4)
    for i in range(2):  # two of the four reached the server before the crash
        client.allocate_coins(
            company_id="CEKA",
            event="MEAL_CARD_PAYMENT",
            user_id=f"EKUSER{i}",
            request_id=f"REQ-{i}",
        )

    result = run(the_plan, client=client, registry=registry)

    # The two whose answers were lost were allocated by this run: counted as allocated (as a
    # create confirmed when resuming is "created"), not as "unchanged".
    assert result.frame["status"].tolist() == ["allocated"] * 10
    assert result.frame["message"].str.contains("confirmed when resuming").tolist()[:4] == [
        True,
        True,
        False,
        False,
    ]
    assert [client.get_balance(f"EKUSER{i}") for i in range(10)] == [6] * 10


# -- results files and small parts ---------------------------------------------------------------


def test_results_csv_is_safe_to_open_in_excel(
    ws: tuple[CoinsClient, Registry], tmp_path: Path
) -> None:
    client, registry = ws
    path = write_sheet(
        tmp_path / "c.csv",
        [
            'CEKA,MEAL_CARD_PAYMENT,6,"=HYPERLINK(""http://evil"",""x"")"',
            "CEKB,MEAL_CARD_PAYMENT,-5,+1 for Priya",
            "CEKC,MEAL_CARD_PAYMENT,2,@SUM(A1)",
            "CEKD,MEAL_CARD_PAYMENT,3,₹ café",
        ],
        header="companyId,event,amount,note",
    )
    out = tmp_path / "out" / "results.csv"
    result = run(plan_file(path, registry), client=client, registry=registry, results_path=out)

    assert result.results_path == out
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    back = pd.read_csv(out, dtype=str, encoding="utf-8-sig", keep_default_na=False)
    assert back["note"].tolist() == [
        '\'=HYPERLINK("http://evil","x")',
        "'+1 for Priya",
        "'@SUM(A1)",
        "₹ café",
    ]
    assert back.loc[1, "amount"] == "'-5"
    assert back["status"].tolist() == ["created", "invalid", "created", "created"]
    assert len(back) == len(result.frame)


def test_write_results_neutralises_tabs_carriage_returns_and_headers(tmp_path: Path) -> None:
    frame = pd.DataFrame({"=bad": ["\tx", "\ry", "ok", None], "n": [1, 2, 3, 4]})
    text = write_results(frame, tmp_path / "r.csv").read_text(encoding="utf-8-sig")
    back = pd.read_csv(tmp_path / "r.csv", dtype=str, encoding="utf-8-sig")
    assert text.startswith("'=bad,n")
    assert back["'=bad"].tolist()[:3] == ["'\tx", "'\ry", "ok"]


def test_write_results_shows_nul_and_cuts_cells_beyond_excels_limit(tmp_path: Path) -> None:
    frame = pd.DataFrame({"companyId": ["CEK\x00NUL", "X" * 40_000, "ok"], "n": [1, 2, 3]})
    raw = write_results(frame, tmp_path / "r.csv").read_bytes()
    back = pd.read_csv(tmp_path / "r.csv", dtype=str, encoding="utf-8-sig")
    assert b"\x00" not in raw
    assert back["companyId"].tolist()[0] == "CEK\ufffdNUL"
    assert len(back["companyId"][1]) <= 32_767 and back["companyId"][1].endswith("…")
    assert back["companyId"][2] == "ok" and back["n"].tolist() == ["1", "2", "3"]


def test_rate_limiter_spaces_acquisitions() -> None:
    limiter = RateLimiter(50)
    started = time.monotonic()
    for _ in range(26):
        limiter.acquire()
    assert time.monotonic() - started >= 0.45
    cancel = threading.Event()
    cancel.set()
    slow = RateLimiter(0.1)
    slow.acquire()
    assert slow.acquire(cancel) is False


def test_running_an_allocation_sheet_again_after_fixing_one_row_allocates_only_that_row(
    ws: tuple[CoinsClient, Registry], fresh_sandbox: Any, tmp_path: Path
) -> None:
    client, registry = ws
    client.create_config(company_id="CEKA", event="MEAL_CARD_PAYMENT", amount=6)
    lines = [f"CEKA,MEAL_CARD_PAYMENT,EKUSER{i}" for i in range(6)]
    lines[2] = "CEKA,MEAL_CARD_PAYMEN,EKUSER2"  # a typo: that row fails
    path = write_sheet(tmp_path / "payouts.csv", lines, header="companyId,event,userId")

    def run_sheet() -> Any:
        sheet = bulk.read_allocations(path)
        return run(
            plan_allocations(bulk.validate_allocations(sheet), registry),
            client=client,
            registry=registry,
            concurrency=3,
        )

    first = run_sheet()
    assert first.counts["allocated"] == 5 and first.counts["failed"] == 1
    lines[2] = "CEKA,MEAL_CARD_PAYMENT,EKUSER2"  # fixed in the sheet: a new file content
    write_sheet(path, lines, header="companyId,event,userId")

    again = run_sheet()

    assert again.run_id != first.run_id
    assert again.counts["allocated"] == 1 and again.counts["unchanged"] == 5
    # It says what happened, and never advises renaming the sheet (that would pay twice).
    assert "earlier run of this sheet" in again.frame["message"].iloc[0]
    assert "new name" not in again.frame["message"].iloc[0]
    assert [client.get_balance(f"EKUSER{i}") for i in range(6)] == [6] * 6
    assert len(server_allocations(fresh_sandbox.url)) == 6


def test_a_row_sent_before_a_crash_is_resent_with_the_request_id_it_was_sent_with(
    ws: tuple[CoinsClient, Registry], fresh_sandbox: Any, tmp_path: Path
) -> None:
    """The journal, not today's derivation, decides the id of a row already sent (e.g. sent by
    an older version that derived ids otherwise): resending under a new id would pay twice."""
    client, registry = ws
    client.create_config(company_id="CEKA", event="MEAL_CARD_PAYMENT", amount=6)
    lines = [f"CEKA,MEAL_CARD_PAYMENT,EKUSER{i}" for i in range(3)]
    path = write_sheet(tmp_path / "a.csv", lines, header="companyId,event,userId")
    the_plan = plan_allocations(bulk.validate_allocations(bulk.read_allocations(path)), registry)
    old_ids = the_plan.frame.assign(requestId=["OLD-0", "OLD-1", "OLD-2"])
    left_sending(replace(the_plan, frame=old_ids), client, registry, 2)
    client.allocate_coins(
        company_id="CEKA", event="MEAL_CARD_PAYMENT", user_id="EKUSER0", request_id="OLD-0"
    )

    result = run(the_plan, client=client, registry=registry)

    assert result.counts["allocated"] == 3
    assert result.frame["requestId"].tolist()[:2] == ["OLD-0", "OLD-1"]
    assert [client.get_balance(f"EKUSER{i}") for i in range(3)] == [6, 6, 6]


def test_write_results_writes_timestamps_excel_reads_as_dates(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"at": pd.to_datetime(["2026-11-26T19:24:19.946477+05:30"], utc=True), "n": [1]}
    )
    text = write_results(frame, tmp_path / "r.csv").read_text(encoding="utf-8-sig")
    assert text.splitlines()[1] == "2026-11-26 13:54:19,1"


def test_a_server_that_stops_answering_stops_the_run_instead_of_retrying_every_row(
    make_client: Callable[..., CoinsClient],
    tmp_path: Path,
) -> None:
    handle = start_sandbox(tmp_path / "gone.sqlite3")
    client = make_client(handle, max_retries=1, backoff_factor=0.01, sleep=lambda s: None)
    client.login()  # a valid token, then the server goes away: every row fails to connect
    handle.stop()
    registry = Registry(tmp_path / "registry.sqlite3", client=client)
    the_plan = plan_file(write_sheet(tmp_path / "s.csv", config_rows(40)), registry)

    result = run(the_plan, client=client, registry=registry, concurrency=2)

    statuses = Counter(result.frame["status"])
    assert len(result.frame) == 40  # rows in = rows out
    assert 5 <= statuses["failed"] < 40
    assert statuses["failed"] + statuses["skipped"] == 40
    assert "the run stopped" in str(result.fatal_error)
    client.close()


def test_no_login_at_all_sends_nothing_and_skips_every_row(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead_url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    client = CoinsClient(
        base_url=dead_url,
        client_id="SANDBOX",
        client_secret="sandbox-secret",
        username="analyst@example.com",
        password="sandbox-password",
        backoff_factor=0.01,
        sleep=lambda seconds: None,
    )
    registry = Registry(tmp_path / "registry.sqlite3", client=client)
    the_plan = plan_file(write_sheet(tmp_path / "s.csv", config_rows(12)), registry)

    result = run(the_plan, client=client, registry=registry, concurrency=4)

    assert len(result.frame) == 12
    assert set(result.frame["status"]) == {"skipped"}
    assert result.sent == 0
    assert "Could not log in" in str(result.fatal_error)
    client.close()
