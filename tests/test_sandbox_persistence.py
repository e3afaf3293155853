"""State lives in the SQLite file: it survives restarts and is shared between processes.

Also the command line: ``python -m toolkit.sandbox`` prints one line, serves, and exits 0.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import requests

from toolkit.sandbox import embedded, start_sandbox

ROOT = Path(__file__).resolve().parents[1]
CREATE = "/api/v0/enkash-coins/create-coins-config"
ALLOCATE = "/api/v0/enkash-coins/allocate-coin"
BALANCE = "/api/v0/coins/balance"
BODY = {
    "configuration": "DEFAULT",
    "companyId": "CEKEKCARDS",
    "event": "MEAL_CARD_PAYMENT",
    "amount": 6,
}
ALLOCATION = {
    "companyId": "CEKEKCARDS",
    "event": "MEAL_CARD_PAYMENT",
    "requestId": "REQ1",
    "userId": "EKQZVMQK",
}


def test_restart_with_the_same_db_keeps_configs_allocations_and_tokens(
    tmp_path: Path, make_api: Any
) -> None:
    db = tmp_path / "state.sqlite3"
    with start_sandbox(db, dialect="project") as first:
        api = make_api(first)
        config_id = api.post(CREATE, json=BODY).json()["payload"]["coinConfigId"]
        assert api.post(ALLOCATE, json=ALLOCATION).status_code == 200
        token = api.access_token
    with start_sandbox(db, dialect="project") as second:
        api = make_api(second, token=False)
        api.headers["Authorization"] = f"Bearer {token}"  # tokens live in the file too
        got = api.get(f"/api/v0/enkash-coins/{config_id}").json()["payload"]
        assert got["companyId"] == "CEKEKCARDS" and got["amount"] == 6
        assert api.get(BALANCE, params={"userId": "EKQZVMQK"}).json()["payload"] == 6
        assert api.post(ALLOCATE, json=ALLOCATION).status_code == 409
        assert api.post(CREATE, json=BODY).status_code == 409


def test_lockout_survives_a_restart_and_a_fresh_db_has_none(tmp_path: Path, make_api: Any) -> None:
    db = tmp_path / "locks.sqlite3"
    with start_sandbox(db, dialect="project") as first:
        api = make_api(first, token=False)
        for _ in range(3):
            api.token_response(password="wrong")
    with start_sandbox(db, dialect="project") as second:
        answer = make_api(second, token=False).token_response()
        assert answer.status_code == 400 and "locked" in answer.json()["error_description"]
    with start_sandbox(tmp_path / "fresh.sqlite3", dialect="project") as fresh:
        assert make_api(fresh, token=False).token_response().status_code == 200


def test_two_sandboxes_on_one_file_share_state(tmp_path: Path, make_api: Any) -> None:
    db = tmp_path / "shared.sqlite3"
    with (
        start_sandbox(db, dialect="project") as left,
        start_sandbox(db, dialect="project") as right,
    ):
        a, b = make_api(left), make_api(right)

        def create_many(api: Any, out: list) -> None:
            for i in range(15):
                body = BODY | {"event": f"EVENT_{i}"}
                out.append(api.post(CREATE, json=body).status_code)

        results: list[int] = []
        threads = [threading.Thread(target=create_many, args=(s, results)) for s in (a, b)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(results) == [200] * 15 + [409] * 15  # one config per pair across both
        # A token from one process works in the other.
        b.headers["Authorization"] = f"Bearer {a.access_token}"
        assert b.get(BALANCE, params={"userId": "U1"}).status_code == 200


def test_temporary_db_is_removed_at_stop(make_api: Any) -> None:
    handle = start_sandbox(dialect="project")
    path = handle.db_path
    assert path.exists()
    handle.stop()
    handle.stop()  # idempotent
    assert not path.exists()
    assert "stopped" in repr(handle)


def test_embedded_is_one_seeded_sandbox_per_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = embedded(home)
    try:
        assert embedded(home) is first
        assert first.db_path == (home / "sandbox.sqlite3").resolve()
        configs = requests.get(first.url + "/_sandbox/configs", timeout=10).json()["payload"]
        assert len(configs) >= 60
        first.reset()  # an existing (now empty) database is not seeded again
    finally:
        first.stop()
    second = embedded(home)
    try:
        assert second is not first
        assert requests.get(second.url + "/_sandbox/configs", timeout=10).json()["payload"] == []
    finally:
        second.stop()


# ---- the command line ------------------------------------------------------------------------


def _launch(tmp_path: Path, *args: str) -> subprocess.Popen:
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "toolkit.sandbox",
            "--port",
            "0",
            "--db",
            str(tmp_path / "cli.db"),
            "--dialect",
            "project",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )


def _login(url: str, client: tuple[str, str] = ("SANDBOX", "sandbox-secret")) -> requests.Response:
    """The password grant as any OAuth client sends it, with the default user."""
    return requests.post(
        url + "/oauth/token",
        auth=client,
        data={
            "username": "analyst@example.com",
            "password": "sandbox-password",
            "grant_type": "password",
        },
        timeout=10,
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_cli_prints_one_line_serves_and_exits_cleanly_on_signal(tmp_path: Path, sig: int) -> None:
    process = _launch(tmp_path, "--seed-demo")
    try:
        line = process.stdout.readline()
        assert line.startswith("Sandbox listening on http://127.0.0.1:")
        url = line.split()[-1]
        assert int(url.rsplit(":", 1)[1]) > 0
        answer = _login(url)
        assert answer.status_code == 200
        process.send_signal(sig)
        out, err = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert out == ""  # nothing on stdout beyond the one line
    assert "sandbox-password" in err  # --seed-demo shows the credentials on stderr
    assert "Traceback" not in err


def test_cli_exits_quietly_on_sigterm_with_a_slow_answer_in_flight(tmp_path: Path) -> None:
    process = _launch(tmp_path, "--slow-after-commit-rate", "1", "--slow-after-commit-ms", "60000")
    outcome: list[BaseException | int] = []
    try:
        url = process.stdout.readline().split()[-1]
        token = _login(url).json()["access_token"]

        def waiting_call() -> None:
            try:
                outcome.append(
                    requests.get(
                        url + BALANCE,
                        params={"userId": "EKU1"},
                        headers={"Authorization": f"Bearer {token}"},
                        timeout=30,
                    ).status_code
                )
            except requests.RequestException as exc:
                outcome.append(exc)

        caller = threading.Thread(target=waiting_call)
        caller.start()
        threading.Event().wait(0.5)  # the call has been answered-to-be: it is in the slow wait
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=15)
        caller.join(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert out == ""
    assert "Traceback" not in err and "CancelledError" not in err, err
    assert len(outcome) == 1 and isinstance(outcome[0], requests.ConnectionError)


def test_cli_options_set_credentials_and_ttl(tmp_path: Path) -> None:
    process = _launch(
        tmp_path, "--client-id", "MYCLIENT", "--client-secret", "s3", "--token-ttl", "7"
    )
    try:
        url = process.stdout.readline().split()[-1]
        answer = _login(url, ("MYCLIENT", "s3"))
        assert answer.status_code == 200 and answer.json()["expires_in"] == 7
    finally:
        process.terminate()
        process.wait(timeout=15)
    assert process.returncode == 0


def test_cli_help_shows_an_example() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "toolkit.sandbox", "--help"],
        capture_output=True,
        text=True,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
        timeout=30,
        check=True,
    ).stdout
    assert "example:" in out and "--seed-demo" in out and "--drop-rate" in out


def test_importing_the_sandbox_pulls_in_neither_pandas_nor_requests() -> None:
    code = (
        "import sys, toolkit.sandbox; "
        "print(sorted(m for m in ('pandas', 'requests') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
        timeout=30,
        check=True,
    ).stdout
    assert out.strip() == "[]"


def test_cli_refuses_bad_fault_rates(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "toolkit.sandbox", "--error-rate", "2"],
        capture_output=True,
        text=True,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
        timeout=30,
        cwd=tmp_path,
    )
    assert result.returncode == 2 and "between 0 and 1" in result.stderr


# The first schema of the sandbox's database, as files made before dialects hold it.
_SCHEMA_0001 = """
CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT);
INSERT INTO _migrations VALUES ('0001_initial', '2026-01-01T00:00:00.000Z');
CREATE TABLE configs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, coin_config_id TEXT NOT NULL UNIQUE,
    company_id TEXT NOT NULL, event TEXT NOT NULL, configuration TEXT NOT NULL,
    amount INTEGER NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
    UNIQUE (company_id, event));
CREATE TABLE allocations (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, request_id TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL, company_id TEXT NOT NULL, event TEXT NOT NULL,
    coin_config_id TEXT NOT NULL, amount INTEGER NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE tokens (token TEXT PRIMARY KEY, kind TEXT NOT NULL, username TEXT NOT NULL,
    client_id TEXT NOT NULL, expires_at REAL NOT NULL);
CREATE TABLE login_failures (username TEXT PRIMARY KEY, failures INTEGER NOT NULL,
    last_failure_at REAL NOT NULL);
INSERT INTO configs VALUES (1, 'WCC817428', 'CEKEKCARDS', 'MEAL_CARD_PAYMENT', 'DEFAULT', 6,
    '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z');
INSERT INTO allocations VALUES (1, 'REQ0', 'EKQZVMQK', 'CEKEKCARDS', 'MEAL_CARD_PAYMENT',
    'WCC817428', 6, '2026-01-01T00:00:00.000Z');
"""


def test_a_database_from_before_dialects_is_migrated_keeping_its_rows(
    tmp_path: Path, make_api: Any
) -> None:
    import sqlite3

    db = tmp_path / "old.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.executescript(_SCHEMA_0001)
    conn.close()
    with start_sandbox(db, dialect="project") as handle:
        api = make_api(handle)
        assert api.get(BALANCE, params={"userId": "EKQZVMQK"}).json()["payload"] == 6
        got = api.get("/api/v0/enkash-coins/WCC817428").json()["payload"]
        assert got["amount"] == 6
        assert api.post(CREATE, json=BODY).status_code == 409  # the rule still holds
    with start_sandbox(db, dialect="lenient") as handle:
        api = make_api(handle)
        second = api.post(CREATE, json=BODY | {"amount": 9})
        assert second.status_code == 200  # the constraint is gone: lenient may keep two
        api.post(ALLOCATE, json=ALLOCATION)
        assert api.get(BALANCE, params={"userId": "EKQZVMQK"}).json()["payload"] == 15
