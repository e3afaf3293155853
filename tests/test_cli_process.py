"""`python -m toolkit` as a process: exit statuses, kill -9 and Ctrl-C halfway through a bulk
run then the same command again, and bad credentials tried exactly once."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import sandbox_profile
from test_cli_support import (
    assert_one_line_error,
    coins_command,
    process_env,
    read_results,
    run_coins,
    sandbox_env,
    write_configs,
)

from toolkit.profiles import save_profile
from toolkit.settings import SANDBOX_CREDENTIALS

ROWS = 240


@pytest.fixture
def env(fresh_sandbox: Any, tmp_path: Path) -> dict[str, str]:
    return sandbox_env(fresh_sandbox, tmp_path / "home")


def big_sheet(path: Path, rows: int = ROWS) -> tuple[Path, dict[tuple[str, str], int]]:
    wanted = {(f"CEKK{i:04d}", "MEAL_CARD_PAYMENT"): i % 50 + 1 for i in range(rows)}
    write_configs(path, [(c, e, a) for (c, e), a in wanted.items()])
    return path, wanted


def server_pairs(handle: Any) -> tuple[int, dict[tuple[str, str], int]]:
    configs = handle.app.sandbox.store.list_configs()
    return len(configs), {(c["companyId"], c["event"]): c["amount"] for c in configs}


def login_failures(handle: Any, username: str) -> int:
    with sqlite3.connect(f"file:{handle.db_path}?mode=ro", uri=True) as conn:
        row = conn.execute(
            "SELECT failures FROM login_failures WHERE username = ?", (username,)
        ).fetchone()
    return 0 if row is None else int(row[0])


def start_and_wait_for_rows(
    handle: Any, argv: list[str], env: dict[str, str], cwd: Path, *, at_least: int
) -> subprocess.Popen[str]:
    """Start `coins …` and return once the sandbox holds ``at_least`` configurations."""
    process = subprocess.Popen(
        coins_command(*argv),
        env=process_env(env),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    store = handle.app.sandbox.store
    deadline = time.monotonic() + 90
    while store.count_configs() < at_least:
        if process.poll() is not None:
            _, err = process.communicate()
            pytest.fail(f"coins ended before {at_least} rows (exit {process.returncode}): {err}")
        assert time.monotonic() < deadline, "the run never got going"
        time.sleep(0.02)
    return process


def test_exit_statuses_as_a_process_never_show_a_traceback(
    env: dict[str, str], tmp_path: Path
) -> None:
    helped = run_coins("bulk-create", "--help", env=env, cwd=tmp_path)
    assert helped.code == 0 and "Example" in helped.out

    missing = run_coins("validate", "missing.csv", env=env, cwd=tmp_path)
    assert missing.code == 2
    assert_one_line_error(missing.err, contains="missing.csv")

    sheet = write_configs(
        tmp_path / "mixed.csv", [("CEKP1", "MEAL_CARD_PAYMENT", "6"), ("CEKP2", "MEAL", "6.5")]
    )
    done = run_coins("bulk-create", str(sheet), env=env, cwd=tmp_path)
    assert done.code == 1  # one invalid row
    assert done.err == ""  # not a terminal: no progress bar, no hints
    assert "rows in = rows out: 2 = 2" in done.out
    assert [r["status"] for r in read_results(tmp_path / "mixed.results.csv")] == [
        "created",
        "invalid",
    ]


def test_kill_9_halfway_then_the_same_command_leaves_no_duplicate_and_none_missing(
    fresh_sandbox: Any, env: dict[str, str], tmp_path: Path
) -> None:
    # As the README asks before real work: the server's profile is known (`coins doctor`).
    profile = replace(sandbox_profile(fresh_sandbox), server_key=env["ENKASH_BASE_URL"])
    save_profile(env["COINS_HOME"], profile)
    sheet, wanted = big_sheet(tmp_path / "rollout.csv")
    argv = ["bulk-create", str(sheet), "--concurrency", "4"]
    fresh_sandbox.set_faults(latency_ms=25)
    process = start_and_wait_for_rows(fresh_sandbox, argv, env, tmp_path, at_least=ROWS // 5)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL
    partial, _ = server_pairs(fresh_sandbox)
    assert ROWS // 5 <= partial < ROWS, "killed halfway, not at the end"
    fresh_sandbox.clear_faults()

    again = run_coins(*argv, env=env, cwd=tmp_path)
    assert again.code == 0, again.err
    assert f"rows in = rows out: {ROWS} = {ROWS}" in again.out
    count, on_server = server_pairs(fresh_sandbox)
    assert count == ROWS  # none twice ...
    assert on_server == wanted  # ... and none missing, with the sheet's amounts
    results = read_results(tmp_path / "rollout.results.csv")
    assert [int(r["row"]) for r in results] == list(range(2, ROWS + 2))
    assert {r["status"] for r in results} == {"created"}
    ids = {c["coinConfigId"] for c in fresh_sandbox.app.sandbox.store.list_configs()}
    assert {r["coinConfigId"] for r in results} == ids


def test_kill_9_on_a_server_never_profiled_leaves_the_lost_rows_unconfirmed_never_doubled(
    fresh_sandbox: Any, env: dict[str, str], tmp_path: Path
) -> None:
    sheet, _ = big_sheet(tmp_path / "rollout.csv", rows=200)
    argv = ["bulk-create", str(sheet), "--concurrency", "4"]
    fresh_sandbox.set_faults(latency_ms=25)
    process = start_and_wait_for_rows(fresh_sandbox, argv, env, tmp_path, at_least=40)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    fresh_sandbox.clear_faults()

    again = run_coins(*argv, env=env, cwd=tmp_path)
    results = read_results(tmp_path / "rollout.results.csv")
    statuses = {r["status"] for r in results}
    assert statuses <= {"created", "unconfirmed"}
    assert len(results) == 200
    count, on_server = server_pairs(fresh_sandbox)
    assert count == len(on_server)  # none twice
    unconfirmed = [r for r in results if r["status"] == "unconfirmed"]
    # Only rows the killed run had handed out without an answer journaled; each says what to do.
    assert len(unconfirmed) < 200 - 40
    assert all("import-ids" in r["message"] for r in unconfirmed)
    assert again.code == (1 if unconfirmed else 0)
    assert "Traceback" not in again.err


def test_ctrl_c_stops_with_exit_130_and_the_same_command_finishes_the_job(
    fresh_sandbox: Any, env: dict[str, str], tmp_path: Path
) -> None:
    sheet, wanted = big_sheet(tmp_path / "rollout.csv", rows=120)
    argv = ["bulk-create", str(sheet), "--concurrency", "2"]
    fresh_sandbox.set_faults(latency_ms=25)
    process = start_and_wait_for_rows(fresh_sandbox, argv, env, tmp_path, at_least=10)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert_one_line_error(err, contains="interrupted — run the same command again to resume")
    assert server_pairs(fresh_sandbox)[0] < 120
    fresh_sandbox.clear_faults()

    again = run_coins(*argv, "--format", "json", env=env, cwd=tmp_path)
    assert again.code == 0, again.err
    assert again.json()["counts"] == {"created": 120}
    assert server_pairs(fresh_sandbox) == (120, wanted)


def test_bad_credentials_exit_2_after_a_single_login_attempt(
    fresh_sandbox: Any, env: dict[str, str], tmp_path: Path
) -> None:
    username = fresh_sandbox.credentials["username"]
    wrong = dict(env, ENKASH_PASSWORD="Wrong-Password-42")
    sheet, _ = big_sheet(tmp_path / "rollout.csv", rows=20)

    refused = run_coins("bulk-create", str(sheet), "--concurrency", "8", env=wrong, cwd=tmp_path)
    assert refused.code == 2
    line = assert_one_line_error(refused.err, contains="credentials were refused")
    assert line.count("ENKASH_PASSWORD") == 1  # the advice once, not twice
    assert "rows that need a look" not in refused.out  # no table of one reason 8 times
    assert "Wrong-Password-42" not in refused.out + refused.err
    assert login_failures(fresh_sandbox, username) == 1
    assert server_pairs(fresh_sandbox)[0] == 0
    results = read_results(tmp_path / "rollout.results.csv")
    assert len(results) == 20  # nothing reached the server: every row skipped, none failed
    assert {r["status"] for r in results} == {"skipped"}

    single = run_coins("balance", "EKU1", env=wrong, cwd=tmp_path)
    assert single.code == 2
    assert_one_line_error(single.err, contains="credentials were refused")
    assert login_failures(fresh_sandbox, username) == 2  # one more try, one more failure
    assert not fresh_sandbox.app.sandbox.store.is_locked(username)

    fine = run_coins("balance", "EKU1", env=env, cwd=tmp_path)
    assert (fine.code, fine.out.strip()) == (0, "0")
    assert login_failures(fresh_sandbox, username) == 0


def test_coins_sandbox_serves_in_the_foreground_until_ctrl_c(tmp_path: Path) -> None:
    db = tmp_path / "sandbox.sqlite3"
    env = {"COINS_HOME": str(tmp_path / "home")}
    process = subprocess.Popen(
        coins_command(
            "sandbox", "--port", "0", "--db", str(db), "--seed-demo", "--latency-ms", "1"
        ),
        env=process_env(env),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("Sandbox listening on http://127.0.0.1:"), line
        url = line.rsplit(" ", 1)[1].strip()
        # A base URL needs its credentials: the sandbox's are never filled in for one.
        creds = {f"ENKASH_{k.upper()}": v for k, v in SANDBOX_CREDENTIALS.items()}
        served_env = {**env, **creds, "ENKASH_BASE_URL": url}
        served = run_coins("balance", "EKU1", env=served_env, cwd=tmp_path, timeout=60)
        assert served.code == 0, served.err
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
    assert process.returncode == 0
    assert db.exists()
